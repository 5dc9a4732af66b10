/**
 * Throughput through a published port with iperf3, by peer (bench/lib/peers.ts):
 * TCP with one and with four streams (bits/s received), and UDP with 64-byte
 * datagrams sent as fast as the client can (datagrams/s received by the
 * server, so what the path drops does not count).
 *
 * The same PeerLab as connrate; iperf3 servers in the container (one per N,
 * on the measured port), the client in the client ns to 198.18.0.1:port. The
 * port is published for TCP (iperf3's control connection and the TCP tests)
 * and UDP, after N-1 other TCP ports; the measured port's entries come last.
 * Rounds alternate peers (rotated, reversed on odd rounds), N outermost.
 */
import type { ChildProcess } from 'node:child_process';
import { UPLINK } from '../src/lab/topology.js';
import { tryRun } from '../src/util/exec.js';
import { progress } from './lib/env.js';
import { PEER_LABEL, checkClean, isEbpf, createPeerLab, netfilterVersions, programPeer, requireTools, tcpRange, type PeerId, type PeerLab, type PortSpec } from './lib/peers.js';
import { pairwise, target, type PairwiseRatio, type Target } from './lib/ratios.js';
import { fmtInt, fmtNum, fmtPct, rotate, summarize, type Summary, type Table } from './lib/stats.js';
import { ratioCell } from './connrate.js';

export type FlowId = 'tcp1' | 'tcp4' | 'udp64';
export const FLOWS: readonly FlowId[] = ['tcp1', 'tcp4', 'udp64'];
const FLOW_LABEL: Record<FlowId, string> = { tcp1: 'TCP, 1 stream', tcp4: 'TCP, 4 streams', udp64: 'UDP, 64-byte datagrams' };

export interface ThroughputOptions {
  sizes: number[];
  rounds: number;
  /** Seconds per iperf3 test (after the omitted start). */
  durationS: number;
  /** Seconds iperf3 runs but does not count at the start (--omit: slow start, ARP). */
  omitS: number;
  basePort: number;
  udpLength: number;
  peers: PeerId[];
}

export const THROUGHPUT_FULL: ThroughputOptions = { sizes: [1], rounds: 3, durationS: 2, omitS: 0.5, basePort: 10_000, udpLength: 64, peers: ['ebpf', 'ebpf-xdp', 'nft-map', 'iptables'] };
export const THROUGHPUT_QUICK: ThroughputOptions = { ...THROUGHPUT_FULL, rounds: 1, durationS: 1 };

export interface FlowSample {
  round: number;
  peer: PeerId;
  n: number;
  flow: FlowId;
  /** TCP: bits/s received; UDP: datagrams/s received. */
  value: number;
  /** UDP: datagrams/s sent and the fraction lost. */
  sentPerS?: number;
  lost?: number;
  retransmits?: number;
  /** eBPF: METRIC_DNAT packets during the test. */
  dnatPackets?: number;
}

export interface FlowCell {
  peer: PeerId;
  n: number;
  flow: FlowId;
  value: Summary;
  sentPerS?: number;
  lost?: number;
}

export interface FlowRatio extends PairwiseRatio {
  n: number;
  flow: FlowId;
  /** ebpf ÷ this peer. */
  vs: PeerId;
  target?: Target;
}

export interface ThroughputResult {
  options: ThroughputOptions;
  wallS: number;
  iperf3: string;
  samples: FlowSample[];
  cells: FlowCell[];
  ratios: FlowRatio[];
  verification: { ok: boolean; checked: number; problems: string[] };
}

const measuredPort = (o: ThroughputOptions, n: number) => o.basePort + n - 1;
const portSet = (o: ThroughputOptions, n: number): PortSpec[] => [...tcpRange(o.basePort, n - 1), { port: measuredPort(o, n), proto: 'tcp' }, { port: measuredPort(o, n), proto: 'udp' }];

