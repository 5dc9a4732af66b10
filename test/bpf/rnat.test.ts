/**
 * Table-driven BPF_PROG_TEST_RUN tests of from_container (reverse NAT of
 * replies leaving a container), plus round trips through from_uplink and
 * from_container loaded into the same root (shared maps). Expected packets
 * are built independently with buildPacket and compared byte for byte.
 */
import { describe, expect, it, type TestContext } from 'vitest';
import { testRun } from '../../src/loader/testrun.js';
import type { NatCtKey, NatCtValue, PortKey, PortValue } from '../../src/maps/generated/abi.js';
import { TypedMap } from '../../src/maps/map.js';
import {
  ctKey,
  ctVal,
  metricsDelta,
  MetricTally,
  portRow as port,
  readMetrics,
  TC_ACT_OK,
  bpfSuite,
  runChecked,
  type BpfCase,
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
  TCP_SYN,
  type PacketSpec,
  verifyChecksums,
} from '../harness/packet.js';
import { ANY, BACKEND, NODE_IP, NODE_IP2, NODE_MAC, tcp, udp } from '../harness/addresses.js';

const CLIENT = '192.0.2.20';
const CLIENT2 = '192.0.2.21';
const CLIENT_MAC = '02:00:00:00:c1:20';
const BACKEND_MAC = '02:00:00:00:b0:02';
const VETH_MAC = '02:00:00:00:b0:01';

/** A container -> client reply as it leaves the container; override anything. */
function reply(o: Partial<PacketSpec> = {}): Buffer {
  return buildPacket({
    srcMac: BACKEND_MAC, dstMac: VETH_MAC,
    src: BACKEND, dst: CLIENT, proto: 'tcp', sport: 80, dport: 40001,
    tcpFlags: TCP_SYN | TCP_ACK, id: 0x1111, ttl: 64, payload: Buffer.from('HTTP/1.1 200 OK\r\n'), // odd length
    ...o,
  });
}

/** A client -> node request as it reaches the uplink. */
function request(o: Partial<PacketSpec> = {}): Buffer {
  return buildPacket({
    srcMac: CLIENT_MAC, dstMac: NODE_MAC,
    src: CLIENT, dst: NODE_IP, proto: 'tcp', sport: 40001, dport: 8080,
    tcpFlags: TCP_SYN, id: 0x2222, payload: Buffer.from('hello?'),
    ...o,
  });
}

function ct(key: NatCtKey, origAddr: string, origPort: number): [NatCtKey, NatCtValue] {
  return [key, ctVal(origAddr, origPort)];
}

/** The flows most cases have state for. */
const WEB_CT = ct(ctKey(BACKEND, 80, CLIENT, 40001, tcp), NODE_IP, 8080);
const DNS_CT = ct(ctKey(BACKEND, 53, CLIENT, 33333, udp), NODE_IP, 5353);
const FLOWS = { ct: [WEB_CT, DNS_CT] };

