/**
 * New connections per second and latency through a published port, by
 * dataplane ("peer", bench/lib/peers.ts) and by the number N of published
 * ports.
 *
 * One PeerLab (client ns -> node ns, uplink up0 198.18.0.1 -> container ns
 * on br0). The container runs bench/tools/echo.c; the client runs
 * bench/tools/connrate.c (both compiled at bench time, bench/lib/tools.ts).
 * N ports are published as host port P -> container port P for
 * P = basePort .. basePort+N-1 (like `-p A-B:A-B`); the measured port is the
 * LAST one, last in every rule list.
 *
 * Every round runs every (N, peer) job once: N in a rotated order, and for
 * each N the peers back to back in a rotated order (both reversed on odd
 * rounds), so the peers compared at one N ran close together in time. A job:
 * check that the node's firewall is empty and nothing is attached to the
 * uplink; program the peer (timed, kept in the samples); verify; the
 * new-connection run (crr), one connection at a time (serial) and
 * request/response over one connection (rr) from the client; remove the
 * peer's state and flush conntrack. Programming time vs N is the `publish`
 * benchmark's subject (bench/publish.ts).
 */
import { UPLINK, BRIDGE } from '../src/lab/topology.js';
import { progress } from './lib/env.js';
import { PEER_LABEL, checkClean, createPeerLab, netfilterVersions, nodeConntrackCount, programPeer, requireTools, tcpRange, type PeerId } from './lib/peers.js';
import { pairwise, target, type PairwiseRatio, type Target } from './lib/ratios.js';
import { fmtInt, fmtNum, fmtPct, fmtRatio, median, rotate, summarize, type Summary, type Table } from './lib/stats.js';
import { buildTool } from './lib/tools.js';
import { connectionRuns, startEcho, type CrrOut, type RrOut } from './lib/traffic.js';

export interface ConnrateOptions {
  /** Numbers of published ports. */
  sizes: number[];
  rounds: number;
  /** Seconds of the new-connection run per sample (after the warm-up). */
  durationS: number;
  /** Seconds of the one-connection request/response run per sample. */
  rrDurationS: number;
  /** Seconds of the one-connection-at-a-time run (unloaded connection latency) per sample. */
  serialDurationS: number;
  /** Untimed seconds at the start of each crr run (connections then are not counted). */
  warmupS: number;
  /** Concurrent connections of the generator. */
  concurrency: number;
  clientThreads: number;
  serverThreads: number;
  /** A connection not answered within this is an error (and its slot starts over). */
  timeoutMs: number;
  /**
   * The serial and rr runs pin the client and the echo server to this CPU
   * (null: no pinning). On this VM an exchange between two CPUs that idle in
   * between pays two idle wake-ups (~75 µs per round trip, measured), which
   * made the one-connection latency jump between ~10 and ~90 µs from sample
   * to sample whatever the peer; on one CPU it is the path's own cost.
   */
  pinCpu: number | null;
  /** 'rst' (SO_LINGER 0: no TIME_WAIT on the client) or 'fin'. */
  close: 'rst' | 'fin';
  /** Host ports basePort .. basePort+N-1, container port = host port. */
  basePort: number;
  /** Host IP of the eBPF peers' ports: '0.0.0.0' (Docker's default) or the node address. */
  ebpfHostIp: string;
  peers: PeerId[];
}

export const CONNRATE_FULL: ConnrateOptions = {
  sizes: [1, 1000, 10_000, 30_000, 50_000],
  rounds: 4,
  durationS: 2.5,
  rrDurationS: 1,
  serialDurationS: 1,
  warmupS: 0.3,
  concurrency: 16,
  clientThreads: 1,
  serverThreads: 1,
  timeoutMs: 2000,
  pinCpu: 0,
  close: 'rst',
  basePort: 10_000,
  ebpfHostIp: '0.0.0.0',
  peers: ['ebpf', 'ebpf-xdp', 'nft-map', 'iptables'],
};
export const CONNRATE_QUICK: ConnrateOptions = { ...CONNRATE_FULL, sizes: [1, 1000], rounds: 2, durationS: 1, rrDurationS: 0.5, serialDurationS: 0.5, warmupS: 0.2 };

