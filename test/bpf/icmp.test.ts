/**
 * ICMP errors about translated flows, through BPF_PROG_TEST_RUN:
 *  - from_uplink: an error about a masqueraded flow goes to the container;
 *  - to_uplink: a container's error about a masqueraded reply leaves as the node;
 *  - icmp_error_rnat() (for endpoint.c), through a small probe program built
 *    here from bpf/lib: a container's error about a published-port packet.
 * Expected quotes are built from scratch with the translated tuple, so a
 * byte-for-byte match proves the quote's IP and L4 checksums and the ICMP
 * checksum were all carried correctly.
 */
import { describe, it } from 'vitest';
import type { NatCtKey, NatCtValue } from '../../src/maps/generated/abi.js';
import { ctKey, ctVal, portRow, type MetricName } from '../harness/bpfroot.js';
import { buildPacket, ETH_HLEN, TCP_ACK, TCP_SYN, type PacketSpec } from '../harness/packet.js';
import {
  NET_F_INTERNAL, pair, runSnatCase, snatSuite, ST_REPLY, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, type SnatCase, type SnatSetup,
} from './snatcase.js';

const tcp = 6;
const udp = 17;
const icmp = 1;
const C = '198.19.0.2';
const C2 = '198.19.0.3';
const C_MAC = '02:42:c6:13:00:02';
const GW = '198.19.0.1';
const NODE = '198.18.0.1';
const REMOTE = '203.0.113.7';
const ROUTER = '192.0.2.254';
const CLIENT = '192.0.2.10';
const NODE_MAC = '02:00:00:00:0e:01';
const ROUTER_MAC = '02:00:00:00:0e:fe';

const NET = { subnet: '198.19.0.0/24', id: 1, gateway: GW };
const BASE: SnatSetup = { nets: [NET], uplinkAddr: NODE };
const EP = { addr: C, ifindex: 42, mac: C_MAC, net_id: 1, flags: 0 };

/** The verdict and metric of a translated error, of one passed untouched. */
const XLATED = { expectVerdict: TC_ACT_OK, expectMetrics: { METRIC_ICMP_XLATE: 1 } };
const untouched = (metric?: MetricName) =>
  ({ expectVerdict: TC_ACT_OK, expectOutput: 'unchanged' as const, expectMetrics: metric ? { [metric]: 1 } : {} });

/** The IP datagram of spec (no Ethernet), optionally cut to len bytes as a router quotes it. */
function quote(spec: PacketSpec, len?: number): Buffer {
  const ip = buildPacket(spec).subarray(ETH_HLEN);
  return Buffer.from(len === undefined ? ip : ip.subarray(0, len));
}

interface ErrSpec {
  src: string;
  dst: string;
  type?: number;
  code?: number;
  /** The 16 bits after the unused half of the header: next-hop MTU for "fragmentation needed". */
  mtu?: number;
  srcMac?: string;
  dstMac?: string;
}

function icmpErr(e: ErrSpec, q: Buffer): Buffer {
  return buildPacket({
    srcMac: e.srcMac ?? ROUTER_MAC, dstMac: e.dstMac ?? NODE_MAC, src: e.src, dst: e.dst, proto: 'icmp',
    icmpType: e.type ?? 3, icmpCode: e.code ?? 4, sport: 0, dport: e.mtu ?? 1400, payload: q, ttl: 60,
  });
}

// ---- uplink ingress: errors about masqueraded flows ----------------------------

/** C:40000 -> REMOTE:443 masqueraded as NODE:62000 (and the UDP and echo twins). */
const TCP_FLOW = pair(C, 40000, REMOTE, 443, tcp, NODE, 62000, ST_REPLY);
const UDP_FLOW = pair(C, 40000, REMOTE, 53, udp, NODE, 61001, ST_REPLY);
const PING_FLOW = pair(C, 0x1234, REMOTE, 0, icmp, NODE, 63000, 0);

const tcpSeg = (src: string, sport: number, o: Partial<PacketSpec> = {}): PacketSpec => ({
  src, dst: REMOTE, proto: 'tcp', sport, dport: 443, tcpFlags: TCP_ACK, tcpSeq: 1000, payload: Buffer.alloc(1200, 0x61), id: 77, ...o,
});
const udpDgram = (src: string, sport: number, o: Partial<PacketSpec> = {}): PacketSpec => ({
  src, dst: REMOTE, proto: 'udp', sport, dport: 53, payload: Buffer.from('a big query'), id: 78, ...o,
});
const echo = (src: string, id: number): PacketSpec => ({ src, dst: REMOTE, proto: 'icmp', icmpType: 8, sport: id, dport: 5, payload: Buffer.from('ping'), ttl: 1 });

