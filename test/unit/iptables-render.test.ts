import { describe, expect, it } from 'vitest';
import { planState } from '../../src/dataplane/netfilter/plan.js';
import { JUMPS, USER_CHAIN, jumpInserts, jumpRule, renderIptables, renderRemoval, type Existing } from '../../src/dataplane/iptables/render.js';
import { parseSave, renderRollback, snapshotOf } from '../../src/dataplane/iptables/kernel.js';
import type { DataplaneNetwork, DesiredState } from '../../src/dataplane/types.js';

const net = (over: Partial<DataplaneNetwork> = {}): DataplaneNetwork => ({
  id: 1, subnet: '192.0.2.0/24', gateway: '192.0.2.1', bridge: 'br1', driver: 'bridge', internal: false, icc: true, masquerade: true, gatewayMode: 'nat', ...over,
});
const net2 = (over: Partial<DataplaneNetwork> = {}) => net({ id: 2, subnet: '198.51.100.0/24', gateway: '198.51.100.1', bridge: 'br2', ...over });

function state(over: Partial<DesiredState> = {}): DesiredState {
  return {
    uplinks: ['eth0'],
    nodeAddresses: ['203.0.113.1'],
    endpoints: [
      { hostDev: 'bpv1', ip: '192.0.2.2', mac: '02:42:C0:00:02:02', networkId: 1 },
      { hostDev: 'bpv2', ip: '198.51.100.2', networkId: 2 },
    ],
    ports: [
      { hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: '192.0.2.2', containerPort: 80 },
      { hostIp: '203.0.113.1', hostPort: 53, proto: 'udp', containerIp: '192.0.2.2', containerPort: 5353 },
    ],
    networks: [net(), net2()],
    ...over,
  };
}

const none: Existing = { builtin: {}, userChain: false };
const all: Existing = {
  builtin: Object.fromEntries(
    [...new Set(JUMPS.map((j) => `${j.table}/${j.from}`))].map((k) => [k, JUMPS.filter((j) => `${j.table}/${j.from}` === k).map(jumpRule)]),
  ),
  userChain: true,
};
const lines = (text: string) => text.split('\n');

