/**
 * Garbage collection of the NAT state the BPF programs keep: bpfnet_snat
 * (masquerade, two entries per flow) and bpfnet_nat_ct (published-port reply
 * tuples). Both are LRU maps, so a full map never fails a new flow, but an
 * LRU evicts by age of *insertion use*, not liveness: collecting dead flows
 * early keeps live ones from being evicted (cilium#17457) and ports free
 * (cilium#8740).
 *
 * Whether an entry is dead depends only on what the map holds (last_seen_ns
 * and the state bits) compared with the clock bpf_ktime_get_ns() reads
 * (CLOCK_MONOTONIC, which process.hrtime.bigint() reads too). Nothing is
 * remembered between runs, so the first run after an agent restart decides
 * exactly as the last one before it did (cilium#29667: a restart must not
 * delete live flows).
 */
import { TypedMap } from '../../maps/map.js';
import { pinnedMapInfo } from '../../maps/backend.js';
import { mapPinPath } from '../../maps/map.js';
import type { NatCtKey, NatCtValue, SnatKey, SnatValue } from '../../maps/generated/abi.js';
import { BpfnetError } from '../../util/errors.js';

const SEC = 1_000_000_000n;

/** bpf/lib/maps.h */
export const SNAT_DIR_OUT = 1;
export const SNAT_DIR_IN = 2;
export const SNAT_ST_SYN = 0x1;
export const SNAT_ST_REPLY = 0x2;
export const SNAT_ST_FIN = 0x4;
export const SNAT_ST_RST = 0x8;
const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;

/** Idle time after which an entry is dead, in nanoseconds. */
export interface GcTimeouts {
  /** TCP, SYN sent and nothing back yet (also a flow re-created mid-stream that got no reply). */
  tcpSyn: bigint;
  /** TCP with replies and no FIN/RST. */
  tcpEstablished: bigint;
  /** TCP after a FIN or RST either way. */
  tcpClosing: bigint;
  udp: bigint;
  /** ICMP echo. */
  icmp: bigint;
  /** bpfnet_nat_ct, TCP (it has no state bits). */
  natCtTcp: bigint;
  /** bpfnet_nat_ct, UDP. */
  natCtUdp: bigint;
}

/** Cilium's values (TCP 6 h / SYN 60 s / close 10 s, non-TCP 60 s); ICMP echo shorter, like conntrack's 30 s. */
export const DEFAULT_TIMEOUTS: Readonly<GcTimeouts> = Object.freeze({
  tcpSyn: 60n * SEC,
  tcpEstablished: 6n * 3600n * SEC,
  tcpClosing: 10n * SEC,
  udp: 60n * SEC,
  icmp: 30n * SEC,
  natCtTcp: 6n * 3600n * SEC,
  natCtUdp: 60n * SEC,
});

export function snatTimeout(proto: number, state: number, t: GcTimeouts = DEFAULT_TIMEOUTS): bigint {
  if (proto === IPPROTO_TCP) {
    if (state & (SNAT_ST_FIN | SNAT_ST_RST)) return t.tcpClosing;
    if (state & SNAT_ST_REPLY) return t.tcpEstablished;
    return t.tcpSyn;
  }
  if (proto === IPPROTO_ICMP) return t.icmp;
  return t.udp;
}

/** Idle for longer than timeout. A timestamp ahead of now (another clock?) is never expired. */
export function idleExpired(now: bigint, lastSeen: bigint, timeout: bigint): boolean {
  return now > lastSeen && now - lastSeen > timeout;
}

/**
 * The decision for one masquerade flow from whichever halves exist: the
 * newest timestamp and the union of the state bits (the BPF side records
 * outbound flags on OUT, inbound ones on IN).
 */
export function snatFlowExpired(now: bigint, proto: number, halves: (SnatValue | undefined)[], t: GcTimeouts = DEFAULT_TIMEOUTS): boolean {
  let state = 0;
  let last = 0n;
  let any = false;
  for (const h of halves) {
    if (!h) continue;
    any = true;
    state |= h.state;
    if (h.last_seen_ns > last) last = h.last_seen_ns;
  }
  return any && idleExpired(now, last, snatTimeout(proto, state, t));
}

export function natCtExpired(now: bigint, k: NatCtKey, v: NatCtValue, t: GcTimeouts = DEFAULT_TIMEOUTS): boolean {
  return idleExpired(now, v.last_seen_ns, k.proto === IPPROTO_TCP ? t.natCtTcp : t.natCtUdp);
}

