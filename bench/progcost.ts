/**
 * Per-packet cost of the dataplane programs, measured by the kernel with
 * BPF_PROG_TEST_RUN in repeat mode (bpftool prog run ... repeat N, through
 * src/loader/testrun.ts), inside an empty network namespace.
 *
 * Repeat mode copies data_in into one skb ONCE and runs the program N times
 * on that same skb (net/bpf/test_run.c: bpf_test_run() loops over
 * bpf_prog_run() on the same ctx). A program that rewrites the packet sees
 * its own output from the second iteration on: a DNAT'd packet no longer
 * matches its frontend. Each path is therefore verified before it is timed
 * (metrics counted per iteration, output after an even and an odd number of
 * runs), and the translating paths use a "ping-pong" mirror entry: the
 * translated packet matches a second frontend (or ct entry) that translates it
 * straight back, so every iteration is a hit of the same kind. The naive
 * variant without the mirror is measured too, to show the difference.
 *
 * Paths run alternately: every round runs every path once, in a rotated
 * order (reversed on odd rounds), and each path is summarized by its median
 * over the rounds. Ratios are against the median of the path's baseline from
 * the same rounds: empty_tc for tc programs, empty_xdp for XDP programs
 * (xdp_uplink, the optional XDP DNAT on the uplink, bpf/lib/xdp_nat.h).
 */
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EbpfDataplane } from '../src/dataplane/ebpf/dataplane.js';
import { attachUplinkXdp, detachUplinkXdp, uplinkXdp } from '../src/dataplane/ebpf/xdp.js';
import { waitReady } from '../src/lab/lab.js';
import { Topology, UPLINK } from '../src/lab/topology.js';
import { attachTc } from '../src/loader/tc.js';
import { BPF_SRC_DIR } from '../src/util/paths.js';
import { loadObject, removeRoot, type LoadedObject } from '../src/loader/load.js';
import { testRun } from '../src/loader/testrun.js';
import { TypedMap } from '../src/maps/map.js';
import type { NatCtKey, NatCtValue, PortKey, PortValue } from '../src/maps/generated/abi.js';
import { run } from '../src/util/exec.js';
import { readMetrics, metricsDelta, type BpfRoot, type MetricName } from '../test/harness/bpfroot.js';
import { buildPacket, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_PSH, type PacketSpec } from '../test/harness/packet.js';
import { progress, registerCleanup, withRoots } from './lib/env.js';
import { buildTool } from './lib/tools.js';
import { crrArgs, runClient, type CrrOut } from './lib/traffic.js';
import { RawPinnedMap, nextPow2 } from './lib/rawmap.js';
import { fmtInt, fmtNum, fmtRatio, fmtPct, median, rotate, summarize, type Summary, type Table } from './lib/stats.js';

export interface ProgcostOptions {
  rounds: number;
  /** BPF_PROG_TEST_RUN repeat per timed sample. */
  repeat: number;
  /** Even repeat count for the verification runs (also run with +1). */
  verifyRepeat: number;
  /** Entries in bpfnet_ports for the large wildcard scenario. */
  bigPorts: number;
}

export const PROGCOST_FULL: ProgcostOptions = { rounds: 15, repeat: 1_000_000, verifyRepeat: 1000, bigPorts: 50_000 };
export const PROGCOST_QUICK: ProgcostOptions = { rounds: 3, repeat: 10_000, verifyRepeat: 100, bigPorts: 50_000 };

const TC_ACT_OK = 0;
const XDP_PASS = 2;

// 192.0.2.0/24 clients, 198.18.0.0/24 node addresses, 198.19.0.0/24 containers.
const CLIENT = '192.0.2.10';
const NODE_IP = '198.18.0.1';
const NOT_NODE = '198.18.0.99';
const BACKEND = '198.19.0.2';
const BACKEND2 = '198.19.0.3';
const ANY = '0.0.0.0';
const PAYLOAD = Buffer.alloc(64, 0x61);

type Scenario = 'base' | 'wild1' | 'wildBig';

function pkt(o: Partial<PacketSpec>): Buffer {
  return buildPacket({
    srcMac: '02:00:00:00:c1:10', dstMac: '02:00:00:00:0e:01',
    src: CLIENT, dst: NODE_IP, proto: 'tcp', sport: 40000, dport: 8080,
    tcpFlags: TCP_PSH | TCP_ACK, id: 0x4242, payload: PAYLOAD,
    ...o,
  });
}

function port(addr: string, p: number, proto: number, backend: string, backendPort: number): [PortKey, PortValue] {
  return [{ addr, port: p, proto }, { backend_addr: backend, backend_port: backendPort, flags: 0 }];
}

function ct(saddr: string, sport: number, daddr: string, dport: number, proto: number, origAddr: string, origPort: number): [NatCtKey, NatCtValue] {
  return [{ saddr, daddr, sport, dport, proto }, { orig_addr: origAddr, orig_port: origPort, flags: 0, client_addr: '0.0.0.0', last_seen_ns: 1n }];
}

/** How the packet evolves over repeated runs on the same skb. */
type Evolution =
  | 'unchanged'  // never rewritten: every iteration sees the input
  | 'ping-pong'  // rewritten to `once`, then back to the input, ...
  | 'once';      // rewritten on iteration 1, the translated packet then passes untouched

