/**
 * The redirect of 127.0.0.11:53 to the resolver's port: the rules and
 * rulesets the fallbacks program (pure), and bpf/sandbox_lo.c run with
 * BPF_PROG_TEST_RUN on built packets (a private bpffs root; the program
 * finds its port by the cookie of the netns it runs in). Expected packets
 * are built independently and compared byte for byte.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedirect, dockerDnsRules, nftDnsRuleset, redirectForDataplane, SANDBOX_LO, type RedirectMode } from '../../src/dns/index.js';
import { loadObject } from '../../src/loader/load.js';
import { testRun } from '../../src/loader/testrun.js';
import { TypedMap } from '../../src/maps/map.js';
import { netnsCookie } from '../../src/netlink/index.js';
import { withBpfRoot, TC_ACT_OK, type BpfRoot } from '../harness/bpfroot.js';
import { buildPacket, verifyChecksums, TCP_ACK, TCP_PSH, type PacketSpec } from '../harness/packet.js';

describe('DNS redirect rules (pure)', () => {
  it("Docker's iptables rules, as iptables-save prints them", () => {
    expect(dockerDnsRules('127.0.0.11', 41234)).toEqual({
      jumps: [
        ['OUTPUT', '-d', '127.0.0.11/32', '-j', 'DOCKER_OUTPUT'],
        ['POSTROUTING', '-d', '127.0.0.11/32', '-j', 'DOCKER_POSTROUTING'],
      ],
      rules: [
        '-A DOCKER_OUTPUT -d 127.0.0.11/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:41234',
        '-A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:41234',
        '-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p tcp -m tcp --sport 41234 -j SNAT --to-source :53',
        '-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p udp -m udp --sport 41234 -j SNAT --to-source :53',
      ],
    });
    // Docker's own resolver has a port per protocol; the rules allow it.
    expect(dockerDnsRules('127.0.0.11', 1000, 2000).rules.filter((r) => r.includes('tcp')).join(' ')).toMatch(/127\.0\.0\.11:2000.*--sport 2000/);
  });

  it('the nftables table DNATs both protocols to the port and SNATs replies back to 53', () => {
    const t = nftDnsRuleset('127.0.0.11', 40000);
    expect(t).toMatch(/^table ip bpfnet_dns \{/);
    expect(t).toContain('type nat hook output priority -100;');
    expect(t).toContain('ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:40000');
    expect(t).toContain('ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:40000');
    expect(t).toContain('ip saddr 127.0.0.11 tcp sport 40000 snat to 127.0.0.11:53');
  });

  it('the redirect follows the dataplane; unknown modes are refused', () => {
    expect(redirectForDataplane('ebpf')).toBe('ebpf');
    expect(redirectForDataplane('iptables')).toBe('iptables');
    expect(redirectForDataplane('nftables')).toBe('nftables');
    expect(redirectForDataplane('anything')).toBe('ebpf');
    expect(() => createRedirect('pf' as RedirectMode)).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    expect(createRedirect('none').mode).toBe('none');
  });
});

describe('bpf/sandbox_lo.c (BPF_PROG_TEST_RUN)', () => {
  const PORT = 40000;
  const R = '127.0.0.11';
  const CLIENT = '127.0.0.1';
  let bpf: BpfRoot;
  let pin: string;
  let map: TypedMap<'bpfnet_dns'>;
  let cookie: bigint;

  beforeAll(async () => {
    bpf = await withBpfRoot();
    const obj = await loadObject(SANDBOX_LO.object, { root: bpf.root, progType: 'classifier' });
    pin = obj.progs[SANDBOX_LO.prog]!;
    map = TypedMap.open(bpf.mapDir, 'bpfnet_dns');
    cookie = netnsCookie(bpf.netns);
    await map.set({ netns_cookie: cookie }, { port: PORT, flags: 0 });
  });
  afterAll(async () => {
    map?.close();
    await bpf?.cleanup();
  });

  // A DNS query for "web" A (the program looks at headers only).
  const payload = Buffer.from('010201000001000000000000037765620000010001', 'hex');
  const pkt = (spec: Omit<PacketSpec, 'payload'>): Buffer => buildPacket({ payload, srcMac: '00:00:00:00:00:00', dstMac: '00:00:00:00:00:00', ...spec });
  const runOn = async (input: Buffer) => {
    const r = await testRun(pin, input, { netns: bpf.netns });
    expect(r.retval).toBe(TC_ACT_OK);
    return r.output;
  };

  const cases: { description: string; input: Omit<PacketSpec, 'payload'>; output: Omit<PacketSpec, 'payload'> | 'unchanged' }[] = [
    { description: 'UDP query to 127.0.0.11:53 goes to the port', input: { src: CLIENT, dst: R, proto: 'udp', sport: 51000, dport: 53 }, output: { src: CLIENT, dst: R, proto: 'udp', sport: 51000, dport: PORT } },
    { description: 'TCP segment to 127.0.0.11:53 goes to the port', input: { src: CLIENT, dst: R, proto: 'tcp', sport: 51000, dport: 53, tcpFlags: TCP_ACK | TCP_PSH, tcpSeq: 7, tcpAck: 9 }, output: { src: CLIENT, dst: R, proto: 'tcp', sport: 51000, dport: PORT, tcpFlags: TCP_ACK | TCP_PSH, tcpSeq: 7, tcpAck: 9 } },
    { description: 'UDP reply from the port comes from 53', input: { src: R, dst: CLIENT, proto: 'udp', sport: PORT, dport: 51000 }, output: { src: R, dst: CLIENT, proto: 'udp', sport: 53, dport: 51000 } },
    { description: 'TCP reply from the port comes from 53', input: { src: R, dst: CLIENT, proto: 'tcp', sport: PORT, dport: 51000, tcpFlags: TCP_ACK }, output: { src: R, dst: CLIENT, proto: 'tcp', sport: 53, dport: 51000, tcpFlags: TCP_ACK } },
    { description: 'a UDP query without checksum keeps none', input: { src: CLIENT, dst: R, proto: 'udp', sport: 51000, dport: 53, udpChecksumZero: true }, output: { src: CLIENT, dst: R, proto: 'udp', sport: 51000, dport: PORT, udpChecksumZero: true } },
    { description: 'another port of 127.0.0.11 is not touched', input: { src: CLIENT, dst: R, proto: 'udp', sport: 51000, dport: 54 }, output: 'unchanged' },
    { description: '53 on another loopback address (the sandbox\'s own server) is not touched', input: { src: CLIENT, dst: '127.0.0.1', proto: 'udp', sport: 51000, dport: 53 }, output: 'unchanged' },
    { description: 'a reply from 53 of the sandbox\'s own server is not touched', input: { src: '127.0.0.1', dst: CLIENT, proto: 'udp', sport: 53, dport: 51000 }, output: 'unchanged' },
    { description: 'from 127.0.0.11 but another port is not touched', input: { src: R, dst: CLIENT, proto: 'udp', sport: PORT + 1, dport: 51000 }, output: 'unchanged' },
    { description: 'a fragment is not touched', input: { src: CLIENT, dst: R, proto: 'udp', sport: 51000, dport: 53, fragOffset: 3 }, output: 'unchanged' },
    { description: 'ICMP to 127.0.0.11 is not touched', input: { src: CLIENT, dst: R, proto: 'icmp' }, output: 'unchanged' },
  ];
  for (const c of cases) {
    it(c.description, async () => {
      const input = pkt(c.input);
      const out = await runOn(input);
      const want = c.output === 'unchanged' ? input : pkt(c.output);
      expect(out.toString('hex')).toBe(want.toString('hex'));
      if (c.output !== 'unchanged') expect(verifyChecksums(out)).toBe(true);
    });
  }

  it('a netns without an entry (not served, or detached) is not touched', async () => {
    await map.delete({ netns_cookie: cookie });
    try {
      const q = pkt({ src: CLIENT, dst: R, proto: 'udp', sport: 51000, dport: 53 });
      expect((await runOn(q)).toString('hex')).toBe(q.toString('hex'));
      const r = pkt({ src: R, dst: CLIENT, proto: 'udp', sport: PORT, dport: 51000 });
      expect((await runOn(r)).toString('hex')).toBe(r.toString('hex'));
    } finally {
      await map.set({ netns_cookie: cookie }, { port: PORT, flags: 0 });
    }
  });
});
