/**
 * BPF test harness: a private bpffs root per test file (so pinned maps start
 * empty and nothing is shared with a running agent or other test files),
 * helpers to reset its maps and read its metrics, and the runner for
 * table-driven BPF_PROG_TEST_RUN cases.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, type TestContext } from 'vitest';
import { ensureBpffs } from '../../src/loader/bpffs.js';
import { loadObject, mapsDir, removeRoot, type LoadedObject, type LoadOptions } from '../../src/loader/load.js';
import { testRun, type TestRunResult } from '../../src/loader/testrun.js';
import { readPerCpu, TypedMap } from '../../src/maps/map.js';
import { MetricId, type NatCtKey, type NatCtValue, type PortKey, type PortValue } from '../../src/maps/generated/abi.js';
import { BpfnetError, CommandError } from '../../src/util/errors.js';
import { BPF_SRC_DIR } from '../../src/util/paths.js';
import { Netns } from '../../src/lab/netns.js';
import { verifyChecksums } from './packet.js';

export const TEST_ROOT_PREFIX = 'bpfnet-test-';

export interface BpfRoot {
  /** e.g. /sys/fs/bpf/bpfnet-test-1a2b3c4d */
  root: string;
  /** <root>/maps, for TypedMap.open / readPerCpu */
  mapDir: string;
  /** An empty network namespace to run programs in: the FIB helpers then
   * see no routes and forwarding off, whatever the host's settings. */
  netns: string;
  /** Removes every pin under root and the namespace; safe to call more than once. */
  cleanup(): Promise<void>;
}

export async function withBpfRoot(base = '/sys/fs/bpf'): Promise<BpfRoot> {
  const id = randomBytes(4).toString('hex');
  const root = join(base, `${TEST_ROOT_PREFIX}${id}`);
  await ensureBpffs(root);
  const ns = await Netns.create(`${TEST_ROOT_PREFIX}${id}`).catch(async (e: unknown) => {
    await removeRoot(root);
    throw e;
  });
  return {
    root,
    mapDir: mapsDir(root),
    netns: ns.path,
    cleanup: async () => {
      await ns.destroy();
      await removeRoot(root);
    },
  };
}

/**
 * Compile `source` (a test-only program that includes "lib/..." headers of
 * bpf/) as `name` in a scratch directory and load it into root, sharing its
 * maps. cleanup() removes the scratch directory.
 */