const inward = (q: Buffer) => icmpErr({ src: ROUTER, dst: NODE }, q);
const TCP_SETUP = { ...BASE, snat: TCP_FLOW };
const inwardXlated = (q: Buffer, o: Partial<ErrSpec> = {}) => icmpErr({ src: ROUTER, dst: C, ...o }, q);

const ingressCases: SnatCase[] = [
  {
    description: 'fragmentation needed, whole TCP segment quoted: quote, its IP and TCP checksums, ICMP checksum, destination',
    setup: TCP_SETUP,
    input: inward(quote(tcpSeg(NODE, 62000))),
    expectOutput: inwardXlated(quote(tcpSeg(C, 40000))),
    ...XLATED,
  },
  {
    description: 'delivered straight into a local container',
    setup: { ...BASE, snat: TCP_FLOW, endpoints: [EP] },
    input: inward(quote(tcpSeg(NODE, 62000))),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: inwardXlated(quote(tcpSeg(C, 40000)), { dstMac: C_MAC }),
    expectMetrics: { METRIC_ICMP_XLATE: 1, METRIC_REDIRECT: 1 },
  },
  {
    description: 'RFC 792 quote (IP header + 8 bytes): no TCP checksum to fix',
    setup: TCP_SETUP,
    input: inward(quote(tcpSeg(NODE, 62000), 28)),
    expectOutput: inwardXlated(quote(tcpSeg(C, 40000), 28)),
    ...XLATED,
  },
  {
    description: 'quote ending right after the TCP checksum (38 bytes): checksum fixed',
    setup: TCP_SETUP,
    input: inward(quote(tcpSeg(NODE, 62000), 38)),
    expectOutput: inwardXlated(quote(tcpSeg(C, 40000), 38)),
    ...XLATED,
  },
  {
    description: 'quote one byte short of the TCP checksum (37 bytes): left alone',
    setup: TCP_SETUP,
    input: inward(quote(tcpSeg(NODE, 62000), 37)),
    expectVerdict: TC_ACT_OK,
    // The half-quoted checksum byte keeps its old value.
    expectOutput: inwardXlated(Buffer.concat([quote(tcpSeg(C, 40000), 36), quote(tcpSeg(NODE, 62000)).subarray(36, 37)])),
    expectMetrics: { METRIC_ICMP_XLATE: 1 },
  },
  {
    description: 'quoted datagram with IP options',
    setup: TCP_SETUP,
    input: inward(quote(tcpSeg(NODE, 62000, { ipOptions: Buffer.from([1, 1, 1, 0]), payload: Buffer.from('x') }))),
    expectOutput: inwardXlated(quote(tcpSeg(C, 40000, { ipOptions: Buffer.from([1, 1, 1, 0]), payload: Buffer.from('x') }))),
    ...XLATED,
  },
  {
    description: 'time exceeded for a UDP datagram',
    setup: { ...BASE, snat: UDP_FLOW },
    input: icmpErr({ src: ROUTER, dst: NODE, type: 11, code: 0, mtu: 0 }, quote(udpDgram(NODE, 61001))),
    expectOutput: icmpErr({ src: ROUTER, dst: C, type: 11, code: 0, mtu: 0 }, quote(udpDgram(C, 40000))),
    ...XLATED,
  },
  {
    description: 'quoted UDP without checksum: stays zero',
    setup: { ...BASE, snat: UDP_FLOW },
    input: inward(quote(udpDgram(NODE, 61001, { udpChecksumZero: true }))),
    expectOutput: inwardXlated(quote(udpDgram(C, 40000, { udpChecksumZero: true }))),
    ...XLATED,
  },
  {
    description: 'parameter problem for a UDP datagram',
    setup: { ...BASE, snat: UDP_FLOW },
    input: icmpErr({ src: REMOTE, dst: NODE, type: 12, code: 0, mtu: 0 }, quote(udpDgram(NODE, 61001))),
    expectOutput: icmpErr({ src: REMOTE, dst: C, type: 12, code: 0, mtu: 0 }, quote(udpDgram(C, 40000))),
    ...XLATED,
  },
  {
    description: 'time exceeded for a ping (traceroute): the quoted echo id and its checksum',
    setup: { ...BASE, snat: PING_FLOW },
    input: icmpErr({ src: ROUTER, dst: NODE, type: 11, code: 0, mtu: 0 }, quote(echo(NODE, 63000))),
    expectOutput: icmpErr({ src: ROUTER, dst: C, type: 11, code: 0, mtu: 0 }, quote(echo(C, 0x1234))),
    ...XLATED,
  },
  {
    description: 'no state for the quoted flow: untouched',
    setup: TCP_SETUP,
    input: inward(quote(tcpSeg(NODE, 62001))),
    ...untouched('METRIC_PASS'),
  },
  {
    description: 'quote of a non-first fragment (no ports): untouched',
    setup: TCP_SETUP,
    input: inward(quote(tcpSeg(NODE, 62000, { fragOffset: 10 }))),
    ...untouched('METRIC_PASS'),
  },
  {
    description: 'malformed: quote shorter than an IP header',
    setup: TCP_SETUP,
    input: inward(quote(tcpSeg(NODE, 62000), 12)),
    ...untouched('METRIC_SKIP_MALFORMED'),
  },
  {
    description: 'malformed: quote with 4 bytes of L4 header',
    setup: TCP_SETUP,
    input: inward(quote(tcpSeg(NODE, 62000), 24)),
    ...untouched('METRIC_SKIP_MALFORMED'),
  },
  {
    description: 'malformed: quote is not IPv4',
    setup: TCP_SETUP,
    input: inward(Buffer.concat([Buffer.from([0x60]), quote(tcpSeg(NODE, 62000)).subarray(1)])),
    ...untouched('METRIC_SKIP_MALFORMED'),
  },
  {
    description: 'an error to a container address directly (gateway mode nat): dropped',
    setup: TCP_SETUP,
    input: icmpErr({ src: ROUTER, dst: C }, quote(tcpSeg(C, 40000))),
    expectVerdict: TC_ACT_SHOT,
    expectOutput: 'unchanged',
    expectMetrics: { METRIC_DROP_DIRECT: 1 },
  },
];