export interface JobSample {
  round: number;
  peer: PeerId;
  n: number;
  /** Publishing the N ports in bulk (ms), as the peer's setup; bench/publish.ts measures this properly. */
  programMs: number;
  /** eBPF only: the first apply() with no ports (load programs, create maps, attach). */
  loadMs?: number;
  /** Removing the peer's state (eBPF: teardown(); nft/iptables: `nft flush ruleset`). */
  removeMs: number;
  crr: CrrOut;
  /** The same loop with one connection at a time: latency without queueing. */
  serial: CrrOut;
  rr: RrOut;
  /** eBPF: METRIC_DNAT packets during the runs; conntrack entries in the node ns afterwards. */
  dnatPackets?: number;
  conntrackAfter?: number;
}

export interface Cell {
  peer: PeerId;
  n: number;
  rate: Summary;
  /** Medians over rounds of each sample's percentile (µs). */
  connP50Us: number;
  connP99Us: number;
  serialRate: number;
  serialP50Us: number;
  serialP99Us: number;
  rrP50Us: number;
  rrP99Us: number;
  rrRate: number;
  errors: number;
  rrErrors: number;
}

export type RatioKey = 'flat' | 'rate/nft' | 'rate/ipt' | 'rate/xdp' | 'serialP50/nft' | 'serialP50/ipt' | 'rrP50/ipt' | 'rrP99/ipt' | 'serialP99/ipt';

export interface Ratio extends PairwiseRatio {
  what: string;
  key: RatioKey;
  /** The N both sides ran at (flat: the larger N, against the smallest). */
  n: number;
  target?: Target;
}

export interface ConnrateResult {
  options: ConnrateOptions;
  wallS: number;
  tools: { connrate: string; echo: string; compiler: string };
  versions: { nft: string; iptables: string };
  topology: { client: string; node: string; container: string; nodeIp: string; containerIp: string };
  /** Per round: "N/peer" in the order they ran. */
  order: string[][];
  samples: JobSample[];
  cells: Cell[];
  ratios: Ratio[];
  verification: { ok: boolean; checked: number; problems: string[] };
}

const measuredPort = (opts: ConnrateOptions, n: number) => opts.basePort + n - 1;

