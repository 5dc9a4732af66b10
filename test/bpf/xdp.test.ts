/**
 * Table-driven BPF_PROG_TEST_RUN tests of xdp_uplink (published-port DNAT in
 * XDP, bpf/lib/xdp_nat.h). Every expected packet is built independently with
 * buildPacket, so a byte-for-byte match also proves the hand-written RFC 1624
 * checksum updates. The verdict is always XDP_PASS: XDP translates or leaves
 * the packet alone, the tc program behind it does the rest. XDP counts only
 * what it translated (METRIC_DNAT and the per-port counters); everything it
 * passes untouched is counted by tc, so here: no metric at all.
 *
 * dnat_flow_known() (for uplink.c's direct-access check) is tested through a
 * probe program compiled from a source written to a temporary directory
 * (XDP_PASS = known, XDP_DROP = not known).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadObject } from '../../src/loader/load.js';
import { testRun } from '../../src/loader/testrun.js';
import { TypedMap } from '../../src/maps/map.js';
import type { NatCtKey, NatCtValue, PortKey, SnatKey, SnatValue } from '../../src/maps/generated/abi.js';
import {
  clearMaps,
  ctKey,
  ctVal as ctValue,
  loadProbe,
  metricsDelta,
  openCaseMaps,
  portRow as port,
  readMetrics,
  withBpfRoot,
  type BpfRoot,
  type CaseSetup,
  type CtExpectation,
} from '../harness/bpfroot.js';
import {
  buildFrame,
  buildPacket,
  editFrame as edit,
  ETH_P_ARP,
  ETH_P_IPV6,
  L3,
  L4,
  TCP_ACK,
  TCP_PSH,
  verifyChecksums,
  type PacketSpec,
} from '../harness/packet.js';
import { ANY, BACKEND, NODE_IP, NODE_IP2, NODE_MAC, tcp, udp } from '../harness/addresses.js';

const XDP_ABORTED = 0;
const XDP_DROP = 1;
const XDP_PASS = 2;

const CLIENT = '192.0.2.30';
const CLIENT_MAC = '02:00:00:00:c1:30';
const NOT_NODE = '198.18.0.99';
const BACKEND2 = '198.19.0.3';
const SNAT_DIR_IN = 2;

function pkt(o: Partial<PacketSpec> = {}): Buffer {
  return buildPacket({
    srcMac: CLIENT_MAC, dstMac: NODE_MAC,
    src: CLIENT, dst: NODE_IP, proto: 'tcp', sport: 40001, dport: 8080,
    tcpFlags: TCP_PSH | TCP_ACK, id: 0x4343, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n!'), // odd length
    ...o,
  });
}

function ctVal(origAddr: string, origPort: number, lastSeen: bigint, flags = 0): NatCtValue {
  return ctValue(origAddr, origPort, { lastSeen, flags });
}

/** CLOCK_MONOTONIC, as bpf_ktime_get_ns() reads it. */
const nowNs = () => process.hrtime.bigint();

const WEB_TCP = port(NODE_IP, 8080, tcp, BACKEND, 80);
const DNS_UDP = port(NODE_IP, 5353, udp, BACKEND, 53);
const ALL = { ports: [WEB_TCP, DNS_UDP], addrs: [NODE_IP] } satisfies CaseSetup;

interface XdpSetup extends CaseSetup {
  snat?: [SnatKey, SnatValue][];
}

interface XdpCase {
  description: string;
  setup?: XdpSetup;
  /** Built lazily: some setups need the current time. */
  input: Buffer;
  expectOutput: Buffer | 'unchanged';
  /** Complete bpfnet_nat_ct afterwards (last_seen_ns aside); default: what setup put there. */
  expectCt?: CtExpectation[];
  /** setup.ct entries that must have been refreshed; the others must be untouched. */
  expectCtTouched?: NatCtKey[];
  /** The frontend that translated (METRIC_DNAT + its per-port counter); null: passed untouched, nothing counted. */
  expectDnat: PortKey | null;
}

