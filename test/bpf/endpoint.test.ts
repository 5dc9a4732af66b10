/**
 * Table-driven BPF_PROG_TEST_RUN tests of from_container beyond reverse NAT
 * (rnat.test.ts): anti-spoofing, internal networks, DNAT of published ports
 * reached from a container (node IP, gateway, hairpin), isolation, ICC, and
 * same-network delivery by redirect_peer. Every case sets the maps up, runs
 * one packet, and checks the verdict, the output byte for byte (expected
 * packets built independently with buildPacket), the complete reverse-NAT
 * state, the per-port counters and every metric that moved.
 *
 * BPF_PROG_TEST_RUN runs a tc program on the test namespace's loopback
 * (ifindex 1): the sending container's bpfnet_ifaces entry is keyed by 1.
 */
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { testRun, type TestRunResult } from '../../src/loader/testrun.js';
import { TypedMap } from '../../src/maps/map.js';
import type { EndpointInfo, NatCtKey, NatCtValue, NetKey, NetValue, PortKey, PortValue } from '../../src/maps/generated/abi.js';
import {
  bpfSuite,
  ctKey,
  ctVal as ctValue,
  portRow as port,
  isEinval,
  metricsDelta,
  readMetrics,
  TC_ACT_OK,
  TC_ACT_SHOT,
  type MetricName,
} from '../harness/bpfroot.js';
import {
  buildFrame,
  buildPacket,
  editFrame as edit,
  ETH_P_ARP,
  ETH_P_IPV6,
  L3,
  L4,
  macToBuf,
  ipToBuf,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
  verifyChecksums,
  type PacketSpec,
} from '../harness/packet.js';
import { ANY, NODE_IP, NODE_MAC, tcp, udp } from '../harness/addresses.js';
import { BpfnetError } from '../../src/util/errors.js';

const TC_ACT_REDIRECT = 7;
const LO = 1; // skb->ifindex under BPF_PROG_TEST_RUN
const NET_F_INTERNAL = 0x1;
const NET_F_NO_ICC = 0x2;
const NAT_CT_F_HAIRPIN = 0x1;

// ---- the world ---------------------------------------------------------------

interface Net { id: number; subnet: string; gateway: string; flags: number }
const NET_A: Net = { id: 1, subnet: '198.19.0.0/24', gateway: '198.19.0.1', flags: 0 };
const NET_B: Net = { id: 2, subnet: '198.20.0.0/24', gateway: '198.20.0.1', flags: 0 };
const NET_NOICC: Net = { id: 3, subnet: '198.21.0.0/24', gateway: '198.21.0.1', flags: NET_F_NO_ICC };
const NET_INT: Net = { id: 4, subnet: '198.22.0.0/24', gateway: '198.22.0.1', flags: NET_F_INTERNAL };
const NETS = [NET_A, NET_B, NET_NOICC, NET_INT];

function ep(addr: string, ifindex: number, net: Net): EndpointInfo {
  const [a, b, c, d] = addr.split('.').map(Number);
  const mac = ['02', '42', a, b, c, d].map((x) => (typeof x === 'number' ? x.toString(16).padStart(2, '0') : x)).join(':');
  return { addr, ifindex, mac, net_id: net.id, flags: 0 };
}

const C1 = ep('198.19.0.2', 11, NET_A); // the usual sender
const C2 = ep('198.19.0.3', 12, NET_A);
const D1 = ep('198.20.0.2', 13, NET_B);
const N1 = ep('198.21.0.2', 14, NET_NOICC);
const N2 = ep('198.21.0.3', 15, NET_NOICC);
const I1 = ep('198.22.0.2', 16, NET_INT);
const I2 = ep('198.22.0.3', 17, NET_INT);
const ENDPOINTS = [C1, C2, D1, N1, N2, I1, I2];
const OUTSIDE = '203.0.113.7';
const CLIENT = '192.0.2.30'; // an external client (through the uplink)
const GW_MAC = NODE_MAC; // the bridge's MAC: where a container sends routed traffic

function ctVal(origAddr: string, origPort: number, flags = 0, client = '0.0.0.0'): NatCtValue {
  return ctValue(origAddr, origPort, { flags, client });
}

/** Published: C2:80 on every node address, C2:53/udp, D1:90 on NODE_IP only, C1:80 (hairpin) on 8081. */
const WEB = port(ANY, 8080, tcp, C2.addr, 80);
const DNS = port(ANY, 8053, udp, C2.addr, 53);
const OTHER_NET = port(NODE_IP, 9090, tcp, D1.addr, 90);
const SELF = port(ANY, 8081, tcp, C1.addr, 80);
const SELF_UDP = port(ANY, 8081, udp, C1.addr, 53);
const PORTS = [WEB, DNS, OTHER_NET, SELF, SELF_UDP];

// ---- packets -----------------------------------------------------------------

/** A packet as C1 sends it (routed: to the gateway's MAC); override anything. */
function from(sender: EndpointInfo, o: Partial<PacketSpec> = {}): Buffer {
  return buildPacket({
    srcMac: sender.mac, dstMac: GW_MAC,
    src: sender.addr, dst: OUTSIDE, proto: 'tcp', sport: 40001, dport: 80,
    tcpFlags: TCP_SYN, id: 0x3333, ttl: 64, payload: Buffer.from('hello, peer'), // odd length
    ...o,
  });
}
const c1 = (o: Partial<PacketSpec> = {}) => from(C1, o);