/**
 * The other half of a masquerade entry: OUT (container -> remote, value =
 * node address/port) <-> IN (remote -> node:port, value = container
 * address/port). ICMP echo uses the identifier as both ports.
 */
export function snatPeerKey(k: SnatKey, v: SnatValue): SnatKey {
  const icmp = k.proto === IPPROTO_ICMP;
  if (k.dir === SNAT_DIR_OUT) {
    return { saddr: k.daddr, daddr: v.addr, sport: icmp ? v.port : k.dport, dport: v.port, proto: k.proto, dir: SNAT_DIR_IN };
  }
  return { saddr: v.addr, daddr: k.saddr, sport: v.port, dport: icmp ? v.port : k.sport, proto: k.proto, dir: SNAT_DIR_OUT };
}

/** True when the peer entry found at snatPeerKey(k, v) really is k's other half. */
export function isPeer(k: SnatKey, v: SnatValue, peerKey: SnatKey, peer: SnatValue): boolean {
  const back = snatPeerKey(peerKey, peer);
  return back.saddr === k.saddr && back.daddr === k.daddr && back.sport === k.sport && back.dport === k.dport && back.dir === k.dir;
}

const snatId = (k: SnatKey) => `${k.dir}|${k.saddr}|${k.daddr}|${k.sport}|${k.dport}|${k.proto}`;

export interface GcPlan {
  /** Keys to delete (both halves of a dead flow together). */
  snat: SnatKey[];
  natCt: NatCtKey[];
}

/** Pure: what to delete from a snapshot of the two maps at time now. */
export function planGc(now: bigint, snat: [SnatKey, SnatValue][], natCt: [NatCtKey, NatCtValue][], t: GcTimeouts = DEFAULT_TIMEOUTS): GcPlan {
  const byId = new Map(snat.map(([k, v]) => [snatId(k), [k, v] as const]));
  const seen = new Set<string>();
  const plan: GcPlan = { snat: [], natCt: [] };
  // OUT halves first, so a pair is judged once, together.
  const ordered = [...snat].sort(([a], [b]) => (a.dir === SNAT_DIR_OUT ? 0 : 1) - (b.dir === SNAT_DIR_OUT ? 0 : 1));
  for (const [k, v] of ordered) {
    const id = snatId(k);
    if (seen.has(id)) continue;
    seen.add(id);
    if (k.dir !== SNAT_DIR_OUT && k.dir !== SNAT_DIR_IN) continue; // not ours to judge
    const pk = snatPeerKey(k, v);
    const peer = byId.get(snatId(pk));
    const paired = peer && isPeer(k, v, peer[0], peer[1]);
    if (paired) seen.add(snatId(pk));
    if (snatFlowExpired(now, k.proto, [v, paired ? peer[1] : undefined], t)) {
      plan.snat.push(k);
      if (paired) plan.snat.push(peer[0]);
    }
  }
  for (const [k, v] of natCt) if (natCtExpired(now, k, v, t)) plan.natCt.push(k);
  return plan;
}

export interface IntervalPolicy {
  minMs: number;
  maxMs: number;
}

export const DEFAULT_INTERVAL: Readonly<IntervalPolicy> = Object.freeze({ minMs: 10_000, maxMs: 300_000 });

/**
 * Pure: the wait before the next run. Much deleted (a quarter of what was
 * there) or a map filling up (past half its capacity): twice as often, down
 * to minMs; nothing deleted: half as often, up to maxMs; otherwise unchanged.
 */
export function nextInterval(prevMs: number, r: { deleted: number; scanned: number; fill: number }, p: IntervalPolicy = DEFAULT_INTERVAL): number {
  const clamp = (ms: number) => Math.min(p.maxMs, Math.max(p.minMs, Math.round(ms)));
  if (r.fill >= 0.5 || (r.scanned > 0 && r.deleted / r.scanned >= 0.25)) return clamp(prevMs / 2);
  if (r.deleted === 0) return clamp(prevMs * 2);
  return clamp(prevMs);
}

export interface GcReport {
  scanned: { snat: number; natCt: number };
  deleted: { snat: number; natCt: number };
  /** Entries / capacity of the fuller map. */
  fill: number;
  /** Wait before the next run (start()). */
  nextMs: number;
}

export interface NatGcOptions {
  mapDir: string;
  /** CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns(); tests pass a fake. */
  clock?: () => bigint;
  timeouts?: Partial<GcTimeouts>;
  interval?: Partial<IntervalPolicy>;
  /** Called after each run and with errors of background runs. */
  onRun?: (r: GcReport) => void;
  onError?: (e: BpfnetError) => void;
}

