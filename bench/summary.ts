/**
 * What the README shows: summary tables across the benchmarks, issue 8's
 * targets (measured, met or not: reported as they are), and the SVG charts,
 * all computed from a (merged) results file, so a partial rerun updates
 * them too.
 */
import type { ConnrateResult } from './connrate.js';
import type { DockerBenchResult } from './docker.js';
import type { MapsResult } from './maps.js';
import type { ProgcostResult } from './progcost.js';
import { PROG_LABEL, PROG_SHORT, type ProgPeer, type PublishResult } from './publish.js';
import type { SetupResult } from './setup.js';
import type { FlowId, ThroughputResult } from './throughput.js';
import { PEER_LABEL, type PeerId } from './lib/peers.js';
import { lineChart, type Series } from './lib/svg.js';
import { fmtInt, fmtNum, fmtRatio, type Table } from './lib/stats.js';

export interface Results {
  progcost?: ProgcostResult | undefined;
  maps?: MapsResult | undefined;
  setup?: SetupResult | undefined;
  connrate?: ConnrateResult | undefined;
  throughput?: ThroughputResult | undefined;
  publish?: PublishResult | undefined;
  docker?: DockerBenchResult | undefined;
}

export interface TargetRow {
  target: string;
  measured: string;
  met: boolean | undefined;
  source: string;
}

const ms = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : fmtNum(x, x >= 100 ? 0 : x >= 10 ? 1 : 2));
const us = (x: number) => fmtNum(x, x >= 100 ? 0 : 1);
const signed = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : `${x < 0 ? '−' : '+'}${ms(Math.abs(x))}`);
/** Ratios in the targets table: three digits, so a value just past the bound does not print as the bound. */
const ratio3 = (x: number) => (Number.isFinite(x) ? `${x.toPrecision(3)}×` : 'n/a');

// ---- targets ---------------------------------------------------------------------

export function targets(r: Results): TargetRow[] {
  const out: TargetRow[] = [];
  const c = r.connrate;
  const notRun = (target: string, source: string) => out.push({ target, measured: `not measured (no ${source} results)`, met: undefined, source });
  const pair = (x: { pairwise: number; min: number; max: number }) => `${ratio3(x.pairwise)} (rounds ${fmtRatio(x.min)}-${fmtRatio(x.max)})`;

  const flat = c?.ratios.find((x) => x.key === 'flat');
  if (flat) out.push({ target: `eBPF new connections/s at N=${fmtInt(flat.n)} ≥ 0.95 × at N=${fmtInt(Math.min(...c!.options.sizes))}`, measured: pair(flat), met: flat.target?.met, source: 'connrate' });
  else notRun('eBPF new connections/s at N=50k ≥ 0.95 × at N=1', 'connrate');
  for (const [key, v, who] of [['rate/nft', 1.15, 'nftables map'], ['rate/ipt', 7, 'Docker-style iptables']] as const) {
    const x = c?.ratios.find((y) => y.key === key && y.n === 30_000);
    if (x) out.push({ target: `at N=30k, eBPF new connections/s ≥ ${v} × ${who}`, measured: pair(x), met: x.target?.met, source: 'connrate' });
    else notRun(`at N=30k, eBPF new connections/s ≥ ${v} × ${who}`, 'connrate N=30k');
  }
  for (const t of r.publish?.targets ?? []) {
    out.push({ target: `${t.what} ${t.target.op === '<=' ? '≤' : '≥'} ${t.target.value} ms`, measured: `${ms(t.measuredMs)} ms (median)`, met: t.target.met, source: 'publish' });
  }
  if (!r.publish) notRun('publish one more with 50k published ≤ 1 ms; bulk publish 50k ≤ 250 ms; a sandbox with 2,000 ports ≤ 50 ms more than with none', 'publish');
  const rr = c?.ratios.filter((x) => x.key === 'rrP99/ipt') ?? [];
  if (rr.length) {
    const worst = rr.reduce((a, b) => (b.pairwise > a.pairwise ? b : a));
    out.push({
      target: 'request/response latency p99 (one connection) ≤ 0.9 × Docker-style iptables, at every N',
      measured: rr.map((x) => `N=${fmtInt(x.n)} ${ratio3(x.pairwise)}`).join(', ') + ` (worst N=${fmtInt(worst.n)})`,
      met: rr.every((x) => x.target?.met),
      source: 'connrate',
    });
  } else notRun('request/response latency p99 ≤ 0.9 × Docker-style iptables', 'connrate');
  const tr = (r.throughput?.ratios ?? []).filter((x) => x.target);
  if (tr.length) {
    const worst = tr.reduce((a, b) => (b.pairwise < a.pairwise ? b : a));
    out.push({
      target: 'throughput (TCP 1 and 4 streams, UDP 64 B) ≥ every peer',
      measured: `lowest eBPF ÷ peer ratio ${ratio3(worst.pairwise)} (${worst.flow} vs ${worst.vs}); ${tr.filter((x) => x.target?.met).length} of ${tr.length} comparisons ≥ 1`,
      met: tr.every((x) => x.target?.met),
      source: 'throughput',
    });
  } else notRun('throughput ≥ every peer', 'throughput');
  const dnat = r.progcost?.paths.find((p) => p.id === 'dnat-exact');
  if (dnat) out.push({ target: 'DNAT program (from_uplink, TCP hit) ≤ 1.5 × the empty program', measured: `${fmtNum(dnat.summary.median, 0)} ns vs ${fmtNum(dnat.summary.median / dnat.ratioToEmpty, 0)} ns: ${ratio3(dnat.medianRoundRatio)} (median of per-round ratios)`, met: dnat.medianRoundRatio <= 1.5, source: 'progcost' });
  else notRun('DNAT program ≤ 1.5 × the empty program', 'progcost');
  return out;
}