export async function runConnrate(opts: ConnrateOptions): Promise<ConnrateResult> {
  const t0 = Date.now();
  const maxN = Math.max(...opts.sizes);
  if (opts.sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`connrate: sizes must be positive integers, got ${opts.sizes.join(',')}`);
  if (opts.basePort + maxN - 1 > 65_535) throw new Error(`connrate: basePort ${opts.basePort} + N ${maxN} exceeds port 65535`);
  const [connrate, echo] = [await buildTool('connrate'), await buildTool('echo')];
  const versions = await netfilterVersions();
  requireTools(opts.peers, versions, 'connrate');

  const lab = await createPeerLab('bnbc', opts.ebpfHostIp);
  try {
    const serverPorts = [...new Set(opts.sizes.map((n) => measuredPort(opts, n)))];
    progress(`connrate: topology ${lab.topo.id}; echo server on ${lab.ctrIp} ports ${serverPorts.join(', ')}`);
    const serverPid = await startEcho(lab, echo.path, serverPorts, opts.serverThreads);

    const problems: string[] = [];
    let checked = 0;
    const samples: JobSample[] = [];
    const order: string[][] = [];
    const initial = await checkClean(lab);
    if (initial.length) throw new Error(`connrate: a fresh node namespace is not clean: ${initial.join('; ')}`);
    const fail = (x: string[]) => {
      for (const p of x) progress(`connrate: VERIFICATION: ${p}`);
      problems.push(...x);
    };

    for (let r = 0; r < opts.rounds; r++) {
      const rev = <T>(xs: T[]) => (r % 2 ? [...xs].reverse() : xs);
      const sizes = rev(rotate(opts.sizes, r));
      const peers = rev(rotate(opts.peers, r));
      const ran: string[] = [];
      const rt = Date.now();
      for (const n of sizes) {
        for (const peer of peers) {
          ran.push(`${n}/${peer}`);
          const dirty = await checkClean(lab);
          if (dirty.length) throw new Error(`connrate: before ${peer} N=${n}: ${dirty.join('; ')}`);
          const p = await programPeer(lab, peer, tcpRange(opts.basePort, n));
          let s: JobSample | undefined;
          try {
            if (r === 0) {
              checked++;
              fail(await p.verify());
            }
            const dnatBefore = (await p.dnatPackets?.()) ?? 0;
            const { crr, serial, rr } = await connectionRuns(lab.topo.client.path, connrate.path, serverPid, measuredPort(opts, n), opts);
            s = { round: r, peer, n, programMs: p.programMs, ...(p.loadMs !== undefined ? { loadMs: p.loadMs } : {}), removeMs: NaN, crr, serial, rr };
            const after: string[] = [];
            checked++;
            if (p.dnatPackets) {
              s.dnatPackets = (await p.dnatPackets()) - dnatBefore;
              s.conntrackAfter = await nodeConntrackCount(lab);
              // Each connection: SYN, ACK, data, RST at least, all DNATed by the program.
              if (s.dnatPackets < crr.connections * 3) after.push(`${peer} N=${n} round ${r}: only ${s.dnatPackets} DNAT packets for ${crr.connections} connections`);
              if ((s.conntrackAfter ?? 0) > Math.max(10, crr.connections / 100)) after.push(`${peer} N=${n} round ${r}: ${s.conntrackAfter} conntrack entries in the node ns (netfilter was in the path)`);
            }
            if (serial.connections === 0) after.push(`${peer} N=${n} round ${r}: no connection completed one at a time (${serial.errors} errors, ${serial.lastError})`);
            if (crr.connections === 0) after.push(`${peer} N=${n} round ${r}: no connection completed (${crr.errors} errors, ${crr.lastError})`);
            if (rr.requests === 0) after.push(`${peer} N=${n} round ${r}: no request/response over one connection (${rr.lastError})`);
            fail(after);
            samples.push(s);
            progress(
              `connrate: round ${r + 1}/${opts.rounds} N=${n} ${peer}: ${fmtInt(crr.ratePerS)} conn/s (p50 ${fmtNum(crr.latencyUs.p50)} µs, p99 ${fmtNum(crr.latencyUs.p99)} µs, ${crr.errors} errors); serial p50 ${fmtNum(serial.latencyUs.p50)} µs p99 ${fmtNum(serial.latencyUs.p99)} µs; rr p50 ${fmtNum(rr.latencyUs.p50)} µs p99 ${fmtNum(rr.latencyUs.p99)} µs; program ${fmtNum(p.programMs)} ms`,
            );
          } finally {
            const removeMs = await p.remove();
            if (s) s.removeMs = removeMs;
          }
        }
      }
      order.push(ran);
      progress(`connrate: round ${r + 1}/${opts.rounds} done in ${((Date.now() - rt) / 1000).toFixed(1)} s`);
    }

    return {
      options: opts,
      wallS: (Date.now() - t0) / 1000,
      tools: { connrate: connrate.path, echo: echo.path, compiler: connrate.compiler },
      versions,
      topology: { client: lab.topo.client.name, node: lab.topo.node.name, container: lab.topo.containers[0]!.ns.name, nodeIp: UPLINK.nodeIp, containerIp: lab.ctrIp },
      order,
      samples,
      cells: summarizeCells(opts, samples),
      ratios: computeRatios(opts, samples),
      verification: { ok: problems.length === 0, checked, problems },
    };
  } finally {
    await lab.release();
  }
}

function summarizeCells(opts: ConnrateOptions, samples: JobSample[]): Cell[] {
  const cells: Cell[] = [];
  for (const peer of opts.peers) {
    for (const n of opts.sizes) {
      const xs = samples.filter((s) => s.peer === peer && s.n === n);
      if (!xs.length) continue;
      cells.push({
        peer,
        n,
        rate: summarize(xs.map((s) => s.crr.ratePerS)),
        connP50Us: median(xs.map((s) => s.crr.latencyUs.p50)),
        connP99Us: median(xs.map((s) => s.crr.latencyUs.p99)),
        serialRate: median(xs.map((s) => s.serial.ratePerS)),
        serialP50Us: median(xs.map((s) => s.serial.latencyUs.p50)),
        serialP99Us: median(xs.map((s) => s.serial.latencyUs.p99)),
        rrP50Us: median(xs.map((s) => s.rr.latencyUs.p50)),
        rrP99Us: median(xs.map((s) => s.rr.latencyUs.p99)),
        rrRate: median(xs.map((s) => s.rr.ratePerS)),
        errors: xs.reduce((a, s) => a + s.crr.errors + s.serial.errors, 0),
        rrErrors: xs.reduce((a, s) => a + s.rr.errors, 0),
      });
    }
  }
  return cells;
}

