/**
 * Table-driven BPF_PROG_TEST_RUN cases for masquerade and ICMP errors
 * (snat.test.ts, icmp.test.ts, dnat.test.ts): every map a case touches is
 * set up from the case and emptied afterwards, the whole of bpfnet_snat is
 * compared after the run, and every metric that moved is checked.
 */
import { afterAll, afterEach, beforeAll, expect, type TestContext } from 'vitest';
import { loadObject } from '../../src/loader/load.js';
import { testRun, type TestRunResult } from '../../src/loader/testrun.js';
import { TypedMap } from '../../src/maps/map.js';
import type {
  ConfigValue, EndpointInfo, NatCtKey, NatCtValue, NetKey, NetValue, PortKey, PortValue, SnatKey, SnatValue,
} from '../../src/maps/generated/abi.js';
import { isEinval, loadProbe, metricsDelta, readMetrics, withBpfRoot, type BpfRoot, type MetricName } from '../harness/bpfroot.js';
import { BpfnetError } from '../../src/util/errors.js';
import { IPPROTO_ICMP, verifyChecksums } from '../harness/packet.js';

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

/** bpf/lib/maps.h */
export const SNAT_DIR_OUT = 1;
export const SNAT_DIR_IN = 2;
export const ST_SYN = 0x1;
export const ST_REPLY = 0x2;
export const ST_FIN = 0x4;
export const ST_RST = 0x8;
export const NET_F_INTERNAL = 0x1;
export const NET_F_NO_MASQ = 0x4;
export const NET_F_DIRECT = 0x8;

/** bpf/lib/snat.h */
export const PORT_MIN_DEFAULT = 61000;
export const PORT_MAX_DEFAULT = 65535;
export const PROBES = 32;

/** BPF_PROG_TEST_RUN runs on the loopback device of the test's netns. */
export const TEST_IFINDEX = 1;

export type SnatRow = [SnatKey, SnatValue];

export interface NetSpec {
  subnet: string;
  id: number;
  flags?: number;
  gateway: string;
  snat?: string;
}

export interface SnatSetup {
  nets?: NetSpec[];
  /** Masquerade address of the uplink the test runs on. */
  uplinkAddr?: string;
  snat?: SnatRow[];
  config?: Pick<ConfigValue, 'snat_port_min' | 'snat_port_max'>;
  ports?: [PortKey, PortValue][];
  addrs?: string[];
  endpoints?: EndpointInfo[];
  ct?: [NatCtKey, NatCtValue][];
}

export interface SnatCase {
  description: string;
  setup?: SnatSetup;
  input: Buffer;
  expectVerdict: number;
  expectOutput: Buffer | 'unchanged';
  /** The whole of bpfnet_snat afterwards (last_seen_ns aside); default: what setup put there. */
  expectSnat?: SnatRow[];
  /** setup.snat keys whose last_seen_ns must have been refreshed; every other one stays. */
  expectTouched?: SnatKey[];
  /** Every metric that moves, in packets (bytes = packets x frame length). */
  expectMetrics: Partial<Record<MetricName, number>>;
  kernelMayReject?: boolean;
}

export function outKey(saddr: string, sport: number, daddr: string, dport: number, proto: number): SnatKey {
  return { saddr, daddr, sport, dport, proto, dir: SNAT_DIR_OUT };
}
export function inKey(saddr: string, sport: number, daddr: string, dport: number, proto: number): SnatKey {
  return { saddr, daddr, sport, dport, proto, dir: SNAT_DIR_IN };
}
export function val(addr: string, port: number, state = 0, lastSeen = 1n): SnatValue {
  return { addr, port, state, flags: 0, last_seen_ns: lastSeen };
}

/**
 * Both entries of a flow container:cport -> remote:rport masqueraded to
 * node:nport (ICMP echo: ports are the identifier).
 */
export function pair(c: string, cport: number, remote: string, rport: number, proto: number, node: string, nport: number,
  state = 0, lastSeen = 1n): SnatRow[] {
  const icmp = proto === IPPROTO_ICMP;
  return [
    [outKey(c, cport, remote, icmp ? cport : rport, proto), val(node, nport, state, lastSeen)],
    [inKey(remote, icmp ? nport : rport, node, nport, proto), val(c, cport, state, lastSeen)],
  ];
}