export function targetsTable(rows: TargetRow[]): Table {
  return {
    title: 'Targets (issue 8): measured in one run, reported as they are',
    headers: ['target', 'measured', 'met', 'benchmark'],
    rows: rows.map((t) => [t.target, t.measured, t.met === undefined ? '–' : t.met ? 'yes' : '**no**', t.source]),
    notes: ['ratios are pairwise: each round\'s peers ran back to back, the ratio is taken per round and the median reported (min-max over rounds in parentheses)'],
  };
}

// ---- summary tables ---------------------------------------------------------------

const DOCKER_LABEL: Record<string, string> = { bpfnet: 'bpfnet (ebpf)', 'docker-proxy': 'Docker 20.10, proxy on', 'docker-noproxy': 'Docker 20.10, proxy off' };
const TRAFFIC_PEERS: PeerId[] = ['ebpf', 'ebpf-xdp', 'nft-map', 'iptables'];
const FLOW_ROWS: [FlowId, string][] = [['tcp1', 'TCP 1 stream, Gbit/s'], ['tcp4', 'TCP 4 streams, Gbit/s'], ['udp64', 'UDP 64 B, datagrams/s received']];

export function summaryTables(r: Results): Table[] {
  const out: Table[] = [];
  const c = r.connrate;
  const t = r.throughput;
  const peers = TRAFFIC_PEERS.filter((p) => c?.options.peers.includes(p) || t?.options.peers.includes(p));
  const docker = r.docker?.connrate ?? [];
  const dockerPeers = [...new Set(docker.map((x) => x.peer))].filter((x) => x !== 'ebpf');
  if (peers.length) {
    const rows: string[][] = [];
    const sizes = c?.options.sizes ?? [];
    const cc = (p: PeerId, n: number) => c!.cells.find((x) => x.peer === p && x.n === n);
    const dk = (d: string, n: number) => docker.find((x) => x.peer === d && x.n === n);
    for (const n of sizes) rows.push(['new connections/s', fmtInt(n), ...peers.map((p) => (cc(p, n) ? fmtInt(cc(p, n)!.rate.median) : '')), ...dockerPeers.map((d) => (dk(d, n) ? fmtInt(dk(d, n)!.rate) : ''))]);
    const lat = (x: { rrP50Us: number; rrP99Us: number } | undefined) => (x ? `${us(x.rrP50Us)} / ${us(x.rrP99Us)}` : '');
    for (const n of sizes) rows.push(['request/response p50 / p99 µs', fmtInt(n), ...peers.map((p) => lat(cc(p, n))), ...dockerPeers.map((d) => lat(dk(d, n)))]);
    for (const n of t?.options.sizes ?? []) {
      for (const [flow, label] of FLOW_ROWS) {
        const tc = (p: PeerId) => t!.cells.find((x) => x.peer === p && x.n === n && x.flow === flow);
        rows.push([label, fmtInt(n), ...peers.map((p) => (tc(p) ? (flow === 'udp64' ? fmtInt(tc(p)!.value.median) : fmtNum(tc(p)!.value.median / 1e9, 2)) : '')), ...dockerPeers.map(() => '')]);
      }
    }
    out.push({
      title: 'Summary: traffic through a published port (medians over alternating rounds)',
      headers: ['workload', 'N ports', ...peers.map((p) => PEER_LABEL[p]), ...dockerPeers.map((d) => DOCKER_LABEL[d] ?? d)],
      right: [1, ...peers.map((_, i) => i + 2), ...dockerPeers.map((_, i) => peers.length + i + 2)],
      rows,
      notes: [
        'client ns -> node ns (uplink) -> container ns on one 2-core VM; the measured port is the last of N (last in every rule list); Docker (a real dockerd) at N = 1 only',
        'new connections: 16 concurrent connect / 1 byte each way / close; request/response: 1 byte each way over one connection, client and server pinned to one CPU',
      ],
    });
  }

  const p = r.publish;
  if (p) {
    const peersP = p.options.peers;
    const cell = (peer: ProgPeer, n: number) => p.cells.find((x) => x.peer === peer && x.n === n);
    const mem = (n: number) => (p.memory ?? []).find((x) => x.mode === 'ebpf' && x.n === n);
    out.push({
      title: 'Summary: publishing N ports in bulk (ms, medians)',
      headers: ['N ports', ...peersP.map((x) => PROG_SHORT[x]), 'agent RSS MiB (ebpf mode)', 'eBPF maps MiB'],
      right: [0, ...peersP.map((_, i) => i + 1), peersP.length + 1, peersP.length + 2],
      rows: p.options.sizes.map((n) => [
        fmtInt(n),
        ...peersP.map((x) => ms(cell(x, n)?.bulk.median)),
        mem(n)?.rssKiB !== undefined ? fmtNum(mem(n)!.rssKiB / 1024, 0) : '',
        mem(n)?.mapBytes !== undefined ? fmtNum(mem(n)!.mapBytes! / 2 ** 20, 1) : '',
      ]),
      notes: ['API = end to end through bpfnet\'s API: SandboxCreate of a sandbox publishing `A-B:A-B`, so it includes creating the sandbox (netns, veth, files; the N=1 row is mostly that); the others are the dataplane call or the peer\'s own tool (bench/README.md, "publish")'],
    });
    out.push({
      title: 'Summary: publishing / unpublishing one more port with N published (ms, medians)',
      headers: ['N ports', ...peersP.map((x) => PROG_SHORT[x])],
      right: [0, ...peersP.map((_, i) => i + 1)],
      rows: p.options.sizes.map((n) => [fmtInt(n), ...peersP.map((x) => (cell(x, n) ? `${ms(cell(x, n)!.one.median)} / ${ms(cell(x, n)!.unone.median)}` : ''))]),
      notes: ['API: PortPublish / PortUnpublish; EbpfDataplane.apply() with N+1 / N ports; nft add / delete element; iptables: one call per rule as Docker does it'],
    });
  }

  const rows: string[][] = [];
  const s = r.setup;
  const modes = (['api-ebpf', 'api-nftables', 'api-iptables'] as ProgPeer[]).filter((x) => p?.options.peers.includes(x));
  const b = s?.peers.find((x) => x.id === 'bpfnet');
  const cni = s?.peers.find((x) => x.id === 'cni');
  if (b && cni) rows.push(['sandbox + endpoint create, p50 / p99 ms (setup benchmark, 300 creates)', `${ms(b.create.p50)} / ${ms(b.create.p99)}`, '', '', `${ms(cni.create.p50)} / ${ms(cni.create.p99)}`]);
  for (const n of [200, 2000].filter((x) => p?.options.sizes.includes(x))) {
    rows.push([`sandbox publishing ${fmtInt(n)} ports: create ms (more than one publishing none)`, ...(['api-ebpf', 'api-nftables', 'api-iptables'] as ProgPeer[]).map((m) => {
      const k = modes.includes(m) ? p!.cells.find((x) => x.peer === m && x.n === n) : undefined;
      return k ? `${ms(k.bulk.median)} (${signed(k.extra?.median)})` : '';
    }), '']);
  }
  if (rows.length) out.push({ title: 'Summary: sandboxes', headers: ['', 'bpfnet ebpf', 'bpfnet nftables', 'bpfnet iptables', 'CNI bridge plugin'], right: [1, 2, 3, 4], rows });
  const st = r.docker?.startup ?? [];
  if (st.length) {
    const dpeers = [...new Set(st.map((x) => x.peer))];
    const ports = [...new Set(st.map((x) => x.ports))].sort((a, b) => a - b);
    const cell = (peer: string, n: number) => st.find((x) => x.peer === peer && x.ports === n);
    out.push({
      title: 'Summary: starting a sandbox / container publishing a port range, against a real dockerd',
      headers: ['ports', ...dpeers.map((d) => `${DOCKER_LABEL[d] ?? d}: start ms (more than none) · processes · PSS MiB`)],
      right: dpeers.map((_, i) => i + 1),
      rows: ports.map((n) => [fmtInt(n), ...dpeers.map((d) => {
        const c = cell(d, n);
        return c ? `${ms(c.startMs)}${n ? ` (${signed(c.extraMs)})` : ''} · ${fmtInt(c.processes)} · ${fmtNum(c.pssKiB / 1024, 0)}${c.samples === 1 ? ' (1 sample)' : ''}` : '';
      })]),
      notes: ['bpfnet: SandboxCreate on an agent in eBPF mode (one process: the agent); Docker: `docker run -d -p A-B:A-B` (dockerd, containerd, shims, one docker-proxy per port with the proxy on)'],
    });
  }
  return out;
}