function computeRatios(opts: ConnrateOptions, samples: JobSample[]): Ratio[] {
  const out: Ratio[] = [];
  const metric = {
    rate: (s: JobSample) => s.crr.ratePerS,
    serialP50: (s: JobSample) => s.serial.latencyUs.p50,
    serialP99: (s: JobSample) => s.serial.latencyUs.p99,
    rrP50: (s: JobSample) => s.rr.latencyUs.p50,
    rrP99: (s: JobSample) => s.rr.latencyUs.p99,
  };
  const is = (peer: PeerId, n: number) => (s: JobSample) => s.peer === peer && s.n === n;
  const add = (key: RatioKey, n: number, what: string, r: PairwiseRatio | undefined, t?: { op: '>=' | '<='; value: number }) => {
    if (r) out.push({ what, key, n, ...r, ...(t ? { target: target(r.pairwise, t.op, t.value) } : {}) });
  };
  if (!opts.peers.includes('ebpf')) return out;
  const minN = Math.min(...opts.sizes);
  const maxN = Math.max(...opts.sizes);
  if (maxN !== minN) add('flat', maxN, `ebpf conn/s: N=${fmtInt(maxN)} / N=${fmtInt(minN)}`, pairwise(samples, is('ebpf', maxN), is('ebpf', minN), metric.rate), { op: '>=', value: 0.95 });
  const has = (p: PeerId) => opts.peers.includes(p);
  for (const n of opts.sizes) {
    const N = `N=${fmtInt(n)}`;
    const vs = (other: PeerId) => (m: (s: JobSample) => number) => pairwise(samples, is('ebpf', n), is(other, n), m);
    if (has('nft-map')) {
      add('rate/nft', n, `${N}: ebpf / nft-map conn/s`, vs('nft-map')(metric.rate), n === 30_000 ? { op: '>=', value: 1.15 } : undefined);
      add('serialP50/nft', n, `${N}: ebpf / nft-map new-connection p50 (one at a time)`, vs('nft-map')(metric.serialP50));
    }
    if (has('iptables')) {
      add('rate/ipt', n, `${N}: ebpf / iptables conn/s`, vs('iptables')(metric.rate), n === 30_000 ? { op: '>=', value: 7 } : undefined);
      add('serialP50/ipt', n, `${N}: ebpf / iptables new-connection p50 (one at a time)`, vs('iptables')(metric.serialP50));
      add('serialP99/ipt', n, `${N}: ebpf / iptables new-connection p99 (one at a time)`, vs('iptables')(metric.serialP99));
      add('rrP50/ipt', n, `${N}: ebpf / iptables rr p50 (one connection)`, vs('iptables')(metric.rrP50));
      add('rrP99/ipt', n, `${N}: ebpf / iptables rr p99 (one connection)`, vs('iptables')(metric.rrP99), { op: '<=', value: 0.9 });
    }
    if (has('ebpf-xdp')) add('rate/xdp', n, `${N}: ebpf / ebpf-xdp conn/s`, vs('ebpf-xdp')(metric.rate));
  }
  return out;
}

// ---- tables ---------------------------------------------------------------------------

export const us = (x: number): string => fmtNum(x, x >= 100 ? 0 : 1);