interface PathDef {
  id: string;
  label: string;
  scenario: Scenario;
  prog: 'empty_tc' | 'from_uplink' | 'from_container' | 'empty_xdp' | 'xdp_uplink';
  input: Buffer;
  /** The packet after exactly one run. */
  once: Buffer;
  evolution: Evolution;
  /** Metrics counted over `n` iterations (n even). */
  metrics: (n: number) => Partial<Record<MetricName, number>>;
  note?: string;
}

export interface PathVerification {
  ok: boolean;
  problems: string[];
  retval: number;
  /** Metric packet deltas over verifyRepeat iterations. */
  metrics: Partial<Record<MetricName, number>>;
  expectedMetrics: Partial<Record<MetricName, number>>;
  outputAfter1: 'input' | 'translated' | 'other';
  outputAfterEven: 'input' | 'translated' | 'other';
  outputAfterOdd: 'input' | 'translated' | 'other';
}

export interface PathResult {
  id: string;
  label: string;
  program: string;
  scenario: Scenario;
  packetBytes: number;
  evolution: Evolution;
  note?: string;
  /** Kernel-measured average ns per run, one per round (index = round). */
  samplesNs: number[];
  retvals: number[];
  summary: Summary;
  /** Path id of the baseline this path is compared with ('empty' = empty_tc, 'empty-xdp' = empty_xdp). */
  baseline: string;
  /** median / baseline median */
  ratioToEmpty: number;
  /** median - baseline median */
  netNs: number;
  /** Median over rounds of (this path / baseline in the same round). */
  medianRoundRatio: number;
  verification: PathVerification;
}

export interface ProgcostResult {
  options: ProgcostOptions;
  scenarios: Record<Scenario, string>;
  netns: { ipv4ForwardingAll: string; ipv4ForwardingLo: string };
  findings: string[];
  order: string[][];
  paths: PathResult[];
  wallS: number;
}

