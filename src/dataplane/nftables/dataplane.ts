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
import { SerialQueue } from '../../util/serial.js';
import type { ApplyReport, Dataplane, DesiredState } from '../types.js';
import { planShape, planState, type Plan } from '../netfilter/plan.js';
import { ensureHostSettings, resetHostSettings, type HostReport } from '../netfilter/host.js';
import { applyError } from '../netfilter/errors.js';
import { run } from '../../util/exec.js';
import { CommandError } from '../../util/errors.js';
import { IP_CHAINS, TABLE, diffPorts, netChain, renderFull, renderPortDiff, renderRemoval } from './render.js';

export interface NftablesOptions {
  /** Network namespace of the node (path); undefined = the current one. */
  netns?: string | undefined;
  /** Test seam: rewrite each nft script before it is applied (to inject a kernel-side failure). */
  rewrite?: (text: string) => string;
}

export interface NftVerifyResult {
  ok: boolean;
  drift: string[];
}

export class NftablesDataplane implements Dataplane {
  readonly mode = 'nftables' as const;
  private last: { state: DesiredState; plan: Plan; shape: string } | undefined;
  lastHost: HostReport | undefined;
  /** How the last apply was done: 'full' rewrite, 'ports' element diff, or 'none'. */
  lastKind: 'full' | 'ports' | 'none' = 'none';
  /** Where the last apply spent its time (ms): planning (validation, diff), the nft transaction, host settings. */
  lastTimings = { planMs: 0, kernelMs: 0, hostMs: 0 };

  constructor(readonly opts: NftablesOptions = {}) {}

  private async nft(script: string): Promise<void> {
    const text = this.opts.rewrite ? this.opts.rewrite(script) : script;
    await run('nft', ['-f', '-'], { netns: this.opts.netns, input: text });
  }

  /** apply, reconcile and teardown run one at a time (the agent calls reconcile from a timer). */
  private readonly queue = new SerialQueue();
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }

  apply(state: DesiredState): Promise<ApplyReport> {
    return this.serial(() => this.applyNow(state));
  }

  private async applyNow(state: DesiredState): Promise<ApplyReport> {
    const t0 = performance.now();
    const plan = planState(state); // bad input throws here, before anything is touched
    const shape = planShape(plan);
    const prev = this.last;
    const diff = diffPorts(prev?.plan.ports ?? [], plan.ports);
    const t1 = performance.now();
    let kind: 'full' | 'ports' | 'none' = 'full';
    if (prev && prev.shape === shape) {
      const script = renderPortDiff(diff);
      kind = script ? 'ports' : 'none';
      if (script) {
        try {
          await this.nft(script);
        } catch {
          kind = 'full'; // our table was changed behind our back: rewrite it whole
        }
      }
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
    if (kind === 'full') this.lastHost = await ensureHostSettings(this.opts.netns, plan);
    this.lastTimings = { planMs: t1 - t0, kernelMs: t2 - t1, hostMs: performance.now() - t2 };
    this.last = { state, plan, shape };
    this.lastKind = kind;
    return {
      attached: [],
      ports: { added: diff.add.length, updated: 0, removed: diff.remove.length },
      addresses: { added: 0, removed: 0 },
    };
  }

  /** Both tables and every chain exist, with the element count of the port maps we wrote. */
  async verify(): Promise<NftVerifyResult> {
    if (!this.last) return { ok: true, drift: [] };
    const drift: string[] = [];
    const { stdout } = await run('nft', ['-t', 'list', 'tables'], { netns: this.opts.netns });
    for (const fam of ['ip', 'bridge']) if (!stdout.split('\n').includes(`table ${fam} ${TABLE}`)) drift.push(`table ${fam} ${TABLE} missing`);
    if (drift.length === 0) {
      const chains = (await run('nft', ['-t', 'list', 'table', 'ip', TABLE], { netns: this.opts.netns })).stdout;
      const want = [...IP_CHAINS, ...this.last.plan.nets.map((n) => netChain(n.net.id))];
      for (const c of want) if (!chains.includes(`chain ${c} {`)) drift.push(`chain ${c} missing`);
      const rules = chains.split('\n').filter((l) => /^\t\t[a-z]/.test(l) && !/^\t\t(type|policy) /.test(l)).length;
      if (rules === 0) drift.push('no rules in table ip bpfnet');
    }
    return { ok: drift.length === 0, drift };
  }

  reconcile(): Promise<NftVerifyResult & { reapplied: boolean }> {
    return this.serial(() => this.reconcileNow());
  }

  private async reconcileNow(): Promise<NftVerifyResult & { reapplied: boolean }> {
    const v = await this.verify();
    if (!this.last) return { ...v, reapplied: false };
    if (v.ok) {
      this.lastHost = await ensureHostSettings(this.opts.netns, this.last.plan);
      return { ...v, reapplied: false };
    }
    const state = this.last.state;
    this.last = undefined; // force a full rewrite
    await this.applyNow(state);
    return { ...v, reapplied: true };
  }

  teardown(state: DesiredState): Promise<void> {
    return this.serial(() => this.teardownNow(state));
  }

  private async teardownNow(state: DesiredState): Promise<void> {
    await removeNftables({ netns: this.opts.netns });
    let devs: string[] = [];
    try {
      devs = planState(state).localnetDevs;
    } catch {
      devs = [];
    }
    resetHostSettings(this.opts.netns, devs);
    this.last = undefined;
  }
}

/** Delete bpfnet's nft tables (and nothing else); no-op when absent or nft is not installed. */
export async function removeNftables(opts: { netns?: string | undefined }): Promise<{ removed: boolean }> {
  try {
    const { stdout } = await run('nft', ['-t', 'list', 'tables'], { netns: opts.netns });
    const present = ['ip', 'bridge'].some((f) => stdout.split('\n').includes(`table ${f} ${TABLE}`));
    if (!present) return { removed: false };
    await run('nft', ['-f', '-'], { netns: opts.netns, input: renderRemoval() });
    return { removed: true };
  } catch (e) {
    if (e instanceof CommandError && e.code === 'E_TOOL_MISSING') return { removed: false };
    throw e;
  }
}
