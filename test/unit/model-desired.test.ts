/** src/model/desired.ts: model records -> the dataplane's DesiredState. */
import { describe, expect, it } from 'vitest';
import { dataplaneNetworkIds, desiredDataplaneState } from '../../src/model/desired.js';
import type { EndpointRecord, NetworkRecord, PortMapping, SandboxRecord } from '../../src/model/types.js';
import { portEntries } from '../../src/controller/ports.js';
import { withPortChange, type PublishedPort } from '../../src/dataplane/types.js';

const hex = (c: string) => c.repeat(64);

const net = (over: Partial<NetworkRecord>): NetworkRecord => ({
  id: hex('1'),
  name: 'n',
  driver: 'bridge',
  created: '2025-01-01T00:00:00Z',
  internal: false,
  attachable: false,
  labels: {},
  options: {},
  ipam: { subnet: '172.18.0.0/16', gateway: '172.18.0.1', auxAddresses: {} },
  mtu: 1500,
  icc: true,
  masquerade: true,
  hostBindingIpv4: '0.0.0.0',
  predefined: false,
  ...over,
});

const sb = (id: string, over: Partial<SandboxRecord> = {}): SandboxRecord => ({
  id,
  name: `sb-${id.slice(0, 4)}`,
  created: '2025-01-01T00:00:00Z',
  mode: { kind: 'bridge', network: 'n' },
  hostname: id.slice(0, 12),
  dns: [],
  netnsPath: `/run/bpfnet/netns/${id.slice(0, 12)}`,
  ports: [],
  exposed: [],
  labels: {},
  ...over,
});

const ep = (id: string, sandboxId: string, networkId: string, ipv4: string, ifName = 'eth0'): EndpointRecord => ({
  id,
  networkId,
  sandboxId,
  ifName,
  hostIfName: `bpv${id.slice(0, 8)}`,
  mac: '02:42:00:00:00:00',
  ipv4,
  prefixLen: 16,
  aliases: [],
  created: '2025-01-01T00:00:00Z',
});

const P = (hostPort: number, containerPort: number, proto: PortMapping['proto'] = 'tcp', hostIp = '0.0.0.0'): PortMapping => ({ hostIp, hostPort, containerPort, proto });

const node = { uplinks: ['eth0'], nodeAddresses: ['198.18.0.1'] };

const pub = hex('a');
const internalNet = hex('b');
const defaultBridge = hex('c');
const nets = [
  net({ id: pub, name: 'pub', ipam: { subnet: '172.18.0.0/16', gateway: '172.18.0.1', auxAddresses: {} } }),
  net({ id: internalNet, name: 'int', internal: true, icc: false, ipam: { subnet: '10.9.0.0/24', gateway: '10.9.0.1', auxAddresses: {} } }),
  net({ id: defaultBridge, name: 'bridge', predefined: true, ipam: { subnet: '172.17.0.0/16', gateway: '172.17.0.1', auxAddresses: {} } }),
  net({ id: hex('d'), name: 'host', driver: 'host', ipam: null, predefined: true }),
  net({ id: hex('e'), name: 'none', driver: 'null', ipam: null, predefined: true }),
];

