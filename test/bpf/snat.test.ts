/**
 * Masquerade through BPF_PROG_TEST_RUN: to_uplink (tc egress of the uplink:
 * SNAT, port allocation, state) and the reverse half of from_uplink (replies
 * back to the container). Expected packets are built from scratch, so a byte
 * for byte match also proves the incremental checksum updates.
 */
import { describe, expect, it } from 'vitest';
import { testRun } from '../../src/loader/testrun.js';
import type { MetricName } from '../harness/bpfroot.js';
import { buildFrame, buildPacket, ETH_P_ARP, L3, L4, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type PacketSpec } from '../harness/packet.js';
import {
  hashPort, inKey, NET_F_DIRECT, NET_F_INTERNAL, NET_F_NO_MASQ, outKey, pair, PROBES, runSnatCase, snatSuite,
  ST_FIN, ST_REPLY, ST_RST, ST_SYN, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, val, type SnatCase, type SnatRow, type SnatSetup,
} from './snatcase.js';

const tcp = 6;
const udp = 17;
const icmp = 1;
const C = '198.19.0.2';
const C2 = '198.19.0.3';
const C_MAC = '02:42:c6:13:00:02';
const GW = '198.19.0.1';
const NODE = '198.18.0.1';
const HOST_IPV4 = '198.18.0.5';
const REMOTE = '203.0.113.7';
const NODE_MAC = '02:00:00:00:0e:01';
const ROUTER_MAC = '02:00:00:00:0e:fe';

const NET = { subnet: '198.19.0.0/24', id: 1, gateway: GW };
const BASE: SnatSetup = { nets: [NET], uplinkAddr: NODE };
const withNet = (o: Partial<typeof NET> & { flags?: number; snat?: string }): SnatSetup => ({ nets: [{ ...NET, ...o }], uplinkAddr: NODE });

/** Container -> remote, as it leaves through the uplink. */
function out(o: Partial<PacketSpec> = {}): Buffer {
  return buildPacket({
    srcMac: NODE_MAC, dstMac: ROUTER_MAC, src: C, dst: REMOTE, proto: 'tcp', sport: 40000, dport: 443,
    tcpFlags: TCP_SYN, id: 0x1111, payload: Buffer.from('hello, remote!!'), // odd length
    ...o,
  });
}

/** Remote -> node, as it arrives on the uplink. */
function back(o: Partial<PacketSpec> = {}): Buffer {
  return buildPacket({
    srcMac: ROUTER_MAC, dstMac: NODE_MAC, src: REMOTE, dst: NODE, proto: 'tcp', sport: 443, dport: 40000,
    tcpFlags: TCP_SYN | TCP_ACK, id: 0x2222, payload: Buffer.from('hi'),
    ...o,
  });
}

const H_TCP = hashPort(C, REMOTE, 40000, 443, tcp);
const H_UDP = hashPort(C, REMOTE, 40000, 53, udp);
const H_ICMP = hashPort(C, REMOTE, 0x1234, 0x1234, icmp);

/** A SYN from C:61500 (o changes it) that keeps its port, masqueraded to addr. */
function synKept(description: string, setup: SnatSetup, addr = NODE, o: Partial<PacketSpec> = {}): SnatCase {
  return {
    description, setup,
    input: out({ sport: 61500, ...o }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ sport: 61500, ...o, src: addr }),
    expectSnat: pair(C, 61500, REMOTE, 443, tcp, addr, 61500, ST_SYN),
    expectMetrics: { METRIC_SNAT: 1 },
  };
}

/** An unrelated flow holding node:port toward remote:rport. */
function busy(port: number, rport = 443, proto = tcp, other = C2): SnatRow[] {
  return pair(other, 50000 + (port % 1000), REMOTE, rport, proto, NODE, port, ST_REPLY);
}