/** UDP payload whose checksum, after translation to BACKEND:53, computes to 0 (sent as 0xffff). */
function payloadForZeroUdpChecksum(): Buffer {
  for (let v = 0; v < 0x10000; v++) {
    const payload = Buffer.from([v >> 8, v & 0xff]);
    const out = pkt({ proto: 'udp', sport: 33335, dst: BACKEND, dport: 53, payload });
    if (out.readUInt16BE(14 + 20 + 6) === 0xffff) return payload;
  }
  throw new Error('no payload gives a computed UDP checksum of 0');
}

const WEB_KEY: PortKey = WEB_TCP[0];
const DNS_KEY: PortKey = DNS_UDP[0];

function dnatCases(): XdpCase[] {
  const zeroPayload = payloadForZeroUdpChecksum();
  return [
    {
      description: 'DNAT TCP on an exact host IP frontend',
      setup: ALL,
      input: pkt(),
      expectOutput: pkt({ dst: BACKEND, dport: 80 }),
      expectCt: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080 }]],
      expectDnat: WEB_KEY,
    },
    {
      description: 'DNAT TCP exact frontend, node address not in bpfnet_addrs',
      setup: { ports: [WEB_TCP] },
      input: pkt({ sport: 40002 }),
      expectOutput: pkt({ sport: 40002, dst: BACKEND, dport: 80 }),
      expectCt: [[ctKey(BACKEND, 80, CLIENT, 40002, tcp), { orig_addr: NODE_IP, orig_port: 8080 }]],
      expectDnat: WEB_KEY,
    },
    {
      description: 'DNAT TCP SYN',
      setup: ALL,
      input: pkt({ tcpFlags: 0x02, payload: Buffer.alloc(0), tcpSeq: 0x01020304 }),
      expectOutput: pkt({ tcpFlags: 0x02, payload: Buffer.alloc(0), tcpSeq: 0x01020304, dst: BACKEND, dport: 80 }),
      expectCt: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080 }]],
      expectDnat: WEB_KEY,
    },
    {
      description: 'DNAT UDP',
      setup: ALL,
      input: pkt({ proto: 'udp', sport: 33333, dport: 5353, payload: Buffer.from('dns?') }),
      expectOutput: pkt({ proto: 'udp', sport: 33333, dst: BACKEND, dport: 53, payload: Buffer.from('dns?') }),
      expectCt: [[ctKey(BACKEND, 53, CLIENT, 33333, udp), { orig_addr: NODE_IP, orig_port: 5353 }]],
      expectDnat: DNS_KEY,
    },
    {
      description: 'DNAT UDP with zero checksum: stays zero',
      setup: ALL,
      input: pkt({ proto: 'udp', sport: 33334, dport: 5353, udpChecksumZero: true }),
      expectOutput: pkt({ proto: 'udp', sport: 33334, dst: BACKEND, dport: 53, udpChecksumZero: true }),
      expectCt: [[ctKey(BACKEND, 53, CLIENT, 33334, udp), { orig_addr: NODE_IP, orig_port: 5353 }]],
      expectDnat: DNS_KEY,
    },
    {
      description: 'DNAT UDP whose new checksum computes to 0: sent as 0xffff (RFC 768)',
      setup: ALL,
      input: pkt({ proto: 'udp', sport: 33335, dport: 5353, payload: zeroPayload }),
      expectOutput: pkt({ proto: 'udp', sport: 33335, dst: BACKEND, dport: 53, payload: zeroPayload }),
      expectCt: [[ctKey(BACKEND, 53, CLIENT, 33335, udp), { orig_addr: NODE_IP, orig_port: 5353 }]],
      expectDnat: DNS_KEY,
    },
    {
      description: 'DNAT via wildcard frontend when the destination is a node address',
      setup: { ports: [port(ANY, 8080, tcp, BACKEND, 80)], addrs: [NODE_IP, NODE_IP2] },
      input: pkt({ dst: NODE_IP2 }),
      expectOutput: pkt({ dst: BACKEND, dport: 80 }),
      expectCt: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), { orig_addr: NODE_IP2, orig_port: 8080 }]],
      expectDnat: { addr: ANY, port: 8080, proto: tcp },
    },
    {
      description: 'DNAT UDP via wildcard frontend',
      setup: { ports: [port(ANY, 5353, udp, BACKEND, 53)], addrs: [NODE_IP] },
      input: pkt({ proto: 'udp', dport: 5353 }),
      expectOutput: pkt({ proto: 'udp', dst: BACKEND, dport: 53 }),
      expectCt: [[ctKey(BACKEND, 53, CLIENT, 40001, udp), { orig_addr: NODE_IP, orig_port: 5353 }]],
      expectDnat: { addr: ANY, port: 5353, proto: udp },
    },
    {
      description: 'exact frontend wins over wildcard',
      setup: { ports: [WEB_TCP, port(ANY, 8080, tcp, BACKEND2, 8000)], addrs: [NODE_IP, NODE_IP2] },
      input: pkt(),
      expectOutput: pkt({ dst: BACKEND, dport: 80 }),
      expectCt: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080 }]],
      expectDnat: WEB_KEY,
    },
    {
      description: 'wildcard still serves other node addresses when an exact frontend exists for one',
      setup: { ports: [WEB_TCP, port(ANY, 8080, tcp, BACKEND2, 8000)], addrs: [NODE_IP, NODE_IP2] },
      input: pkt({ dst: NODE_IP2 }),
      expectOutput: pkt({ dst: BACKEND2, dport: 8000 }),
      expectCt: [[ctKey(BACKEND2, 8000, CLIENT, 40001, tcp), { orig_addr: NODE_IP2, orig_port: 8080 }]],
      expectDnat: { addr: ANY, port: 8080, proto: tcp },
    },
    {
      description: 'port unchanged (hostPort == containerPort)',
      setup: { ports: [port(NODE_IP, 80, tcp, BACKEND, 80)] },
      input: pkt({ dport: 80 }),
      expectOutput: pkt({ dst: BACKEND, dport: 80 }),
      expectCt: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), { orig_addr: NODE_IP, orig_port: 80 }]],
      expectDnat: { addr: NODE_IP, port: 80, proto: tcp },
    },
    {
      description: 'TCP with a 1400-byte payload',
      setup: ALL,
      input: pkt({ payload: Buffer.alloc(1400, 0xa5) }),
      expectOutput: pkt({ payload: Buffer.alloc(1400, 0xa5), dst: BACKEND, dport: 80 }),
      expectCt: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080 }]],
      expectDnat: WEB_KEY,
    },
    {
      description: 'short UDP frame with Ethernet padding: DNATed, padding untouched',
      setup: ALL,
      input: Buffer.concat([pkt({ proto: 'udp', dport: 5353, payload: Buffer.from('a') }), Buffer.alloc(17)]),
      expectOutput: Buffer.concat([pkt({ proto: 'udp', dst: BACKEND, dport: 53, payload: Buffer.from('a') }), Buffer.alloc(17)]),
      expectCt: [[ctKey(BACKEND, 53, CLIENT, 40001, udp), { orig_addr: NODE_IP, orig_port: 5353 }]],
      expectDnat: DNS_KEY,
    },
    {
      description: 'DF set is not a fragment: DNATed',
      setup: ALL,
      input: pkt({ dontFragment: true }),
      expectOutput: pkt({ dontFragment: true, dst: BACKEND, dport: 80 }),
      expectCt: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080 }]],
      expectDnat: WEB_KEY,
    },
    {
      description: 'checksum-sensitive values: 0xffff-ish addresses and ports',
      setup: { ports: [port(NODE_IP, 65535, tcp, '198.19.255.254', 65534)] },
      input: pkt({ src: '192.0.2.255', sport: 65535, dport: 65535 }),
      expectOutput: pkt({ src: '192.0.2.255', sport: 65535, dst: '198.19.255.254', dport: 65534 }),
      expectCt: [[ctKey('198.19.255.254', 65534, '192.0.2.255', 65535, tcp), { orig_addr: NODE_IP, orig_port: 65535 }]],
      expectDnat: { addr: NODE_IP, port: 65535, proto: tcp },
    },
    {
      description: 'existing ct entry for the same frontend is refreshed in place',
      setup: { ...ALL, ct: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), ctVal(NODE_IP, 8080, 1n)]] },
      expectCtTouched: [ctKey(BACKEND, 80, CLIENT, 40001, tcp)],
      input: pkt(),
      expectOutput: pkt({ dst: BACKEND, dport: 80 }),
      expectDnat: WEB_KEY,
    },
    {
      description: 'idle ct entry for another frontend is taken over',
      setup: { ...ALL, ct: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), ctVal(NODE_IP2, 9999, 1n)]] },
      expectCtTouched: [ctKey(BACKEND, 80, CLIENT, 40001, tcp)],
      input: pkt(),
      expectOutput: pkt({ dst: BACKEND, dport: 80 }),
      expectCt: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080 }]],
      expectDnat: WEB_KEY,
    },
  ];
}

