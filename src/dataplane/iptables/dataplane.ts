/**
 * The iptables dataplane: Docker 28/29's rules in bpfnet's own chains,
 * written with one `iptables-restore --noflush` per apply.
 *
 * Atomicity: iptables-restore commits table by table, so a failure in a
 * later table (filter) would leave an earlier one (raw, nat) applied. On
 * failure the applier restores the previous contents of our chains (the last
 * applied render, or the snapshot taken before the first apply) and removes
 * jumps it had just added, then throws E_DATAPLANE_APPLY with iptables'
 * message: the rules are old or new, never half.
 *
 * Drift: every apply reads the built-in chains and re-inserts missing jumps;
 * verify() compares our chains' rule counts with the last render (a flush or
 * a deleted chain shows), and reconcile() re-applies when they differ.
 */
import type { ApplyReport, DesiredState } from '../types.js';
import { planShape, planState } from '../netfilter/plan.js';
import { NetfilterDataplane, portsReport, type LastApply, type NetfilterOptions, type VerifyResult } from '../netfilter/dataplane.js';
import { applyError } from '../netfilter/errors.js';
import { CHAINS, JUMPS, TABLES, USER_CHAIN, renderIptables, renderRemoval, type Existing, type Rendered, type Table } from './render.js';
import { IptablesKernel, existingOf, jumpKeysOf, renderRollback, snapshot, tools, type IptablesBackend, type Snapshot } from './kernel.js';

export interface IptablesOptions extends NetfilterOptions {
  /** Which iptables: the system default (Debian: nf_tables), or explicitly nft / legacy. */
  backend?: IptablesBackend;
}

export class IptablesDataplane extends NetfilterDataplane<LastApply & { rendered: Rendered }> {
  readonly mode = 'iptables' as const;
  private readonly kernel: IptablesKernel;

  constructor(override readonly opts: IptablesOptions = {}) {
    super(opts);
    this.kernel = new IptablesKernel(opts.netns, tools(opts.backend));
  }

  protected async applyNow(state: DesiredState): Promise<ApplyReport> {
    const t0 = performance.now();
    const plan = planState(state); // bad input throws here, before anything is touched
    const shape = planShape(plan);
    const t1 = performance.now();
    const prev = this.last;
    // First apply: the rollback snapshot, whose tables also hold the built-in chains' rules.
    const first = prev ? undefined : await snapshot(this.kernel);
    const existing = first ? existingOf(first.saved) : await this.kernel.existing();
    const rendered = renderIptables(plan, existing);
    try {
      await this.kernel.restore(this.rewritten(rendered.text));
    } catch (e) {
      const before: Snapshot = first ?? snapshotOfRender(prev!.rendered, existing);
      let rollback: 'restored' | 'failed' = 'restored';
      try {
        await this.kernel.restore(renderRollback(before, await this.kernel.existing()));
      } catch {
        rollback = 'failed';
      }
      throw applyError('iptables', e, rollback);
    }
    const t2 = performance.now();
    // Devices only change with the shape; reconcile() re-checks them.
    if (prev?.shape !== shape) await this.ensureHost(plan);
    this.lastTimings = { planMs: t1 - t0, kernelMs: t2 - t1, hostMs: performance.now() - t2 };
    this.last = { state, plan, shape, rendered };
    // A restore rewrites every rule; report the net change in published ports.
    const had = prev?.plan.ports.length ?? 0;
    return portsReport(Math.max(0, plan.ports.length - had), Math.max(0, had - plan.ports.length));
  }

  /** Compare the kernel with the last apply: rule counts of our chains and our jumps. */
  async verify(): Promise<VerifyResult> {
    if (!this.last) return { ok: true, drift: [] };
    const snap = await snapshot(this.kernel);
    const drift: string[] = [];
    for (const [key, n] of Object.entries(this.last.rendered.counts)) {
      const have = snap.chains[key];
      if (!have) drift.push(`${key} missing`);
      else if (have.length !== n) drift.push(`${key}: ${have.length} rules, expected ${n}`);
    }
    if (!snap.userChain) drift.push(`filter/${USER_CHAIN} missing`);
    for (const j of JUMPS) if (!snap.jumps.has(`${j.table}/${j.from}/${j.to}`)) drift.push(`jump ${j.table}/${j.from} -> ${j.to} missing`);
    return { ok: drift.length === 0, drift };
  }

  protected forceFullApply(): void {
    // Kept: the render is what our chains hold, the rollback point if the re-apply fails.
    this.last = { ...this.last!, shape: '' };
  }

  protected removeRules(): Promise<unknown> {
    return removeWith(this.kernel);
  }
}

/** After a successful apply our chains hold exactly the render, and every jump exists. */
function snapshotOfRender(r: Rendered, existing: Existing): Snapshot {
  const chains: Record<string, string[]> = {};
  for (const t of TABLES) for (const c of CHAINS[t]) chains[`${t}/${c}`] = [];
  let table: Table = 'raw';
  for (const line of r.text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1) as Table;
    else if (line.startsWith('-A ')) chains[`${table}/${line.split(' ')[1]}`]?.push(line);
  }
  return { chains, jumps: jumpKeysOf(existing), userChain: existing.userChain };
}

/**
 * Remove every rule and chain of bpfnet's from the namespace's iptables:
 * jumps, our chains, and BPFNET-USER when it is empty. A BPFNET-USER with a
 * user's rules in it is kept (only its jump goes), so switching modes never
 * deletes someone's rules. Returns what was removed.
 */
export function removeIptables(opts: { netns?: string | undefined; backend?: IptablesBackend | undefined }): Promise<{ removed: boolean; keptUserChain: boolean }> {
  return removeWith(new IptablesKernel(opts.netns, tools(opts.backend)));
}

async function removeWith(k: IptablesKernel): Promise<{ removed: boolean; keptUserChain: boolean }> {
  const snap = await snapshot(k).catch(() => null); // iptables not installed: nothing of ours can be there
  if (!snap) return { removed: false, keptUserChain: false };
  const { saved } = snap;
  const userRules = saved.filter.rules.get(USER_CHAIN)?.length ?? 0;
  const text = renderRemoval({ ...existingOf(saved), userRules, chains: { raw: saved.raw.chains, nat: saved.nat.chains, filter: saved.filter.chains } });
  if (text) await k.restore(text);
  return { removed: text !== '', keptUserChain: snap.userChain && userRules > 0 };
}