const rnatCases: BpfCase[] = [
  {
    description: 'TCP reply: source becomes the frontend address and port',
    setup: FLOWS,
    input: reply(),
    expectVerdict: TC_ACT_OK,
    expectOutput: reply({ src: NODE_IP, sport: 8080 }),
    expectCtTouched: [WEB_CT[0]],
    expectMetric: 'METRIC_RNAT',
  },
  {
    description: 'TCP reply with a 1400-byte payload',
    setup: FLOWS,
    input: reply({ tcpFlags: TCP_ACK | TCP_PSH, payload: Buffer.alloc(1400, 0x3c) }),
    expectVerdict: TC_ACT_OK,
    expectOutput: reply({ tcpFlags: TCP_ACK | TCP_PSH, payload: Buffer.alloc(1400, 0x3c), src: NODE_IP, sport: 8080 }),
    expectCtTouched: [WEB_CT[0]],
    expectMetric: 'METRIC_RNAT',
  },
  {
    description: 'UDP reply',
    setup: FLOWS,
    input: reply({ proto: 'udp', sport: 53, dport: 33333, payload: Buffer.from('answer') }),
    expectVerdict: TC_ACT_OK,
    expectOutput: reply({ proto: 'udp', src: NODE_IP, sport: 5353, dport: 33333, payload: Buffer.from('answer') }),
    expectCtTouched: [DNS_CT[0]],
    expectMetric: 'METRIC_RNAT',
  },
  {
    description: 'UDP reply with zero checksum: stays zero',
    setup: FLOWS,
    input: reply({ proto: 'udp', sport: 53, dport: 33333, udpChecksumZero: true }),
    expectVerdict: TC_ACT_OK,
    expectOutput: reply({ proto: 'udp', src: NODE_IP, sport: 5353, dport: 33333, udpChecksumZero: true }),
    expectCtTouched: [DNS_CT[0]],
    expectMetric: 'METRIC_RNAT',
  },
  {
    description: 'reply to a flow that came in through a wildcard frontend on a second node address',
    setup: { ct: [ct(ctKey(BACKEND, 80, CLIENT, 40001, tcp), NODE_IP2, 8080)] },
    input: reply(),
    expectVerdict: TC_ACT_OK,
    expectOutput: reply({ src: NODE_IP2, sport: 8080 }),
    expectCtTouched: [WEB_CT[0]],
    expectMetric: 'METRIC_RNAT',
  },
  {
    description: 'port unchanged (hostPort == containerPort): only the address is rewritten',
    setup: { ct: [ct(ctKey(BACKEND, 80, CLIENT, 40001, tcp), NODE_IP, 80)] },
    input: reply(),
    expectVerdict: TC_ACT_OK,
    expectOutput: reply({ src: NODE_IP }),
    expectCtTouched: [WEB_CT[0]],
    expectMetric: 'METRIC_RNAT',
  },
  {
    description: 'TCP reply with 8 bytes of IP options: options preserved',
    setup: FLOWS,
    input: reply({ ipOptions: Buffer.from('0101010101010100', 'hex') }),
    expectVerdict: TC_ACT_OK,
    expectOutput: reply({ ipOptions: Buffer.from('0101010101010100', 'hex'), src: NODE_IP, sport: 8080 }),
    expectCtTouched: [WEB_CT[0]],
    expectMetric: 'METRIC_RNAT',
  },
  {
    description: 'UDP reply with 4 bytes of IP options and zero checksum',
    setup: FLOWS,
    input: reply({ proto: 'udp', sport: 53, dport: 33333, udpChecksumZero: true, ipOptions: Buffer.from([1, 1, 1, 0]) }),
    expectVerdict: TC_ACT_OK,
    expectOutput: reply({ proto: 'udp', src: NODE_IP, sport: 5353, dport: 33333, udpChecksumZero: true, ipOptions: Buffer.from([1, 1, 1, 0]) }),
    expectCtTouched: [DNS_CT[0]],
    expectMetric: 'METRIC_RNAT',
  },
  {
    description: 'short UDP reply with Ethernet padding: padding untouched',
    setup: FLOWS,
    input: Buffer.concat([reply({ proto: 'udp', sport: 53, dport: 33333, payload: Buffer.from('ok') }), Buffer.alloc(16)]),
    expectVerdict: TC_ACT_OK,
    expectOutput: Buffer.concat([reply({ proto: 'udp', src: NODE_IP, sport: 5353, dport: 33333, payload: Buffer.from('ok') }), Buffer.alloc(16)]),
    expectCtTouched: [DNS_CT[0]],
    expectMetric: 'METRIC_RNAT',
  },
];

