/**
 * New connections per second and latency through a published port, by
 * dataplane ("peer") and by the number N of published ports.
 *
 * One Topology (client ns -> node ns, uplink up0 198.18.0.1 -> container ns
 * on br0). The container runs bench/tools/echo.c; the client runs
 * bench/tools/connrate.c (both compiled at bench time, bench/lib/tools.ts).
 * N ports are published as host port P -> container port P for
 * P = basePort .. basePort+N-1 (like `-p A-B:A-B`); the measured port is the
 * LAST one, last in every rule list. Peers, programmed in the node ns one at
 * a time:
 *
 *   ebpf       EbpfDataplane.apply() with the N ports (wildcard host IP by
 *              default, like `-p P:P`), in its own bpffs root
 *              /sys/fs/bpf/bpfnet-bench-<rand> (a fresh one per sample)
 *   nft-map    one nftables table: `dnat ip to ip daddr . tcp dport map @ports`
 *              (O(1) lookup), loaded with one `nft -f`
 *   iptables   what Docker 28/29 writes per published port (nat DOCKER DNAT
 *              per port with `! -i br0`, filter DOCKER ACCEPT per port,
 *              PREROUTING/OUTPUT jumps with addrtype LOCAL, DOCKER-FORWARD /
 *              DOCKER-CT / DOCKER-BRIDGE, raw PREROUTING drop), loaded with
 *              one iptables-restore (the machine's default, nf_tables backend)
 *
 * Every round runs every (N, peer) job once: N in a rotated order, and for
 * each N the peers back to back in a rotated order (both reversed on odd
 * rounds), so the peers compared at one N ran close together in time. A job:
 * check that the node's firewall is empty and nothing is attached to the
 * uplink; program the peer (timed); verify; new-connection run (crr) and
 * one-connection request/response run (rr) from the client; remove the
 * peer's state (timed) and flush conntrack.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EbpfDataplane } from '../src/dataplane/ebpf/dataplane.js';
import type { DesiredState, PublishedPort } from '../src/dataplane/types.js';
import { firewallRules, waitReady } from '../src/lab/lab.js';
import { BRIDGE, Topology, UPLINK } from '../src/lab/topology.js';
import { removeRoot } from '../src/loader/load.js';
import { listTc } from '../src/loader/tc.js';
import { MetricId } from '../src/maps/generated/abi.js';
import { readPerCpu } from '../src/maps/map.js';
import { run, tryRun } from '../src/util/exec.js';
import { progress, registerCleanup } from './lib/env.js';
import { RawPinnedMap, nextPow2 } from './lib/rawmap.js';
import { fmtInt, fmtNum, fmtPct, fmtRatio, median, nowNs, elapsedS, rotate, summarize, type Summary, type Table } from './lib/stats.js';
import { buildTool } from './lib/tools.js';

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
  /** Host IP of the eBPF peer's ports: '0.0.0.0' (Docker's default) or the node address. */
  ebpfHostIp: string;
  peers: PeerId[];
}

export const CONNRATE_FULL: ConnrateOptions = {
  sizes: [1, 1000, 10_000, 30_000, 50_000],
  rounds: 5,
  durationS: 3,
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
  peers: ['ebpf', 'nft-map', 'iptables'],
};
export const CONNRATE_QUICK: ConnrateOptions = { ...CONNRATE_FULL, sizes: [1, 1000], rounds: 2, durationS: 1, rrDurationS: 0.5, serialDurationS: 0.5, warmupS: 0.2 };

export type PeerId = 'ebpf' | 'nft-map' | 'iptables';
export const CONNRATE_PEERS: readonly PeerId[] = ['ebpf', 'nft-map', 'iptables'];

const PEER_LABEL: Record<PeerId, string> = {
  ebpf: 'bpfnet eBPF (tc, hash map)',
  'nft-map': 'nftables dnat map',
  iptables: 'Docker-style iptables',
};

/** What connrate.c prints. */
export interface LatencyUs {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  min: number;
  max: number;
  mean: number;
}
export interface CrrOut {
  mode: 'crr';
  connections: number;
  errors: number;
  errorsByKind: Record<string, number>;
  lastError: string;
  elapsedS: number;
  wallS: number;
  ratePerS: number;
  latencyUs: LatencyUs;
}
export interface RrOut {
  mode: 'rr';
  requests: number;
  errors: number;
  lastError: string;
  elapsedS: number;
  ratePerS: number;
  latencyUs: LatencyUs;
}

export interface JobSample {
  round: number;
  peer: PeerId;
  n: number;
  /** Publishing the N ports in bulk (ms). eBPF: apply() onto loaded, attached, empty maps. */
  programMs: number;
  /** eBPF only: the first apply() with no ports (load programs, create maps, attach). */
  loadMs?: number;
  /** Removing the peer's state (eBPF: teardown(); nft/iptables: `nft flush ruleset`). */
  removeMs: number;
  /** Publishing one more port with the N present, after the traffic runs (ms). */
  addOneMs: number;
  crr: CrrOut;
  /** The same loop with one connection at a time: latency without queueing. */
  serial: CrrOut;
  rr: RrOut;
  /** eBPF: METRIC_DNAT packets during the crr+rr runs; conntrack entries in the node ns afterwards. */
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
  program: Summary;
  load?: Summary;
  remove: Summary;
  addOne: Summary;
  errors: number;
  rrErrors: number;
}