function pathDefs(bigPorts: number): PathDef[] {
  const tcpHit = pkt({ sport: 40001 });
  const udpHit = pkt({ proto: 'udp', sport: 40003, dport: 5353 });
  const wild = pkt({ sport: 40004 });
  const naive = pkt({ sport: 40005, dport: 8090 });
  const rnat = pkt({ src: BACKEND, sport: 80, dst: CLIENT, dport: 40002, srcMac: '02:00:00:00:b0:02', dstMac: '02:00:00:00:0e:02' });
  const rnatMiss = pkt({ src: BACKEND, sport: 80, dst: CLIENT, dport: 49999, srcMac: '02:00:00:00:b0:02', dstMac: '02:00:00:00:0e:02' });
  const miss = pkt({ sport: 40010, dport: 9999 });
  const missNonLocal = pkt({ sport: 40011, dst: NOT_NODE });
  const afterXdp = pkt({ sport: 40021, dst: BACKEND2, dport: 90 });
  const each = (m: MetricName) => (n: number) => ({ [m]: n });
  return [
    { id: 'empty', label: 'empty_tc (baseline)', scenario: 'base', prog: 'empty_tc', input: tcpHit, once: tcpHit, evolution: 'unchanged', metrics: () => ({}) },
    {
      id: 'uplink-miss', label: 'from_uplink TCP miss, dst = node address', scenario: 'base', prog: 'from_uplink', input: miss, once: miss,
      evolution: 'unchanged', metrics: each('METRIC_PASS'),
      note: 'no frontend for 198.18.0.1:9999: exact lookup miss, bpfnet_addrs hit, wildcard lookup miss (3 lookups)',
    },
    {
      id: 'uplink-miss-nonlocal', label: 'from_uplink TCP miss, dst not a node address', scenario: 'base', prog: 'from_uplink', input: missNonLocal, once: missNonLocal,
      evolution: 'unchanged', metrics: each('METRIC_PASS'),
      note: 'exact lookup miss, bpfnet_addrs miss (2 lookups)',
    },
    {
      id: 'dnat-exact', label: 'from_uplink TCP DNAT hit, exact frontend', scenario: 'base', prog: 'from_uplink', input: tcpHit,
      once: pkt({ sport: 40001, dst: BACKEND, dport: 80 }), evolution: 'ping-pong', metrics: each('METRIC_DNAT'),
      note: 'ping-pong: 198.18.0.1:8080 -> 198.19.0.2:80 and a mirror frontend 198.19.0.2:80 -> 198.18.0.1:8080; ct entry refreshed in place',
    },
    {
      id: 'dnat-wild-1', label: 'from_uplink TCP DNAT hit, wildcard frontend, 2 entries', scenario: 'wild1', prog: 'from_uplink', input: wild,
      once: pkt({ sport: 40004, dst: BACKEND, dport: 80 }), evolution: 'ping-pong', metrics: each('METRIC_DNAT'),
      note: 'exact miss, bpfnet_addrs hit, 0.0.0.0:8080 hit; bpfnet_ports holds the wildcard and its ping-pong mirror (0.0.0.0:80) only',
    },
    {
      id: 'dnat-wild-big', label: `from_uplink TCP DNAT hit, wildcard frontend, ${fmtInt(bigPorts)} entries`, scenario: 'wildBig', prog: 'from_uplink', input: wild,
      once: pkt({ sport: 40004, dst: BACKEND, dport: 80 }), evolution: 'ping-pong', metrics: each('METRIC_DNAT'),
      note: `as above with ${fmtInt(bigPorts - 2)} other (exact, 10.0.0.0/8) frontends in bpfnet_ports`,
    },
    {
      id: 'dnat-udp', label: 'from_uplink UDP DNAT hit, exact frontend', scenario: 'base', prog: 'from_uplink', input: udpHit,
      once: pkt({ proto: 'udp', sport: 40003, dst: BACKEND, dport: 53 }), evolution: 'ping-pong', metrics: each('METRIC_DNAT'),
      note: 'UDP with checksum; ping-pong 198.18.0.1:5353 <-> 198.19.0.2:53',
    },
    {
      id: 'rnat-hit', label: 'from_container reverse NAT hit (+ FIB lookup)', scenario: 'base', prog: 'from_container', input: rnat,
      once: pkt({ src: NODE_IP, sport: 8080, dst: CLIENT, dport: 40002, srcMac: '02:00:00:00:b0:02', dstMac: '02:00:00:00:0e:02' }),
      evolution: 'ping-pong', metrics: each('METRIC_RNAT'),
      note: 'ct hit, source rewritten, then bpf_fib_lookup: forwarding is off in the empty netns, so it returns FWD_DISABLED early and the program returns TC_ACT_OK (no TTL decrement, no redirect); a real forward costs more',
    },
    {
      id: 'rnat-miss', label: 'from_container miss (no ct entry)', scenario: 'base', prog: 'from_container', input: rnatMiss, once: rnatMiss,
      evolution: 'unchanged', metrics: () => ({}),
      note: 'one bpfnet_nat_ct lookup miss; no FIB lookup',
    },
    // ---- XDP (xdp_uplink): the same packets, the same map state ----
    { id: 'empty-xdp', label: 'empty_xdp (XDP baseline)', scenario: 'base', prog: 'empty_xdp', input: tcpHit, once: tcpHit, evolution: 'unchanged', metrics: () => ({}) },
    {
      id: 'xdp-miss', label: 'xdp_uplink TCP miss, dst = node address', scenario: 'base', prog: 'xdp_uplink', input: miss, once: miss,
      evolution: 'unchanged', metrics: () => ({}),
      note: 'as uplink-miss (3 lookups); XDP counts nothing it passes (tc behind it does)',
    },
    {
      id: 'xdp-miss-nonlocal', label: 'xdp_uplink TCP miss, dst not a node address', scenario: 'base', prog: 'xdp_uplink', input: missNonLocal, once: missNonLocal,
      evolution: 'unchanged', metrics: () => ({}),
    },
    {
      id: 'xdp-dnat-exact', label: 'xdp_uplink TCP DNAT hit, exact frontend', scenario: 'base', prog: 'xdp_uplink', input: tcpHit,
      once: pkt({ sport: 40001, dst: BACKEND, dport: 80 }), evolution: 'ping-pong', metrics: each('METRIC_DNAT'),
      note: 'ping-pong as dnat-exact; plus one bpfnet_snat lookup (miss) on the hit path: replies to masqueraded flows are left to tc',
    },
    {
      id: 'xdp-dnat-wild-1', label: 'xdp_uplink TCP DNAT hit, wildcard frontend, 2 entries', scenario: 'wild1', prog: 'xdp_uplink', input: wild,
      once: pkt({ sport: 40004, dst: BACKEND, dport: 80 }), evolution: 'ping-pong', metrics: each('METRIC_DNAT'),
    },
    {
      id: 'xdp-dnat-wild-big', label: `xdp_uplink TCP DNAT hit, wildcard frontend, ${fmtInt(bigPorts)} entries`, scenario: 'wildBig', prog: 'xdp_uplink', input: wild,
      once: pkt({ sport: 40004, dst: BACKEND, dport: 80 }), evolution: 'ping-pong', metrics: each('METRIC_DNAT'),
    },
    {
      id: 'uplink-after-xdp', label: 'from_uplink on a packet XDP already translated (dst = container)', scenario: 'base', prog: 'from_uplink', input: afterXdp, once: afterXdp,
      evolution: 'unchanged', metrics: each('METRIC_PASS'),
      note: 'what tc adds behind XDP: reverse-SNAT lookup miss, exact frontend miss, bpfnet_addrs miss, direct-access check (bpfnet_nets empty here: one LPM miss); with dnat_flow_known wired into uplink.c add one ct and one ports lookup',
    },
    {
      id: 'xdp-dnat-udp', label: 'xdp_uplink UDP DNAT hit, exact frontend', scenario: 'base', prog: 'xdp_uplink', input: udpHit,
      once: pkt({ proto: 'udp', sport: 40003, dst: BACKEND, dport: 53 }), evolution: 'ping-pong', metrics: each('METRIC_DNAT'),
    },
    {
      id: 'dnat-naive', label: 'from_uplink TCP DNAT, exact, NO mirror (naive repeat)', scenario: 'base', prog: 'from_uplink', input: naive,
      once: pkt({ sport: 40005, dst: BACKEND2, dport: 90 }), evolution: 'once', metrics: (n) => ({ METRIC_DNAT: 1, METRIC_PASS: n - 1 }),
      note: 'only iteration 1 translates; the other repeat-1 iterations see the already-translated packet (dst 198.19.0.3:90, not a node address) and miss: this number is NOT the DNAT cost',
    },
  ];
}