const snatCases: SnatCase[] = [
  {
    description: 'TCP SYN, source port outside the range: port from the tuple hash, both entries created',
    setup: BASE,
    input: out(),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: H_TCP }),
    expectSnat: pair(C, 40000, REMOTE, 443, tcp, NODE, H_TCP, ST_SYN),
    expectMetrics: { METRIC_SNAT: 1 },
  },
  synKept('TCP SYN, source port inside the range and free: kept', BASE),
  {
    description: 'TCP mid-flow packet without state (evicted): state recreated, port kept when free',
    setup: BASE,
    input: out({ sport: 62000, tcpFlags: TCP_ACK | TCP_PSH }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 62000, tcpFlags: TCP_ACK | TCP_PSH }),
    expectSnat: pair(C, 62000, REMOTE, 443, tcp, NODE, 62000, 0),
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'UDP, port from the hash',
    setup: BASE,
    input: out({ proto: 'udp', dport: 53, payload: Buffer.from('query') }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ proto: 'udp', dport: 53, payload: Buffer.from('query'), src: NODE, sport: H_UDP }),
    expectSnat: pair(C, 40000, REMOTE, 53, udp, NODE, H_UDP, 0),
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'UDP with zero checksum: translated, checksum stays zero',
    setup: BASE,
    input: out({ proto: 'udp', sport: 61001, dport: 53, udpChecksumZero: true }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ proto: 'udp', sport: 61001, dport: 53, udpChecksumZero: true, src: NODE }),
    expectSnat: pair(C, 61001, REMOTE, 53, udp, NODE, 61001, 0),
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'ICMP echo request: identifier translated (from the hash), sequence untouched',
    setup: BASE,
    input: out({ proto: 'icmp', sport: 0x1234, dport: 7 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ proto: 'icmp', src: NODE, sport: H_ICMP, dport: 7 }),
    expectSnat: pair(C, 0x1234, REMOTE, 0, icmp, NODE, H_ICMP, 0),
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'ICMP echo request, identifier inside the range: kept',
    setup: BASE,
    input: out({ proto: 'icmp', sport: 63000, dport: 1 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ proto: 'icmp', src: NODE, sport: 63000, dport: 1 }),
    expectSnat: pair(C, 63000, REMOTE, 0, icmp, NODE, 63000, 0),
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'existing flow reuses its port; last_seen refreshed on OUT only',
    setup: { ...BASE, snat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_SYN | ST_REPLY) },
    input: out({ tcpFlags: TCP_ACK | TCP_PSH }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 62000, tcpFlags: TCP_ACK | TCP_PSH }),
    expectTouched: [outKey(C, 40000, REMOTE, 443, tcp)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'existing flow keeps the address it got, even if the uplink address changed since',
    setup: { nets: [NET], uplinkAddr: '198.18.0.9', snat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_REPLY) },
    input: out({ tcpFlags: TCP_ACK }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 62000, tcpFlags: TCP_ACK }),
    expectTouched: [outKey(C, 40000, REMOTE, 443, tcp)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'FIN on an established flow: state gains FIN',
    setup: { ...BASE, snat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_SYN | ST_REPLY) },
    input: out({ tcpFlags: TCP_FIN | TCP_ACK }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 62000, tcpFlags: TCP_FIN | TCP_ACK }),
    expectSnat: [
      [outKey(C, 40000, REMOTE, 443, tcp), val(NODE, 62000, ST_SYN | ST_REPLY | ST_FIN)],
      [inKey(REMOTE, 443, NODE, 62000, tcp), val(C, 40000, ST_SYN | ST_REPLY)],
    ],
    expectTouched: [outKey(C, 40000, REMOTE, 443, tcp)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'RST on an established flow: state gains RST',
    setup: { ...BASE, snat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_REPLY) },
    input: out({ tcpFlags: TCP_RST }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 62000, tcpFlags: TCP_RST }),
    expectSnat: [
      [outKey(C, 40000, REMOTE, 443, tcp), val(NODE, 62000, ST_REPLY | ST_RST)],
      [inKey(REMOTE, 443, NODE, 62000, tcp), val(C, 40000, ST_REPLY)],
    ],
    expectTouched: [outKey(C, 40000, REMOTE, 443, tcp)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'new SYN on a closed tuple: both halves start over as SYN, same port',
    setup: { ...BASE, snat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_SYN | ST_REPLY | ST_FIN) },
    input: out(),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 62000 }),
    expectSnat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_SYN),
    expectTouched: [outKey(C, 40000, REMOTE, 443, tcp)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'port clash (original port taken toward the same remote): next port',
    setup: { ...BASE, snat: busy(61500) },
    input: out({ sport: 61500 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 61501 }),
    expectSnat: [...busy(61500), ...pair(C, 61500, REMOTE, 443, tcp, NODE, 61501, ST_SYN)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'hash start taken: next port after it',
    setup: { ...BASE, snat: busy(H_TCP) },
    input: out(),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: H_TCP === 65535 ? 61000 : H_TCP + 1 }),
    expectSnat: [...busy(H_TCP), ...pair(C, 40000, REMOTE, 443, tcp, NODE, H_TCP === 65535 ? 61000 : H_TCP + 1, ST_SYN)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'the same node port toward another remote port is not a clash',
    setup: { ...BASE, snat: busy(61500, 8443) },
    input: out({ sport: 61500 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 61500 }),
    expectSnat: [...busy(61500, 8443), ...pair(C, 61500, REMOTE, 443, tcp, NODE, 61500, ST_SYN)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'a port published on the masquerade address is skipped',
    setup: { ...BASE, ports: [[{ addr: NODE, port: 61500, proto: tcp }, { backend_addr: C2, backend_port: 80, flags: 0 }]] },
    input: out({ sport: 61500 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 61501 }),
    expectSnat: pair(C, 61500, REMOTE, 443, tcp, NODE, 61501, ST_SYN),
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'a wildcard published port is skipped too (UDP)',
    setup: { ...BASE, ports: [[{ addr: '0.0.0.0', port: 61500, proto: udp }, { backend_addr: C2, backend_port: 53, flags: 0 }]] },
    input: out({ proto: 'udp', sport: 61500, dport: 53 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ proto: 'udp', sport: 61501, dport: 53, src: NODE }),
    expectSnat: pair(C, 61500, REMOTE, 53, udp, NODE, 61501, 0),
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'IN half left, OUT half lost (evicted): the port is adopted, OUT recreated',
    setup: { ...BASE, snat: [pair(C, 61500, REMOTE, 443, tcp, NODE, 61500, ST_REPLY)[1]!] },
    input: out({ sport: 61500, tcpFlags: TCP_ACK }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 61500, tcpFlags: TCP_ACK }),
    expectSnat: [[outKey(C, 61500, REMOTE, 443, tcp), val(NODE, 61500, 0)], [inKey(REMOTE, 443, NODE, 61500, tcp), val(C, 61500, ST_REPLY)]],
    expectTouched: [inKey(REMOTE, 443, NODE, 61500, tcp)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'configured range: a port outside it moves into it',
    setup: { ...BASE, config: { snat_port_min: 20000, snat_port_max: 20009 } },
    input: out(),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: hashPort(C, REMOTE, 40000, 443, tcp, 20000, 20009) }),
    expectSnat: pair(C, 40000, REMOTE, 443, tcp, NODE, hashPort(C, REMOTE, 40000, 443, tcp, 20000, 20009), ST_SYN),
    expectMetrics: { METRIC_SNAT: 1 },
  },
  {
    description: 'exhaustion: every port of a 4-port range taken -> dropped, counted, no state',
    setup: { ...BASE, config: { snat_port_min: 61000, snat_port_max: 61003 }, snat: [61000, 61001, 61002, 61003].flatMap((p) => busy(p)) },
    input: out({ sport: 61001 }),
    expectVerdict: TC_ACT_SHOT,
    expectOutput: 'unchanged',
    expectMetrics: { METRIC_DROP_SNAT_NO_PORT: 1 },
  },
  {
    description: `exhaustion is bounded: ${PROBES} taken candidates -> dropped though the range has more`,
    setup: { ...BASE, snat: Array.from({ length: PROBES }, (_, i) => busy(61000 + i)).flat() },
    input: out({ sport: 61000 }),
    expectVerdict: TC_ACT_SHOT,
    expectOutput: 'unchanged',
    expectMetrics: { METRIC_DROP_SNAT_NO_PORT: 1 },
  },
  {
    description: `${PROBES - 1} taken candidates: the last probe finds a port`,
    setup: { ...BASE, snat: Array.from({ length: PROBES - 1 }, (_, i) => busy(61000 + i)).flat() },
    input: out({ sport: 61000 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: out({ src: NODE, sport: 61000 + PROBES - 1 }),
    expectSnat: [...Array.from({ length: PROBES - 1 }, (_, i) => busy(61000 + i)).flat(), ...pair(C, 61000, REMOTE, 443, tcp, NODE, 61000 + PROBES - 1, ST_SYN)],
    expectMetrics: { METRIC_SNAT: 1 },
  },
  synKept('com.docker.network.host_ipv4: the network\'s SNAT address wins over the uplink\'s', withNet({ snat: HOST_IPV4 }), HOST_IPV4),
  synKept('host_ipv4 works without an uplink entry', { nets: [{ ...NET, snat: HOST_IPV4 }] }, HOST_IPV4),
  synKept('TCP with IP options: translated, options kept', BASE, NODE, { ipOptions: Buffer.from([1, 1, 1, 0]) }),
];

/** The verdict, output and metric of a packet passed (or dropped) untouched. */
const passed = (metric: MetricName) => ({ expectVerdict: TC_ACT_OK, expectOutput: 'unchanged' as const, expectMetrics: { [metric]: 1 } });
const dropped = (metric: MetricName) => ({ ...passed(metric), expectVerdict: TC_ACT_SHOT });

const passCases: SnatCase[] = [
  { description: 'enable_ip_masquerade=false: untouched', setup: withNet({ flags: NET_F_NO_MASQ }), input: out(), ...passed('METRIC_PASS') },
  { description: 'source not in a bpfnet network (the node\'s own traffic)', setup: BASE, input: out({ src: NODE }), ...passed('METRIC_PASS') },
  { description: 'destination in the same network', setup: BASE, input: out({ dst: C2 }), ...passed('METRIC_PASS') },
  { description: 'no uplink entry and no host_ipv4: untouched', setup: { nets: [NET] }, input: out(), ...passed('METRIC_PASS') },
  { description: 'ICMP echo reply from a container (answers a direct ping): untouched', setup: BASE, input: out({ proto: 'icmp', icmpType: 0, sport: 9, dport: 1 }), ...passed('METRIC_PASS') },
  { description: 'ICMP timestamp request from a container: untouched', setup: BASE, input: out({ proto: 'icmp', icmpType: 13, sport: 9, dport: 1 }), ...passed('METRIC_PASS') },
  {
    description: 'direct-access network (nat-unprotected): SYN-ACK without state answers an inbound connection: untouched',
    setup: withNet({ flags: NET_F_DIRECT }), input: out({ tcpFlags: TCP_SYN | TCP_ACK }), ...passed('METRIC_PASS'),
  },
  synKept('direct-access network: an outbound SYN is masqueraded', withNet({ flags: NET_F_DIRECT })),
  {
    description: 'direct-access network: a UDP answer with an identity entry (inbound direct flow) keeps the container\'s address',
    setup: { ...withNet({ flags: NET_F_DIRECT }), snat: [[outKey(C, 53, REMOTE, 40001, udp), val(C, 53, ST_REPLY)]] },
    input: out({ proto: 'udp', sport: 53, dport: 40001 }), expectVerdict: TC_ACT_OK, expectOutput: 'unchanged',
    expectTouched: [outKey(C, 53, REMOTE, 40001, udp)], expectMetrics: { METRIC_PASS: 1 },
  },
  { description: 'gateway address of an internal network as source: untouched', setup: withNet({ flags: NET_F_INTERNAL }), input: out({ src: GW }), ...passed('METRIC_PASS') },
  { description: 'non-first fragment from a container: untouched, counted', setup: BASE, input: out({ fragOffset: 100 }), ...passed('METRIC_SKIP_FRAG') },
  { description: 'first fragment from a container: untouched, counted', setup: BASE, input: out({ proto: 'udp', moreFragments: true }), ...passed('METRIC_SKIP_FRAG') },
  { description: 'ARP', setup: BASE, input: buildFrame({ ethType: ETH_P_ARP, body: Buffer.alloc(28, 1) }), ...passed('METRIC_PASS') },
  { description: 'GRE from the node: untouched', setup: BASE, input: out({ proto: 47, src: NODE }), ...passed('METRIC_PASS') },
];

const dropCases: SnatCase[] = [
  { description: 'internal network: nothing leaves', setup: withNet({ flags: NET_F_INTERNAL }), input: out(), ...dropped('METRIC_DROP_INTERNAL') },
  { description: 'internal network: fragments neither', setup: withNet({ flags: NET_F_INTERNAL }), input: out({ fragOffset: 3 }), ...dropped('METRIC_DROP_INTERNAL') },
  { description: 'internal network: other protocols neither', setup: withNet({ flags: NET_F_INTERNAL }), input: out({ proto: 47 }), ...dropped('METRIC_DROP_INTERNAL') },
  { description: 'GRE (no ports) from a masqueraded container: dropped, counted', setup: BASE, input: out({ proto: 47 }), ...dropped('METRIC_DROP_SNAT_STATE') },
  { description: 'SCTP from a masqueraded container: dropped, counted', setup: BASE, input: out({ proto: 132 }), ...dropped('METRIC_DROP_SNAT_STATE') },
];

const malformedCases: SnatCase[] = [
  { description: 'malformed: TCP header truncated', setup: BASE, input: fixLen(out().subarray(0, L4 + 6)), ...passed('METRIC_SKIP_MALFORMED') },
  { description: 'malformed: UDP header truncated', setup: BASE, input: fixLen(out({ proto: 'udp' }).subarray(0, L4 + 4)), ...passed('METRIC_SKIP_MALFORMED') },
  { description: 'malformed: ICMP header truncated (4 bytes)', setup: BASE, input: fixLen(out({ proto: 'icmp' }).subarray(0, L4 + 4)), ...passed('METRIC_SKIP_MALFORMED') },
  { description: 'malformed: tot_len beyond the frame', setup: BASE, input: setTotLen(out(), 400), ...passed('METRIC_SKIP_MALFORMED') },
  { description: 'malformed: IPv4 header truncated', setup: BASE, input: out().subarray(0, L3 + 10), ...passed('METRIC_SKIP_MALFORMED'), kernelMayReject: true },
];

/** Truncate-consistent: tot_len = what is left after Ethernet; IP checksum fixed. */
function fixLen(b: Buffer): Buffer {
  return setTotLen(Buffer.from(b), b.length - L3);
}
function setTotLen(b0: Buffer, len: number): Buffer {
  const b = Buffer.from(b0);
  b.writeUInt16BE(len, L3 + 2);
  b.writeUInt16BE(0, L3 + 10);
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += b.readUInt16BE(L3 + i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  b.writeUInt16BE(~s & 0xffff, L3 + 10);
  return b;
}

// ---- from_uplink: replies ---------------------------------------------------

const EP = { addr: C, ifindex: 42, mac: C_MAC, net_id: 1, flags: 0 };
const EST = pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_SYN);

const revCases: SnatCase[] = [
  {
    description: 'TCP reply: destination back to the container, REPLY on both halves',
    setup: { ...BASE, snat: EST },
    input: back({ dport: 62000 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: back({ dst: C, dport: 40000 }),
    expectSnat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_SYN | ST_REPLY),
    expectTouched: [inKey(REMOTE, 443, NODE, 62000, tcp)],
    expectMetrics: { METRIC_RSNAT: 1 },
  },
  {
    description: 'TCP reply to a local container: redirected into it (peer), destination MAC its own',
    setup: { ...BASE, snat: EST, endpoints: [EP] },
    input: back({ dport: 62000 }),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: back({ dst: C, dport: 40000, dstMac: C_MAC }),
    expectSnat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_SYN | ST_REPLY),
    expectTouched: [inKey(REMOTE, 443, NODE, 62000, tcp)],
    expectMetrics: { METRIC_RSNAT: 1, METRIC_REDIRECT: 1 },
  },
  {
    description: 'FIN from the remote: FIN on both halves',
    setup: { ...BASE, snat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_REPLY) },
    input: back({ dport: 62000, tcpFlags: TCP_FIN | TCP_ACK }),
    expectVerdict: TC_ACT_OK,
    expectOutput: back({ dst: C, dport: 40000, tcpFlags: TCP_FIN | TCP_ACK }),
    expectSnat: pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_REPLY | ST_FIN),
    expectTouched: [inKey(REMOTE, 443, NODE, 62000, tcp)],
    expectMetrics: { METRIC_RSNAT: 1 },
  },
  {
    description: 'UDP reply with zero checksum: stays zero',
    setup: { ...BASE, snat: pair(C, 40000, REMOTE, 53, udp, NODE, 61001, 0) },
    input: back({ proto: 'udp', sport: 53, dport: 61001, udpChecksumZero: true }),
    expectVerdict: TC_ACT_OK,
    expectOutput: back({ proto: 'udp', sport: 53, dst: C, dport: 40000, udpChecksumZero: true }),
    expectSnat: pair(C, 40000, REMOTE, 53, udp, NODE, 61001, ST_REPLY),
    expectTouched: [inKey(REMOTE, 53, NODE, 61001, udp)],
    expectMetrics: { METRIC_RSNAT: 1 },
  },
  {
    description: 'ICMP echo reply: identifier back, sequence untouched',
    setup: { ...BASE, snat: pair(C, 0x1234, REMOTE, 0, icmp, NODE, 63000, 0) },
    input: back({ proto: 'icmp', icmpType: 0, sport: 63000, dport: 5 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: back({ proto: 'icmp', icmpType: 0, dst: C, sport: 0x1234, dport: 5 }),
    expectSnat: pair(C, 0x1234, REMOTE, 0, icmp, NODE, 63000, ST_REPLY),
    expectTouched: [inKey(REMOTE, 63000, NODE, 63000, icmp)],
    expectMetrics: { METRIC_RSNAT: 1 },
  },
  {
    description: 'an ICMP echo request from outside with a translated id is not a reply',
    setup: { ...BASE, snat: pair(C, 0x1234, REMOTE, 0, icmp, NODE, 63000, 0) },
    input: back({ proto: 'icmp', icmpType: 8, sport: 63000, dport: 5 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetrics: { METRIC_PASS: 1 },
  },
  {
    description: 'reply from another remote port: no state, untouched',
    setup: { ...BASE, snat: EST },
    input: back({ sport: 444, dport: 62000 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetrics: { METRIC_PASS: 1 },
  },
];

describe('masquerade (to_uplink, from_uplink replies)', () => {
  const suite = snatSuite();
  const egress = (c: SnatCase) => runSnatCase(suite.env, suite.progs.to_uplink!, c);
  const ingress = (c: SnatCase) => runSnatCase(suite.env, suite.progs.from_uplink!, c);

  describe('to_uplink translates', () => {
    for (const c of snatCases) it(c.description, () => egress(c));
  });
  describe('to_uplink passes untouched', () => {
    for (const c of passCases) it(c.description, () => egress(c));
  });
  describe('to_uplink drops', () => {
    for (const c of dropCases) it(c.description, () => egress(c));
  });
  describe('to_uplink malformed', () => {
    for (const c of malformedCases) it(c.description, () => egress(c));
  });
  describe('from_uplink reverses', () => {
    for (const c of revCases) it(c.description, () => ingress(c));
  });

  it('a flow out and its reply back round-trip to the original packet (TCP, UDP, ICMP)', async () => {
    await suite.env.apply(BASE);
    for (const proto of ['tcp', 'udp', 'icmp'] as const) {
      const rport = proto === 'udp' ? 53 : 443;
      const o = proto === 'icmp' ? out({ proto, sport: 0x4321, dport: 3 }) : out({ proto, dport: rport });
      const r1 = await testRun(suite.progs.to_uplink!, o, { netns: suite.bpf.netns });
      expect(r1.retval).toBe(TC_ACT_OK);
      const port = r1.output.readUInt16BE(L4 + (proto === 'icmp' ? 4 : 0));
      expect(port).toBeGreaterThanOrEqual(61000);
      const reply = proto === 'icmp' ? back({ proto, icmpType: 0, sport: port, dport: 3 }) : back({ proto, sport: rport, dport: port });
      const want = proto === 'icmp' ? back({ proto, icmpType: 0, dst: C, sport: 0x4321, dport: 3 }) : back({ proto, dst: C, sport: rport, dport: 40000 });
      const r2 = await testRun(suite.progs.from_uplink!, reply, { netns: suite.bpf.netns });
      expect(r2.retval).toBe(TC_ACT_OK);
      expect(r2.output.toString('hex'), proto).toBe(want.toString('hex'));
    }
    const rows = await suite.env.snat.toArray();
    expect(rows).toHaveLength(6);
    expect(rows.filter(([k]) => k.dir === 1).every(([, v]) => (v.state & ST_REPLY) !== 0)).toBe(true);
  });

  it('two containers with the same source port toward the same remote get different ports', async () => {
    await suite.env.apply(BASE);
    const a = await testRun(suite.progs.to_uplink!, out({ sport: 61700 }), { netns: suite.bpf.netns });
    const b = await testRun(suite.progs.to_uplink!, out({ src: C2, sport: 61700 }), { netns: suite.bpf.netns });
    expect(a.output.readUInt16BE(L4)).toBe(61700);
    expect(b.output.readUInt16BE(L4)).toBe(61701);
    expect(await suite.env.snat.toArray()).toHaveLength(4);
  });
});