// ---- uplink ingress: errors about replies of published-port flows -------------

const ct = (saddr: string, daddr: string, sport: number, dport: number, proto: number, orig: string, origPort: number, flags = 0, client = '0.0.0.0'): [NatCtKey, NatCtValue] =>
  [ctKey(saddr, sport, daddr, dport, proto), ctVal(orig, origPort, { flags, client, lastSeen: 5n })];

/** CLIENT:40001 -> NODE:8080/tcp DNATed to C:80; the reply as it left: NODE:8080 -> CLIENT:40001. */
const PUB_TCP = portRow(NODE, 8080, tcp, C, 80);
const PUB_ANY_UDP = portRow('0.0.0.0', 5353, udp, C, 53);
const pubReply = (proto: 'tcp' | 'udp', src: string, sport: number, len?: number): Buffer =>
  quote({ src, dst: CLIENT, proto, sport, dport: 40001, tcpFlags: TCP_ACK, payload: Buffer.alloc(1300, 0x62), id: 99 }, len);
const pmtu = (dst: string, q: Buffer) => icmpErr({ src: ROUTER, dst, type: 3, code: 4, mtu: 1280 }, q);

const publishedCases: SnatCase[] = [
  {
    description: 'fragmentation needed about a reply of a published TCP port: to the container (path MTU discovery)',
    setup: { ...BASE, ports: [PUB_TCP], ct: [ct(C, CLIENT, 80, 40001, tcp, NODE, 8080)] },
    input: pmtu(NODE, pubReply('tcp', NODE, 8080, 576 - 28)),
    expectOutput: pmtu(C, pubReply('tcp', C, 80, 576 - 28)),
    ...XLATED,
  },
  {
    description: 'through a wildcard UDP frontend, delivered into the local container',
    setup: { ...BASE, ports: [PUB_ANY_UDP], addrs: [NODE], ct: [ct(C, CLIENT, 53, 40001, udp, NODE, 5353)], endpoints: [EP] },
    input: pmtu(NODE, pubReply('udp', NODE, 5353, 28)),
    expectVerdict: TC_ACT_REDIRECT,
    expectOutput: icmpErr({ src: ROUTER, dst: C, type: 3, code: 4, mtu: 1280, dstMac: C_MAC }, pubReply('udp', C, 53, 28)),
    expectMetrics: { METRIC_ICMP_XLATE: 1, METRIC_REDIRECT: 1 },
  },
  {
    description: 'wildcard frontend, but the quoted source is not a node address: untouched',
    setup: { ...BASE, ports: [PUB_ANY_UDP], ct: [ct(C, CLIENT, 53, 40001, udp, NODE, 5353)] },
    input: pmtu(NODE, pubReply('udp', NODE, 5353, 28)),
    ...untouched('METRIC_PASS'),
  },
  {
    description: 'no such flow in bpfnet_nat_ct (forged or expired): untouched',
    setup: { ...BASE, ports: [PUB_TCP], ct: [ct(C, CLIENT, 80, 40002, tcp, NODE, 8080)] },
    input: pmtu(NODE, pubReply('tcp', NODE, 8080, 28)),
    ...untouched('METRIC_PASS'),
  },
  {
    description: 'the flow came in through another frontend: untouched',
    setup: { ...BASE, ports: [PUB_TCP], ct: [ct(C, CLIENT, 80, 40001, tcp, NODE, 9090)] },
    input: pmtu(NODE, pubReply('tcp', NODE, 8080, 28)),
    ...untouched('METRIC_PASS'),
  },
];