/** Map state per scenario; returns what to load. */
async function setupScenario(root: BpfRoot, s: Scenario, bigPorts: number): Promise<Record<string, LoadedObject>> {
  const mapSizes = { bpfnet_ports: Math.max(65536, nextPow2(bigPorts + 1)) };
  const objs: Record<string, LoadedObject> = {};
  const names = s === 'base' ? ['empty', 'uplink', 'endpoint', 'xdp_uplink'] : ['uplink', 'xdp_uplink'];
  for (const n of names) objs[n] = await loadObject(n, { root: root.root, mapSizes, ...(n === 'xdp_uplink' ? { progType: 'xdp' as const } : {}) });

  const ports = TypedMap.open(root.mapDir, 'bpfnet_ports');
  const addrs = TypedMap.open(root.mapDir, 'bpfnet_addrs');
  const cts = TypedMap.open(root.mapDir, 'bpfnet_nat_ct');
  try {
    if (s === 'base') {
      await ports.setMany([
        port(NODE_IP, 8080, IPPROTO_TCP, BACKEND, 80), port(BACKEND, 80, IPPROTO_TCP, NODE_IP, 8080),
        port(NODE_IP, 5353, IPPROTO_UDP, BACKEND, 53), port(BACKEND, 53, IPPROTO_UDP, NODE_IP, 5353),
        port(NODE_IP, 8090, IPPROTO_TCP, BACKEND2, 90),
      ]);
      await addrs.setMany([[{ addr: NODE_IP }, { flags: 0 }]]);
      await cts.setMany([
        ct(BACKEND, 80, CLIENT, 40002, IPPROTO_TCP, NODE_IP, 8080),
        ct(NODE_IP, 8080, CLIENT, 40002, IPPROTO_TCP, BACKEND, 80),
      ]);
    } else {
      await ports.setMany([port(ANY, 8080, IPPROTO_TCP, BACKEND, 80), port(ANY, 80, IPPROTO_TCP, NODE_IP, 8080)]);
      // BACKEND is a "node address" here only so the mirror packet takes the wildcard path too.
      await addrs.setMany([[{ addr: NODE_IP }, { flags: 0 }], [{ addr: BACKEND }, { flags: 0 }]]);
      if (s === 'wildBig') {
        const filler: [PortKey, PortValue][] = [];
        for (let i = 0; i < bigPorts - 2; i++) {
          filler.push(port(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 1024 + (i % 60000), IPPROTO_TCP, '172.31.0.2', 80));
        }
        await ports.setMany(filler);
      }
    }
  } finally {
    ports.close();
    addrs.close();
    cts.close();
  }
  const raw = new RawPinnedMap(`${root.mapDir}/bpfnet_ports`);
  try {
    const want = s === 'base' ? 5 : s === 'wild1' ? 2 : bigPorts;
    const got = raw.count();
    if (got !== want) throw new Error(`scenario ${s}: bpfnet_ports holds ${got} entries, expected ${want}`);
  } finally {
    raw.close();
  }
  return objs;
}

function classify(out: Buffer, p: PathDef): 'input' | 'translated' | 'other' {
  if (out.equals(p.input)) return 'input';
  if (out.equals(p.once)) return 'translated';
  return 'other';
}

const isXdp = (p: PathDef) => p.prog === 'empty_xdp' || p.prog === 'xdp_uplink';
const baselineOf = (p: PathDef) => (isXdp(p) ? 'empty-xdp' : 'empty');

async function verify(p: PathDef, pin: string, root: BpfRoot, n: number): Promise<PathVerification> {
  const problems: string[] = [];
  const xdp = isXdp(p);
  const r1 = await testRun(pin, p.input, { repeat: 1, netns: root.netns, xdp });
  const before = await readMetrics(root.mapDir);
  const rEven = await testRun(pin, p.input, { repeat: n, netns: root.netns, xdp });
  const mid = await readMetrics(root.mapDir);
  const rOdd = await testRun(pin, p.input, { repeat: n + 1, netns: root.netns, xdp });
  const metrics = Object.fromEntries(Object.entries(metricsDelta(before, mid)).map(([k, v]) => [k, v.packets])) as Partial<Record<MetricName, number>>;
  const expectedMetrics = p.metrics(n);
  const v: PathVerification = {
    ok: true, problems, retval: rEven.retval, metrics, expectedMetrics,
    outputAfter1: classify(r1.output, p), outputAfterEven: classify(rEven.output, p), outputAfterOdd: classify(rOdd.output, p),
  };
  const wantRet = xdp ? XDP_PASS : TC_ACT_OK;
  for (const r of [r1, rEven, rOdd]) if (r.retval !== wantRet) problems.push(`retval ${r.retval}, expected ${xdp ? 'XDP_PASS' : 'TC_ACT_OK'}`);
  const wantOnce = p.evolution === 'unchanged' ? 'input' : 'translated';
  const wantEven = p.evolution === 'ping-pong' ? 'input' : wantOnce;
  if (v.outputAfter1 !== wantOnce) problems.push(`after 1 run the packet is ${v.outputAfter1}, expected ${wantOnce}`);
  if (v.outputAfterEven !== wantEven) problems.push(`after ${n} runs the packet is ${v.outputAfterEven}, expected ${wantEven}`);
  if (v.outputAfterOdd !== wantOnce) problems.push(`after ${n + 1} runs the packet is ${v.outputAfterOdd}, expected ${wantOnce}`);
  const keys = new Set([...Object.keys(metrics), ...Object.keys(expectedMetrics)]) as Set<MetricName>;
  for (const k of keys) {
    if ((metrics[k] ?? 0) !== (expectedMetrics[k] ?? 0)) problems.push(`${k} +${metrics[k] ?? 0} over ${n} runs, expected +${expectedMetrics[k] ?? 0}`);
  }
  v.ok = problems.length === 0;
  return v;
}