const passCases: BpfCase[] = [
  {
    description: 'no ct entry at all',
    input: reply(),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'reply to a different client port',
    setup: FLOWS,
    input: reply({ dport: 40002 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'reply to a different client address',
    setup: FLOWS,
    input: reply({ dst: CLIENT2 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'from a different container port',
    setup: FLOWS,
    input: reply({ sport: 81 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'same tuple, other protocol (UDP where the flow is TCP)',
    setup: FLOWS,
    input: reply({ proto: 'udp' }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'traffic toward the container direction (client -> backend) is not a reply',
    setup: FLOWS,
    input: reply({ src: CLIENT, sport: 40001, dst: BACKEND, dport: 80 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'ICMP from the container to the client',
    setup: FLOWS,
    input: reply({ proto: 'icmp', sport: 80, dport: 40001 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'ARP (0x0806)',
    setup: FLOWS,
    input: buildFrame({ srcMac: BACKEND_MAC, dstMac: 'ff:ff:ff:ff:ff:ff', ethType: ETH_P_ARP, body: Buffer.from('0001080006040001' + '02000000b002' + 'c6130002' + '000000000000' + 'c6130001', 'hex') }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'IPv6 (0x86dd)',
    setup: FLOWS,
    input: buildFrame({ srcMac: BACKEND_MAC, dstMac: VETH_MAC, ethType: ETH_P_IPV6, body: Buffer.concat([Buffer.from('6000000000080640', 'hex'), Buffer.alloc(32, 0x20), Buffer.from('00509c41', 'hex'), Buffer.alloc(4)]) }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'first fragment (MF set) of a reply with ct state',
    setup: FLOWS,
    input: reply({ proto: 'udp', sport: 53, dport: 33333, moreFragments: true }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'non-first fragment (offset != 0) of a reply',
    setup: FLOWS,
    input: reply({ fragOffset: 64 }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'malformed: truncated IPv4 header (14 + 10 bytes)',
    setup: FLOWS,
    input: reply().subarray(0, L3 + 10),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
    kernelMayReject: true,
  },
  {
    description: 'malformed: truncated IPv4 header (ihl 6, frame ends after 20 bytes)',
    setup: FLOWS,
    input: edit(reply().subarray(0, L3 + 20), (b) => { b[L3] = 0x46; b.writeUInt16BE(24, L3 + 2); }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'malformed: ihl < 5',
    setup: FLOWS,
    input: edit(reply(), (b) => { b[L3] = 0x43; }, false),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'malformed: tot_len larger than the packet',
    setup: FLOWS,
    input: edit(reply(), (b) => { b.writeUInt16BE(b.length - L3 + 4, L3 + 2); }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'malformed: TCP header truncated (6 bytes of TCP)',
    setup: FLOWS,
    input: edit(reply().subarray(0, L4 + 6), (b) => { b.writeUInt16BE(20 + 6, L3 + 2); }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'malformed: TCP doff < 5',
    setup: FLOWS,
    input: edit(reply(), (b) => { b[L4 + 12] = 0x30; }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
  {
    description: 'malformed: UDP header truncated',
    setup: FLOWS,
    input: edit(reply({ proto: 'udp', sport: 53, dport: 33333 }).subarray(0, L4 + 7), (b) => { b.writeUInt16BE(20 + 7, L3 + 2); }),
    expectVerdict: TC_ACT_OK,
    expectOutput: 'unchanged',
    expectMetric: null,
  },
];

describe('from_container (reverse NAT)', () => {
  const suite = bpfSuite(['endpoint', 'uplink'], 'from_container');
  const tally = new MetricTally();
  const run = (c: BpfCase, ctx: TestContext) => runChecked(suite.env, c, ctx, tally);

  describe('translates replies', () => {
    for (const c of rnatCases) it(c.description, (ctx) => run(c, ctx));
  });

  describe('passes untouched', () => {
    for (const c of passCases) it(c.description, (ctx) => run(c, ctx));
  });

  describe('round trip: uplink DNAT, then endpoint reverse NAT', () => {
    const flows: { description: string; ports: [PortKey, PortValue][]; addrs: string[]; req: Partial<PacketSpec>; backendPort: number; rep: Partial<PacketSpec> }[] = [
      {
        description: 'TCP through an exact frontend',
        ports: [port(NODE_IP, 8080, tcp, BACKEND, 80)],
        addrs: [],
        req: {},
        backendPort: 80,
        rep: {},
      },
      {
        description: 'TCP through a wildcard frontend on the second node address',
        ports: [port(ANY, 8080, tcp, BACKEND, 80)],
        addrs: [NODE_IP, NODE_IP2],
        req: { dst: NODE_IP2 },
        backendPort: 80,
        rep: {},
      },
      {
        description: 'UDP without checksum through a wildcard frontend',
        ports: [port(ANY, 5353, udp, BACKEND, 53)],
        addrs: [NODE_IP],
        req: { proto: 'udp', sport: 33333, dport: 5353, udpChecksumZero: true },
        backendPort: 53,
        rep: { proto: 'udp', dport: 33333, udpChecksumZero: true, payload: Buffer.from('resp') },
      },
    ];
    for (const f of flows) {
      it(f.description, async () => {
        const { ports, addrs } = suite.env;
        await ports.setMany(f.ports);
        await addrs.setMany(f.addrs.map((a) => [{ addr: a }, { flags: 0 }]));
        const frontend = f.req.dst ?? NODE_IP;
        const frontendPort = f.req.dport ?? 8080;

        const req = request(f.req);
        const r1 = await testRun(suite.progs.from_uplink!, req, { netns: suite.bpf.netns });
        expect(r1.retval).toBe(TC_ACT_OK);
        expect(r1.output.toString('hex')).toBe(request({ ...f.req, dst: BACKEND, dport: f.backendPort }).toString('hex'));
        tally.add('METRIC_DNAT');

        const rep = reply({ sport: f.backendPort, ...f.rep });
        const r2 = await testRun(suite.env.prog, rep, { netns: suite.bpf.netns });
        expect(r2.retval).toBe(TC_ACT_OK);
        expect(r2.output.toString('hex')).toBe(reply({ ...f.rep, src: frontend, sport: frontendPort }).toString('hex'));
        expect(verifyChecksums(r2.output)).toBe(true);
        tally.add('METRIC_RNAT');
      });
    }
  });

  // The ct key is the reply tuple, which does not say which frontend a flow
  // used. Two published ports to one container port (-p 53:53/udp -p
  // 5353:53/udp) reached from one client socket share a key: like conntrack,
  // the second (clashing) flow is refused while the first is live.
  it('regression: two frontends of one backend port, same client socket: the clashing flow is refused, the first keeps its frontend', async () => {
    await tally.track(suite.bpf.mapDir, async () => {
      await suite.env.ports.setMany([port(NODE_IP, 53, udp, BACKEND, 53), port(NODE_IP, 5353, udp, BACKEND, 53)]);
      const q = { proto: 'udp' as const, sport: 33333 };
      expect((await testRun(suite.progs.from_uplink!, request({ ...q, dport: 53 }), { netns: suite.bpf.netns })).retval).toBe(TC_ACT_OK);
      expect((await testRun(suite.progs.from_uplink!, request({ ...q, dport: 5353 }), { netns: suite.bpf.netns })).retval).toBe(TC_ACT_OK);
      const r = await testRun(suite.env.prog, reply({ proto: 'udp', sport: 53, dport: 33333 }), { netns: suite.bpf.netns });
      // This reply could answer either query; what must not happen is that the
      // first flow silently loses its translation. Conntrack refuses the clashing
      // second flow instead, so the first flow's replies keep source port 53.
      expect(r.output.toString('hex')).toBe(reply({ proto: 'udp', src: NODE_IP, sport: 53, dport: 33333 }).toString('hex'));
    });
  });

  // Hairpin: a container reached its own published port; the request's source
  // was SNATed to the gateway and the ct entry carries NAT_CT_F_HAIRPIN and
  // the container's own address, restored as the reply's destination.
  describe('hairpin replies and replies to local client containers', () => {
    const GW = '198.19.0.1';
    const CLIENT_CTR = '198.19.0.3';
    const CLIENT_CTR_MAC = '02:42:c6:13:00:03';
    const TC_ACT_REDIRECT = 7;

    async function withEndpoints<T>(eps: { addr: string; ifindex: number; mac: string }[], f: () => Promise<T>): Promise<T> {
      const m = TypedMap.open(suite.bpf.mapDir, 'bpfnet_endpoints');
      try {
        await m.setMany(eps.map((e) => [{ addr: e.addr }, { ...e, net_id: 1, flags: 0 }]));
        return await f();
      } finally {
        await m.deleteMany(eps.map((e) => ({ addr: e.addr })));
        m.close();
      }
    }

    async function expectRnat(input: Buffer, verdict: number, output: Buffer, moved: Partial<Record<string, number>>): Promise<void> {
      const before = await readMetrics(suite.bpf.mapDir);
      const r = await testRun(suite.env.prog, input, { netns: suite.bpf.netns });
      expect(r.retval, 'verdict').toBe(verdict);
      expect(r.output.toString('hex'), 'output packet').toBe(output.toString('hex'));
      expect(verifyChecksums(r.output)).toBe(true);
      const d = metricsDelta(before, await readMetrics(suite.bpf.mapDir));
      expect(Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v!.packets]))).toEqual(moved);
      tally.add('METRIC_RNAT', d.METRIC_RNAT?.packets ?? 0);
    }

    const hp = (key: NatCtKey, origAddr: string, origPort: number, client: string): [NatCtKey, NatCtValue] =>
      [key, ctVal(origAddr, origPort, { flags: 0x1, client })];

    it('hairpin TCP reply: source -> frontend, destination -> the container itself (no endpoint programmed: FIB, here the stack)', async () => {
      const key = ctKey(BACKEND, 80, GW, 40001, tcp);
      await suite.env.ct.setMany([hp(key, NODE_IP, 8080, BACKEND)]);
      await expectRnat(reply({ dst: GW }), TC_ACT_OK, reply({ src: NODE_IP, sport: 8080, dst: BACKEND }), { METRIC_RNAT: 1 });
      const v = await suite.env.ct.get(key);
      expect(v?.flags).toBe(1);
      expect(v?.client_addr).toBe(BACKEND);
      expect(v!.last_seen_ns).toBeGreaterThan(1n);
    });

    it('hairpin UDP reply without checksum, through a wildcard frontend on the second node address', async () => {
      await suite.env.ct.setMany([hp(ctKey(BACKEND, 53, GW, 33333, udp), NODE_IP2, 5353, BACKEND)]);
      const q = { proto: 'udp' as const, sport: 53, dport: 33333, udpChecksumZero: true };
      await expectRnat(reply({ ...q, dst: GW }), TC_ACT_OK, reply({ ...q, src: NODE_IP2, sport: 5353, dst: BACKEND }), { METRIC_RNAT: 1 });
    });

    it('hairpin reply delivered into the container itself: TTL-1, its MAC, redirect_peer', async () => {
      await suite.env.ct.setMany([hp(ctKey(BACKEND, 80, GW, 40001, tcp), NODE_IP, 8080, BACKEND)]);
      await withEndpoints([{ addr: BACKEND, ifindex: 11, mac: BACKEND_MAC }], () =>
        expectRnat(reply({ dst: GW }), TC_ACT_REDIRECT, reply({ src: NODE_IP, sport: 8080, dst: BACKEND, ttl: 63, dstMac: BACKEND_MAC }), { METRIC_RNAT: 1, METRIC_REDIRECT: 1 }));
    });

    it('a flag-less entry with a client_addr set is not treated as hairpin', async () => {
      await suite.env.ct.setMany([[ctKey(BACKEND, 80, CLIENT, 40001, tcp), ctVal(NODE_IP, 8080, { client: '192.0.2.99' })]]);
      await expectRnat(reply(), TC_ACT_OK, reply({ src: NODE_IP, sport: 8080 }), { METRIC_RNAT: 1 });
    });

    it('reply to a client container (it reached node:8080 from the same node): delivered into it, TTL-1', async () => {
      await suite.env.ct.setMany([ct(ctKey(BACKEND, 80, CLIENT_CTR, 40001, tcp), NODE_IP, 8080)]);
      await withEndpoints([{ addr: CLIENT_CTR, ifindex: 12, mac: CLIENT_CTR_MAC }], () =>
        expectRnat(reply({ dst: CLIENT_CTR }), TC_ACT_REDIRECT, reply({ src: NODE_IP, sport: 8080, dst: CLIENT_CTR, ttl: 63, dstMac: CLIENT_CTR_MAC }), { METRIC_RNAT: 1, METRIC_REDIRECT: 1 }));
    });

    it('round trip from a container: its request DNATed on its own veth, the reply reversed on the backend\'s', async () => {
      await suite.env.ports.setMany([port(ANY, 8080, tcp, BACKEND, 80)]);
      await suite.env.addrs.setMany([[{ addr: NODE_IP }, { flags: 0 }]]);
      const req = buildPacket({ srcMac: CLIENT_CTR_MAC, dstMac: NODE_MAC, src: CLIENT_CTR, dst: NODE_IP, proto: 'tcp', sport: 40001, dport: 8080, tcpFlags: TCP_SYN });
      const before = await readMetrics(suite.bpf.mapDir);
      const r1 = await testRun(suite.env.prog, req, { netns: suite.bpf.netns });
      expect(r1.retval).toBe(TC_ACT_OK); // no endpoints programmed: translated, then the (empty) FIB
      expect(r1.output.toString('hex')).toBe(buildPacket({ srcMac: CLIENT_CTR_MAC, dstMac: NODE_MAC, src: CLIENT_CTR, dst: BACKEND, proto: 'tcp', sport: 40001, dport: 80, tcpFlags: TCP_SYN }).toString('hex'));
      tally.add('METRIC_DNAT', metricsDelta(before, await readMetrics(suite.bpf.mapDir)).METRIC_DNAT?.packets ?? 0);
      await expectRnat(reply({ dst: CLIENT_CTR }), TC_ACT_OK, reply({ src: NODE_IP, sport: 8080, dst: CLIENT_CTR }), { METRIC_RNAT: 1 });
    });
  });

  it('counts reverse-translated replies in bpfnet_metrics[METRIC_RNAT]', async () => {
    const m = await readMetrics(suite.bpf.mapDir);
    expect(tally.get('METRIC_RNAT')).toBeGreaterThanOrEqual(rnatCases.length + 3);
    expect(m.METRIC_RNAT.packets).toBe(BigInt(tally.get('METRIC_RNAT')));
    expect(m.METRIC_DNAT.packets).toBe(BigInt(tally.get('METRIC_DNAT')));
    expect(m.METRIC_REWRITE_FAIL.packets).toBe(0n);
    // from_container counts nothing for what it passes
    expect(m.METRIC_PASS.packets + m.METRIC_SKIP_FRAG.packets + m.METRIC_SKIP_MALFORMED.packets).toBe(0n);
  });
});