function passCases(): XdpCase[] {
  const none = { expectOutput: 'unchanged' as const, expectDnat: null };
  return [
    { description: 'no published ports at all', input: pkt(), ...none },
    { description: 'other destination port', setup: ALL, input: pkt({ dport: 8081 }), ...none },
    { description: 'exact frontend on another address', setup: ALL, input: pkt({ dst: NODE_IP2 }), ...none },
    {
      description: 'wildcard frontend, destination is not a node address',
      setup: { ports: [port(ANY, 8080, tcp, BACKEND, 80)], addrs: [NODE_IP, NODE_IP2] },
      input: pkt({ dst: NOT_NODE }), ...none,
    },
    { description: 'wildcard frontend, no node addresses configured', setup: { ports: [port(ANY, 8080, tcp, BACKEND, 80)] }, input: pkt(), ...none },
    {
      description: 'destination 127.0.0.1 never matches a wildcard, even listed as a node address',
      setup: { ports: [port(ANY, 8080, tcp, BACKEND, 80)], addrs: [NODE_IP, '127.0.0.1'] },
      input: pkt({ dst: '127.0.0.1' }), ...none,
    },
    {
      description: 'destination 127.0.0.1 never matches a port published on 127.0.0.1 (socket hooks only)',
      setup: { ports: [port('127.0.0.1', 8080, tcp, BACKEND, 80)], addrs: [NODE_IP] },
      input: pkt({ dst: '127.0.0.1' }), ...none,
    },
    {
      description: 'destination 127.1.2.3 (all of 127/8)',
      setup: { ports: [port('127.1.2.3', 8080, tcp, BACKEND, 80), port(ANY, 8080, tcp, BACKEND, 80)], addrs: ['127.1.2.3'] },
      input: pkt({ dst: '127.1.2.3' }), ...none,
    },
    {
      description: 'destination 0.0.0.0 never hits the wildcard key',
      setup: { ports: [port(ANY, 8080, tcp, BACKEND, 80)], addrs: [NODE_IP, ANY] },
      input: pkt({ dst: ANY }), ...none,
    },
    { description: 'UDP to a TCP frontend', setup: { ports: [WEB_TCP, port(ANY, 8080, tcp, BACKEND, 80)], addrs: [NODE_IP] }, input: pkt({ proto: 'udp' }), ...none },
    { description: 'TCP to a UDP frontend', setup: ALL, input: pkt({ dport: 5353 }), ...none },
    { description: 'frontend port used as source port only', setup: ALL, input: pkt({ sport: 8080, dport: 40001 }), ...none },
    {
      description: 'reply tuple live for another frontend (clash): left to tc, which counts it',
      setup: { ...ALL, ct: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), ctVal(NODE_IP2, 9999, nowNs())]] },
      input: pkt(), ...none,
    },
    {
      description: 'reply to a masqueraded flow on a published port: left to tc (reverse SNAT first)',
      setup: { ...ALL, snat: [[{ saddr: CLIENT, daddr: NODE_IP, sport: 40001, dport: 8080, proto: tcp, dir: SNAT_DIR_IN }, { addr: BACKEND2, port: 5555, state: 1, flags: 0, last_seen_ns: 1n }]] },
      input: pkt(), ...none,
    },
    {
      description: 'ARP (0x0806)',
      setup: ALL,
      input: buildFrame({ srcMac: CLIENT_MAC, dstMac: 'ff:ff:ff:ff:ff:ff', ethType: ETH_P_ARP, body: Buffer.from('0001080006040001' + '02000000c130' + 'c000021e' + '000000000000' + 'c6120001', 'hex') }),
      ...none,
    },
    {
      description: 'IPv6 (0x86dd)',
      setup: ALL,
      input: buildFrame({ srcMac: CLIENT_MAC, dstMac: NODE_MAC, ethType: ETH_P_IPV6, body: Buffer.concat([Buffer.from('6000000000080640', 'hex'), Buffer.alloc(32, 0x20), Buffer.from('9c411f90', 'hex'), Buffer.alloc(4)]) }),
      ...none,
    },
    { description: 'VLAN-tagged frame (0x8100) is not parsed', setup: ALL, input: buildFrame({ ethType: 0x8100, body: pkt().subarray(12) }), ...none },
    { description: 'ICMP echo to a node address', setup: ALL, input: pkt({ proto: 'icmp', sport: 8080, dport: 8080 }), ...none },
    { description: 'other protocol (GRE)', setup: ALL, input: pkt({ proto: 47, payload: Buffer.from('1f90', 'hex') }), ...none },
    { description: 'first fragment (MF set, offset 0) to a published port', setup: ALL, input: pkt({ moreFragments: true }), ...none },
    { description: 'UDP first fragment to a published port', setup: ALL, input: pkt({ proto: 'udp', dport: 5353, moreFragments: true }), ...none },
    { description: 'last fragment whose bytes look like a published port', setup: ALL, input: pkt({ fragOffset: 185 }), ...none },
    { description: 'middle fragment', setup: ALL, input: pkt({ proto: 'udp', dport: 5353, fragOffset: 1, moreFragments: true }), ...none },
    { description: 'TCP with 4 bytes of IP options: left to tc', setup: ALL, input: pkt({ ipOptions: Buffer.from([1, 1, 1, 0]) }), ...none },
    { description: 'UDP with 40 bytes of IP options: left to tc', setup: ALL, input: pkt({ proto: 'udp', dport: 5353, ipOptions: Buffer.alloc(40, 1) }), ...none },
    // ---- malformed: all to a published port, all unchanged and passed ----
    { description: 'malformed: Ethernet header only (14 bytes, IPv4 EtherType)', setup: ALL, input: pkt().subarray(0, 14), ...none },
    { description: 'malformed: truncated IPv4 header (14 + 10 bytes)', setup: ALL, input: pkt().subarray(0, L3 + 10), ...none },
    { description: 'malformed: truncated IPv4 header (14 + 19 bytes)', setup: ALL, input: pkt().subarray(0, L3 + 19), ...none },
    {
      description: 'malformed: TCP datagram that ends with its IPv4 header',
      setup: ALL, input: edit(pkt().subarray(0, L3 + 20), (b) => { b.writeUInt16BE(20, L3 + 2); }), ...none,
    },
    {
      description: 'malformed: TCP header cut short by the frame (tot_len claims more)',
      setup: ALL, input: pkt().subarray(0, L4 + 12), ...none,
    },
    {
      description: 'malformed: TCP header complete in the frame, tot_len ends inside it',
      setup: ALL, input: edit(pkt(), (b) => { b.writeUInt16BE(20 + 12, L3 + 2); }), ...none,
    },
    { description: 'malformed: TCP doff < 5', setup: ALL, input: edit(pkt(), (b) => { b[L4 + 12] = 0x40; }, false), ...none },
    { description: 'malformed: TCP doff past tot_len', setup: ALL, input: edit(pkt(), (b) => { b[L4 + 12] = 0xf0; }, false), ...none },
    {
      description: 'malformed: UDP header cut short (tot_len 24)',
      setup: ALL, input: edit(pkt({ proto: 'udp', dport: 5353 }), (b) => { b.writeUInt16BE(24, L3 + 2); }), ...none,
    },
    { description: 'malformed: UDP frame ends inside the UDP header', setup: ALL, input: pkt({ proto: 'udp', dport: 5353 }).subarray(0, L4 + 4), ...none },
    { description: 'malformed: ihl < 5', setup: ALL, input: edit(pkt(), (b) => { b[L3] = 0x44; }, false), ...none },
    { description: 'malformed: IP version 6 under the IPv4 EtherType', setup: ALL, input: edit(pkt(), (b) => { b[L3] = 0x65; }, false), ...none },
    { description: 'malformed: tot_len larger than the packet', setup: ALL, input: edit(pkt(), (b) => { b.writeUInt16BE(b.length - L3 + 1, L3 + 2); }), ...none },
    { description: 'malformed: tot_len smaller than the IPv4 header', setup: ALL, input: edit(pkt(), (b) => { b.writeUInt16BE(19, L3 + 2); }), ...none },
    {
      description: 'malformed: ihl points past the packet (ihl 15, 20-byte datagram)',
      setup: ALL, input: edit(pkt().subarray(0, L3 + 20), (b) => { b[L3] = 0x4f; b.writeUInt16BE(20, L3 + 2); }, false), ...none,
    },
  ];
}

