/**
 * The skeleton both netfilter dataplanes (iptables, nftables) share: apply,
 * reconcile and teardown run one at a time (the agent calls reconcile from a
 * timer); reconcile verifies the kernel against the last apply and re-applies
 * it whole when something else changed our rules; teardown removes our rules
 * and resets route_localnet. Each mode brings its own apply, verify and
 * removal.
 */
import { SerialQueue } from '../../util/serial.js';
import { noAppliedState, withPortChange, type ApplyReport, type Dataplane, type DesiredState, type PortChange } from '../types.js';
import { planState, type Plan } from './plan.js';
import { ensureHostSettings, resetHostSettings, type HostReport } from './host.js';

export interface NetfilterOptions {
  /** Network namespace of the node (path); undefined = the current one. */
  netns?: string | undefined;
  /** Test seam: rewrite a script before it is applied (to inject a kernel-side failure). */
  rewrite?: (text: string) => string;
}

export interface VerifyResult {
  ok: boolean;
  /** What differs: "nat/BPFNET: 0 rules, expected 3", "table ip bpfnet missing". */
  drift: string[];
}

/** What a netfilter dataplane keeps of its last successful apply. */
export interface LastApply {
  state: DesiredState;
  plan: Plan;
  /** planShape(plan): devices (host settings) only change with it. */
  shape: string;
}

/** An apply's report: a netfilter mode only counts published ports. */
export function portsReport(added: number, removed: number): ApplyReport {
  return { attached: [], ports: { added, updated: 0, removed }, addresses: { added: 0, removed: 0 } };
}

export abstract class NetfilterDataplane<L extends LastApply = LastApply> implements Dataplane {
  abstract readonly mode: 'iptables' | 'nftables';
  /** Last successful apply; undefined before the first and after teardown. */
  protected last: L | undefined;
  lastHost: HostReport | undefined;
  /** Where the last apply spent its time (ms): planning, the kernel (listing + write), host settings. */
  lastTimings = { planMs: 0, kernelMs: 0, hostMs: 0 };
  private readonly queue = new SerialQueue();

  constructor(readonly opts: NetfilterOptions = {}) {}

  /** Validate (throws before anything is touched) and write the state's rules. */
  protected abstract applyNow(state: DesiredState): Promise<ApplyReport>;
  /** Compare the kernel with the last apply. */
  abstract verify(): Promise<VerifyResult>;
  /** Remove every rule of bpfnet's this mode writes, in opts.netns. */
  protected abstract removeRules(): Promise<unknown>;
  /** Make the next apply rewrite everything, host settings included. */
  protected abstract forceFullApply(): void;

  /** The text to apply: `script` through the test seam, if any. */
  protected rewritten(script: string): string {
    return this.opts.rewrite ? this.opts.rewrite(script) : script;
  }

  protected async ensureHost(plan: Plan): Promise<void> {
    this.lastHost = await ensureHostSettings(this.opts.netns, plan);
  }

  apply(state: DesiredState): Promise<ApplyReport> {
    return this.queue.run(() => this.applyNow(state));
  }

  /**
   * The last state with the ports changed. Rules are rendered from the whole
   * state (the nft mode still writes only the changed map elements).
   */
  applyPorts(change: PortChange): Promise<ApplyReport> {
    return this.queue.run(() => {
      if (!this.last) throw noAppliedState(this.mode);
      return this.applyNow({ ...this.last.state, ports: withPortChange(this.last.state.ports, change) });
    });
  }

  /** verify(), and re-apply the last state when something else changed our rules. */
  reconcile(): Promise<VerifyResult & { reapplied: boolean }> {
    return this.queue.run(() => this.reconcileNow());
  }

  teardown(state: DesiredState): Promise<void> {
    return this.queue.run(() => this.teardownNow(state));
  }

  private async reconcileNow(): Promise<VerifyResult & { reapplied: boolean }> {
    const v = await this.verify();
    if (!this.last) return { ...v, reapplied: false };
    if (v.ok) {
      await this.ensureHost(this.last.plan);
      return { ...v, reapplied: false };
    }
    const state = this.last.state;
    this.forceFullApply();
    await this.applyNow(state);
    return { ...v, reapplied: true };
  }

  private async teardownNow(state: DesiredState): Promise<void> {
    await this.removeRules();
    let devs: string[];
    try {
      devs = planState(state).localnetDevs;
    } catch {
      devs = [];
    }
    resetHostSettings(this.opts.netns, devs);
    this.last = undefined;
  }
}
