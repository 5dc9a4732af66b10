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
import { SerialQueue } from '../../util/serial.js';
import type { ApplyReport, Dataplane, DesiredState } from '../types.js';
import { planShape, planState } from '../netfilter/plan.js';
import { ensureHostSettings, resetHostSettings, type HostReport } from '../netfilter/host.js';
import { applyError } from '../netfilter/errors.js';
import { CHAINS, JUMPS, TABLES, USER_CHAIN, renderIptables, renderRemoval, type Rendered, type Table } from './render.js';
import { IptablesKernel, jumpKeysOf, renderRollback, snapshot, tools, type IptablesBackend, type Snapshot } from './kernel.js';

export interface IptablesOptions {
  /** Network namespace of the node (path); undefined = the current one. */
  netns?: string | undefined;
  /** Which iptables: the system default (Debian: nf_tables), or explicitly nft / legacy. */
  backend?: IptablesBackend;
  /** Test seam: rewrite the restore text before it is applied (to inject a kernel-side failure). */
  rewrite?: (text: string) => string;
}

export interface VerifyResult {
  ok: boolean;
  /** What differs: "nat/BPFNET: 0 rules, expected 3", "jump filter/FORWARD -> BPFNET-FORWARD missing". */
  drift: string[];
}

export class IptablesDataplane implements Dataplane {
  readonly mode = 'iptables' as const;
  private readonly kernel: IptablesKernel;
  /** Last successful apply: its state, render and the snapshot it leaves. */
  private last: { state: DesiredState; rendered: Rendered; ports: number; shape: string } | undefined;
  lastHost: HostReport | undefined;
  /** Where the last apply spent its time (ms): planning (validation), kernel (listing + restore), host settings. */
  lastTimings = { planMs: 0, kernelMs: 0, hostMs: 0 };

  constructor(readonly opts: IptablesOptions = {}) {
    this.kernel = new IptablesKernel(opts.netns, tools(opts.backend));
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
    const t1 = performance.now();
    const existing = await this.kernel.existing();
    const rendered = renderIptables(plan, existing);
    const before: Snapshot = this.last ? snapshotOfRender(this.last.rendered, existing) : await snapshot(this.kernel);
    const text = this.opts.rewrite ? this.opts.rewrite(rendered.text) : rendered.text;
    try {
      await this.kernel.restore(text);
    } catch (e) {
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
    if (this.last?.shape !== shape) this.lastHost = await ensureHostSettings(this.opts.netns, plan);
    this.lastTimings = { planMs: t1 - t0, kernelMs: t2 - t1, hostMs: performance.now() - t2 };
    const prevPorts = this.last?.ports ?? 0;
    this.last = { state, rendered, ports: plan.ports.length, shape };
    return {
      attached: [],
      // A restore rewrites every rule; report the net change in published ports.
      ports: { added: Math.max(0, plan.ports.length - prevPorts), updated: 0, removed: Math.max(0, prevPorts - plan.ports.length) },
      addresses: { added: 0, removed: 0 },
    };
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

  /** verify(), and re-apply the last state when something else changed our rules. */
  reconcile(): Promise<VerifyResult & { reapplied: boolean }> {
    return this.serial(() => this.reconcileNow());
  }

  private async reconcileNow(): Promise<VerifyResult & { reapplied: boolean }> {
    const v = await this.verify();
    if (!this.last) return { ...v, reapplied: false };
    if (v.ok) {
      this.lastHost = await ensureHostSettings(this.opts.netns, planState(this.last.state));
      return { ...v, reapplied: false };
    }
    const state = this.last.state;
    this.last = { ...this.last, shape: '' }; // host settings too
    await this.applyNow(state);
    return { ...v, reapplied: true };
  }

  teardown(state: DesiredState): Promise<void> {
    return this.serial(() => this.teardownNow(state));
  }

  private async teardownNow(state: DesiredState): Promise<void> {
    await removeIptables({ netns: this.opts.netns, backend: this.opts.backend });
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

/** After a successful apply our chains hold exactly the render, and every jump exists. */
function snapshotOfRender(r: Rendered, existing: Awaited<ReturnType<IptablesKernel['existing']>>): Snapshot {
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
export async function removeIptables(opts: { netns?: string | undefined; backend?: IptablesBackend }): Promise<{ removed: boolean; keptUserChain: boolean }> {
  const k = new IptablesKernel(opts.netns, tools(opts.backend));
  const snap = await snapshot(k).catch(() => null); // iptables not installed: nothing of ours can be there
  if (!snap) return { removed: false, keptUserChain: false };
  const builtin: Record<string, string[]> = {};
  for (const j of JUMPS) builtin[`${j.table}/${j.from}`] = snap.saved[j.table].rules.get(j.from) ?? [];
  const userRules = snap.saved.filter.rules.get(USER_CHAIN)?.length ?? 0;
  const text = renderRemoval({
    builtin,
    userChain: snap.userChain,
    userRules,
    chains: { raw: snap.saved.raw.chains, nat: snap.saved.nat.chains, filter: snap.saved.filter.chains },
  });
  if (text) await k.restore(text);
  return { removed: text !== '', keptUserChain: snap.userChain && userRules > 0 };
}