// ---- the probe for dnat_flow_known ------------------------------------------

const PROBE_SRC = `// test probe: dnat_flow_known() of a plain TCP/UDP packet
#include "lib/common.h"
#include "lib/xdp_nat.h"

SEC("xdp")
int xdp_flow_probe(struct xdp_md *ctx)
{
	struct pkt p = {};
	struct iphdr *ip = 0;
	void *l4 = 0;

	if (xdp_parse(ctx, &p, &ip, &l4) != PARSE_L4)
		return XDP_ABORTED;
	return dnat_flow_known(&p) ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "Dual BSD/GPL";
`;

interface Env {
  bpf: BpfRoot;
  prog: string;
  probe: string;
  maps: ReturnType<typeof openCaseMaps>;
  stats: TypedMap<'bpfnet_port_stats'>;
  snat: TypedMap<'bpfnet_snat'>;
}

describe('xdp_uplink: published-port DNAT in XDP', () => {
  let env: Env | undefined;
  let probeCleanup: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    const bpf = await withBpfRoot();
    try {
      const obj = await loadObject('xdp_uplink', { root: bpf.root, progType: 'xdp' });
      const probe = await loadProbe(bpf.root, 'xdp_flow_probe', PROBE_SRC, 'xdp');
      probeCleanup = probe.cleanup;
      expect(probe.maps, 'probe shares the pinned maps').toEqual(obj.maps);
      env = {
        bpf,
        prog: obj.progs.xdp_uplink!,
        probe: probe.progs.xdp_flow_probe!,
        maps: openCaseMaps(bpf.mapDir),
        stats: TypedMap.open(bpf.mapDir, 'bpfnet_port_stats'),
        snat: TypedMap.open(bpf.mapDir, 'bpfnet_snat'),
      };
      expect(env.prog).toBeTruthy();
      expect(env.probe).toBeTruthy();
    } catch (e) {
      await bpf.cleanup();
      throw e;
    }
  });

  afterEach(async () => {
    if (!env) return;
    await clearMaps(env.bpf.mapDir);
    await env.stats.deleteMany((await env.stats.toArray()).map(([k]) => k));
    await env.snat.deleteMany((await env.snat.toArray()).map(([k]) => k));
  });

  afterAll(async () => {
    env?.maps.close();
    env?.stats.close();
    env?.snat.close();
    await env?.bpf.cleanup();
    await probeCleanup?.();
  });

  async function setup(s: XdpSetup | undefined): Promise<void> {
    const e = env!;
    if (s?.ports) await e.maps.ports.setMany(s.ports);
    if (s?.addrs) await e.maps.addrs.setMany(s.addrs.map((a) => [{ addr: a }, { flags: 0 }]));
    if (s?.ct) await e.maps.ct.setMany(s.ct);
    if (s?.snat) await e.snat.setMany(s.snat);
  }

  async function runCase(c: XdpCase): Promise<void> {
    const e = env!;
    await setup(c.setup);
    const before = await readMetrics(e.bpf.mapDir);
    const r = await testRun(e.prog, Buffer.from(c.input), { netns: e.bpf.netns, xdp: true });

    expect(r.retval, 'verdict').toBe(XDP_PASS);
    const want = c.expectOutput === 'unchanged' ? c.input : c.expectOutput;
    expect(r.output.toString('hex'), 'output packet').toBe(want.toString('hex'));
    if (c.expectOutput !== 'unchanged') expect(verifyChecksums(r.output), 'checksums').toBe(true);

    const id = (k: NatCtKey) => `${k.saddr}:${k.sport} -> ${k.daddr}:${k.dport} proto ${k.proto}`;
    const setupCt = new Map((c.setup?.ct ?? []).map(([k, v]) => [id(k), v]));
    const touched = new Set((c.expectCtTouched ?? []).map(id));
    const wantCt = c.expectCt ?? (c.setup?.ct ?? []).map(([k, v]): CtExpectation => [k, { orig_addr: v.orig_addr, orig_port: v.orig_port }]);
    const gotCt = await e.maps.ct.toArray();
    const norm = (rows: CtExpectation[]) => rows.map(([k, v]) => `${id(k)} => ${v.orig_addr}:${v.orig_port}`).sort();
    expect(norm(gotCt.map(([k, v]) => [k, { orig_addr: v.orig_addr, orig_port: v.orig_port }])), 'bpfnet_nat_ct').toEqual(norm(wantCt));
    for (const [k, v] of gotCt) {
      expect(v.flags, 'ct flags').toBe(0);
      expect(v.client_addr, 'ct client_addr').toBe('0.0.0.0');
      const old = setupCt.get(id(k));
      if (!old) expect(v.last_seen_ns, 'new ct entry has a timestamp').toBeGreaterThan(0n);
      else if (touched.has(id(k))) expect(v.last_seen_ns, `ct ${id(k)} refreshed`).toBeGreaterThan(old.last_seen_ns);
      else expect(v.last_seen_ns, `ct ${id(k)} untouched`).toBe(old.last_seen_ns);
    }

    const delta = metricsDelta(before, await readMetrics(e.bpf.mapDir));
    const stats = await e.stats.toArray();
    if (c.expectDnat) {
      expect(delta, 'metrics').toEqual({ METRIC_DNAT: { packets: 1, bytes: c.input.length } });
      expect(stats, 'per-port counters').toEqual([[c.expectDnat, { packets: 1n, bytes: BigInt(c.input.length) }]]);
    } else {
      expect(delta, 'metrics: XDP counts nothing it passes untouched').toEqual({});
      expect(stats, 'per-port counters').toEqual([]);
    }
  }

  describe('DNAT', () => {
    for (const c of dnatCases()) it(c.description, () => runCase(c));
  });

  describe('passed untouched (tc decides)', () => {
    for (const c of passCases()) it(c.description, () => runCase(c));
  });

  it('a second packet of the flow refreshes the ct entry and adds to the same per-port counter', async () => {
    const e = env!;
    await setup(ALL);
    const input = pkt({ sport: 41000 });
    await testRun(e.prog, input, { netns: e.bpf.netns, xdp: true });
    const [first] = await e.maps.ct.toArray();
    const r = await testRun(e.prog, input, { netns: e.bpf.netns, xdp: true });
    expect(r.output.toString('hex')).toBe(pkt({ sport: 41000, dst: BACKEND, dport: 80 }).toString('hex'));
    const ct = await e.maps.ct.toArray();
    expect(ct).toHaveLength(1);
    expect(ct[0]![1].last_seen_ns).toBeGreaterThan(first![1].last_seen_ns);
    expect(await e.stats.toArray()).toEqual([[WEB_KEY, { packets: 2n, bytes: BigInt(2 * input.length) }]]);
  });

  it('the translated packet is not translated again (tc after XDP sees a container address)', async () => {
    const e = env!;
    await setup({ ports: [WEB_TCP, port(ANY, 8080, tcp, BACKEND, 80), port(ANY, 80, tcp, BACKEND2, 8000)], addrs: [NODE_IP] });
    const once = (await testRun(e.prog, pkt(), { netns: e.bpf.netns, xdp: true })).output;
    const twice = await testRun(e.prog, once, { netns: e.bpf.netns, xdp: true });
    expect(twice.output.toString('hex')).toBe(pkt({ dst: BACKEND, dport: 80 }).toString('hex'));
  });

  describe('dnat_flow_known (for uplink.c\'s direct-access check)', () => {
    const translated = (o: Partial<PacketSpec> = {}) => pkt({ dst: BACKEND, dport: 80, ...o });
    const known = async (input: Buffer) => (await testRun(env!.probe, input, { netns: env!.bpf.netns, xdp: true })).retval;

    it('known after XDP translated the flow (exact frontend)', async () => {
      await setup(ALL);
      const out = (await testRun(env!.prog, pkt(), { netns: env!.bpf.netns, xdp: true })).output;
      expect(await known(out)).toBe(XDP_PASS);
    });

    it('known after XDP translated the flow (UDP, wildcard frontend)', async () => {
      await setup({ ports: [port(ANY, 5353, udp, BACKEND, 53)], addrs: [NODE_IP] });
      const out = (await testRun(env!.prog, pkt({ proto: 'udp', dport: 5353 }), { netns: env!.bpf.netns, xdp: true })).output;
      expect(await known(out)).toBe(XDP_PASS);
    });

    it('unknown: no ct entry (direct access from outside)', async () => {
      await setup(ALL);
      expect(await known(translated())).toBe(XDP_DROP);
    });

    it('unknown: ct entry for another client port', async () => {
      await setup({ ...ALL, ct: [[ctKey(BACKEND, 80, CLIENT, 40002, tcp), ctVal(NODE_IP, 8080, nowNs())]] });
      expect(await known(translated())).toBe(XDP_DROP);
    });

    it('unknown: ct entry for another container port', async () => {
      await setup({ ...ALL, ct: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), ctVal(NODE_IP, 8080, nowNs())]] });
      expect(await known(translated({ dport: 22 }))).toBe(XDP_DROP);
    });

    it('unknown: ct entry of another protocol', async () => {
      await setup({ ...ALL, ct: [[ctKey(BACKEND, 80, CLIENT, 40001, udp), ctVal(NODE_IP, 8080, nowNs())]] });
      expect(await known(translated())).toBe(XDP_DROP);
    });

    it('unknown: the frontend was unpublished (stale ct entry)', async () => {
      await setup({ ports: [DNS_UDP], addrs: [NODE_IP], ct: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), ctVal(NODE_IP, 8080, nowNs())]] });
      expect(await known(translated())).toBe(XDP_DROP);
    });

    it('unknown: the frontend now points at another container', async () => {
      await setup({ ports: [port(NODE_IP, 8080, tcp, BACKEND2, 80)], addrs: [NODE_IP], ct: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), ctVal(NODE_IP, 8080, nowNs())]] });
      expect(await known(translated())).toBe(XDP_DROP);
    });

    it('unknown: wildcard frontend but the recorded address is no longer a node address', async () => {
      await setup({ ports: [port(ANY, 8080, tcp, BACKEND, 80)], addrs: [NODE_IP2], ct: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), ctVal(NODE_IP, 8080, nowNs())]] });
      expect(await known(translated())).toBe(XDP_DROP);
    });

    it('unknown: hairpin entries (their peer is the gateway, never an outside client)', async () => {
      await setup({ ...ALL, ct: [[ctKey(BACKEND, 80, CLIENT, 40001, tcp), ctVal(NODE_IP, 8080, nowNs(), 1)]] });
      expect(await known(translated())).toBe(XDP_DROP);
    });

    it('the probe itself refuses what it cannot parse', async () => {
      expect(await known(pkt({ proto: 'icmp' }))).toBe(XDP_ABORTED);
    });
  });
});