function arp(o: { srcMac?: string; sha?: string; spa?: string; tpa?: string; oper?: number; htype?: number; truncate?: number } = {}): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(o.htype ?? 1, 0);
  body.writeUInt16BE(0x0800, 2);
  body[4] = 6;
  body[5] = 4;
  body.writeUInt16BE(o.oper ?? 1, 6);
  macToBuf(o.sha ?? C1.mac).copy(body, 8);
  ipToBuf(o.spa ?? C1.addr).copy(body, 14);
  ipToBuf(o.tpa ?? NET_A.gateway).copy(body, 24);
  const frame = buildFrame({ srcMac: o.srcMac ?? C1.mac, dstMac: 'ff:ff:ff:ff:ff:ff', ethType: ETH_P_ARP, body: o.truncate ? body.subarray(0, o.truncate) : body });
  // Ethernet minimum frame: pad like a NIC would (harmless here, and keeps BPF_PROG_TEST_RUN happy)
  return frame.length < 60 && !o.truncate ? Buffer.concat([frame, Buffer.alloc(60 - frame.length)]) : frame;
}

function ipv6(srcMac: string): Buffer {
  return buildFrame({ srcMac, dstMac: '33:33:00:00:00:02', ethType: ETH_P_IPV6, body: Buffer.concat([Buffer.from('6000000000083aff', 'hex'), Buffer.alloc(32, 0xfe), Buffer.from('8500000000000000', 'hex')]) });
}

// ---- cases -------------------------------------------------------------------

interface Setup {
  /** The sending container (bpfnet_ifaces[1]); null: no entry. Default C1. */
  sender?: EndpointInfo | null;
  nets?: Net[];
  endpoints?: EndpointInfo[];
  ports?: [PortKey, PortValue][];
  addrs?: string[];
  ct?: [NatCtKey, NatCtValue][];
}

type CtRow = [NatCtKey, Omit<NatCtValue, 'last_seen_ns'>];

interface EpCase {
  description: string;
  setup?: Setup;
  input: Buffer;
  expectVerdict: number;
  expectOutput: Buffer | 'unchanged';
  /** Every metric that moves, with its packet count (bytes = that many times the input length). */
  expectMetrics: Partial<Record<MetricName, number>>;
  /** Complete bpfnet_nat_ct afterwards; default: setup.ct unchanged. */
  expectCt?: CtRow[];
  /** Complete bpfnet_port_stats afterwards (packets; bytes = input length each). */
  expectPortStats?: [PortKey, number][];
  kernelMayReject?: boolean;
}

/** The full world with `sender` behind the device. */
const WORLD: Setup = { nets: NETS, endpoints: ENDPOINTS, ports: PORTS, addrs: [NODE_IP] };
const w = (o: Setup = {}): Setup => ({ ...WORLD, ...o });