// ---- charts ----------------------------------------------------------------------

export interface Chart {
  file: string;
  title: string;
  svg: string;
}

export function charts(r: Results): Chart[] {
  const out: Chart[] = [];
  const c = r.connrate;
  if (c && c.options.sizes.length > 1) {
    const series: Series[] = c.options.peers.map((p) => ({ name: PEER_LABEL[p], points: c.cells.filter((x) => x.peer === p).map((x) => [x.n, x.rate.median] as [number, number]) }));
    for (const d of [...new Set((r.docker?.connrate ?? []).map((x) => x.peer))].filter((x) => x !== 'ebpf')) series.push({ name: `${DOCKER_LABEL[d] ?? d} (N=1 only)`, dashed: true, points: r.docker!.connrate.filter((x) => x.peer === d).map((x) => [x.n, x.rate]) });
    out.push({
      file: 'connrate.svg',
      title: 'New connections/s vs published ports',
      svg: lineChart({ title: 'New connections/s through a published port', subtitle: `measured port last of N; median of ${c.options.rounds} alternating rounds; 2-core VM`, xLabel: 'published ports (N, log scale)', yLabel: 'connections/s', xLog: true, series }),
    });
    const lat: Series[] = c.options.peers.map((p) => ({ name: PEER_LABEL[p], points: c.cells.filter((x) => x.peer === p).map((x) => [x.n, x.rrP99Us] as [number, number]) }));
    out.push({
      file: 'latency.svg',
      title: 'Request/response p99 latency vs published ports',
      svg: lineChart({ title: 'Request/response latency p99 over one connection', subtitle: '1 byte each way; client and server pinned to one CPU', xLabel: 'published ports (N, log scale)', yLabel: 'p99 µs', xLog: true, series: lat }),
    });
  }
  const p = r.publish;
  if (p && p.options.sizes.length > 1) {
    const series = (f: (k: PublishResult['cells'][number]) => number): Series[] =>
      p.options.peers.map((peer) => ({ name: PROG_LABEL[peer], dashed: !peer.startsWith('api-'), points: p.cells.filter((x) => x.peer === peer).map((x) => [x.n, f(x)] as [number, number]) }));
    out.push({
      file: 'publish-bulk.svg',
      title: 'Time to publish N ports in bulk',
      svg: lineChart({ title: 'Publishing N ports in bulk', subtitle: 'API: SandboxCreate with -p A-B:A-B (solid); native tools (dashed); medians', xLabel: 'published ports (N, log scale)', yLabel: 'ms (log scale)', xLog: true, yLog: true, series: series((k) => k.bulk.median) }),
    });
    out.push({
      file: 'publish-one.svg',
      title: 'Time to publish one more port with N published',
      svg: lineChart({ title: 'Publishing one more port with N published', subtitle: 'API: PortPublish (solid); native tools (dashed); medians', xLabel: 'published ports (N, log scale)', yLabel: 'ms (log scale)', xLog: true, yLog: true, series: series((k) => k.one.median) }),
    });
  }
  return out;
}

// ---- README ----------------------------------------------------------------------

/**
 * Replace (or append) README.md's "## Benchmarks" section with `body`;
 * nothing else changes. "## Measurements" is the section's name before
 * issue 8 (its hand-written findings moved to bench/README.md).
 */
export function replaceReadmeSection(readme: string, body: string): string {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => /^## (Benchmarks|Measurements)\s*$/.test(l));
  const section = ['## Benchmarks', '', ...body.trimEnd().split('\n'), ''];
  if (start < 0) return [...lines.slice(0, lines.at(-1) === '' ? -1 : undefined), '', ...section].join('\n');
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end < 0) end = lines.length;
  return [...lines.slice(0, start), ...section, ...lines.slice(end)].join('\n');
}