export async function loadProbe(root: string, name: string, source: string, progType?: LoadOptions['progType']): Promise<LoadedObject & { cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `bpfnet-${name}-`));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    await symlink(join(BPF_SRC_DIR, 'lib'), join(dir, 'lib'));
    await writeFile(join(dir, `${name}.c`), source);
    const obj = await loadObject(name, { root, srcDir: dir, cacheDir: join(dir, 'cache'), ...(progType ? { progType } : {}) });
    return { ...obj, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

// ---- map rows --------------------------------------------------------------

/** A published port: addr:p/proto -> backend:backendPort. */
export function portRow(addr: string, p: number, proto: number, backend: string, backendPort: number): [PortKey, PortValue] {
  return [{ addr, port: p, proto }, { backend_addr: backend, backend_port: backendPort, flags: 0 }];
}

/** A bpfnet_nat_ct key: the reply tuple saddr:sport -> daddr:dport. */
export function ctKey(saddr: string, sport: number, daddr: string, dport: number, proto: number): NatCtKey {
  return { saddr, daddr, sport, dport, proto };
}

export function ctVal(origAddr: string, origPort: number, o: { flags?: number; client?: string; lastSeen?: bigint } = {}): NatCtValue {
  return { orig_addr: origAddr, orig_port: origPort, flags: o.flags ?? 0, client_addr: o.client ?? '0.0.0.0', last_seen_ns: o.lastSeen ?? 1n };
}

export type ClearableMap = 'bpfnet_ports' | 'bpfnet_addrs' | 'bpfnet_nat_ct';

/** Delete every entry of the given (non-per-CPU) maps. */
export async function clearMaps(
  mapDir: string,
  names: readonly ClearableMap[] = ['bpfnet_ports', 'bpfnet_addrs', 'bpfnet_nat_ct'],
): Promise<void> {
  for (const name of names) {
    const m = TypedMap.open(mapDir, name);
    try {
      const keys = (await m.toArray()).map(([k]) => k);
      await m.deleteMany(keys as never[]);
    } finally {
      m.close();
    }
  }
}

export type MetricName = Exclude<keyof typeof MetricId, 'METRIC_MAX'>;
export type Metrics = Record<MetricName, { packets: bigint; bytes: bigint }>;

/** bpfnet_metrics summed over CPUs, by name. */
export async function readMetrics(mapDir: string): Promise<Metrics> {
  const out = {} as Metrics;
  for (const name of Object.keys(MetricId) as (keyof typeof MetricId)[]) {
    if (name !== 'METRIC_MAX') out[name] = { packets: 0n, bytes: 0n };
  }
  const byId = new Map<number, MetricName>();
  for (const [name, id] of Object.entries(MetricId)) if (name !== 'METRIC_MAX') byId.set(id, name as MetricName);
  for (const [id, v] of await readPerCpu(mapDir, 'bpfnet_metrics')) {
    const name = byId.get(id);
    if (name) out[name] = { packets: v.packets, bytes: v.bytes };
  }
  return out;
}

/**
 * Running totals a suite expects bpfnet_metrics to hold, for a final check
 * against the map: add() what a case asserts it counts, track() what a block
 * measurably counted.
 */
export class MetricTally {
  private readonly n = new Map<MetricName, number>();

  add(name: MetricName, packets = 1): void {
    this.n.set(name, this.get(name) + packets);
  }

  get(name: MetricName): number {
    return this.n.get(name) ?? 0;
  }

  /** Runs f and adds whatever moved in mapDir's metrics meanwhile, whichever way f ends. */
  async track<T>(mapDir: string, f: () => Promise<T>): Promise<T> {
    const before = await readMetrics(mapDir);
    try {
      return await f();
    } finally {
      for (const [name, v] of Object.entries(metricsDelta(before, await readMetrics(mapDir)))) this.add(name as MetricName, v.packets);
    }
  }
}

/** after - before, leaving out metrics that did not change. */
export function metricsDelta(before: Metrics, after: Metrics): Partial<Record<MetricName, { packets: number; bytes: number }>> {
  const d: Partial<Record<MetricName, { packets: number; bytes: number }>> = {};
  for (const name of Object.keys(after) as MetricName[]) {
    const p = after[name].packets - before[name].packets;
    const b = after[name].bytes - before[name].bytes;
    if (p !== 0n || b !== 0n) d[name] = { packets: Number(p), bytes: Number(b) };
  }
  return d;
}

// ---- table-driven BPF_PROG_TEST_RUN cases (Katran style) -------------------

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;

export interface CaseSetup {
  ports?: [PortKey, PortValue][];
  /** Node addresses (bpfnet_addrs keys). */
  addrs?: string[];
  ct?: [NatCtKey, NatCtValue][];
}

export type CtExpectation = [NatCtKey, Pick<NatCtValue, 'orig_addr' | 'orig_port'>];

export interface BpfCase {
  description: string;
  setup?: CaseSetup;
  input: Buffer;
  expectVerdict: number;
  /** Built independently (buildPacket), compared byte for byte. */
  expectOutput: Buffer | 'unchanged';
  /**
   * The complete content of bpfnet_nat_ct afterwards (last_seen_ns aside).
   * Default: exactly what setup put there.
   */
  expectCt?: CtExpectation[];
  /** setup.ct entries whose last_seen_ns must have been refreshed; every other one must be left alone. */
  expectCtTouched?: NatCtKey[];
  /** The one metric this packet counts (packets 1, bytes = frame length); null: none. */
  expectMetric: MetricName | null;
  /**
   * BPF_PROG_TEST_RUN on recent kernels refuses IPv4-EtherType frames with
   * fewer than 20 bytes after the Ethernet header (bpf_prog_test_run_skb in
   * net/bpf/test_run.c: skb_headlen < sizeof(struct iphdr) -> -EINVAL; 40 for
   * IPv6). Such cases run where the kernel allows it and are reported as
   * skipped where it does not.
   */
  kernelMayReject?: boolean;
}

export interface CaseEnv {
  prog: string;
  /** Network namespace to run the program in (see BpfRoot.netns). */
  netns: string;
  mapDir: string;
  ports: TypedMap<'bpfnet_ports'>;
  addrs: TypedMap<'bpfnet_addrs'>;
  ct: TypedMap<'bpfnet_nat_ct'>;
}

export function openCaseMaps(mapDir: string): Omit<CaseEnv, 'prog' | 'netns'> & { close(): void } {
  const ports = TypedMap.open(mapDir, 'bpfnet_ports');
  const addrs = TypedMap.open(mapDir, 'bpfnet_addrs');
  const ct = TypedMap.open(mapDir, 'bpfnet_nat_ct');
  return { mapDir, ports, addrs, ct, close: () => { ports.close(); addrs.close(); ct.close(); } };
}

/**
 * bpftool -j reports errors as JSON on stdout, so the CommandError carries no
 * stderr text; its exit status is the negative errno (-EINVAL -> 234).
 */
export function isEinval(e: unknown): boolean {
  return e instanceof CommandError && (e.exitCode === 256 - 22 || /Invalid argument/.test(`${e.message} ${e.stderr}`));
}

/** Set up maps, run the program once, check verdict, bytes, ct state and metrics. Returns the run's result (undefined if skipped). */
export async function runBpfCase(env: CaseEnv, c: BpfCase, ctx: TestContext): Promise<TestRunResult | undefined> {
  const { setup } = c;
  if (setup?.ports) await env.ports.setMany(setup.ports);
  if (setup?.addrs) await env.addrs.setMany(setup.addrs.map((a) => [{ addr: a }, { flags: 0 }]));
  if (setup?.ct) await env.ct.setMany(setup.ct);
  const before = await readMetrics(env.mapDir);

  let r: TestRunResult;
  try {
    r = await testRun(env.prog, Buffer.from(c.input), { netns: env.netns });
  } catch (e) {
    // The kernel refuses IPv4 frames shorter than 34 bytes before the program
    // runs; testRun says so up front. Such input never reaches the program.
    if (c.kernelMayReject && ((e instanceof BpfnetError && e.code === 'E_INVALID_ARGUMENT') || isEinval(e))) {
      expect(metricsDelta(before, await readMetrics(env.mapDir))).toEqual({});
      return undefined;
    }
    throw e;
  }

  expect(r.retval, 'verdict').toBe(c.expectVerdict);
  const want = c.expectOutput === 'unchanged' ? c.input : c.expectOutput;
  expect(r.output.toString('hex'), 'output packet').toBe(want.toString('hex'));

  const ctId = (k: NatCtKey) => `${k.saddr}:${k.sport} -> ${k.daddr}:${k.dport} proto ${k.proto}`;
  const setupCt = new Map((setup?.ct ?? []).map(([k, v]) => [ctId(k), v]));
  const touched = new Set((c.expectCtTouched ?? []).map(ctId));
  const wantCt = c.expectCt ?? (setup?.ct ?? []).map(([k, v]): CtExpectation => [k, { orig_addr: v.orig_addr, orig_port: v.orig_port }]);
  const gotCt = await env.ct.toArray();
  const norm = (rows: CtExpectation[]) => rows.map(([k, v]) => `${ctId(k)} => ${v.orig_addr}:${v.orig_port}`).sort();
  expect(norm(gotCt.map(([k, v]) => [k, { orig_addr: v.orig_addr, orig_port: v.orig_port }])), 'bpfnet_nat_ct').toEqual(norm(wantCt));
  for (const [k, v] of gotCt) {
    expect(v.flags).toBe(0);
    const old = setupCt.get(ctId(k));
    if (!old) expect(v.last_seen_ns, 'new ct entry has a timestamp').toBeGreaterThan(0n);
    else if (touched.has(ctId(k))) expect(v.last_seen_ns, `ct entry ${ctId(k)} refreshed`).toBeGreaterThan(old.last_seen_ns);
    else expect(v.last_seen_ns, `ct entry ${ctId(k)} untouched`).toBe(old.last_seen_ns);
  }

  const delta = metricsDelta(before, await readMetrics(env.mapDir));
  expect(delta, 'metrics').toEqual(c.expectMetric ? { [c.expectMetric]: { packets: 1, bytes: c.input.length } } : {});
  return r;
}

export interface BpfSuite {
  bpf: BpfRoot;
  env: CaseEnv;
  /** Every loaded program's pin, by program name. */
  progs: Record<string, string>;
}

/**
 * Registers the hooks of a BPF test file: a private root, `objects` loaded
 * into it (sharing its maps), `prog` as the program under test, maps emptied
 * after each test, everything removed afterwards. Fields are set in beforeAll.
 */
export function bpfSuite(objects: string[], prog: string): BpfSuite {
  const suite = {} as BpfSuite;
  let maps: ReturnType<typeof openCaseMaps> | undefined;
  beforeAll(async () => {
    suite.bpf = await withBpfRoot();
    const loaded = [];
    for (const o of objects) loaded.push(await loadObject(o, { root: suite.bpf.root }));
    for (const l of loaded) expect(l.maps, 'objects share the pinned maps').toEqual(loaded[0]!.maps);
    suite.progs = Object.assign({}, ...loaded.map((l) => l.progs)) as Record<string, string>;
    const pin = suite.progs[prog];
    if (!pin) throw new Error(`${prog} not pinned; got ${Object.keys(suite.progs).join(', ')}`);
    maps = openCaseMaps(suite.bpf.mapDir);
    suite.env = { prog: pin, netns: suite.bpf.netns, ...maps };
  });
  afterEach(async () => {
    if (suite.bpf) await clearMaps(suite.bpf.mapDir);
  });
  afterAll(async () => {
    maps?.close();
    await suite.bpf?.cleanup();
  });
  return suite;
}

/**
 * runBpfCase plus what holds for every case: never dropped, valid checksums
 * when rewritten. A run (not skipped) adds its expectMetric to tally.
 */
export async function runChecked(env: CaseEnv, c: BpfCase, ctx: TestContext, tally?: MetricTally): Promise<TestRunResult | undefined> {
  const r = await runBpfCase(env, c, ctx);
  expect(r?.retval, 'never dropped').not.toBe(TC_ACT_SHOT);
  if (r && c.expectOutput !== 'unchanged') expect(verifyChecksums(r.output), 'checksums').toBe(true);
  if (r && c.expectMetric) tally?.add(c.expectMetric);
  return r;
}