describe('renderIptables', () => {
  it('writes Docker 28/29 rules in our chains, three tables, each committed', () => {
    const { text } = renderIptables(planState(state()), all);
    expect(text.match(/^\*(raw|nat|filter)$/gm)).toEqual(['*raw', '*nat', '*filter']);
    expect(text.match(/^COMMIT$/gm)).toHaveLength(3);
    const l = lines(text);
    expect(l).toContain('-A BPFNET -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80');
    expect(l).toContain('-A BPFNET -d 203.0.113.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 192.0.2.2:5353');
    expect(l).toContain('-A BPFNET-POSTROUTING -s 192.0.2.0/24 ! -o br1 -j MASQUERADE');
    expect(l).toContain('-A BPFNET-POSTROUTING -s 192.0.2.2/32 -d 192.0.2.2/32 -j MASQUERADE');
    expect(l).toContain('-A BPFNET-POSTROUTING -s 127.0.0.0/8 -o br1 -j MASQUERADE');
    expect(l).toContain('-A BPFNET-CT -o br1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
    expect(l).toContain('-A BPFNET-BRIDGE -o br1 -j BPFNET');
    expect(l).toContain('-A BPFNET -o br1 -m conntrack --ctstate DNAT -j ACCEPT');
    expect(l).toContain('-A BPFNET ! -i br1 -o br1 -j DROP');
    expect(l).toContain('-A BPFNET-FORWARD -i br1 -j ACCEPT');
    expect(l).toContain('-A BPFNET-RAW -d 192.0.2.2/32 ! -i br1 -j DROP');
    expect(l).toContain('-A BPFNET-RAW -i br1 -d 127.0.0.0/8 -j DROP');
  });

  it('puts exact frontends before wildcards (the exact one wins)', () => {
    const l = lines(renderIptables(planState(state()), all).text).filter((x) => x.includes('DNAT --to'));
    expect(l[0]).toContain('-d 203.0.113.1/32');
    expect(l[1]).not.toContain(' -d ');
  });

  it('anti-spoofs bridge ports by physdev, address and MAC (lower-cased)', () => {
    const l = lines(renderIptables(planState(state()), all).text);
    expect(l).toContain('-A BPFNET-RAW ! -s 192.0.2.2/32 -m physdev --physdev-in bpv1 -j DROP');
    expect(l).toContain('-A BPFNET-RAW -m physdev --physdev-in bpv1 -m mac ! --mac-source 02:42:c0:00:02:02 -j DROP');
    expect(l.filter((x) => x.includes('bpv2') && x.includes('mac'))).toEqual([]);
  });

  it('flushes and rewrites only our chains; never declares an existing BPFNET-USER', () => {
    const t1 = renderIptables(planState(state()), none).text;
    expect(t1).toContain(`:${USER_CHAIN} - [0:0]`);
    const t2 = renderIptables(planState(state()), all).text;
    expect(t2).not.toContain(`:${USER_CHAIN}`);
    expect(t2).not.toContain(`-A ${USER_CHAIN}`);
    for (const l of lines(t2)) if (/^[:-]/.test(l) && !l.startsWith('-I')) expect(l).toMatch(/^(:|-A )BPFNET/);
  });

  it('inserts the jumps only when missing, user chain first in FORWARD', () => {
    const ins = jumpInserts(none);
    expect(ins.raw).toEqual(['-I PREROUTING 1 -j BPFNET-RAW']);
    expect(ins.nat).toContain('-I PREROUTING 1 ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j BPFNET');
    expect(ins.nat).toContain('-I OUTPUT 1 -m addrtype --dst-type LOCAL -j BPFNET');
    expect(ins.filter.slice(-2)).toEqual([`-I FORWARD 1 -j ${USER_CHAIN}`, '-I FORWARD 2 -j BPFNET-FORWARD']);
    expect(jumpInserts(all)).toEqual({ raw: [], nat: [], filter: [] });
  });

  it('re-inserts a missing FORWARD jump next to the one still there', () => {
    const onlyUser: Existing = { ...all, builtin: { ...all.builtin, 'filter/FORWARD': ['-A FORWARD -j DOCKER-USER', `-A FORWARD -j ${USER_CHAIN}`] } };
    expect(jumpInserts(onlyUser).filter).toEqual(['-I FORWARD 3 -j BPFNET-FORWARD']);
    const onlyOurs: Existing = { ...all, builtin: { ...all.builtin, 'filter/FORWARD': ['-A FORWARD -j X', '-A FORWARD -j BPFNET-FORWARD'] } };
    expect(jumpInserts(onlyOurs).filter).toEqual([`-I FORWARD 2 -j ${USER_CHAIN}`]);
  });

  it('counts the rules it writes per chain', () => {
    const r = renderIptables(planState(state()), all);
    expect(r.counts['nat/BPFNET']).toBe(2);
    const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
    expect(total).toBe(lines(r.text).filter((l) => l.startsWith('-A ')).length);
  });

  it('gateway modes: nat-unprotected and routed allow direct access (not from other networks); routed does not masquerade', () => {
    const unprot = lines(renderIptables(planState(state({ networks: [net({ gatewayMode: 'nat-unprotected' }), net2()] })), all).text);
    expect(unprot).not.toContain('-A BPFNET-RAW -d 192.0.2.2/32 ! -i br1 -j DROP');
    expect(unprot).toContain('-A BPFNET -i br2 -o br1 -j DROP');
    expect(unprot).toContain('-A BPFNET -o br1 -j ACCEPT');
    expect(unprot).toContain('-A BPFNET-POSTROUTING -s 192.0.2.0/24 ! -o br1 -j MASQUERADE');
    const routed = lines(renderIptables(planState(state({ networks: [net({ gatewayMode: 'routed' }), net2()] })), all).text);
    expect(routed.filter((l) => l.includes('-s 192.0.2.0/24') && l.includes('MASQUERADE'))).toEqual([]);
    expect(routed).toContain('-A BPFNET -o br1 -j ACCEPT');
  });

  it('host_ipv4 is an SNAT; masquerade off writes none', () => {
    const snat = renderIptables(planState(state({ networks: [net({ snatIp: '203.0.113.9' }), net2()] })), all).text;
    expect(snat).toContain('-A BPFNET-POSTROUTING -s 192.0.2.0/24 ! -o br1 -j SNAT --to-source 203.0.113.9');
    const off = renderIptables(planState(state({ networks: [net({ masquerade: false }), net2()] })), all).text;
    expect(off).not.toContain('-s 192.0.2.0/24 ! -o br1');
  });

  it('ICC off drops bridge-to-same-bridge forwarding before the accept', () => {
    const l = lines(renderIptables(planState(state({ networks: [net({ icc: false }), net2()] })), all).text);
    const drop = l.indexOf('-A BPFNET-FORWARD -i br1 -o br1 -j DROP');
    expect(drop).toBeGreaterThan(0);
    expect(drop).toBeLessThan(l.indexOf('-A BPFNET-FORWARD -i br1 -j ACCEPT'));
  });

  it('internal and isolated networks: nothing in or out; isolated also cut from the node', () => {
    const internal = lines(renderIptables(planState(state({ networks: [net(), net2({ internal: true })] })), all).text);
    expect(internal).toContain('-A BPFNET-INTERNAL ! -s 198.51.100.0/24 -o br2 -j DROP');
    expect(internal).toContain('-A BPFNET-INTERNAL ! -d 198.51.100.0/24 -i br2 -j DROP');
    expect(internal.filter((l) => l.includes('198.51.100.0/24') && l.includes('MASQUERADE'))).toEqual([]);
    expect(internal.filter((l) => l.startsWith('-A BPFNET-INPUT'))).toEqual([]);
    const isolated = lines(renderIptables(planState(state({ networks: [net(), net2({ gatewayMode: 'isolated' })] })), all).text);
    expect(isolated).toContain('-A BPFNET-INPUT -i br2 -j DROP');
    expect(isolated).toContain('-A BPFNET-OUTPUT -o br2 -j DROP');
    expect(isolated).toContain('-A BPFNET-INTERNAL ! -s 198.51.100.0/24 -o br2 -j DROP');
  });

  it('routed driver: matched by subnet, spoofed subnet sources dropped on the uplinks, veths anti-spoofed by -i', () => {
    const s = state({
      networks: [net({ driver: 'routed', bridge: undefined, gatewayMode: 'routed' })],
      endpoints: [{ hostDev: 'bpv1', ip: '192.0.2.2', networkId: 1 }],
    });
    const l = lines(renderIptables(planState(s), all).text);
    expect(l).toContain('-A BPFNET-RAW -i eth0 -s 192.0.2.0/24 -j DROP');
    expect(l).toContain('-A BPFNET-RAW ! -s 192.0.2.2/32 -i bpv1 -j DROP');
    expect(l).toContain('-A BPFNET-FORWARD -s 192.0.2.0/24 -j ACCEPT');
    expect(l).toContain('-A BPFNET ! -s 192.0.2.0/24 -d 192.0.2.0/24 -j DROP');
  });
});

describe('planState validation (before anything is touched)', () => {
  it.each([
    ['an interface name iptables would take as a wildcard', state({ uplinks: ['eth+'] }), /interface name/],
    ['a 16-character device', state({ endpoints: [{ hostDev: 'a234567890123456' }] }), /interface name/],
    ['a frontend published twice', state({ ports: [...state().ports, { ...state().ports[0]!, containerPort: 81 }] }), /published twice/],
    ['a bad container IP', state({ ports: [{ ...state().ports[0]!, containerIp: '1.2.3' }] }), /container IP/],
    ['an endpoint of an unknown network', state({ endpoints: [{ hostDev: 'bpv9', networkId: 9 }] }), /unknown network 9/],
    ['a bad MAC', state({ endpoints: [{ hostDev: 'bpv1', mac: '02:42', networkId: 1 }] }), /MAC/],
    ['a bad subnet', state({ networks: [net({ subnet: '192.0.2.0/33' })] }), /subnet/],
    ['a bridge network without a bridge', state({ networks: [net({ bridge: undefined })] }), /no bridge device/],
    ['a bad SNAT address', state({ networks: [net({ snatIp: 'x' })] }), /host_ipv4/],
  ])('refuses %s', (_what, s, msg) => {
    expect(() => planState(s)).toThrow(msg);
    try {
      planState(s);
    } catch (e) {
      expect((e as { code: string }).code).toBe('E_INVALID_ARGUMENT');
    }
  });
});

describe('removal and rollback', () => {
  const saved = {
    raw: parseSave('*raw\n:PREROUTING ACCEPT [0:0]\n:BPFNET-RAW - [0:0]\n-A PREROUTING -j BPFNET-RAW\n-A BPFNET-RAW -d 192.0.2.2/32 ! -i br1 -j DROP\nCOMMIT\n'),
    nat: parseSave('*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\nCOMMIT\n'),
    filter: parseSave(`*filter\n:FORWARD ACCEPT [0:0]\n:${USER_CHAIN} - [0:0]\n:BPFNET-FORWARD - [0:0]\n-A FORWARD -j ${USER_CHAIN}\n-A FORWARD -j BPFNET-FORWARD\n-A FORWARD -j DOCKER-USER\nCOMMIT\n`),
  };

  it('parses iptables-save', () => {
    expect(saved.raw.chains).toEqual(['PREROUTING', 'BPFNET-RAW']);
    expect(saved.raw.rules.get('BPFNET-RAW')).toEqual(['-A BPFNET-RAW -d 192.0.2.2/32 ! -i br1 -j DROP']);
  });

  it('removal deletes our jumps and chains, nothing of Docker, and an empty BPFNET-USER', () => {
    const builtin = { 'raw/PREROUTING': saved.raw.rules.get('PREROUTING')!, 'nat/PREROUTING': saved.nat.rules.get('PREROUTING')!, 'filter/FORWARD': saved.filter.rules.get('FORWARD')! };
    const chains = { raw: saved.raw.chains, nat: saved.nat.chains, filter: saved.filter.chains };
    const text = renderRemoval({ builtin, userChain: true, userRules: 0, chains });
    expect(text).toBe(
      ['*raw', '-D PREROUTING -j BPFNET-RAW', '-F BPFNET-RAW', '-X BPFNET-RAW', 'COMMIT', '*filter', `-D FORWARD -j ${USER_CHAIN}`, '-D FORWARD -j BPFNET-FORWARD', '-F BPFNET-FORWARD', `-X ${USER_CHAIN}`, '-X BPFNET-FORWARD', 'COMMIT', ''].join('\n'),
    );
    const keep = renderRemoval({ builtin, userChain: true, userRules: 2, chains });
    expect(keep).toContain(`-D FORWARD -j ${USER_CHAIN}`);
    expect(keep).not.toContain(`-X ${USER_CHAIN}`);
    expect(keep).not.toContain(`-F ${USER_CHAIN}`);
    expect(renderRemoval({ builtin: {}, userChain: false, userRules: 0, chains: { raw: [], nat: [], filter: [] } })).toBe('');
  });

  it('rollback restores our chains as they were, deletes chains and jumps that were not there', () => {
    const snap = snapshotOf(saved);
    expect(snap.jumps).toEqual(new Set(['raw/PREROUTING/BPFNET-RAW', `filter/FORWARD/${USER_CHAIN}`, 'filter/FORWARD/BPFNET-FORWARD']));
    const now: Existing = { builtin: { 'nat/POSTROUTING': ['-A POSTROUTING -j BPFNET-POSTROUTING'], 'raw/PREROUTING': ['-A PREROUTING -j BPFNET-RAW'] }, userChain: true };
    const l = lines(renderRollback(snap, now));
    expect(l).toContain('-A BPFNET-RAW -d 192.0.2.2/32 ! -i br1 -j DROP');
    expect(l).not.toContain('-D PREROUTING -j BPFNET-RAW');
    expect(l).toContain('-D POSTROUTING -j BPFNET-POSTROUTING');
    expect(l).toContain('-X BPFNET-POSTROUTING');
    expect(l).toContain('-X BPFNET-CT');
    expect(l).not.toContain('-X BPFNET-FORWARD');
    expect(l).not.toContain(`-X ${USER_CHAIN}`);
  });
});
