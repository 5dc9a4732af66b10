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
 * over the rounds. Ratios are against empty_tc's median from the same rounds.
 */
import { loadObject, type LoadedObject } from '../src/loader/load.js';
import { testRun } from '../src/loader/testrun.js';
import { TypedMap } from '../src/maps/map.js';
import type { NatCtKey, NatCtValue, PortKey, PortValue } from '../src/maps/generated/abi.js';
import { run } from '../src/util/exec.js';
import { readMetrics, metricsDelta, type BpfRoot, type MetricName } from '../test/harness/bpfroot.js';
import { buildPacket, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_PSH, type PacketSpec } from '../test/harness/packet.js';
import { progress, withRoots } from './lib/env.js';
import { RawPinnedMap, nextPow2 } from './lib/rawmap.js';
import { fmtInt, fmtNum, fmtRatio, fmtPct, rotate, summarize, type Summary, type Table } from './lib/stats.js';

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
  prog: 'empty_tc' | 'from_uplink' | 'from_container';
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
  /** median / empty_tc median */
  ratioToEmpty: number;
  /** median - empty_tc median */
  netNs: number;
  /** Median over rounds of (this path / empty_tc in the same round). */
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
  const names = s === 'base' ? ['empty', 'uplink', 'endpoint'] : ['uplink'];
  for (const n of names) objs[n] = await loadObject(n, { root: root.root, mapSizes });

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

async function verify(p: PathDef, pin: string, root: BpfRoot, n: number): Promise<PathVerification> {
  const problems: string[] = [];
  const r1 = await testRun(pin, p.input, { repeat: 1, netns: root.netns });
  const before = await readMetrics(root.mapDir);
  const rEven = await testRun(pin, p.input, { repeat: n, netns: root.netns });
  const mid = await readMetrics(root.mapDir);
  const rOdd = await testRun(pin, p.input, { repeat: n + 1, netns: root.netns });
  const metrics = Object.fromEntries(Object.entries(metricsDelta(before, mid)).map(([k, v]) => [k, v.packets])) as Partial<Record<MetricName, number>>;
  const expectedMetrics = p.metrics(n);
  const v: PathVerification = {
    ok: true, problems, retval: rEven.retval, metrics, expectedMetrics,
    outputAfter1: classify(r1.output, p), outputAfterEven: classify(rEven.output, p), outputAfterOdd: classify(rOdd.output, p),
  };
  for (const r of [r1, rEven, rOdd]) if (r.retval !== TC_ACT_OK) problems.push(`retval ${r.retval}, expected TC_ACT_OK`);
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
        const obj = d.prog === 'empty_tc' ? objs.empty : d.prog === 'from_uplink' ? objs.uplink : objs.endpoint;
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
        const res = await testRun(pins[id]!, d.input, { repeat: opts.repeat, netns: rootOf[d.scenario].netns });
        samples[id]!.push(res.durationNs);
        retvals[id]!.push(res.retval);
        line.push(`${id}=${res.durationNs}`);
      }
      progress(`progcost: round ${r + 1}/${opts.rounds} (ns/pkt, repeat ${opts.repeat}): ${line.join(' ')}`);
    }

    const empty = samples.empty!;
    const emptyMed = summarize(empty).median;
    const paths: PathResult[] = defs.map((d) => {
      const s = samples[d.id]!;
      const summary = summarize(s);
      const roundRatios = s.map((x, i) => x / empty[i]!);
      const res: PathResult = {
        id: d.id, label: d.label, program: d.prog, scenario: d.scenario, packetBytes: d.input.length, evolution: d.evolution,
        samplesNs: s, retvals: retvals[d.id]!, summary,
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
      fmtRatio(p.ratioToEmpty), p.id === 'empty' ? '-' : fmtNum(p.netNs, 1), p.verification.ok ? 'yes' : `NO: ${p.verification.problems.join('; ')}`,
    ]),
    notes: [
      'x empty = median / median of empty_tc over the same rounds; net ns = median - empty_tc median; IQR/med = interquartile range over rounds / median (min-max shows the outliers).',
      ...r.findings,
      ...r.paths.filter((p) => p.note).map((p) => `${p.id}: ${p.note}`),
    ],
  };
  return [main];
}