/**
 * Runs planGc over the pinned maps. Before deleting, each dead entry is read
 * again and judged again, so a packet refreshing it during the scan keeps it
 * (what remains is the window between that read and the delete: one
 * syscall).
 */
export class NatGc {
  private readonly clock: () => bigint;
  private readonly timeouts: GcTimeouts;
  private readonly interval: IntervalPolicy;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<GcReport> | undefined;
  private waitMs: number;

  constructor(private readonly opts: NatGcOptions) {
    this.clock = opts.clock ?? (() => process.hrtime.bigint());
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.interval = { ...DEFAULT_INTERVAL, ...opts.interval };
    if (!(this.interval.minMs > 0 && this.interval.maxMs >= this.interval.minMs)) {
      throw new BpfnetError('E_INVALID_ARGUMENT', `GC interval must satisfy 0 < minMs <= maxMs, got ${this.interval.minMs}..${this.interval.maxMs}`);
    }
    this.waitMs = this.interval.minMs;
  }

  /** One pass over both maps; concurrent calls share the pass in progress. */
  runOnce(): Promise<GcReport> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<GcReport> {
    const snat = TypedMap.open(this.opts.mapDir, 'bpfnet_snat');
    const ct = TypedMap.open(this.opts.mapDir, 'bpfnet_nat_ct');
    try {
      const snatRows = await snat.toArray();
      const ctRows = await ct.toArray();
      const plan = planGc(this.clock(), snatRows, ctRows, this.timeouts);

      // Judge again on fresh values, pair by pair.
      const snatDel: SnatKey[] = [];
      const inPlan = new Set(plan.snat.map(snatId));
      const done = new Set<string>();
      for (const k of plan.snat) {
        if (done.has(snatId(k))) continue;
        done.add(snatId(k));
        const v = await snat.get(k);
        if (!v) continue;
        const pk = snatPeerKey(k, v);
        const pv = inPlan.has(snatId(pk)) ? await snat.get(pk) : undefined;
        const paired = pv !== undefined && isPeer(k, v, pk, pv);
        if (paired) done.add(snatId(pk));
        if (!snatFlowExpired(this.clock(), k.proto, [v, paired ? pv : undefined], this.timeouts)) continue;
        snatDel.push(k);
        if (paired) snatDel.push(pk);
      }
      const ctDel: NatCtKey[] = [];
      for (const k of plan.natCt) {
        const v = await ct.get(k);
        if (v && natCtExpired(this.clock(), k, v, this.timeouts)) ctDel.push(k);
      }
      await snat.deleteMany(snatDel);
      await ct.deleteMany(ctDel);

      const fill = Math.max(
        (snatRows.length - snatDel.length) / capacity(this.opts.mapDir, 'bpfnet_snat'),
        (ctRows.length - ctDel.length) / capacity(this.opts.mapDir, 'bpfnet_nat_ct'),
      );
      const scanned = snatRows.length + ctRows.length;
      const deleted = snatDel.length + ctDel.length;
      this.waitMs = nextInterval(this.waitMs, { deleted, scanned, fill }, this.interval);
      const report: GcReport = {
        scanned: { snat: snatRows.length, natCt: ctRows.length },
        deleted: { snat: snatDel.length, natCt: ctDel.length },
        fill,
        nextMs: this.waitMs,
      };
      this.opts.onRun?.(report);
      return report;
    } finally {
      snat.close();
      ct.close();
    }
  }

  /** Run now and then on the adaptive interval until stop(). Errors go to onError; the loop goes on. */
  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.runOnce()
        .catch((e: unknown) => {
          const err = e instanceof BpfnetError ? e : new BpfnetError('E_COMMAND_FAILED', `NAT GC failed: ${(e as Error).message}`, {}, { cause: e });
          this.opts.onError?.(err);
        })
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.waitMs).unref();
        });
    };
    this.timer = setTimeout(tick, 0).unref();
  }

  /** Stops the loop and waits for a pass in progress. */
  async stop(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    if (t) clearTimeout(t);
    await this.running?.catch(() => undefined);
  }
}

function capacity(mapDir: string, name: 'bpfnet_snat' | 'bpfnet_nat_ct'): number {
  return Math.max(1, pinnedMapInfo(mapPinPath(mapDir, name)).maxEntries);
}
