/**
 * The nftables dataplane: bpfnet's own `table ip bpfnet` (+ `table bridge
 * bpfnet` for anti-spoofing), every change one `nft -f -` transaction, so a
 * refused change leaves the previous ruleset exactly as it was.
 *
 * Updates are O(change): the last applied plan is kept in memory, and when
 * only published ports differ the transaction is just element deletes and
 * adds on the port maps. Anything else (networks, endpoints, first apply,
 * after a restart, or when the incremental transaction fails because
 * someone removed our table) rewrites both tables in one transaction.
 */
import type { ApplyReport, DesiredState } from '../types.js';
import { planShape, planState } from '../netfilter/plan.js';
import { NetfilterDataplane, portsReport, type VerifyResult } from '../netfilter/dataplane.js';
import { applyError } from '../netfilter/errors.js';
import { run } from '../../util/exec.js';
import { CommandError } from '../../util/errors.js';
import { FAMILIES, IP_CHAINS, TABLE, diffPorts, netChain, renderFull, renderPortDiff, renderRemoval } from './render.js';
import { dockerUserDrift, dockerUserRules, removeDockerUser, syncDockerUser } from '../iptables/dockeruser.js';

/** One `nft -f -`: one transaction. */
async function nftScript(netns: string | undefined, script: string): Promise<void> {
  await run('nft', ['-f', '-'], { netns, input: script });
}

/** The families (ip, bridge) in which `table FAMILY bpfnet` exists. */
async function ourTables(netns: string | undefined): Promise<string[]> {
  const lines = (await run('nft', ['-t', 'list', 'tables'], { netns })).stdout.split('\n');
  return FAMILIES.filter((f) => lines.includes(`table ${f} ${TABLE}`));
}

export class NftablesDataplane extends NetfilterDataplane {
  readonly mode = 'nftables' as const;
  /** How the last apply was done: 'full' rewrite, 'ports' element diff, or 'none'. */
  lastKind: 'full' | 'ports' | 'none' = 'none';

  private nft(script: string): Promise<void> {
    return nftScript(this.opts.netns, this.rewritten(script));
  }

  protected async applyNow(state: DesiredState): Promise<ApplyReport> {
    const t0 = performance.now();
    const plan = planState(state); // bad input throws here, before anything is touched
    const shape = planShape(plan);
    const prev = this.last;
    const diff = diffPorts(prev?.plan.ports ?? [], plan.ports);
    const t1 = performance.now();
    let kind: 'full' | 'ports' | 'none' = 'full';
    if (prev?.shape === shape) {
      const script = renderPortDiff(diff);
      kind = script ? 'ports' : 'none';
      // A refused diff: our table was changed behind our back, so rewrite it whole.
      if (script) await this.nft(script).catch(() => (kind = 'full'));
    }
    if (kind === 'full') {
      try {
        await this.nft(renderFull(plan));
      } catch (e) {
        throw applyError('nftables', e, 'not-needed'); // one transaction: nothing changed
      }
    }
    const t2 = performance.now();
    // Devices only change with the shape; reconcile() re-checks them.
    if (kind === 'full') await this.ensureHost(plan);
    // Our accepts do not stop a dockerd's FORWARD policy DROP: see dockeruser.ts.
    const warnings: string[] = [];
    if (kind === 'full') {
      await syncDockerUser(this.opts.netns, dockerUserRules(state.networks ?? [])).catch((e: Error) => warnings.push(`could not add bpfnet's accepts to Docker's DOCKER-USER chain: ${e.message}`));
    }
    this.lastTimings = { planMs: t1 - t0, kernelMs: t2 - t1, hostMs: performance.now() - t2 };
    this.last = { state, plan, shape };
    this.lastKind = kind;
    return { ...portsReport(diff.add.length, diff.remove.length), ...(warnings.length ? { warnings } : {}) };
  }

  /** Both tables and every chain exist, and table ip bpfnet has rules. */
  async verify(): Promise<VerifyResult> {
    if (!this.last) return { ok: true, drift: [] };
    const present = await ourTables(this.opts.netns);
    const drift = FAMILIES.filter((f) => !present.includes(f)).map((f) => `table ${f} ${TABLE} missing`);
    if (drift.length === 0) {
      const chains = (await run('nft', ['-t', 'list', 'table', 'ip', TABLE], { netns: this.opts.netns })).stdout;
      const want = [...IP_CHAINS, ...this.last.plan.nets.map((n) => netChain(n.net.id))];
      for (const c of want) if (!chains.includes(`chain ${c} {`)) drift.push(`chain ${c} missing`);
      const rules = chains.split('\n').filter((l) => /^\t\t[a-z]/.test(l) && !/^\t\t(type|policy) /.test(l)).length;
      if (rules === 0) drift.push('no rules in table ip bpfnet');
    }
    // A dockerd started (or DOCKER-USER flushed) since: the re-check puts our accepts back.
    drift.push(...(await dockerUserDrift(this.opts.netns, dockerUserRules(this.last.state.networks ?? []))));
    return { ok: drift.length === 0, drift };
  }

  protected forceFullApply(): void {
    this.last = undefined; // no last plan: the next apply rewrites both tables
  }

  protected removeRules(): Promise<unknown> {
    return removeNftables({ netns: this.opts.netns });
  }
}

/** Delete bpfnet's nft tables (and nothing else); no-op when absent or nft is not installed. */
export async function removeNftables(opts: { netns?: string | undefined }): Promise<{ removed: boolean }> {
  try {
    if ((await ourTables(opts.netns)).length === 0) return { removed: false };
    // Only when this mode was here: eBPF mode keeps the same accepts across its restarts.
    await removeDockerUser(opts.netns);
    await nftScript(opts.netns, renderRemoval());
    return { removed: true };
  } catch (e) {
    if (e instanceof CommandError && e.code === 'E_TOOL_MISSING') return { removed: false };
    throw e;
  }
}