export function connrateTables(r: ConnrateResult): Table[] {
  const o = r.options;
  const rates: Table = {
    title: `connrate: new connections/s through a published port (${o.rounds} rounds × ${o.durationS} s, ${o.concurrency} concurrent, alternating)`,
    headers: ['peer', 'N ports', 'conn/s median', 'min-max', 'IQR/med', 'conn p50 µs', 'conn p99 µs', 'errors'],
    right: [1, 2, 3, 4, 5, 6, 7],
    rows: r.cells.map((c) => [PEER_LABEL[c.peer], fmtInt(c.n), fmtInt(c.rate.median), `${fmtInt(c.rate.min)}-${fmtInt(c.rate.max)}`, fmtPct(c.rate.iqrRel), us(c.connP50Us), us(c.connP99Us), String(c.errors)]),
    notes: [
      `client ns -> node ${UPLINK.nodeIp}:port (uplink ${UPLINK.dev}) -> container ${r.topology.containerIp} (bridge ${BRIDGE.dev}); N ports P -> P/tcp for P = ${o.basePort}..${o.basePort}+N-1, measured port = the last (last in every rule list)`,
      `each connection: connect, send 1 byte, read the 1-byte echo, close (${o.close === 'rst' ? 'SO_LINGER 0: RST, no TIME_WAIT' : 'FIN'}); latency = connect() to reply, per connection; ${o.clientThreads} client thread(s) (epoll), echo server ${o.serverThreads} thread(s) (epoll, C)`,
      `ebpf: EbpfDataplane.apply() with host IP ${o.ebpfHostIp} (${o.ebpfHostIp === '0.0.0.0' ? 'wildcard: exact miss + bpfnet_addrs + wildcard hit per packet' : 'exact frontend'}), tc programs on the uplink and the container's veth, socket hooks for node-local clients off; ebpf-xdp: the same plus xdp_uplink (native XDP on the veth uplink); no netfilter rule and no conntrack in the node ns (checked after each run)`,
      `nft-map: ${r.versions.nft}, dnat ip to ip daddr . meta l4proto . th dport map @ports (exact node address); Docker-style iptables: ${r.versions.iptables}, Docker 28/29's rules (nat DOCKER DNAT + filter DOCKER ACCEPT per port, addrtype LOCAL jumps, DOCKER-CT/-BRIDGE/-FORWARD)`,
      'all peers on one 2-core machine: client, server and the kernel path share the CPUs; the dataplane is one part of each connection\'s cost',
      ...(r.verification.ok ? [`verification: ${r.verification.checked} checks (rule/map contents in round 1, DNAT counters and conntrack for ebpf, every run completed), all as expected`] : [`VERIFICATION FAILED: ${r.verification.problems.join('; ')}`]),
    ],
  };
  const lat: Table = {
    title: `connrate: latency: request/response over one long-lived connection (${o.rrDurationS} s), and one new connection at a time (${o.serialDurationS} s)`,
    headers: ['peer', 'N ports', 'rr p50 µs', 'rr p99 µs', 'exchanges/s', 'new conn p50 µs', 'new conn p99 µs', 'conn/s (serial)', 'rr errors'],
    right: [1, 2, 3, 4, 5, 6, 7, 8],
    rows: r.cells.map((c) => [PEER_LABEL[c.peer], fmtInt(c.n), us(c.rrP50Us), us(c.rrP99Us), fmtInt(c.rrRate), us(c.serialP50Us), us(c.serialP99Us), fmtInt(c.serialRate), String(c.rrErrors)]),
    notes: [
      'rr: send 1 byte, read 1 byte, repeat, on one TCP_NODELAY connection (only its first packet sees the rule lists; after that conntrack / the ct map); medians over rounds of each sample\'s percentiles',
      'new conn: the crr loop with concurrency 1, connect() to reply (handshake, first packets through the rule lists / the map, 1-byte exchange)',
      ...(o.pinCpu !== null ? [`both runs with client and echo server pinned to CPU ${o.pinCpu} (taskset): between two CPUs that idle in between, every round trip here pays two idle wake-ups (~75 µs, measured), which swamps the path's cost`] : []),
    ],
  };
  const cols: { key: RatioKey; header: string }[] = [
    { key: 'rate/nft', header: 'conn/s ebpf÷nft-map' },
    { key: 'rate/ipt', header: 'conn/s ebpf÷iptables' },
    { key: 'rate/xdp', header: 'conn/s tc÷XDP' },
    { key: 'serialP50/ipt', header: 'new conn p50 ebpf÷iptables' },
    { key: 'rrP50/ipt', header: 'rr p50 ebpf÷iptables' },
    { key: 'rrP99/ipt', header: 'rr p99 ebpf÷iptables' },
  ].filter((c) => r.ratios.some((x) => x.key === c.key)) as { key: RatioKey; header: string }[];
  const flat = r.ratios.find((x) => x.key === 'flat');
  const ratios: Table = {
    title: 'connrate: ratios, pairwise within each round (median and min-max over rounds)',
    headers: ['N ports', ...cols.map((c) => c.header)],
    right: cols.map((_, i) => i + 1),
    rows: o.sizes.filter((n) => r.ratios.some((x) => x.n === n && x.key !== 'flat')).map((n) => [fmtInt(n), ...cols.map((c) => ratioCell(r.ratios.find((x) => x.n === n && x.key === c.key)))]),
    notes: [
      ...(flat ? [`ebpf flat in N: conn/s at N=${fmtInt(flat.n)} / N=${fmtInt(Math.min(...o.sizes))} = ${ratioCell(flat)}`] : []),
      'conn/s ratios > 1 and latency ratios < 1 favour ebpf (tc); "of medians" (ratio of the per-peer medians) is in the JSON next to each',
    ],
  };
  return [rates, lat, ratios];
}

export function ratioCell(x: (PairwiseRatio & { target?: Target }) | undefined): string {
  if (!x) return '';
  const t = x.target ? ` ${x.target.met ? 'met' : 'NOT met'} ${x.target.op === '>=' ? '≥' : '≤'}${x.target.value}` : '';
  return `${fmtRatio(x.pairwise)} (${fmtRatio(x.min)}-${fmtRatio(x.max)})${t}`;
}