export async function runProgcost(opts: ProgcostOptions): Promise<ProgcostResult> {
  const t0 = Date.now();
  const defs = pathDefs(opts.bigPorts);
  const scenarioOrder: Scenario[] = ['base', 'wild1', 'wildBig'];
  return withRoots(scenarioOrder.length, async (roots) => {
    const rootOf = Object.fromEntries(scenarioOrder.map((s, i) => [s, roots[i]!])) as Record<Scenario, BpfRoot>;
    const pins: Record<string, string> = {};
    for (const s of scenarioOrder) {
      progress(`progcost: setting up scenario ${s} in ${rootOf[s].root}`);
      const objs = await setupScenario(rootOf[s], s, opts.bigPorts);
      for (const d of defs.filter((x) => x.scenario === s)) {
        const obj = d.prog === 'empty_tc' || d.prog === 'empty_xdp' ? objs.empty : d.prog === 'from_uplink' ? objs.uplink : d.prog === 'xdp_uplink' ? objs.xdp_uplink : objs.endpoint;
        const pin = obj?.progs[d.prog];
        if (!pin) throw new Error(`program ${d.prog} not loaded for scenario ${s}`);
        pins[d.id] = pin;
      }
    }
    const base = rootOf.base;
    const fwd = async (dev: string) =>
      (await run('cat', [`/proc/sys/net/ipv4/conf/${dev}/forwarding`], { netns: base.netns }).catch(() => ({ stdout: '?' }))).stdout.trim();
    const netns = { ipv4ForwardingAll: await fwd('all'), ipv4ForwardingLo: await fwd('lo') };

    progress(`progcost: verifying ${defs.length} paths (repeat 1, ${opts.verifyRepeat}, ${opts.verifyRepeat + 1})`);
    const verification: Record<string, PathVerification> = {};
    for (const d of defs) {
      verification[d.id] = await verify(d, pins[d.id]!, rootOf[d.scenario], opts.verifyRepeat);
      if (!verification[d.id]!.ok) progress(`progcost: VERIFICATION FAILED for ${d.id}: ${verification[d.id]!.problems.join('; ')}`);
    }

    const samples: Record<string, number[]> = Object.fromEntries(defs.map((d) => [d.id, []]));
    const retvals: Record<string, number[]> = Object.fromEntries(defs.map((d) => [d.id, []]));
    const order: string[][] = [];
    for (let r = 0; r < opts.rounds; r++) {
      const ids = rotate(defs.map((d) => d.id), r);
      if (r % 2 === 1) ids.reverse();
      order.push(ids);
      const line: string[] = [];
      for (const id of ids) {
        const d = defs.find((x) => x.id === id)!;
        const res = await testRun(pins[id]!, d.input, { repeat: opts.repeat, netns: rootOf[d.scenario].netns, xdp: isXdp(d) });
        samples[id]!.push(res.durationNs);
        retvals[id]!.push(res.retval);
        line.push(`${id}=${res.durationNs}`);
      }
      progress(`progcost: round ${r + 1}/${opts.rounds} (ns/pkt, repeat ${opts.repeat}): ${line.join(' ')}`);
    }

    const paths: PathResult[] = defs.map((d) => {
      const s = samples[d.id]!;
      const summary = summarize(s);
      const baseline = baselineOf(d);
      const empty = samples[baseline]!;
      const emptyMed = summarize(empty).median;
      const roundRatios = s.map((x, i) => x / empty[i]!);
      const res: PathResult = {
        id: d.id, label: d.label, program: d.prog, scenario: d.scenario, packetBytes: d.input.length, evolution: d.evolution,
        samplesNs: s, retvals: retvals[d.id]!, summary, baseline,
        ratioToEmpty: summary.median / emptyMed, netNs: summary.median - emptyMed,
        medianRoundRatio: summarize(roundRatios).median,
        verification: verification[d.id]!,
      };
      if (d.note) res.note = d.note;
      return res;
    });

    const naive = verification['dnat-naive'];
    const pp = verification['dnat-exact'];
    const findings = [
      `BPF_PROG_TEST_RUN does not re-copy data_in between repeats: the ${opts.verifyRepeat} iterations run on one skb. ` +
        `Naive DNAT (no mirror) over ${opts.verifyRepeat} runs counted METRIC_DNAT +${naive?.metrics.METRIC_DNAT ?? 0} and METRIC_PASS +${naive?.metrics.METRIC_PASS ?? 0}, ` +
        `and its output after ${opts.verifyRepeat} runs was the packet translated once (${naive?.outputAfterEven}); ` +
        `with a mirror frontend the output after ${opts.verifyRepeat} (even) runs is the original input (${pp?.outputAfterEven}) and after ${opts.verifyRepeat + 1} the translated one (${pp?.outputAfterOdd}), METRIC_DNAT +${pp?.metrics.METRIC_DNAT ?? 0}.`,
      'Hence a repeat-mode timing of a rewriting program without a mirror measures one hit plus repeat-1 misses; the DNAT/RNAT rows use ping-pong mirrors so every iteration is a hit (verified per path by counting metrics).',
      `from_container reverse NAT hit ends in bpf_fib_lookup; in the empty netns ipv4 forwarding is all=${netns.ipv4ForwardingAll} lo=${netns.ipv4ForwardingLo}, ` +
        'so the lookup returns BPF_FIB_LKUP_RET_FWD_DISABLED and the program returns TC_ACT_OK (retval 0, not TC_ACT_REDIRECT): the number excludes a real route lookup, TTL decrement and redirect.',
      'durationNs is the kernel\'s integer average (total / repeat) in ns: a 1 ns step is a few % of the baseline.',
    ];
    return {
      options: opts,
      scenarios: {
        base: 'exact frontends 198.18.0.1:8080/tcp, :5353/udp, :8090/tcp (+ ping-pong mirrors), node address 198.18.0.1, 2 ct entries (5 ports)',
        wild1: 'wildcard 0.0.0.0:8080/tcp + mirror 0.0.0.0:80/tcp (2 ports), node addresses 198.18.0.1 and 198.19.0.2',
        wildBig: `as wild1 plus ${fmtInt(opts.bigPorts - 2)} exact frontends (${fmtInt(opts.bigPorts)} ports)`,
      },
      netns, findings, order, paths, wallS: (Date.now() - t0) / 1000,
    };
  });
}