/** snat_hash() of bpf/lib/snat.h, for where probing starts. */
export function snatHash(saddr: string, daddr: string, sport: number, dport: number, proto: number): number {
  const le32 = (ip: string) => Buffer.from(ip.split('.').map(Number)).readUInt32LE(0);
  const swap16 = (p: number) => ((p & 0xff) << 8) | (p >> 8); // a network-order u16 read on a little-endian CPU
  let h = (le32(saddr) ^ Math.imul(le32(daddr), 0x9e3779b1) ^ (((swap16(sport) << 16) | swap16(dport)) >>> 0) ^ proto) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The first port snat_alloc() tries for a source port outside the range. */
export function hashPort(saddr: string, daddr: string, sport: number, dport: number, proto: number,
  min = PORT_MIN_DEFAULT, max = PORT_MAX_DEFAULT): number {
  return min + (snatHash(saddr, daddr, sport, dport, proto) % (max - min + 1));
}

export class SnatEnv {
  readonly snat: TypedMap<'bpfnet_snat'>;
  private readonly nets: TypedMap<'bpfnet_nets'>;
  private readonly uplinks: TypedMap<'bpfnet_uplinks'>;
  private readonly config: TypedMap<'bpfnet_config'>;
  private readonly ports: TypedMap<'bpfnet_ports'>;
  private readonly addrs: TypedMap<'bpfnet_addrs'>;
  private readonly endpoints: TypedMap<'bpfnet_endpoints'>;
  readonly ct: TypedMap<'bpfnet_nat_ct'>;

  constructor(readonly mapDir: string, readonly netns: string) {
    this.snat = TypedMap.open(mapDir, 'bpfnet_snat');
    this.nets = TypedMap.open(mapDir, 'bpfnet_nets');
    this.uplinks = TypedMap.open(mapDir, 'bpfnet_uplinks');
    this.config = TypedMap.open(mapDir, 'bpfnet_config');
    this.ports = TypedMap.open(mapDir, 'bpfnet_ports');
    this.addrs = TypedMap.open(mapDir, 'bpfnet_addrs');
    this.endpoints = TypedMap.open(mapDir, 'bpfnet_endpoints');
    this.ct = TypedMap.open(mapDir, 'bpfnet_nat_ct');
  }

  private get all() {
    return [this.snat, this.nets, this.uplinks, this.ports, this.addrs, this.endpoints, this.ct] as const;
  }

  async apply(s: SnatSetup = {}): Promise<void> {
    if (s.nets) {
      await this.nets.setMany(s.nets.map((n): [NetKey, NetValue] => {
        const [addr, len] = n.subnet.split('/');
        return [{ prefixlen: Number(len), addr: addr! }, { net_id: n.id, flags: n.flags ?? 0, gateway: n.gateway, snat_addr: n.snat ?? '0.0.0.0' }];
      }));
    }
    if (s.uplinkAddr) await this.uplinks.set({ ifindex: TEST_IFINDEX }, { snat_addr: s.uplinkAddr, flags: 0 });
    if (s.snat) await this.snat.setMany(s.snat);
    if (s.config) await this.config.set(0, { netns_cookie: 0n, flags: 0, ...s.config });
    if (s.ports) await this.ports.setMany(s.ports);
    if (s.addrs) await this.addrs.setMany(s.addrs.map((a) => [{ addr: a }, { flags: 0 }]));
    if (s.endpoints) await this.endpoints.setMany(s.endpoints.map((e) => [{ addr: e.addr }, e]));
    if (s.ct) await this.ct.setMany(s.ct);
  }

  async clear(): Promise<void> {
    for (const m of this.all) {
      const keys = (await m.toArray()).map(([k]) => k);
      await (m as TypedMap<'bpfnet_snat'>).deleteMany(keys as never[]);
    }
    await this.config.set(0, { netns_cookie: 0n, snat_port_min: 0, snat_port_max: 0, flags: 0 });
  }

  close(): void {
    for (const m of this.all) m.close();
    this.config.close();
  }
}

export interface SnatSuite {
  bpf: BpfRoot;
  env: SnatEnv;
  /** Every loaded program's pin, by program name. */
  progs: Record<string, string>;
}

/**
 * Registers the hooks of a test file on the uplink programs: a private root
 * with uplink.o (and any test-only probes, see loadProbe) loaded, a SnatEnv
 * on its maps, emptied after each test, everything removed afterwards.
 * Fields are set in beforeAll.
 */
export function snatSuite(probes: { name: string; source: string }[] = []): SnatSuite {
  const suite = {} as SnatSuite;
  const cleanups: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    suite.bpf = await withBpfRoot();
    suite.progs = { ...(await loadObject('uplink', { root: suite.bpf.root })).progs };
    for (const p of probes) {
      const probe = await loadProbe(suite.bpf.root, p.name, p.source);
      cleanups.push(probe.cleanup);
      Object.assign(suite.progs, probe.progs);
    }
    suite.env = new SnatEnv(suite.bpf.mapDir, suite.bpf.netns);
  });
  afterEach(async () => {
    await suite.env?.clear();
  });
  afterAll(async () => {
    suite.env?.close();
    await suite.bpf?.cleanup();
    for (const c of cleanups) await c();
  });
  return suite;
}