const spoofCases: EpCase[] = [
  {
    description: 'spoofed IPv4 source (another address of its own subnet)',
    setup: w(),
    input: c1({ src: '198.19.0.9' }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'spoofed IPv4 source: another container\'s address',
    setup: w(),
    input: c1({ src: C2.addr, dst: OUTSIDE }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'spoofed IPv4 source: a node address, toward a published port (no DNAT, no state)',
    setup: w(),
    input: c1({ src: NODE_IP, dst: NODE_IP, dport: 8080 }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'spoofed Ethernet source with the right IPv4 source',
    setup: w(),
    input: c1({ srcMac: C2.mac, dst: C2.addr }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'spoofed source of an ICMP echo',
    setup: w(),
    input: c1({ proto: 'icmp', src: '198.19.0.77', sport: 7, dport: 1 }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'spoofed source of a UDP fragment',
    setup: w(),
    input: c1({ proto: 'udp', src: '198.19.0.77', moreFragments: true }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'spoofed source of a malformed packet (TCP doff < 5)',
    setup: w(),
    input: edit(c1({ src: '198.19.0.77' }), (b) => { b[L4 + 12] = 0x30; }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'spoofed source of a malformed packet (tot_len beyond the frame)',
    setup: w(),
    input: edit(c1({ src: '198.19.0.77' }), (b) => { b.writeUInt16BE(b.length, L3 + 2); }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'spoofed source 0.0.0.0 (no DHCP here)',
    setup: w(),
    input: c1({ proto: 'udp', src: '0.0.0.0', dst: '255.255.255.255', sport: 68, dport: 67 }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'ARP request with another sender IP',
    setup: w(),
    input: arp({ spa: C2.addr }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'ARP reply with another sender MAC (Ethernet source right)',
    setup: w(),
    input: arp({ oper: 2, sha: C2.mac, tpa: C2.addr }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'gratuitous ARP claiming the gateway address',
    setup: w(),
    input: arp({ oper: 2, spa: NET_A.gateway, tpa: NET_A.gateway }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'ARP with another Ethernet source',
    setup: w(),
    input: arp({ srcMac: '02:00:00:00:66:66' }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'ARP that is not Ethernet/IPv4 (htype 6) cannot be checked',
    setup: w(),
    input: arp({ htype: 6 }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'truncated ARP (20 of 28 bytes) cannot be checked',
    setup: w(),
    input: arp({ truncate: 20 }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
  {
    description: 'IPv6 with another Ethernet source',
    setup: w(),
    input: ipv6('02:00:00:00:66:66'),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_SPOOF: 1 },
  },
];

const notSpoofCases: EpCase[] = [
  {
    description: 'ARP request for the gateway',
    setup: w(),
    input: arp(),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'ARP reply to another container',
    setup: w(),
    input: arp({ oper: 2, tpa: C2.addr }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'ARP probe (sender IP 0.0.0.0, RFC 5227)',
    setup: w(),
    input: arp({ spa: '0.0.0.0', tpa: C1.addr }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'IPv6 from the endpoint\'s MAC passes (no IPv6 policy yet)',
    setup: w(),
    input: ipv6(C1.mac),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'endpoint MAC unknown (00:00:00:00:00:00): only addresses are checked',
    setup: w({ sender: { ...C1, mac: '00:00:00:00:00:00' } }),
    input: c1({ srcMac: '02:00:00:00:66:66' }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'no bpfnet_ifaces entry (endpoint being set up): no check',
    setup: w({ sender: null }),
    input: c1({ src: '198.19.0.9', srcMac: '02:00:00:00:66:66' }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'no bpfnet_ifaces entry: spoofed ARP passes too',
    setup: w({ sender: null }),
    input: arp({ spa: C2.addr }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
];

const policyCases: EpCase[] = [
  {
    description: 'to the outside: passed to the stack untouched (to_uplink masquerades it)',
    setup: w(),
    input: c1(),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'to its own gateway',
    setup: w(),
    input: c1({ dst: NET_A.gateway, dport: 22 }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'to a node address without a published port',
    setup: w(),
    input: c1({ dst: NODE_IP, dport: 22 }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'ICC: TCP to a container of the same network is redirected into it, destination MAC rewritten',
    setup: w(),
    input: c1({ dst: C2.addr }),
    expectVerdict: TC_ACT_REDIRECT, expectOutput: c1({ dst: C2.addr, dstMac: C2.mac }), expectMetrics: { METRIC_REDIRECT: 1 },
  },
  {
    description: 'ICC: already addressed to the peer\'s MAC (bridge semantics), TTL untouched',
    setup: w(),
    input: c1({ dst: C2.addr, dstMac: C2.mac, proto: 'udp', ttl: 1 }),
    expectVerdict: TC_ACT_REDIRECT, expectOutput: 'unchanged', expectMetrics: { METRIC_REDIRECT: 1 },
  },
  {
    description: 'ICC: ICMP echo to a container of the same network',
    setup: w(),
    input: c1({ dst: C2.addr, proto: 'icmp', sport: 9, dport: 1 }),
    expectVerdict: TC_ACT_REDIRECT, expectOutput: c1({ dst: C2.addr, proto: 'icmp', sport: 9, dport: 1, dstMac: C2.mac }), expectMetrics: { METRIC_REDIRECT: 1 },
  },
  {
    description: 'ICC: a fragment to a container of the same network',
    setup: w(),
    input: c1({ dst: C2.addr, proto: 'udp', fragOffset: 100 }),
    expectVerdict: TC_ACT_REDIRECT, expectOutput: c1({ dst: C2.addr, proto: 'udp', fragOffset: 100, dstMac: C2.mac }), expectMetrics: { METRIC_REDIRECT: 1 },
  },
  {
    description: 'same network, address with no endpoint (not programmed yet): left to the bridge',
    setup: w(),
    input: c1({ dst: '198.19.0.50' }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'isolation: TCP to another network\'s container',
    setup: w(),
    input: c1({ dst: D1.addr }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_ISOLATION: 1 },
  },
  {
    description: 'isolation: ICMP to another network\'s container',
    setup: w(),
    input: c1({ dst: D1.addr, proto: 'icmp' }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_ISOLATION: 1 },
  },
  {
    description: 'isolation: a fragment to another network\'s container',
    setup: w(),
    input: c1({ dst: D1.addr, proto: 'udp', moreFragments: true }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_ISOLATION: 1 },
  },
  {
    description: 'isolation holds without a bpfnet_ifaces entry (source network from bpfnet_nets)',
    setup: w({ sender: null }),
    input: c1({ dst: D1.addr }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_ISOLATION: 1 },
  },
  {
    description: 'another network\'s gateway is the node, not a container: passes',
    setup: w(),
    input: c1({ dst: NET_B.gateway, dport: 22 }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'ICC off: TCP to a container of the same network',
    setup: w({ sender: N1 }),
    input: from(N1, { dst: N2.addr }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_ICC: 1 },
  },
  {
    description: 'ICC off: ICMP to a container of the same network',
    setup: w({ sender: N1 }),
    input: from(N1, { dst: N2.addr, proto: 'icmp' }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_ICC: 1 },
  },
  {
    description: 'ICC off: subnet broadcast',
    setup: w({ sender: N1 }),
    input: from(N1, { dst: '198.21.0.255', proto: 'udp' }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_ICC: 1 },
  },
  {
    description: 'ICC off: limited broadcast',
    setup: w({ sender: N1 }),
    input: from(N1, { dst: '255.255.255.255', proto: 'udp' }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_ICC: 1 },
  },
  {
    description: 'ICC off: multicast',
    setup: w({ sender: N1 }),
    input: from(N1, { dst: '224.0.0.251', proto: 'udp', sport: 5353, dport: 5353 }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_ICC: 1 },
  },
  {
    description: 'ICC off: its gateway is still reachable',
    setup: w({ sender: N1 }),
    input: from(N1, { dst: NET_NOICC.gateway }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'ICC off: the outside is still reachable',
    setup: w({ sender: N1 }),
    input: from(N1),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'ICC on: limited broadcast and multicast pass to the bridge',
    setup: w(),
    input: c1({ dst: '255.255.255.255', proto: 'udp' }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'internal: to the outside',
    setup: w({ sender: I1 }),
    input: from(I1),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_INTERNAL: 1 },
  },
  {
    description: 'internal: to a node address outside the subnet',
    setup: w({ sender: I1 }),
    input: from(I1, { dst: NODE_IP, dport: 22 }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_INTERNAL: 1 },
  },
  {
    description: 'internal: to a published port on a node address (no DNAT out of an internal network)',
    setup: w({ sender: I1 }),
    input: from(I1, { dst: NODE_IP, dport: 8080 }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_INTERNAL: 1 },
  },
  {
    description: 'internal: to another network\'s container (internal before isolation)',
    setup: w({ sender: I1 }),
    input: from(I1, { dst: C1.addr }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_INTERNAL: 1 },
  },
  {
    description: 'internal: a reply to a client outside the subnet, even with reverse-NAT state',
    setup: w({ sender: I1, ct: [[ctKey(I1.addr, 80, CLIENT, 40001, tcp), ctVal(NODE_IP, 8080)]] }),
    input: from(I1, { sport: 80, dst: CLIENT, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK }),
    expectVerdict: TC_ACT_SHOT, expectOutput: 'unchanged', expectMetrics: { METRIC_DROP_INTERNAL: 1 },
  },
  {
    description: 'internal: to its gateway (inside the subnet) passes',
    setup: w({ sender: I1 }),
    input: from(I1, { dst: NET_INT.gateway }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'internal: the gateway\'s published port is not DNATed',
    setup: w({ sender: I1 }),
    input: from(I1, { dst: NET_INT.gateway, dport: 8080 }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'internal: a container of the same network is delivered',
    setup: w({ sender: I1 }),
    input: from(I1, { dst: I2.addr }),
    expectVerdict: TC_ACT_REDIRECT, expectOutput: from(I1, { dst: I2.addr, dstMac: I2.mac }), expectMetrics: { METRIC_REDIRECT: 1 },
  },
  {
    description: 'internal: limited broadcast stays on the bridge',
    setup: w({ sender: I1 }),
    input: from(I1, { dst: '255.255.255.255', proto: 'udp' }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
];

const nodeStats = (k: [PortKey, PortValue], n = 1): [PortKey, number] => [k[0], n];

const dnatCases: EpCase[] = [
  {
    description: 'TCP SYN to node IP:8080 (wildcard): DNAT to the other container, TTL-1, redirected into it',
    setup: w(),
    input: c1({ dst: NODE_IP, dport: 8080 }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ dst: C2.addr, dport: 80, ttl: 63, dstMac: C2.mac }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_REDIRECT: 1 },
    expectCt: [[ctKey(C2.addr, 80, C1.addr, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080, flags: 0, client_addr: '0.0.0.0' }]],
    expectPortStats: [nodeStats(WEB)],
  },
  {
    description: 'TCP SYN to the gateway:8080 (not in bpfnet_addrs): the gateway counts as a node address',
    setup: w(),
    input: c1({ dst: NET_A.gateway, dport: 8080 }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ dst: C2.addr, dport: 80, ttl: 63, dstMac: C2.mac }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_REDIRECT: 1 },
    expectCt: [[ctKey(C2.addr, 80, C1.addr, 40001, tcp), { orig_addr: NET_A.gateway, orig_port: 8080, flags: 0, client_addr: '0.0.0.0' }]],
    expectPortStats: [nodeStats(WEB)],
  },
  {
    description: 'TCP SYN to an exact frontend whose backend is on another network: allowed (published port)',
    setup: w(),
    input: c1({ dst: NODE_IP, dport: 9090 }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ dst: D1.addr, dport: 90, ttl: 63, dstMac: D1.mac }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_REDIRECT: 1 },
    expectCt: [[ctKey(D1.addr, 90, C1.addr, 40001, tcp), { orig_addr: NODE_IP, orig_port: 9090, flags: 0, client_addr: '0.0.0.0' }]],
    expectPortStats: [nodeStats(OTHER_NET)],
  },
  {
    description: 'ICC off does not stop a published port reached through the node',
    setup: w({ sender: N1, ports: [port(ANY, 8080, tcp, N2.addr, 80)] }),
    input: from(N1, { dst: NET_NOICC.gateway, dport: 8080 }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: from(N1, { dst: N2.addr, dport: 80, ttl: 63, dstMac: N2.mac }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_REDIRECT: 1 },
    expectCt: [[ctKey(N2.addr, 80, N1.addr, 40001, tcp), { orig_addr: NET_NOICC.gateway, orig_port: 8080, flags: 0, client_addr: '0.0.0.0' }]],
    expectPortStats: [[{ addr: ANY, port: 8080, proto: tcp }, 1]],
  },
  {
    description: 'UDP to node IP:8053',
    setup: w(),
    input: c1({ dst: NODE_IP, proto: 'udp', dport: 8053 }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ dst: C2.addr, proto: 'udp', dport: 53, ttl: 63, dstMac: C2.mac }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_REDIRECT: 1 },
    expectCt: [[ctKey(C2.addr, 53, C1.addr, 40001, udp), { orig_addr: NODE_IP, orig_port: 8053, flags: 0, client_addr: '0.0.0.0' }]],
    expectPortStats: [nodeStats(DNS)],
  },
  {
    description: 'UDP without checksum to node IP:8053: stays without',
    setup: w(),
    input: c1({ dst: NODE_IP, proto: 'udp', dport: 8053, udpChecksumZero: true }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ dst: C2.addr, proto: 'udp', dport: 53, ttl: 63, dstMac: C2.mac, udpChecksumZero: true }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_REDIRECT: 1 },
    expectCt: [[ctKey(C2.addr, 53, C1.addr, 40001, udp), { orig_addr: NODE_IP, orig_port: 8053, flags: 0, client_addr: '0.0.0.0' }]],
    expectPortStats: [nodeStats(DNS)],
  },
  {
    description: 'ongoing TCP flow (ACK) with state: DNATed, state refreshed',
    setup: w({ ct: [[ctKey(C2.addr, 80, C1.addr, 40001, tcp), ctVal(NODE_IP, 8080)]] }),
    input: c1({ dst: NODE_IP, dport: 8080, tcpFlags: TCP_ACK | TCP_PSH }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ dst: C2.addr, dport: 80, ttl: 63, dstMac: C2.mac, tcpFlags: TCP_ACK | TCP_PSH }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_REDIRECT: 1 },
    expectCt: [[ctKey(C2.addr, 80, C1.addr, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080, flags: 0, client_addr: '0.0.0.0' }]],
    expectPortStats: [nodeStats(WEB)],
  },
  {
    description: 'TCP without state that is not a SYN (a reply to a node socket on port 8080): not DNATed',
    setup: w(),
    input: c1({ dst: NODE_IP, sport: 22, dport: 8080, tcpFlags: TCP_SYN | TCP_ACK }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'backend not a local endpoint (bpfnet_endpoints not programmed): translated, left to the FIB (empty here: to the stack)',
    setup: w({ endpoints: [] }),
    input: c1({ dst: NODE_IP, dport: 8080 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: c1({ dst: C2.addr, dport: 80 }),
    expectMetrics: { METRIC_DNAT: 1 },
    expectCt: [[ctKey(C2.addr, 80, C1.addr, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080, flags: 0, client_addr: '0.0.0.0' }]],
    expectPortStats: [nodeStats(WEB)],
  },
  {
    description: 'TTL 1: translated, handed to the stack to expire there',
    setup: w(),
    input: c1({ dst: NODE_IP, dport: 8080, ttl: 1 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: c1({ dst: C2.addr, dport: 80, ttl: 1 }),
    expectMetrics: { METRIC_DNAT: 1 },
    expectCt: [[ctKey(C2.addr, 80, C1.addr, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080, flags: 0, client_addr: '0.0.0.0' }]],
    expectPortStats: [nodeStats(WEB)],
  },
  {
    description: 'clash: the reply tuple belongs to a live flow of another frontend',
    setup: w({ ports: [port(ANY, 8080, tcp, C2.addr, 80), port(ANY, 8088, tcp, C2.addr, 80)], ct: [[ctKey(C2.addr, 80, C1.addr, 40001, tcp), { ...ctVal(NODE_IP, 8088), last_seen_ns: process.hrtime.bigint() }]] }), // CLOCK_MONOTONIC, like bpf_ktime_get_ns: live
    input: c1({ dst: NODE_IP, dport: 8080 }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: { METRIC_CT_CLASH: 1 },
  },
  {
    description: 'a node address that is not in bpfnet_addrs nor a gateway: no frontend applies',
    setup: w({ ports: [port('198.18.0.77', 8080, tcp, C2.addr, 80), WEB] }),
    input: c1({ dst: '198.18.0.77', dport: 8080 }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: '127.0.0.1:8080 on the wire with an exact 127.0.0.1 frontend: never DNATed (moby#45610)',
    setup: w({ ports: [port('127.0.0.1', 8080, tcp, C2.addr, 80), WEB], addrs: [NODE_IP, '127.0.0.1'] }),
    input: c1({ dst: '127.0.0.1', dport: 8080 }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: '127.0.0.5:8080 with a wildcard frontend and 127.0.0.5 in bpfnet_addrs: never DNATed',
    setup: w({ addrs: [NODE_IP, '127.0.0.5'] }),
    input: c1({ dst: '127.0.0.5', dport: 8080 }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'malformed TCP (doff < 5) to a published port: passed untouched',
    setup: w(),
    input: edit(c1({ dst: NODE_IP, dport: 8080 }), (b) => { b[L4 + 12] = 0x30; }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'truncated UDP header to a published port: passed untouched',
    setup: w(),
    input: edit(c1({ dst: NODE_IP, proto: 'udp', dport: 8053 }).subarray(0, L4 + 6), (b) => { b.writeUInt16BE(26, L3 + 2); }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'truncated IPv4 header (ihl 6, 20 bytes present), right source: passed untouched',
    setup: w(),
    input: edit(c1().subarray(0, L3 + 20), (b) => { b[L3] = 0x46; b.writeUInt16BE(24, L3 + 2); }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'truncated IPv4 header (14 + 10 bytes)',
    setup: w(),
    input: c1().subarray(0, L3 + 10),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
    kernelMayReject: true,
  },
  {
    description: 'a fragment to a published port: not translated (no fragment tracking), passed',
    setup: w(),
    input: c1({ dst: NODE_IP, proto: 'udp', dport: 8053, moreFragments: true }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
];

const HP_KEY = ctKey(C1.addr, 80, NET_A.gateway, 40001, tcp);
const hairpinCases: EpCase[] = [
  {
    description: 'hairpin TCP SYN to node IP:8081 -> itself: source SNATed to the gateway, flagged state, redirected into itself',
    setup: w(),
    input: c1({ dst: NODE_IP, dport: 8081 }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ src: NET_A.gateway, dst: C1.addr, dport: 80, ttl: 63, dstMac: C1.mac }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_HAIRPIN: 1, METRIC_REDIRECT: 1 },
    expectCt: [[HP_KEY, { orig_addr: NODE_IP, orig_port: 8081, flags: NAT_CT_F_HAIRPIN, client_addr: C1.addr }]],
    expectPortStats: [nodeStats(SELF)],
  },
  {
    description: 'hairpin through the gateway address',
    setup: w(),
    input: c1({ dst: NET_A.gateway, dport: 8081 }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ src: NET_A.gateway, dst: C1.addr, dport: 80, ttl: 63, dstMac: C1.mac }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_HAIRPIN: 1, METRIC_REDIRECT: 1 },
    expectCt: [[HP_KEY, { orig_addr: NET_A.gateway, orig_port: 8081, flags: NAT_CT_F_HAIRPIN, client_addr: C1.addr }]],
    expectPortStats: [nodeStats(SELF)],
  },
  {
    description: 'hairpin UDP with zero checksum',
    setup: w(),
    input: c1({ dst: NODE_IP, proto: 'udp', dport: 8081, udpChecksumZero: true }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ src: NET_A.gateway, dst: C1.addr, proto: 'udp', dport: 53, ttl: 63, dstMac: C1.mac, udpChecksumZero: true }),
    expectMetrics: { METRIC_DNAT: 1, METRIC_HAIRPIN: 1, METRIC_REDIRECT: 1 },
    expectCt: [[ctKey(C1.addr, 53, NET_A.gateway, 40001, udp), { orig_addr: NODE_IP, orig_port: 8081, flags: NAT_CT_F_HAIRPIN, client_addr: C1.addr }]],
    expectPortStats: [nodeStats(SELF_UDP)],
  },
  {
    description: 'hairpin reply: source back to node:8081, destination back to the container itself',
    setup: w({ ct: [[HP_KEY, ctVal(NODE_IP, 8081, NAT_CT_F_HAIRPIN, C1.addr)]] }),
    input: c1({ sport: 80, dst: NET_A.gateway, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: c1({ src: NODE_IP, sport: 8081, dst: C1.addr, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK, ttl: 63, dstMac: C1.mac }),
    expectMetrics: { METRIC_RNAT: 1, METRIC_REDIRECT: 1 },
  },
  {
    description: 'hairpin without a gateway on the network: not translated',
    setup: w({ nets: [{ ...NET_A, gateway: '0.0.0.0' }, NET_B] }),
    input: c1({ dst: NODE_IP, dport: 8081 }),
    expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: {},
  },
  {
    description: 'reply of a container-to-container flow through a published port: reverse NAT, redirected into the client',
    setup: w({ sender: C2, ct: [[ctKey(C2.addr, 80, C1.addr, 40001, tcp), ctVal(NODE_IP, 8080)]] }),
    input: from(C2, { sport: 80, dst: C1.addr, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK, dstMac: C1.mac }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: from(C2, { src: NODE_IP, sport: 8080, dst: C1.addr, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK, ttl: 63, dstMac: C1.mac }),
    expectMetrics: { METRIC_RNAT: 1, METRIC_REDIRECT: 1 },
  },
  {
    description: 'reply through a published port to a client on another network: reverse NAT before isolation',
    setup: w({ sender: D1, ct: [[ctKey(D1.addr, 90, C1.addr, 40001, tcp), ctVal(NODE_IP, 9090)]] }),
    input: from(D1, { sport: 90, dst: C1.addr, dport: 40001, tcpFlags: TCP_ACK }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: from(D1, { src: NODE_IP, sport: 9090, dst: C1.addr, dport: 40001, tcpFlags: TCP_ACK, ttl: 63, dstMac: C1.mac }),
    expectMetrics: { METRIC_RNAT: 1, METRIC_REDIRECT: 1 },
  },
  {
    description: 'ICC off: the reply of a flow through a published port is delivered',
    setup: w({ sender: N2, ct: [[ctKey(N2.addr, 80, N1.addr, 40001, tcp), ctVal(NET_NOICC.gateway, 8080)]] }),
    input: from(N2, { sport: 80, dst: N1.addr, dport: 40001, tcpFlags: TCP_ACK }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: from(N2, { src: NET_NOICC.gateway, sport: 8080, dst: N1.addr, dport: 40001, tcpFlags: TCP_ACK, ttl: 63, dstMac: N1.mac }),
    expectMetrics: { METRIC_RNAT: 1, METRIC_REDIRECT: 1 },
  },
  {
    description: 'reply to an external client: reverse NAT, then FIB (empty namespace: to the stack)',
    setup: w({ sender: C2, ct: [[ctKey(C2.addr, 80, CLIENT, 40001, tcp), ctVal(NODE_IP, 8080)]] }),
    input: from(C2, { sport: 80, dst: CLIENT, dport: 40001, tcpFlags: TCP_ACK }),
    expectVerdict: TC_ACT_OK,
    expectOutput: from(C2, { src: NODE_IP, sport: 8080, dst: CLIENT, dport: 40001, tcpFlags: TCP_ACK }),
    expectMetrics: { METRIC_RNAT: 1 },
  },
];

// ---- the runner --------------------------------------------------------------

function cidr(n: Net): NetKey {
  const [addr, len] = n.subnet.split('/');
  return { prefixlen: Number(len), addr: addr! };
}

describe('from_container: anti-spoofing, policy, delivery, DNAT from containers, hairpin', () => {
  const suite = bpfSuite(['endpoint', 'uplink'], 'from_container');
  const extra = () => ({
    nets: TypedMap.open(suite.bpf.mapDir, 'bpfnet_nets'),
    endpoints: TypedMap.open(suite.bpf.mapDir, 'bpfnet_endpoints'),
    ifaces: TypedMap.open(suite.bpf.mapDir, 'bpfnet_ifaces'),
    stats: TypedMap.open(suite.bpf.mapDir, 'bpfnet_port_stats'),
  });

  // bpfSuite empties ports, addrs and nat_ct after each test; the rest here.
  afterEach(async () => {
    if (!suite.bpf) return;
    const m = extra();
    try {
      for (const map of Object.values(m)) {
        const keys = (await (map as TypedMap<'bpfnet_nets'>).toArray()).map(([k]) => k);
        await (map as TypedMap<'bpfnet_nets'>).deleteMany(keys);
      }
    } finally {
      for (const map of Object.values(m)) map.close();
    }
  });

  async function apply(s: Setup): Promise<void> {
    const m = extra();
    try {
      const sender = s.sender === undefined ? C1 : s.sender;
      if (sender) await m.ifaces.set({ ifindex: LO }, sender);
      if (s.nets?.length) await m.nets.setMany(s.nets.map((n): [NetKey, NetValue] => [cidr(n), { net_id: n.id, flags: n.flags, gateway: n.gateway, snat_addr: '0.0.0.0' }]));
      if (s.endpoints?.length) await m.endpoints.setMany(s.endpoints.map((e) => [{ addr: e.addr }, e]));
      if (s.ports?.length) await suite.env.ports.setMany(s.ports);
      if (s.addrs?.length) await suite.env.addrs.setMany(s.addrs.map((a) => [{ addr: a }, { flags: 0 }]));
      if (s.ct?.length) await suite.env.ct.setMany(s.ct);
    } finally {
      for (const map of Object.values(m)) map.close();
    }
  }

  async function run(c: EpCase, ctx: TestContext, prog = suite.env.prog): Promise<TestRunResult | undefined> {
    await apply(c.setup ?? {});
    const before = await readMetrics(suite.bpf.mapDir);
    let r: TestRunResult;
    try {
      r = await testRun(prog, Buffer.from(c.input), { netns: suite.bpf.netns });
    } catch (e) {
      if (c.kernelMayReject && ((e instanceof BpfnetError && e.code === 'E_INVALID_ARGUMENT') || isEinval(e))) {
        ctx.skip();
        return undefined;
      }
      throw e;
    }
    expect(r.retval, 'verdict').toBe(c.expectVerdict);
    const want = c.expectOutput === 'unchanged' ? c.input : c.expectOutput;
    expect(r.output.toString('hex'), 'output packet').toBe(want.toString('hex'));
    if (c.expectOutput !== 'unchanged') expect(verifyChecksums(r.output), 'checksums').toBe(true);

    const delta = metricsDelta(before, await readMetrics(suite.bpf.mapDir));
    const wantMetrics = Object.fromEntries(Object.entries(c.expectMetrics).map(([k, n]) => [k, { packets: n, bytes: n * c.input.length }]));
    expect(delta, 'metrics').toEqual(wantMetrics);

    const ctId = (k: NatCtKey) => `${k.saddr}:${k.sport} -> ${k.daddr}:${k.dport}/${k.proto}`;
    const gotCt = (await suite.env.ct.toArray()).map(([k, v]) => `${ctId(k)} => ${v.orig_addr}:${v.orig_port} flags ${v.flags} client ${v.client_addr}`).sort();
    const wantCt = (c.expectCt ?? (c.setup?.ct ?? []).map(([k, v]): CtRow => [k, v]))
      .map(([k, v]) => `${ctId(k)} => ${v.orig_addr}:${v.orig_port} flags ${v.flags} client ${v.client_addr}`).sort();
    expect(gotCt, 'bpfnet_nat_ct').toEqual(wantCt);
    for (const [, v] of await suite.env.ct.toArray()) expect(v.last_seen_ns, 'ct timestamp').toBeGreaterThan(0n);

    const m = extra();
    try {
      const got = (await m.stats.toArray()).map(([k, v]) => `${k.addr}:${k.port}/${k.proto} ${v.packets}/${v.bytes}`).sort();
      const wantStats = (c.expectPortStats ?? []).map(([k, n]) => `${k.addr}:${k.port}/${k.proto} ${n}/${n * c.input.length}`).sort();
      expect(got, 'bpfnet_port_stats').toEqual(wantStats);
    } finally {
      for (const map of Object.values(m)) map.close();
    }
    return r;
  }

  describe('anti-spoofing: dropped', () => {
    for (const c of spoofCases) it(c.description, (ctx) => run(c, ctx));
  });
  describe('anti-spoofing: passes', () => {
    for (const c of notSpoofCases) it(c.description, (ctx) => run(c, ctx));
  });
  describe('policy and same-network delivery', () => {
    for (const c of policyCases) it(c.description, (ctx) => run(c, ctx));
  });
  describe('published ports reached from a container', () => {
    for (const c of dnatCases) it(c.description, (ctx) => run(c, ctx));
  });
  describe('hairpin and replies to containers', () => {
    for (const c of hairpinCases) it(c.description, (ctx) => run(c, ctx));
  });

  describe('round trips (state written by one packet, used by the next)', () => {
    it('hairpin TCP: SYN, then the reply, then the next segment of the same flow', async (ctx) => {
      await run(hairpinCases[0]!, ctx);
      // the reply, using the state the SYN wrote
      const rep = c1({ sport: 80, dst: NET_A.gateway, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK });
      const r2 = await testRun(suite.env.prog, rep, { netns: suite.bpf.netns });
      expect(r2.retval).toBe(TC_ACT_REDIRECT);
      expect(r2.output.toString('hex')).toBe(c1({ src: NODE_IP, sport: 8081, dst: C1.addr, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK, ttl: 63, dstMac: C1.mac }).toString('hex'));
      // the client's ACK: not a SYN, but the flow has state
      const ack = c1({ dst: NODE_IP, dport: 8081, tcpFlags: TCP_ACK });
      const r3 = await testRun(suite.env.prog, ack, { netns: suite.bpf.netns });
      expect(r3.retval).toBe(TC_ACT_REDIRECT);
      expect(r3.output.toString('hex')).toBe(c1({ src: NET_A.gateway, dst: C1.addr, dport: 80, ttl: 63, dstMac: C1.mac, tcpFlags: TCP_ACK }).toString('hex'));
      const stats = TypedMap.open(suite.bpf.mapDir, 'bpfnet_port_stats');
      try {
        const v = await stats.get(SELF[0]);
        expect(v?.packets).toBe(2n);
        expect(v?.bytes).toBe(BigInt(hairpinCases[0]!.input.length + ack.length));
      } finally {
        stats.close();
      }
    });

    it('container -> node:8080 -> other container, and its reply', async (ctx) => {
      await run(dnatCases[0]!, ctx);
      const m = extra();
      try {
        await m.ifaces.set({ ifindex: LO }, C2); // now the backend's device
      } finally {
        for (const map of Object.values(m)) map.close();
      }
      const rep = from(C2, { sport: 80, dst: C1.addr, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK, dstMac: C1.mac });
      const r = await testRun(suite.env.prog, rep, { netns: suite.bpf.netns });
      expect(r.retval).toBe(TC_ACT_REDIRECT);
      expect(r.output.toString('hex')).toBe(from(C2, { src: NODE_IP, sport: 8080, dst: C1.addr, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK, ttl: 63, dstMac: C1.mac }).toString('hex'));
    });
  });

  describe('from_uplink shares nat.h: loopback and per-port counters', () => {
    const uplinkPkt = (o: Partial<PacketSpec> = {}) => buildPacket({
      srcMac: '02:00:00:00:c1:30', dstMac: NODE_MAC, src: CLIENT, dst: NODE_IP, proto: 'tcp', sport: 40001, dport: 8080, tcpFlags: TCP_SYN, ...o,
    });

    it('127.0.0.1:8080 arriving on the uplink is not DNATed, whatever the maps say', async (ctx) => {
      await run({
        description: 'uplink 127.0.0.1',
        setup: { sender: null, ports: [port('127.0.0.1', 8080, tcp, C2.addr, 80), WEB], addrs: ['127.0.0.1', NODE_IP] },
        input: uplinkPkt({ dst: '127.0.0.1' }),
        expectVerdict: TC_ACT_OK, expectOutput: 'unchanged', expectMetrics: { METRIC_PASS: 1 },
      }, ctx, suite.progs.from_uplink!);
    });

    it('counts the exact frontend that matched', async (ctx) => {
      await run({
        description: 'uplink exact',
        setup: { sender: null, ports: [OTHER_NET, port(ANY, 9090, tcp, C2.addr, 90)], addrs: [NODE_IP] },
        input: uplinkPkt({ dport: 9090 }),
        expectVerdict: TC_ACT_OK,
        expectOutput: uplinkPkt({ dst: D1.addr, dport: 90 }),
        expectMetrics: { METRIC_DNAT: 1 },
        expectCt: [[ctKey(D1.addr, 90, CLIENT, 40001, tcp), { orig_addr: NODE_IP, orig_port: 9090, flags: 0, client_addr: '0.0.0.0' }]],
        expectPortStats: [[OTHER_NET[0], 1]],
      }, ctx, suite.progs.from_uplink!);
    });

    it('counts the wildcard frontend that matched, and adds up', async (ctx) => {
      await run({
        description: 'uplink wildcard',
        setup: { sender: null, ports: [WEB], addrs: [NODE_IP] },
        input: uplinkPkt(),
        expectVerdict: TC_ACT_OK,
        expectOutput: uplinkPkt({ dst: C2.addr, dport: 80 }),
        expectMetrics: { METRIC_DNAT: 1 },
        expectCt: [[ctKey(C2.addr, 80, CLIENT, 40001, tcp), { orig_addr: NODE_IP, orig_port: 8080, flags: 0, client_addr: '0.0.0.0' }]],
        expectPortStats: [[WEB[0], 1]],
      }, ctx, suite.progs.from_uplink!);
      const big = uplinkPkt({ tcpFlags: TCP_ACK, payload: Buffer.alloc(1000, 1) });
      const r = await testRun(suite.progs.from_uplink!, big, { netns: suite.bpf.netns });
      expect(r.retval).toBe(TC_ACT_OK);
      const stats = TypedMap.open(suite.bpf.mapDir, 'bpfnet_port_stats');
      try {
        expect(await stats.get(WEB[0])).toEqual({ packets: 2n, bytes: BigInt(uplinkPkt().length + big.length) });
      } finally {
        stats.close();
      }
    });
  });
});