export function progcostTables(r: ProgcostResult): Table[] {
  const main: Table = {
    title: `Per-packet cost, BPF_PROG_TEST_RUN repeat ${fmtInt(r.options.repeat)}, ${r.options.rounds} alternating rounds`,
    headers: ['path', 'bytes', 'median ns/pkt', 'min-max', 'IQR/med', 'x empty', 'net ns', 'verified'],
    right: [1, 2, 3, 4, 5, 6],
    rows: r.paths.map((p) => [
      p.label, String(p.packetBytes), fmtNum(p.summary.median, 1), `${p.summary.min}-${p.summary.max}`, fmtPct(p.summary.iqrRel),
      fmtRatio(p.ratioToEmpty), p.id === p.baseline ? '-' : fmtNum(p.netNs, 1), p.verification.ok ? 'yes' : `NO: ${p.verification.problems.join('; ')}`,
    ]),
    notes: [
      'x empty = median / median of the path\'s baseline over the same rounds (empty_tc for tc programs, empty_xdp for xdp_uplink); net ns = median - baseline median; IQR/med = interquartile range over rounds / median (min-max shows the outliers).',
      'XDP vs tc: BPF_PROG_TEST_RUN times the program alone. An XDP program runs before the skb is allocated, a tc ingress program after; with XDP on, XDP_PASS still pays for the skb and for from_uplink behind it (which then misses: the packet is already addressed to a container), so XDP adds its own cost to every uplink packet rather than replacing tc\'s. See the xdp-vs-tc table for the per-path sums.',
      ...r.findings,
      ...r.paths.filter((p) => p.note).map((p) => `${p.id}: ${p.note}`),
    ],
  };
  const byId = new Map(r.paths.map((p) => [p.id, p]));
  const net = (id: string) => byId.get(id)?.netNs;
  const pairs: [string, string, string][] = [
    ['TCP DNAT hit, exact frontend', 'dnat-exact', 'xdp-dnat-exact'],
    ['UDP DNAT hit, exact frontend', 'dnat-udp', 'xdp-dnat-udp'],
    ['TCP DNAT hit, wildcard, 2 entries', 'dnat-wild-1', 'xdp-dnat-wild-1'],
    [`TCP DNAT hit, wildcard, ${fmtInt(r.options.bigPorts)} entries`, 'dnat-wild-big', 'xdp-dnat-wild-big'],
    ['TCP miss, dst = node address', 'uplink-miss', 'xdp-miss'],
    ['TCP miss, dst not a node address', 'uplink-miss-nonlocal', 'xdp-miss-nonlocal'],
  ];
  const after = net('uplink-after-xdp');
  const f = (x: number | undefined) => (x === undefined ? '?' : fmtNum(x, 1));
  const vs: Table = {
    title: 'Uplink DNAT: tc alone vs XDP + tc (net ns/pkt above each program\'s empty baseline)',
    headers: ['path', 'tc from_uplink', 'XDP xdp_uplink', 'tc behind XDP', 'XDP on, total', 'XDP on - tc'],
    right: [1, 2, 3, 4, 5],
    rows: pairs.map(([label, tcId, xdpId]) => {
      const t = net(tcId);
      const x = net(xdpId);
      // A DNAT hit reaches tc translated (uplink-after-xdp); a miss reaches tc as it was (the tc miss path itself).
      const behind = xdpId.includes('miss') ? t : after;
      const total = x === undefined || behind === undefined ? undefined : x + behind;
      return [label, f(t), f(x), f(behind), f(total), total === undefined || t === undefined ? '?' : fmtNum(total - t, 1)];
    }),
    notes: [
      'tc from_uplink / XDP xdp_uplink: net ns of that program alone on that packet. tc behind XDP: what from_uplink then costs on the same packet (on a hit, the already translated one: uplink-after-xdp; on a miss, the untouched one).',
      'XDP on, total = XDP + tc behind it: the BPF cost per uplink packet with --xdp; XDP on - tc = what --xdp adds (negative: saves). Neither includes the skb allocation, which XDP_PASS does not avoid, nor the delivery: from_uplink\'s own DNAT delivers into the container with bpf_redirect_peer, a packet XDP translated goes through the stack\'s forwarding (bridge) unless uplink.c delivers dnat_flow_known() packets too.',
    ],
  };
  return [main, vs];
}