// ---- uplink egress: a container's error about a masqueraded reply ---------------

/** What REMOTE:53 sent, as the container got it (after reverse SNAT), and as it was on the wire. */
const replyIn = (dst: string, dport: number): PacketSpec => ({ src: REMOTE, dst, proto: 'udp', sport: 53, dport, payload: Buffer.from('answer'), id: 9 });
const fromC = (src: string, q: Buffer) => icmpErr({ src, dst: REMOTE, type: 3, code: 3, mtu: 0, srcMac: NODE_MAC, dstMac: ROUTER_MAC }, q);

const egressCases: SnatCase[] = [
  {
    description: 'port unreachable from the container: quote destination and outer source become the node',
    setup: { ...BASE, snat: UDP_FLOW },
    input: fromC(C, quote(replyIn(C, 40000))),
    expectOutput: fromC(NODE, quote(replyIn(NODE, 61001))),
    ...XLATED,
  },
  {
    description: 'an error the node itself sends about such a reply: only the quote changes',
    setup: { ...BASE, snat: UDP_FLOW },
    input: fromC(NODE, quote(replyIn(C, 40000))),
    expectOutput: fromC(NODE, quote(replyIn(NODE, 61001))),
    ...XLATED,
  },
  {
    description: 'TCP: RFC 792 quote',
    setup: TCP_SETUP,
    input: fromC(C, quote({ src: REMOTE, dst: C, proto: 'tcp', sport: 443, dport: 40000, tcpFlags: TCP_SYN | TCP_ACK }, 28)),
    expectOutput: fromC(NODE, quote({ src: REMOTE, dst: NODE, proto: 'tcp', sport: 443, dport: 62000, tcpFlags: TCP_SYN | TCP_ACK }, 28)),
    ...XLATED,
  },
  {
    description: 'no state for the quote: untouched',
    setup: { ...BASE, snat: UDP_FLOW },
    input: fromC(C, quote(replyIn(C, 40001))),
    ...untouched('METRIC_PASS'),
  },
  {
    description: 'from an internal network: dropped',
    setup: { nets: [{ ...NET, flags: NET_F_INTERNAL }], uplinkAddr: NODE },
    input: fromC(C, quote(replyIn(C, 40001))),
    expectVerdict: TC_ACT_SHOT,
    expectOutput: 'unchanged',
    expectMetrics: { METRIC_DROP_INTERNAL: 1 },
  },
];

// ---- container side: icmp_error_rnat ------------------------------------------

const PROBE_C = `// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Test probe: icmp_error_rnat() as endpoint.c is to call it. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/icmp.h"

SEC("tc")
int icmp_rnat_probe(struct __sk_buff *skb)
{
	struct pkt p = {};

	/* endpoint.c parses with parse_ipv4_l4: ICMP comes back as PARSE_OTHER. */
	if (parse_ipv4_l4(skb, &p) != PARSE_OTHER || p.proto != IPPROTO_ICMP)
		return TC_ACT_OK;
	switch (icmp_error_rnat(skb, &p)) {
	case NAT_DONE:
		metric_inc(METRIC_ICMP_XLATE, skb->len);
		return TC_ACT_OK;
	case NAT_FAILED:
		metric_inc(METRIC_REWRITE_FAIL, skb->len);
		return TC_ACT_SHOT;
	default:
		return TC_ACT_OK;
	}
}

char _license[] SEC("license") = "Dual BSD/GPL";
`;