describe('desiredDataplaneState', () => {
  it('empty model: just the node', () => {
    expect(desiredDataplaneState([], [], [], node)).toEqual({ uplinks: ['eth0'], nodeAddresses: ['198.18.0.1'], endpoints: [], ports: [], networks: [] });
  });

  it('publishes to the first non-internal endpoint (attach order), skipping internal networks', () => {
    const s1 = hex('1');
    const sandboxes = [sb(s1, { ports: [P(8080, 80), P(5353, 53, 'udp', '198.18.0.1')] })];
    const endpoints = [
      ep(hex('3'), s1, pub, '172.18.0.2', 'eth1'), // attached second
      ep(hex('2'), s1, internalNet, '10.9.0.2', 'eth0'), // first, but internal
    ];
    const st = desiredDataplaneState(nets, sandboxes, endpoints, node);
    expect(st.ports).toEqual([
      { hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: '172.18.0.2', containerPort: 80 },
      { hostIp: '198.18.0.1', hostPort: 5353, proto: 'udp', containerIp: '172.18.0.2', containerPort: 53 },
    ]);
    expect(st.endpoints.map((e) => e.hostDev)).toEqual(['bpv22222222', 'bpv33333333']);
    expect(st.endpoints[0]).toMatchObject({ ip: '10.9.0.2' });
    expect(st.skipped).toBeUndefined();
    // The controller accepts what this produces.
    expect(portEntries(st.ports)).toHaveLength(2);
  });

  it('eth2 after eth10 is not a string sort: eth2 comes first', () => {
    const s1 = hex('1');
    const st = desiredDataplaneState(nets, [sb(s1, { ports: [P(80, 80)] })], [ep(hex('4'), s1, defaultBridge, '172.17.0.9', 'eth10'), ep(hex('5'), s1, pub, '172.18.0.9', 'eth2')], node);
    expect(st.ports[0]?.containerIp).toBe('172.18.0.9');
  });

  it.each<[string, Partial<SandboxRecord>, EndpointRecord[], string]>([
    ['host mode', { mode: { kind: 'host' } }, [], 'host networking publishes no ports'],
    ['none mode', { mode: { kind: 'none' } }, [], 'none networking publishes no ports'],
    ['container mode', { mode: { kind: 'container', sandboxId: 'other' } }, [], "the sandbox shares sandbox other's network; publish on that one"],
    ['only internal networks', {}, [ep(hex('6'), hex('1'), internalNet, '10.9.0.3')], 'the sandbox has no endpoint on a non-internal network'],
    ['no endpoints at all', {}, [], 'the sandbox has no endpoint on a non-internal network'],
  ])('%s publishes nothing and says why', (_n, over, endpoints, reason) => {
    const st = desiredDataplaneState(nets, [sb(hex('1'), { ports: [P(8080, 80)], ...over })], endpoints, node);
    expect(st.ports).toEqual([]);
    expect(st.skipped).toEqual([{ sandboxId: hex('1'), hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp', reason }]);
  });

  it('sctp mappings are skipped (the dataplanes translate tcp and udp only)', () => {
    const s1 = hex('1');
    const st = desiredDataplaneState(nets, [sb(s1, { ports: [P(9000, 9000, 'sctp'), P(80, 80)] })], [ep(hex('7'), s1, pub, '172.18.0.7')], node);
    expect(st.ports.map((p) => p.proto)).toEqual(['tcp']);
    expect(st.skipped?.[0]?.reason).toContain('sctp is not translated');
  });

  it('several sandboxes: ports sorted, endpoints deduplicated and sorted, input order irrelevant', () => {
    const s1 = hex('1');
    const s2 = hex('2');
    const sandboxes = [sb(s2, { ports: [P(8081, 80)] }), sb(s1, { ports: [P(8080, 80), P(53, 53, 'udp')] })];
    const endpoints = [ep(hex('9'), s2, pub, '172.18.0.3'), ep(hex('8'), s1, defaultBridge, '172.17.0.2')];
    const a = desiredDataplaneState(nets, sandboxes, endpoints, node);
    const b = desiredDataplaneState([...nets].reverse(), [...sandboxes].reverse(), [...endpoints].reverse(), node);
    expect(a).toEqual(b);
    expect(a.ports.map((p) => `${p.proto}:${p.hostPort}->${p.containerIp}`)).toEqual(['tcp:8080->172.17.0.2', 'tcp:8081->172.18.0.3', 'udp:53->172.17.0.2']);
    expect(a.endpoints.map((e) => e.hostDev)).toEqual(['bpv88888888', 'bpv99999999']);
  });

  it('networks: bridge ones with subnets, stable non-zero ids, internal/icc flags', () => {
    const st = desiredDataplaneState(nets, [], [], node);
    expect(st.networks).toMatchObject([
      { id: 0xaaaaaaaa, subnet: '172.18.0.0/16', internal: false, icc: true },
      { id: 0xbbbbbbbb, subnet: '10.9.0.0/24', internal: true, icc: false },
      { id: 0xcccccccc, subnet: '172.17.0.0/16', internal: false, icc: true },
    ]);
  });

  it('does not alias the node arrays', () => {
    const n = { uplinks: ['eth0'], nodeAddresses: ['198.18.0.1'] };
    const st = desiredDataplaneState([], [], [], n);
    st.uplinks.push('x');
    expect(n.uplinks).toEqual(['eth0']);
  });
});

describe('dataplaneNetworkIds', () => {
  it('first 8 hex digits; clashes and zero get the next free value, in id order', () => {
    const ids = dataplaneNetworkIds(['00000000' + 'a'.repeat(56), 'abcdef01' + '1'.repeat(56), 'abcdef01' + '2'.repeat(56), 'abcdef02' + '0'.repeat(56)]);
    expect([...ids.values()]).toEqual([1, 0xabcdef01, 0xabcdef02, 0xabcdef03]);
  });
});

describe('withPortChange', () => {
  const p = (hostPort: number, hostIp = '0.0.0.0', proto: 'tcp' | 'udp' = 'tcp'): PublishedPort => ({ hostIp, hostPort, proto, containerIp: '10.0.0.2', containerPort: 80 });
  it('gives the ports a whole apply would get: changed frontends replaced, removed ones gone, desired order', () => {
    const before = [p(80), p(81), p(82, '127.0.0.1')];
    const after = withPortChange(before, { add: [p(79), { ...p(81), containerPort: 8081 }], remove: [p(82, '127.0.0.1')] });
    expect(after).toEqual([p(79), p(80), { ...p(81), containerPort: 8081 }]);
  });
});