export const snatId = (k: SnatKey) =>
  `${k.dir === SNAT_DIR_OUT ? 'OUT' : k.dir === SNAT_DIR_IN ? 'IN' : `dir${k.dir}`} ${k.saddr}:${k.sport} -> ${k.daddr}:${k.dport} proto ${k.proto}`;
const rowId = ([k, v]: SnatRow) => `${snatId(k)} => ${v.addr}:${v.port} state ${v.state}`;

/** Set up, run once, check verdict, bytes, the whole SNAT table, timestamps and metrics. */
export async function runSnatCase(env: SnatEnv, prog: string, c: SnatCase, _ctx?: TestContext): Promise<TestRunResult | undefined> {
  await env.apply(c.setup);
  const before = await readMetrics(env.mapDir);
  let r: TestRunResult;
  try {
    r = await testRun(prog, Buffer.from(c.input), { netns: env.netns });
  } catch (e) {
    if (c.kernelMayReject && ((e instanceof BpfnetError && e.code === 'E_INVALID_ARGUMENT') || isEinval(e))) return undefined;
    throw e;
  }
  expect(r.retval, 'verdict').toBe(c.expectVerdict);
  const want = c.expectOutput === 'unchanged' ? c.input : c.expectOutput;
  expect(r.output.toString('hex'), 'output packet').toBe(want.toString('hex'));
  if (c.expectOutput !== 'unchanged') expect(verifyChecksums(r.output), 'checksums').toBe(true);

  const got = await env.snat.toArray();
  const wantRows = c.expectSnat ?? c.setup?.snat ?? [];
  expect(got.map(rowId).sort(), 'bpfnet_snat').toEqual(wantRows.map(rowId).sort());
  const setupRows = new Map((c.setup?.snat ?? []).map(([k, v]) => [snatId(k), v]));
  const touched = new Set((c.expectTouched ?? []).map(snatId));
  for (const [k, v] of got) {
    const old = setupRows.get(snatId(k));
    if (!old) expect(v.last_seen_ns, `${snatId(k)} has a timestamp`).toBeGreaterThan(1000n);
    else if (touched.has(snatId(k))) expect(v.last_seen_ns, `${snatId(k)} refreshed`).toBeGreaterThan(old.last_seen_ns);
    else expect(v.last_seen_ns, `${snatId(k)} untouched`).toBe(old.last_seen_ns);
    expect(v.flags).toBe(0);
  }

  const delta = metricsDelta(before, await readMetrics(env.mapDir));
  const wantMetrics = Object.fromEntries(Object.entries(c.expectMetrics).map(([n, p]) => [n, { packets: p, bytes: p! * c.input.length }]));
  expect(delta, 'metrics').toEqual(wantMetrics);
  return r;
}