// ---- end to end: new connections/s through a published port, XDP on vs off ----------------
//
//   node dist/bench/progcost.js --xdp-connrate [--rounds N] [--duration S] [--concurrency C]
//
// One Topology (client ns -> node ns uplink up0 -> container c0 on br0), the
// eBPF dataplane applied as the agent does (endpoint fully known, so tc's own
// DNAT delivers with bpf_redirect_peer), 0.0.0.0:8080/tcp -> c0:80, the
// bench/tools echo server in c0 and connrate (crr: connect, 1 byte each way,
// close with RST) in the client. Modes, alternated every round in a rotated
// (odd rounds reversed) order:
//   tc          no XDP: from_uplink DNATs and redirects into the container
//   xdp         xdp_uplink (native) DNATs; from_uplink as in the tree sees a
//               container address, passes it to the stack (bridge forwarding)
//   xdp-generic as xdp, generic (skb) mode
//   xdp-deliver xdp_uplink (native) + a scratch build of uplink.c whose
//               direct-access step delivers dnat_flow_known() packets like
//               its own DNAT does (bpf_redirect_peer): what --xdp would give
//               once uplink.c is wired that way. Skipped when uplink.c's text
//               has no anchor for the edit.

export type XdpConnMode = 'tc' | 'xdp' | 'xdp-generic' | 'xdp-deliver';

export interface XdpConnrateOptions {
  rounds: number;
  durationS: number;
  warmupS: number;
  concurrency: number;
}

export interface XdpConnSample {
  round: number;
  mode: XdpConnMode;
  ratePerS: number;
  p50Us: number;
  p99Us: number;
  connections: number;
  errors: number;
  /** bpfnet_metrics packet deltas during the run. */
  metrics: Partial<Record<MetricName, number>>;
}

export interface XdpConnrateResult {
  options: XdpConnrateOptions;
  modes: XdpConnMode[];
  xdpMode: string;
  samples: XdpConnSample[];
  summary: Record<string, { rate: Summary; p50Us: number; p99Us: number; ratioToTc: number }>;
  notes: string[];
}

const DELIVER_ANCHOR = /\n(\tret = direct_denied\(&p[^)]*\);)/;
const DELIVER_PATCH =
  '\tif (rc == PARSE_L4 && dnat_flow_known(&p)) {\n\t\tmetric_inc(METRIC_PASS, skb->len);\n\t\treturn deliver(skb, p.daddr);\n\t}\n';