export type RatioKey = 'flat' | 'rate/nft' | 'rate/ipt' | 'serialP50/nft' | 'serialP50/ipt' | 'rrP99/ipt' | 'serialP99/ipt';

export interface Ratio {
  what: string;
  key: RatioKey;
  /** The N both sides ran at (flat: the larger N, against the smallest). */
  n: number;
  /** Median of the per-round ratios (same round, pairwise). */
  pairwise: number;
  min: number;
  max: number;
  /** Ratio of the medians. */
  ofMedians: number;
  target?: { op: '>=' | '<='; value: number; met: boolean };
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

// ---- peers --------------------------------------------------------------------

interface Ctx {
  opts: ConnrateOptions;
  topo: Topology;
  dir: string;
  upIndex: number;
  vcIndex: number;
  ctrIp: string;
  /** eBPF roots created and not yet removed (for the interrupt cleanup). */
  roots: Set<string>;
}

function ports(ctx: Ctx, n: number, hostIp: string): PublishedPort[] {
  const out: PublishedPort[] = [];
  for (let i = 0; i < n; i++) {
    const p = ctx.opts.basePort + i;
    out.push({ hostIp, hostPort: p, proto: 'tcp', containerIp: ctx.ctrIp, containerPort: p });
  }
  return out;
}

const measuredPort = (opts: ConnrateOptions, n: number) => opts.basePort + n - 1;
/** The port "publish one more" adds: right after the N, or right before them at the top of the range. */
const extraPort = (opts: ConnrateOptions, n: number) => (opts.basePort + n <= 65_535 ? opts.basePort + n : opts.basePort - 1);

interface Programmed {
  programMs: number;
  loadMs?: number;
  /** Deep check after programming (first round only); problems, empty when fine. */
  verify(): Promise<string[]>;
  beforeRun?(): Promise<void>;
  afterRun?(s: JobSample): Promise<string[]>;
  /** Publish one more port (basePort + N) the peer's usual way; ms. */
  addOne(): Promise<number>;
  remove(): Promise<number>;
}

async function nodeConntrackCount(ctx: Ctx): Promise<number | undefined> {
  const r = await tryRun('cat', ['/proc/sys/net/netfilter/nf_conntrack_count'], { netns: ctx.topo.node.path });
  return r ? Number(r.stdout.trim()) : undefined;
}

async function dnatPackets(mapDir: string): Promise<number> {
  const m = new Map(await readPerCpu(mapDir, 'bpfnet_metrics'));
  return Number(m.get(MetricId.METRIC_DNAT)?.packets ?? 0n);
}

async function programEbpf(ctx: Ctx, n: number): Promise<Programmed> {
  const root = `/sys/fs/bpf/bpfnet-bench-${randomBytes(4).toString('hex')}`;
  ctx.roots.add(root);
  const size = Math.max(65_536, nextPow2(n + 1));
  // nodeLocal off: the socket hooks serve processes on the node and attach to
  // the machine-wide cgroup2 root, where they would also run on the client's
  // connect() (a client in another netns of the same kernel), which a real
  // external client never pays; and the bench leaves the root cgroup alone.
  const dp = new EbpfDataplane({ root, netns: ctx.topo.node.path, mapSizes: { bpfnet_ports: size }, nodeLocal: false });
  const base: DesiredState = {
    uplinks: [UPLINK.dev],
    uplinkIndex: { [UPLINK.dev]: ctx.upIndex },
    nodeAddresses: [UPLINK.nodeIp],
    endpoints: [{ hostDev: ctx.topo.containers[0]!.hostDev, ifindex: ctx.vcIndex, ip: ctx.ctrIp }],
    ports: [],
  };
  const state: DesiredState = { ...base, ports: ports(ctx, n, ctx.opts.ebpfHostIp) };
  const remove = async () => {
    const t = nowNs();
    await dp.teardown(state);
    ctx.roots.delete(root);
    return elapsedS(t) * 1000;
  };
  try {
    let t = nowNs();
    await dp.apply(base);
    const loadMs = elapsedS(t) * 1000;
    t = nowNs();
    const rep = await dp.apply(state);
    const programMs = elapsedS(t) * 1000;
    let dnatBefore = 0;
    return {
      programMs,
      loadMs,
      verify: async () => {
        const problems: string[] = [];
        if (rep.ports.added !== n) problems.push(`ebpf N=${n}: apply reported ${rep.ports.added} ports added`);
        if (rep.attached.length) problems.push(`ebpf N=${n}: the timed apply attached programs again (${rep.attached.map((a) => a.dev).join(', ')})`);
        const m = new RawPinnedMap(join(dp.mapDir, 'bpfnet_ports'));
        try {
          const c = m.count();
          if (c !== n) problems.push(`ebpf N=${n}: bpfnet_ports holds ${c} entries`);
        } finally {
          m.close();
        }
        for (const dev of [UPLINK.dev, ctx.topo.containers[0]!.hostDev]) {
          const a = await listTc({ netns: ctx.topo.node.path, dev, direction: 'ingress' });
          if (a.length !== 1) problems.push(`ebpf: ${a.length} tc programs on ${dev} ingress`);
        }
        return problems;
      },
      beforeRun: async () => {
        dnatBefore = await dnatPackets(dp.mapDir);
      },
      afterRun: async (s) => {
        const problems: string[] = [];
        s.dnatPackets = (await dnatPackets(dp.mapDir)) - dnatBefore;
        s.conntrackAfter = await nodeConntrackCount(ctx);
        // Each connection: SYN, ACK, data, RST at least, all DNATed by the program.
        if (s.dnatPackets < s.crr.connections * 3) problems.push(`ebpf N=${n} round ${s.round}: only ${s.dnatPackets} DNAT packets for ${s.crr.connections} connections`);
        if ((s.conntrackAfter ?? 0) > Math.max(10, s.crr.connections / 100)) problems.push(`ebpf N=${n} round ${s.round}: ${s.conntrackAfter} conntrack entries in the node ns (netfilter was in the path)`);
        return problems;
      },
      addOne: async () => {
        const p = extraPort(ctx.opts, n);
        const t1 = nowNs();
        await dp.apply({ ...state, ports: [...state.ports, { hostIp: ctx.opts.ebpfHostIp, hostPort: p, proto: 'tcp', containerIp: ctx.ctrIp, containerPort: p }] });
        return elapsedS(t1) * 1000;
      },
      remove,
    };
  } catch (e) {
    await remove().catch(() => undefined);
    throw e;
  }
}

/** nftables: one table, one map, one rule. */
export function nftRuleset(ctx: Pick<Ctx, 'opts' | 'ctrIp'>, n: number): string {
  const els: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = ctx.opts.basePort + i;
    els.push(`      ${UPLINK.nodeIp} . ${p} : ${ctx.ctrIp} . ${p}`);
  }
  return [
    'table ip bench_dnat {',
    '  map ports {',
    '    type ipv4_addr . inet_service : ipv4_addr . inet_service',
    '    elements = {',
    els.join(',\n'),
    '    }',
    '  }',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    dnat ip to ip daddr . tcp dport map @ports',
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * What Docker 28/29 writes for a bridge network (br0, 198.19.0.0/24) with one
 * container publishing N ports P:P/tcp (docker-networking.md, "What Docker
 * writes"; userland proxy on, so no hairpin MASQUERADE rules). The measured
 * port's rules come last in both per-port lists (nat DOCKER, filter DOCKER
 * before its final DROP).
 */
export function dockerRules(ctx: Pick<Ctx, 'opts' | 'ctrIp'>, n: number): string {
  const br = BRIDGE.dev;
  const nat: string[] = [];
  const acc: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = ctx.opts.basePort + i;
    nat.push(`-A DOCKER ! -i ${br} -p tcp -m tcp --dport ${p} -j DNAT --to-destination ${ctx.ctrIp}:${p}`);
    acc.push(`-A DOCKER -d ${ctx.ctrIp}/32 ! -i ${br} -o ${br} -p tcp -m tcp --dport ${p} -j ACCEPT`);
  }
  return [
    '*raw',
    ':PREROUTING ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    `-A PREROUTING -d ${ctx.ctrIp}/32 ! -i ${br} -j DROP`,
    'COMMIT',
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':DOCKER - [0:0]',
    '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
    '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER',
    `-A POSTROUTING -s ${BRIDGE.subnet} ! -o ${br} -j MASQUERADE`,
    ...nat,
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':DOCKER - [0:0]',
    ':DOCKER-BRIDGE - [0:0]',
    ':DOCKER-CT - [0:0]',
    ':DOCKER-FORWARD - [0:0]',
    ':DOCKER-INTERNAL - [0:0]',
    ':DOCKER-USER - [0:0]',
    '-A FORWARD -j DOCKER-USER',
    '-A FORWARD -j DOCKER-FORWARD',
    ...acc,
    `-A DOCKER ! -i ${br} -o ${br} -j DROP`,
    `-A DOCKER-BRIDGE -o ${br} -j DOCKER`,
    `-A DOCKER-CT -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    '-A DOCKER-FORWARD -j DOCKER-CT',
    '-A DOCKER-FORWARD -j DOCKER-INTERNAL',
    '-A DOCKER-FORWARD -j DOCKER-BRIDGE',
    `-A DOCKER-FORWARD -i ${br} -j ACCEPT`,
    'COMMIT',
    '',
  ].join('\n');
}

/** Remove every netfilter rule of the node ns (iptables-nft tables are nft tables) and its conntrack entries. */
async function flushNetfilter(ctx: Ctx): Promise<number> {
  const t = nowNs();
  await run('nft', ['flush', 'ruleset'], { netns: ctx.topo.node.path });
  const ms = elapsedS(t) * 1000;
  await tryRun('conntrack', ['-F'], { netns: ctx.topo.node.path });
  return ms;
}

async function programNetfilter(ctx: Ctx, peer: 'nft-map' | 'iptables', n: number): Promise<Programmed> {
  const file = join(ctx.dir, `${peer}-${n}.rules`);
  await writeFile(file, peer === 'nft-map' ? nftRuleset(ctx, n) : dockerRules(ctx, n));
  const node = ctx.topo.node.path;
  const t = nowNs();
  try {
    if (peer === 'nft-map') await run('nft', ['-f', file], { netns: node, timeout: 300_000 });
    else await run('iptables-restore', [file], { netns: node, timeout: 300_000 });
  } catch (e) {
    await flushNetfilter(ctx).catch(() => undefined);
    throw e;
  }
  const programMs = elapsedS(t) * 1000;
  const port = measuredPort(ctx.opts, n);
  return {
    programMs,
    verify: async () => {
      const problems: string[] = [];
      if (peer === 'nft-map') {
        const out = (await run('nft', ['list', 'map', 'ip', 'bench_dnat', 'ports'], { netns: node })).stdout;
        const count = (out.match(/\d+\.\d+\.\d+\.\d+ \. \d+ : /g) ?? []).length;
        if (count !== n) problems.push(`nft-map N=${n}: the map holds ${count} elements`);
        if (!out.includes(`${UPLINK.nodeIp} . ${port} : ${ctx.ctrIp} . ${port}`)) problems.push(`nft-map N=${n}: measured port ${port} not in the map`);
      } else {
        const lines = (await run('iptables-save', [], { netns: node })).stdout.split('\n');
        const dnat = lines.filter((l) => l.startsWith('-A DOCKER ') && l.includes('-j DNAT'));
        const acc = lines.filter((l) => l.startsWith('-A DOCKER ') && l.includes('-j ACCEPT'));
        if (dnat.length !== n) problems.push(`iptables N=${n}: ${dnat.length} DNAT rules in nat DOCKER`);
        if (acc.length !== n) problems.push(`iptables N=${n}: ${acc.length} ACCEPT rules in filter DOCKER`);
        if (!dnat.at(-1)?.includes(`--dport ${port} `)) problems.push(`iptables N=${n}: the last DNAT rule is not port ${port}: ${dnat.at(-1)}`);
        if (!acc.at(-1)?.includes(`--dport ${port} `)) problems.push(`iptables N=${n}: the last ACCEPT rule is not port ${port}: ${acc.at(-1)}`);
      }
      return problems;
    },
    addOne: async () => {
      const p = extraPort(ctx.opts, n);
      const br = BRIDGE.dev;
      const t1 = nowNs();
      if (peer === 'nft-map') {
        await run('nft', ['add', 'element', 'ip', 'bench_dnat', 'ports', `{ ${UPLINK.nodeIp} . ${p} : ${ctx.ctrIp} . ${p} }`], { netns: node });
      } else {
        // As Docker does it: one iptables call per rule (DNAT appended, ACCEPT inserted before the chain's final DROP).
        await run('iptables', ['-t', 'nat', '-A', 'DOCKER', '!', '-i', br, '-p', 'tcp', '-m', 'tcp', '--dport', String(p), '-j', 'DNAT', '--to-destination', `${ctx.ctrIp}:${p}`], { netns: node, timeout: 300_000 });
        await run('iptables', ['-t', 'filter', '-I', 'DOCKER', '-d', `${ctx.ctrIp}/32`, '!', '-i', br, '-o', br, '-p', 'tcp', '-m', 'tcp', '--dport', String(p), '-j', 'ACCEPT'], { netns: node, timeout: 300_000 });
      }
      return elapsedS(t1) * 1000;
    },
    remove: () => flushNetfilter(ctx),
  };
}

/** Nothing programmed: no rules in the node ns, nothing on the uplink's tc ingress. */
async function checkClean(ctx: Ctx): Promise<string[]> {
  const problems: string[] = [];
  const fw = await firewallRules(ctx.topo.node);
  if (fw.iptablesRules || fw.nftRules) problems.push(`node firewall not empty: ${fw.iptablesRules} iptables rules, ${fw.nftRules} nft rules`);
  const tables = (await tryRun('nft', ['list', 'tables'], { netns: ctx.topo.node.path }))?.stdout.trim() ?? '';
  if (tables) problems.push(`node has nft tables: ${tables.replace(/\n/g, ', ')}`);
  for (const direction of ['ingress', 'egress'] as const) {
    const tc = await listTc({ netns: ctx.topo.node.path, dev: UPLINK.dev, direction });
    if (tc.length) problems.push(`${tc.length} tc program(s) still on ${UPLINK.dev} ${direction}`);
  }
  return problems;
}

// ---- the generator --------------------------------------------------------------

async function runClient<T>(ctx: Ctx, bin: string, args: string[], seconds: number, cpu: number | null = null): Promise<T> {
  const [file, argv] = cpu === null ? [bin, args] : ['taskset', ['-c', String(cpu), bin, ...args]];
  const { stdout } = await run(file, argv, { netns: ctx.topo.client.path, timeout: (seconds + 20) * 1000 });
  return JSON.parse(stdout) as T;
}

/** Every thread of the echo server onto these CPUs (taskset -a -p). */
async function pinServer(pid: number, cpus: string): Promise<void> {
  await run('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
}

function crrArgs(o: ConnrateOptions, port: number, serial = false): string[] {
  return ['crr', '--host', UPLINK.nodeIp, '--port', String(port), '--duration', String(serial ? o.serialDurationS : o.durationS),
    '--warmup', String(serial ? 0.1 : o.warmupS), '--concurrency', String(serial ? 1 : o.concurrency), '--threads', String(serial ? 1 : o.clientThreads),
    '--timeout-ms', String(o.timeoutMs), '--close', o.close];
}

function rrArgs(o: ConnrateOptions, port: number): string[] {
  return ['rr', '--host', UPLINK.nodeIp, '--port', String(port), '--duration', String(o.rrDurationS), '--warmup', '0.1'];
}

async function ifindex(ctx: Ctx, dev: string): Promise<number> {
  const j = JSON.parse((await ctx.topo.node.ip('-j', 'link', 'show', dev)).stdout) as { ifindex: number }[];
  return j[0]!.ifindex;
}

// ---- the run -----------------------------------------------------------------------

export async function runConnrate(opts: ConnrateOptions): Promise<ConnrateResult> {
  const t0 = Date.now();
  const maxN = Math.max(...opts.sizes);
  if (opts.sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`connrate: sizes must be positive integers, got ${opts.sizes.join(',')}`);
  if (opts.basePort + maxN - 1 > 65_535) throw new Error(`connrate: basePort ${opts.basePort} + N ${maxN} exceeds port 65535`);
  const [connrate, echo] = [await buildTool('connrate'), await buildTool('echo')];
  const versions = {
    nft: (await tryRun('nft', ['--version']))?.stdout.trim() ?? 'not found',
    iptables: (await tryRun('iptables', ['--version']))?.stdout.trim() ?? 'not found',
  };
  if (opts.peers.includes('nft-map') && versions.nft === 'not found') throw new Error('connrate: nft not found (apt-get install nftables)');
  if (opts.peers.includes('iptables') && versions.iptables === 'not found') throw new Error('connrate: iptables not found (apt-get install iptables)');

  const topo = await Topology.create({ prefix: 'bnbc' });
  const dir = await mkdtemp(join(tmpdir(), 'bpfnet-connrate-'));
  const roots = new Set<string>();
  const release = registerCleanup(async () => {
    await topo.destroy();
    for (const r of roots) await removeRoot(r).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  try {
    const ctr = topo.containers[0]!;
    const ctx: Ctx = { opts, topo, dir, upIndex: 0, vcIndex: 0, ctrIp: ctr.ip, roots };
    ctx.upIndex = await ifindex(ctx, UPLINK.dev);
    ctx.vcIndex = await ifindex(ctx, ctr.hostDev);
    const serverPorts = [...new Set(opts.sizes.map((n) => measuredPort(opts, n)))];
    progress(`connrate: topology ${topo.id}; echo server on ${ctr.ip} ports ${serverPorts.join(', ')}`);
    // nsenter execs the server (no fork for a net ns), so this pid is the server's.
    const server = ctr.ns.spawn(echo.path, [...serverPorts.flatMap((p) => ['--port', String(p)]), '--threads', String(opts.serverThreads)]);
    await waitReady(server, 'echo server');
    const serverPid = server.pid!;
    const allCpus = `0-${Math.max(0, cpus().length - 1)}`;
    if (opts.pinCpu !== null && (opts.pinCpu < 0 || opts.pinCpu >= cpus().length)) throw new Error(`connrate: no CPU ${opts.pinCpu}`);

    const problems: string[] = [];
    let checked = 0;
    const samples: JobSample[] = [];
    const order: string[][] = [];
    const initial = await checkClean(ctx);
    if (initial.length) throw new Error(`connrate: a fresh node namespace is not clean: ${initial.join('; ')}`);

    for (let r = 0; r < opts.rounds; r++) {
      const rev = <T>(xs: T[]) => (r % 2 ? [...xs].reverse() : xs);
      const sizes = rev(rotate(opts.sizes, r));
      const peers = rev(rotate(opts.peers, r));
      const ran: string[] = [];
      const rt = Date.now();
      for (const n of sizes) {
        for (const peer of peers) {
          ran.push(`${n}/${peer}`);
          const dirty = await checkClean(ctx);
          if (dirty.length) throw new Error(`connrate: before ${peer} N=${n}: ${dirty.join('; ')}`);
          const p = peer === 'ebpf' ? await programEbpf(ctx, n) : await programNetfilter(ctx, peer, n);
          try {
            if (r === 0) {
              const v = await p.verify();
              checked++;
              problems.push(...v);
              for (const x of v) progress(`connrate: VERIFICATION: ${x}`);
            }
            await p.beforeRun?.();
            const port = measuredPort(opts, n);
            const crr = await runClient<CrrOut>(ctx, connrate.path, crrArgs(opts, port), opts.durationS + opts.warmupS);
            if (opts.pinCpu !== null) await pinServer(serverPid, String(opts.pinCpu));
            let serial: CrrOut;
            let rr: RrOut;
            try {
              serial = await runClient<CrrOut>(ctx, connrate.path, crrArgs(opts, port, true), opts.serialDurationS + 0.1, opts.pinCpu);
              rr = await runClient<RrOut>(ctx, connrate.path, rrArgs(opts, port), opts.rrDurationS + 0.1, opts.pinCpu);
            } finally {
              if (opts.pinCpu !== null) await pinServer(serverPid, allCpus);
            }
            const s: JobSample = { round: r, peer, n, programMs: p.programMs, ...(p.loadMs !== undefined ? { loadMs: p.loadMs } : {}), removeMs: NaN, addOneMs: NaN, crr, serial, rr };
            const after = (await p.afterRun?.(s)) ?? [];
            checked++;
            if (serial.connections === 0) after.push(`${peer} N=${n} round ${r}: no connection completed one at a time (${serial.errors} errors, ${serial.lastError})`);
            if (crr.connections === 0) after.push(`${peer} N=${n} round ${r}: no connection completed (${crr.errors} errors, ${crr.lastError})`);
            if (rr.requests === 0) after.push(`${peer} N=${n} round ${r}: no request/response over one connection (${rr.lastError})`);
            for (const x of after) progress(`connrate: VERIFICATION: ${x}`);
            problems.push(...after);
            s.addOneMs = await p.addOne();
            samples.push(s);
            progress(
              `connrate: round ${r + 1}/${opts.rounds} N=${n} ${peer}: ${fmtInt(crr.ratePerS)} conn/s (p50 ${fmtNum(crr.latencyUs.p50)} µs, p99 ${fmtNum(crr.latencyUs.p99)} µs, ${crr.errors} errors); serial p50 ${fmtNum(serial.latencyUs.p50)} µs p99 ${fmtNum(serial.latencyUs.p99)} µs; rr p50 ${fmtNum(rr.latencyUs.p50)} µs p99 ${fmtNum(rr.latencyUs.p99)} µs, program ${fmtNum(p.programMs)} ms, one more ${fmtNum(s.addOneMs)} ms`,
            );
          } finally {
            const removeMs = await p.remove();
            const last = samples.at(-1);
            if (last && last.round === r && last.peer === peer && last.n === n) last.removeMs = removeMs;
          }
        }
      }
      order.push(ran);
      progress(`connrate: round ${r + 1}/${opts.rounds} done in ${((Date.now() - rt) / 1000).toFixed(1)} s`);
    }

    const cells = summarizeCells(opts, samples);
    const ratios = computeRatios(opts, samples);
    return {
      options: opts,
      wallS: (Date.now() - t0) / 1000,
      tools: { connrate: connrate.path, echo: echo.path, compiler: connrate.compiler },
      versions,
      topology: { client: topo.client.name, node: topo.node.name, container: ctr.ns.name, nodeIp: UPLINK.nodeIp, containerIp: ctr.ip },
      order,
      samples,
      cells,
      ratios,
      verification: { ok: problems.length === 0, checked, problems },
    };
  } finally {
    await release();
  }
}

function summarizeCells(opts: ConnrateOptions, samples: JobSample[]): Cell[] {
  const cells: Cell[] = [];
  for (const peer of opts.peers) {
    for (const n of opts.sizes) {
      const xs = samples.filter((s) => s.peer === peer && s.n === n);
      if (!xs.length) continue;
      const loads = xs.map((s) => s.loadMs).filter((x): x is number => x !== undefined);
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
        program: summarize(xs.map((s) => s.programMs)),
        ...(loads.length ? { load: summarize(loads) } : {}),
        remove: summarize(xs.map((s) => s.removeMs)),
        addOne: summarize(xs.map((s) => s.addOneMs)),
        errors: xs.reduce((a, s) => a + s.crr.errors + s.serial.errors, 0),
        rrErrors: xs.reduce((a, s) => a + s.rr.errors, 0),
      });
    }
  }
  return cells;
}

/** a / b per round (same round), then the median of those, and the ratio of the medians. */
function pairwise(samples: JobSample[], a: (s: JobSample) => boolean, b: (s: JobSample) => boolean, metric: (s: JobSample) => number): Omit<Ratio, 'what' | 'key' | 'n'> | undefined {
  const rounds = [...new Set(samples.map((s) => s.round))];
  const per: number[] = [];
  for (const r of rounds) {
    const x = samples.find((s) => s.round === r && a(s));
    const y = samples.find((s) => s.round === r && b(s));
    if (x && y && metric(y) > 0) per.push(metric(x) / metric(y));
  }
  if (!per.length) return undefined;
  const ma = median(samples.filter(a).map(metric));
  const mb = median(samples.filter(b).map(metric));
  return { pairwise: median(per), min: Math.min(...per), max: Math.max(...per), ofMedians: ma / mb };
}

function computeRatios(opts: ConnrateOptions, samples: JobSample[]): Ratio[] {
  const out: Ratio[] = [];
  const metric = {
    rate: (s: JobSample) => s.crr.ratePerS,
    serialP50: (s: JobSample) => s.serial.latencyUs.p50,
    serialP99: (s: JobSample) => s.serial.latencyUs.p99,
    rrP99: (s: JobSample) => s.rr.latencyUs.p99,
  };
  const is = (peer: PeerId, n: number) => (s: JobSample) => s.peer === peer && s.n === n;
  const add = (key: RatioKey, n: number, what: string, r: Omit<Ratio, 'what' | 'key' | 'n'> | undefined, target?: { op: '>=' | '<='; value: number }) => {
    if (!r) return;
    out.push({ what, key, n, ...r, ...(target ? { target: { ...target, met: target.op === '>=' ? r.pairwise >= target.value : r.pairwise <= target.value } } : {}) });
  };
  if (!opts.peers.includes('ebpf')) return out;
  const minN = Math.min(...opts.sizes);
  const maxN = Math.max(...opts.sizes);
  if (maxN !== minN) add('flat', maxN, `ebpf conn/s: N=${fmtInt(maxN)} / N=${fmtInt(minN)}`, pairwise(samples, is('ebpf', maxN), is('ebpf', minN), metric.rate), { op: '>=', value: 0.95 });
  for (const n of opts.sizes) {
    const N = `N=${fmtInt(n)}`;
    if (opts.peers.includes('nft-map')) {
      add('rate/nft', n, `${N}: ebpf / nft-map conn/s`, pairwise(samples, is('ebpf', n), is('nft-map', n), metric.rate), n === 30_000 ? { op: '>=', value: 1.15 } : undefined);
      add('serialP50/nft', n, `${N}: ebpf / nft-map new-connection p50 (one at a time)`, pairwise(samples, is('ebpf', n), is('nft-map', n), metric.serialP50));
    }
    if (opts.peers.includes('iptables')) {
      add('rate/ipt', n, `${N}: ebpf / iptables conn/s`, pairwise(samples, is('ebpf', n), is('iptables', n), metric.rate), n === 30_000 ? { op: '>=', value: 7 } : undefined);
      add('serialP50/ipt', n, `${N}: ebpf / iptables new-connection p50 (one at a time)`, pairwise(samples, is('ebpf', n), is('iptables', n), metric.serialP50));
      add('serialP99/ipt', n, `${N}: ebpf / iptables new-connection p99 (one at a time)`, pairwise(samples, is('ebpf', n), is('iptables', n), metric.serialP99));
      add('rrP99/ipt', n, `${N}: ebpf / iptables rr p99 (one connection)`, pairwise(samples, is('ebpf', n), is('iptables', n), metric.rrP99), { op: '<=', value: 0.9 });
    }
  }
  return out;
}

// ---- tables ---------------------------------------------------------------------------

export function connrateTables(r: ConnrateResult): Table[] {
  const o = r.options;
  const us = (x: number) => fmtNum(x, x >= 100 ? 0 : 1);
  const ms = (x: number) => fmtNum(x, x >= 100 ? 0 : x >= 10 ? 1 : 2);
  const rateRows = r.cells.map((c) => [
    PEER_LABEL[c.peer],
    fmtInt(c.n),
    fmtInt(c.rate.median),
    `${fmtInt(c.rate.min)}-${fmtInt(c.rate.max)}`,
    fmtPct(c.rate.iqrRel),
    us(c.connP50Us),
    us(c.connP99Us),
    String(c.errors),
  ]);
  const rates: Table = {
    title: `connrate: new connections/s through a published port (${o.rounds} rounds × ${o.durationS} s, ${o.concurrency} concurrent, alternating)`,
    headers: ['peer', 'N ports', 'conn/s median', 'min-max', 'IQR/med', 'conn p50 µs', 'conn p99 µs', 'errors'],
    right: [1, 2, 3, 4, 5, 6, 7],
    rows: rateRows,
    notes: [
      `client ns -> node ${UPLINK.nodeIp}:port (uplink ${UPLINK.dev}) -> container ${r.topology.containerIp} (bridge ${BRIDGE.dev}); N ports P -> P/tcp for P = ${o.basePort}..${o.basePort}+N-1, measured port = the last (last in every rule list)`,
      `each connection: connect, send 1 byte, read the 1-byte echo, close (${o.close === 'rst' ? 'SO_LINGER 0: RST, no TIME_WAIT' : 'FIN'}); latency = connect() to reply, per connection; ${o.clientThreads} client thread(s) (epoll), echo server ${o.serverThreads} thread(s) (epoll, C)`,
      `ebpf: EbpfDataplane.apply() with host IP ${o.ebpfHostIp} (${o.ebpfHostIp === '0.0.0.0' ? 'wildcard: exact miss + bpfnet_addrs + wildcard hit per packet' : 'exact frontend'}), tc programs on the uplink and the container's veth, socket hooks for node-local clients off (nodeLocal: false); no netfilter rule and no conntrack in the node ns (checked: conntrack count after each run)`,
      `nft-map: ${r.versions.nft}, dnat ip to ip daddr . tcp dport map @ports (exact node address); Docker-style iptables: ${r.versions.iptables}, Docker 28/29's rules (nat DOCKER DNAT + filter DOCKER ACCEPT per port, addrtype LOCAL jumps, DOCKER-CT/-BRIDGE/-FORWARD)`,
      'all three on one 2-core machine: client, server and the kernel path share the CPUs; the dataplane is one part of each connection\'s cost',
    ],
  };
  const lat: Table = {
    title: `connrate: latency without load: one new connection at a time (${o.serialDurationS} s), and request/response over one long-lived connection (${o.rrDurationS} s)`,
    headers: ['peer', 'N ports', 'new conn p50 µs', 'new conn p99 µs', 'conn/s (serial)', 'rr p50 µs', 'rr p99 µs', 'exchanges/s', 'rr errors'],
    right: [1, 2, 3, 4, 5, 6, 7, 8],
    rows: r.cells.map((c) => [PEER_LABEL[c.peer], fmtInt(c.n), us(c.serialP50Us), us(c.serialP99Us), fmtInt(c.serialRate), us(c.rrP50Us), us(c.rrP99Us), fmtInt(c.rrRate), String(c.rrErrors)]),
    notes: [
      'new conn: the crr loop with concurrency 1, connect() to reply (handshake, first packets through the rule lists / the map, 1-byte exchange)',
      ...(o.pinCpu !== null ? [`both runs with client and echo server pinned to CPU ${o.pinCpu} (taskset): between two CPUs that idle in between, every round trip here pays two idle wake-ups (~75 µs, measured), which swamps the path's cost`] : []),
      'rr: send 1 byte, read 1 byte, repeat, on one connection (only its first packet sees the rule lists; after that conntrack / the ct map); medians over rounds of each sample\'s percentiles',
    ],
  };
  const cols: { key: RatioKey; header: string }[] = [
    { key: 'rate/nft', header: 'conn/s ebpf÷nft-map' },
    { key: 'rate/ipt', header: 'conn/s ebpf÷iptables' },
    { key: 'serialP50/nft', header: 'new conn p50 ebpf÷nft-map' },
    { key: 'serialP50/ipt', header: 'new conn p50 ebpf÷iptables' },
    { key: 'serialP99/ipt', header: 'new conn p99 ebpf÷iptables' },
    { key: 'rrP99/ipt', header: 'rr p99 ebpf÷iptables' },
  ];
  const cell = (x: Ratio | undefined) =>
    x ? `${fmtRatio(x.pairwise)} (${fmtRatio(x.min)}-${fmtRatio(x.max)})${x.target ? ` ${x.target.met ? 'met' : 'NOT met'} ${x.target.op === '>=' ? '≥' : '≤'}${x.target.value}` : ''}` : '';
  const flat = r.ratios.find((x) => x.key === 'flat');
  const ratios: Table = {
    title: 'connrate: ratios, pairwise within each round (median and min-max over rounds)',
    headers: ['N ports', ...cols.map((c) => c.header)],
    right: cols.map((_, i) => i + 1),
    rows: o.sizes
      .filter((n) => r.ratios.some((x) => x.n === n && x.key !== 'flat'))
      .map((n) => [fmtInt(n), ...cols.map((c) => cell(r.ratios.find((x) => x.n === n && x.key === c.key)))]),
    notes: [
      ...(flat ? [`ebpf flat in N: conn/s at N=${fmtInt(flat.n)} / N=${fmtInt(Math.min(...o.sizes))} = ${cell(flat)}`] : []),
      'conn/s ratios > 1 and latency ratios < 1 favour ebpf; "of medians" (ratio of the per-peer medians) is in the JSON next to each',
      'issue 8 targets: ebpf flat in N (N=50k >= 0.95 x N=1); at 30k ports ebpf >= 1.15 x nft-map and >= 7 x Docker-style iptables; latency p99 <= 0.9 x Docker-style iptables',
    ],
  };
  const prog: Table = {
    title: 'connrate: time to program N published ports (bulk, per sample)',
    headers: ['peer', 'N ports', 'program ms median', 'min-max', 'one more ms', 'eBPF load+attach ms', 'remove ms'],
    right: [1, 2, 3, 4, 5, 6],
    rows: r.cells.map((c) => [
      PEER_LABEL[c.peer],
      fmtInt(c.n),
      ms(c.program.median),
      `${ms(c.program.min)}-${ms(c.program.max)}`,
      ms(c.addOne.median),
      c.load ? ms(c.load.median) : '',
      ms(c.remove.median),
    ]),
    notes: [
      'ebpf: apply() of the N ports onto loaded, attached, empty maps (in process: validate and encode every port, diff against what this process last wrote, BPF_MAP_UPDATE_BATCH); load+attach = the first apply() with no ports into a fresh bpffs root (objects compiled once, cached)',
      'nft-map: one `nft -f` process (one transaction); iptables: one `iptables-restore` process; both under nsenter, so ~a few ms of process start-up are included',
      'one more: with the N present (after the traffic runs), publish port basePort+N: ebpf apply() with N+1 ports (validates, encodes and diffs all N+1 in TypeScript, writes 1 entry); nft `add element`; iptables as Docker does it, one `iptables` call per rule (nat DNAT -A, filter ACCEPT -I)',
      'remove: ebpf teardown() (detach, unpin); nft/iptables `nft flush ruleset` in the node ns (conntrack -F afterwards, untimed)',
      ...(r.verification.ok ? [`verification: ${r.verification.checked} checks (rule/map contents in round 1, DNAT counters and conntrack for ebpf, every run completed), all as expected`] : [`VERIFICATION FAILED: ${r.verification.problems.join('; ')}`]),
    ],
  };
  return [rates, lat, ratios, prog];
}