/** iperf3 -s in the container; resolves once it listens. It dies with the namespace. */
async function startServer(lab: PeerLab, port: number): Promise<ChildProcess> {
  const child = lab.topo.containers[0]!.ns.spawn('iperf3', ['-s', '-p', String(port), '--forceflush']);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`iperf3 server on port ${port} did not start: ${out}`)), 5000);
    const on = (d: Buffer) => {
      out += d.toString();
      if (/Server listening/.test(out)) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
  });
  return child;
}

interface IperfEnd {
  sum_sent?: { bits_per_second: number; bytes: number; seconds: number; retransmits?: number; packets?: number };
  sum_received?: { bits_per_second: number; bytes: number; seconds: number; packets?: number; lost_packets?: number };
}

async function iperf(lab: PeerLab, o: ThroughputOptions, port: number, flow: FlowId): Promise<Omit<FlowSample, 'round' | 'peer' | 'n' | 'flow'>> {
  const args = ['-c', UPLINK.nodeIp, '-p', String(port), '-t', String(o.durationS), '-O', String(o.omitS), '-J',
    ...(flow === 'tcp4' ? ['-P', '4'] : []), ...(flow === 'udp64' ? ['-u', '-l', String(o.udpLength), '-b', '0'] : [])];
  const r = await tryRun('iperf3', args, { netns: lab.topo.client.path, timeout: (o.durationS + o.omitS + 20) * 1000 });
  const j = JSON.parse(r?.stdout || '{}') as { end?: IperfEnd; error?: string };
  if (!r || j.error || !j.end?.sum_received) throw new Error(`iperf3 ${flow} to port ${port}: ${j.error ?? 'no result'}`);
  const rx = j.end.sum_received;
  const tx = j.end.sum_sent!;
  if (flow !== 'udp64') return { value: rx.bits_per_second, retransmits: tx.retransmits ?? 0 };
  const sent = tx.bytes / o.udpLength / tx.seconds;
  const got = rx.bytes / o.udpLength / rx.seconds;
  return { value: got, sentPerS: sent, lost: sent > 0 ? 1 - got / sent : NaN };
}

export async function runThroughput(o: ThroughputOptions): Promise<ThroughputResult> {
  const t0 = Date.now();
  const version = (await tryRun('iperf3', ['--version']))?.stdout.split('\n')[0]?.trim();
  if (!version) throw new Error('throughput: iperf3 not found (apt-get install iperf3, or make bench: BENCH=1 scripts/install-deps.sh)');
  requireTools(o.peers, await netfilterVersions(), 'throughput');
  const lab = await createPeerLab('bnbt');
  const problems: string[] = [];
  let checked = 0;
  try {
    for (const n of o.sizes) await startServer(lab, measuredPort(o, n));
    const samples: FlowSample[] = [];
    for (let r = 0; r < o.rounds; r++) {
      const rev = <T>(xs: T[]) => (r % 2 ? [...xs].reverse() : xs);
      for (const n of rev(rotate(o.sizes, r))) {
        for (const peer of rev(rotate(o.peers, r))) {
          const dirty = await checkClean(lab);
          if (dirty.length) throw new Error(`throughput: before ${peer} N=${n}: ${dirty.join('; ')}`);
          const p = await programPeer(lab, peer, portSet(o, n));
          try {
            if (r === 0) {
              checked++;
              problems.push(...(await p.verify()));
            }
            for (const flow of rev(rotate([...FLOWS], r))) {
              const before = (await p.dnatPackets?.()) ?? 0;
              const s: FlowSample = { round: r, peer, n, flow, ...(await iperf(lab, o, measuredPort(o, n), flow)) };
              if (p.dnatPackets) {
                s.dnatPackets = (await p.dnatPackets()) - before;
                checked++;
                if (s.dnatPackets < 10) problems.push(`throughput: ${peer} N=${n} ${flow}: only ${s.dnatPackets} DNAT packets`);
              }
              samples.push(s);
              progress(`throughput: round ${r + 1}/${o.rounds} N=${n} ${peer} ${flow}: ${flow === 'udp64' ? `${fmtInt(s.value)} datagrams/s received (${fmtInt(s.sentPerS!)} sent)` : `${fmtNum(s.value / 1e9, 2)} Gbit/s`}`);
            }
          } finally {
            await p.remove();
          }
        }
      }
    }
    const cells: FlowCell[] = [];
    for (const peer of o.peers) for (const n of o.sizes) for (const flow of FLOWS) {
      const xs = samples.filter((s) => s.peer === peer && s.n === n && s.flow === flow);
      if (!xs.length) continue;
      const udp = xs.filter((s) => s.sentPerS !== undefined);
      cells.push({ peer, n, flow, value: summarize(xs.map((s) => s.value)), ...(udp.length ? { sentPerS: summarize(udp.map((s) => s.sentPerS!)).median, lost: summarize(udp.map((s) => s.lost!)).median } : {}) });
    }
    const ratios: FlowRatio[] = [];
    if (o.peers.includes('ebpf')) {
      for (const n of o.sizes) for (const flow of FLOWS) for (const vs of o.peers.filter((x) => x !== 'ebpf')) {
        const pr = pairwise(samples, (s) => s.peer === 'ebpf' && s.n === n && s.flow === flow, (s) => s.peer === vs && s.n === n && s.flow === flow, (s) => s.value);
        if (pr) ratios.push({ ...pr, n, flow, vs, ...(isEbpf(vs) ? {} : { target: target(pr.pairwise, '>=', 1) }) });
      }
    }
    return { options: o, wallS: (Date.now() - t0) / 1000, iperf3: version, samples, cells, ratios, verification: { ok: problems.length === 0, checked, problems } };
  } finally {
    await lab.release();
  }
}