export async function runXdpConnrate(opts: XdpConnrateOptions): Promise<XdpConnrateResult> {
  const [connrate, echo] = [await buildTool('connrate'), await buildTool('echo')];
  const topo = await Topology.create({ prefix: 'bnxc' });
  const root = `/sys/fs/bpf/bpfnet-test-xdpc-${randomBytes(4).toString('hex')}`;
  const scratch = await mkdtemp(join(tmpdir(), 'bpfnet-xdpc-'));
  const dp = new EbpfDataplane({ root, netns: topo.node.path, nodeLocal: false });
  const release = registerCleanup(async () => {
    await detachUplinkXdp({ netns: topo.node.path, dev: UPLINK.dev }).catch(() => undefined);
    await topo.destroy();
    await removeRoot(root).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  });
  try {
    const c0 = topo.containers[0]!;
    const link = async (ns: { ip: (...a: string[]) => Promise<{ stdout: string }> }, dev: string) =>
      (JSON.parse((await ns.ip('-j', 'link', 'show', dev)).stdout) as { ifindex: number; address: string }[])[0]!;
    const host = await link(topo.node, c0.hostDev);
    const ctrLink = await link(c0.ns, 'eth0');
    const up = await link(topo.node, UPLINK.dev);
    await waitReady(c0.ns.spawn(echo.path, ['--port', '80', '--threads', '1']), 'echo server');
    await dp.apply({
      uplinks: [UPLINK.dev],
      uplinkIndex: { [UPLINK.dev]: up.ifindex },
      uplinkAddress: { [UPLINK.dev]: UPLINK.nodeIp },
      nodeAddresses: [UPLINK.nodeIp],
      endpoints: [{ hostDev: c0.hostDev, ifindex: host.ifindex, ip: c0.ip, mac: ctrLink.address, networkId: 1 }],
      ports: [{ hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: c0.ip, containerPort: 80 }],
    });
    const stock = (await loadObject('uplink', { root, progType: 'classifier' })).progs.from_uplink!;

    const modes: XdpConnMode[] = ['tc', 'xdp', 'xdp-generic'];
    const notes: string[] = [];
    let wired: string | undefined;
    const src = await readFile(join(BPF_SRC_DIR, 'uplink.c'), 'utf8');
    if (src.includes('dnat_flow_known')) {
      notes.push('uplink.c already calls dnat_flow_known(): xdp-deliver not built (the xdp mode is the wired tree)');
    } else if (!DELIVER_ANCHOR.test(src)) {
      notes.push('xdp-deliver skipped: no "ret = direct_denied(&p...);" in uplink.c to patch');
    } else {
      await symlink(join(BPF_SRC_DIR, 'lib'), join(scratch, 'lib'));
      const patched = src.replace('#include "lib/nat.h"', '#include "lib/nat.h"\n#include "lib/xdp_nat.h"').replace(DELIVER_ANCHOR, (_m, stmt: string) => `\n${DELIVER_PATCH}${stmt}`);
      await writeFile(join(scratch, 'uplink_xdpwired.c'), patched);
      wired = (await loadObject('uplink_xdpwired', { root, progType: 'classifier', srcDir: scratch, cacheDir: scratch })).progs.from_uplink!;
      modes.push('xdp-deliver');
      notes.push('xdp-deliver: a scratch copy of uplink.c with, before the direct-access check, `if (rc == PARSE_L4 && dnat_flow_known(&p)) return deliver(skb, p.daddr);` (measurement only; the tree is unchanged)');
    }

    let xdpMode = '?';
    const setMode = async (m: XdpConnMode) => {
      await attachTc({ netns: topo.node.path, dev: UPLINK.dev, direction: 'ingress', pin: m === 'xdp-deliver' ? wired! : stock });
      if (m === 'tc') await detachUplinkXdp({ netns: topo.node.path, dev: UPLINK.dev });
      else {
        // Switching between native and generic needs a detach: the kernel refuses the other mode while one is attached.
        const want = m === 'xdp-generic' ? 'generic' : 'driver';
        const cur = await uplinkXdp({ netns: topo.node.path, dev: UPLINK.dev });
        if (cur && cur.mode !== want) await detachUplinkXdp({ netns: topo.node.path, dev: UPLINK.dev });
        const a = await attachUplinkXdp({ root, netns: topo.node.path, dev: UPLINK.dev, mode: m === 'xdp-generic' ? 'generic' : 'native' });
        if (m !== 'xdp-generic') xdpMode = a.mode;
      }
    };
    const counters = () => readMetrics(dp.mapDir);

    const samples: XdpConnSample[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      const order = rotate([...modes], r);
      if (r % 2 === 1) order.reverse();
      for (const m of order) {
        await setMode(m);
        const before = await counters();
        const out = await runClient<CrrOut>(topo.client.path, connrate.path, crrArgs({ port: 8080, durationS: opts.durationS, warmupS: opts.warmupS, concurrency: opts.concurrency, threads: 1, timeoutMs: 2000, close: 'rst' }), opts.durationS + opts.warmupS);
        const d = metricsDelta(before, await counters());
        const metrics = Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v.packets])) as Partial<Record<MetricName, number>>;
        samples.push({ round: r, mode: m, ratePerS: out.ratePerS, p50Us: out.latencyUs.p50, p99Us: out.latencyUs.p99, connections: out.connections, errors: out.errors, metrics });
        progress(`xdp-connrate: round ${r + 1}/${opts.rounds} ${m}: ${fmtInt(out.ratePerS)} conn/s p50 ${fmtNum(out.latencyUs.p50)} µs p99 ${fmtNum(out.latencyUs.p99)} µs, ${out.errors} errors; ` +
          Object.entries(metrics).map(([k, v]) => `${k.replace('METRIC_', '')}+${v}`).join(' '));
      }
    }
    await setMode('tc');
    const tcMed = median(samples.filter((s) => s.mode === 'tc').map((s) => s.ratePerS));
    const summary: XdpConnrateResult['summary'] = {};
    for (const m of modes) {
      const xs = samples.filter((s) => s.mode === m);
      const rate = summarize(xs.map((s) => s.ratePerS));
      summary[m] = { rate, p50Us: median(xs.map((s) => s.p50Us)), p99Us: median(xs.map((s) => s.p99Us)), ratioToTc: rate.median / tcMed };
    }
    return { options: opts, modes, xdpMode, samples, summary, notes };
  } finally {
    await release();
  }
}

export function xdpConnrateTable(r: XdpConnrateResult): Table {
  return {
    title: `New connections/s through a published port, XDP on vs off (${r.options.rounds} alternating rounds x ${r.options.durationS} s, concurrency ${r.options.concurrency}, XDP mode ${r.xdpMode})`,
    headers: ['mode', 'median conn/s', 'min-max', 'x tc', 'p50 µs', 'p99 µs'],
    right: [1, 2, 3, 4, 5],
    rows: r.modes.map((m) => {
      const s = r.summary[m]!;
      return [m, fmtInt(s.rate.median), `${fmtInt(s.rate.min)}-${fmtInt(s.rate.max)}`, fmtRatio(s.ratioToTc), fmtNum(s.p50Us), fmtNum(s.p99Us)];
    }),
    notes: r.notes,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv.includes('--xdp-connrate')) {
  const arg = (n: string, d: number) => {
    const i = process.argv.indexOf(n);
    return i > 0 ? Number(process.argv[i + 1]) : d;
  };
  const opts: XdpConnrateOptions = { rounds: arg('--rounds', 5), durationS: arg('--duration', 3), warmupS: 0.3, concurrency: arg('--concurrency', 16) };
  runXdpConnrate(opts).then((r) => {
    const t = xdpConnrateTable(r);
    console.log(t.title);
    console.log(t.headers.join(' | '));
    for (const row of t.rows) console.log(row.join(' | '));
    for (const n of t.notes ?? []) console.log(`  * ${n}`);
    console.log(JSON.stringify(r.samples));
    process.exit(0);
  }, (e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