/** CLIENT:40001 -> NODE:5353/udp and NODE:8080/tcp, DNATed to C:53 / C:80. */
const CT = [ct(C, CLIENT, 53, 40001, udp, NODE, 5353), ct(C, CLIENT, 80, 40001, tcp, NODE, 8080)];
const dnated = (proto: 'udp' | 'tcp', src: string, dst: string, dport: number): PacketSpec =>
  ({ src, dst, proto, sport: 40001, dport, tcpFlags: TCP_ACK, payload: Buffer.from('request'), id: 5 });
const containerErr = (src: string, dst: string, q: Buffer) =>
  icmpErr({ src, dst, type: 3, code: 3, mtu: 0, srcMac: C_MAC, dstMac: NODE_MAC }, q);

const rnatCases: SnatCase[] = [
  {
    description: 'port unreachable about a published UDP port: quote destination and outer source become node:hostport',
    setup: { ct: [...CT] },
    input: containerErr(C, CLIENT, quote(dnated('udp', CLIENT, C, 53))),
    expectOutput: containerErr(NODE, CLIENT, quote(dnated('udp', CLIENT, NODE, 5353))),
    ...XLATED,
  },
  {
    description: 'about a published TCP port, whole segment quoted (TCP checksum fixed)',
    setup: { ct: [...CT] },
    input: containerErr(C, CLIENT, quote(dnated('tcp', CLIENT, C, 80))),
    expectOutput: containerErr(NODE, CLIENT, quote(dnated('tcp', CLIENT, NODE, 8080))),
    ...XLATED,
  },
  {
    description: 'hairpin: the quote\'s source and the outer destination get the client container back',
    setup: { ct: [ct(C, GW, 80, 40001, tcp, NODE, 8080, 1, C2)] },
    input: containerErr(C, GW, quote(dnated('tcp', GW, C, 80))),
    expectOutput: containerErr(NODE, C2, quote(dnated('tcp', C2, NODE, 8080))),
    ...XLATED,
  },
  {
    description: 'no reverse-NAT state for the quote: untouched',
    setup: { ct: [...CT] },
    input: containerErr(C, CLIENT, quote(dnated('udp', CLIENT, C, 54))),
    ...untouched(),
  },
  {
    description: 'malformed: quote cut inside its IP header: untouched',
    setup: { ct: [...CT] },
    input: containerErr(C, CLIENT, quote(dnated('udp', CLIENT, C, 53), 16)),
    ...untouched(),
  },
  {
    description: 'ICMP fragment: untouched',
    setup: { ct: [...CT] },
    input: buildPacket({ src: C, dst: CLIENT, proto: 'icmp', icmpType: 3, icmpCode: 3, payload: quote(dnated('udp', CLIENT, C, 53)), moreFragments: true }),
    ...untouched(),
  },
  {
    description: 'quoted echo (no published ports for ICMP): untouched',
    setup: { ct: [...CT] },
    input: containerErr(C, CLIENT, quote({ src: CLIENT, dst: C, proto: 'icmp', sport: 53, dport: 53 })),
    ...untouched(),
  },
];

describe('ICMP errors about translated flows', () => {
  const suite = snatSuite([{ name: 'icmp_probe', source: PROBE_C }]);
  const run = (prog: string, c: SnatCase) => runSnatCase(suite.env, suite.progs[prog]!, c);

  describe('from_uplink: errors about masqueraded flows go to the container', () => {
    for (const c of ingressCases) it(c.description, () => run('from_uplink', c));
  });
  describe('from_uplink: errors about published-port replies go to the container', () => {
    for (const c of publishedCases) it(c.description, () => run('from_uplink', c));
  });
  describe('to_uplink: a container\'s error about a masqueraded reply leaves as the node', () => {
    for (const c of egressCases) it(c.description, () => run('to_uplink', c));
  });
  describe('icmp_error_rnat (container side, published ports)', () => {
    for (const c of rnatCases) it(c.description, () => run('icmp_rnat_probe', c));
  });
});