export function throughputTables(r: ThroughputResult): Table[] {
  const o = r.options;
  const fmt = (flow: FlowId, x: number) => (flow === 'udp64' ? fmtInt(x) : fmtNum(x / 1e9, 2));
  const main: Table = {
    title: `throughput: iperf3 through a published port (${o.rounds} rounds × ${o.durationS} s, alternating)`,
    headers: ['peer', 'N ports', 'workload', 'median', 'unit', 'min-max', 'IQR/med', 'UDP sent/s', 'UDP lost'],
    right: [1, 3, 5, 6, 7, 8],
    rows: r.cells.map((c) => [PEER_LABEL[c.peer], fmtInt(c.n), FLOW_LABEL[c.flow], fmt(c.flow, c.value.median), c.flow === 'udp64' ? 'datagrams/s received' : 'Gbit/s',
      `${fmt(c.flow, c.value.min)}-${fmt(c.flow, c.value.max)}`, fmtPct(c.value.iqrRel), c.sentPerS !== undefined ? fmtInt(c.sentPerS) : '', c.lost !== undefined ? fmtPct(c.lost) : '']),
    notes: [
      `${r.iperf3}; client ns -> node ${UPLINK.nodeIp}:port -> container; the port published for TCP and UDP after N-1 other TCP ports; ${o.omitS} s omitted at the start of each test`,
      `UDP: -u -l ${o.udpLength} -b 0 (as fast as one sender thread can); the rate is what the server received; client, server and the whole path share 2 cores, so this is mostly a CPU budget`,
      ...(r.verification.ok ? [`verification: ${r.verification.checked} checks (programmed state in round 1, eBPF DNAT counters per test), all as expected`] : [`VERIFICATION FAILED: ${r.verification.problems.join('; ')}`]),
    ],
  };
  const vs = [...new Set(r.ratios.map((x) => x.vs))];
  const ratios: Table = {
    title: 'throughput: ebpf (tc) ÷ each peer, pairwise within rounds (target ≥ 1 against the other dataplanes)',
    headers: ['N ports', 'workload', ...vs.map((p) => `ebpf÷${p}`)],
    right: vs.map((_, i) => i + 2),
    rows: o.sizes.flatMap((n) => FLOWS.map((f) => [fmtInt(n), FLOW_LABEL[f], ...vs.map((p) => ratioCell(r.ratios.find((x) => x.n === n && x.flow === f && x.vs === p)))])),
  };
  return [main, ratios];
}
