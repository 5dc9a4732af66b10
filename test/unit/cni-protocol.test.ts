/** src/cni: netconf and env validation, versions and result conversion, naming, ipRanges. Pure. */
import { describe, expect, it } from 'vitest';
import { CniError, CNI_ERR, fromAgentError } from '../../src/cni/errors.js';
import { parseCniArgs, parseEnv, validateIfName } from '../../src/cni/env.js';
import { decodeConfig, ipv4RangeSet, parseNetConf, publishSpecs } from '../../src/cni/netconf.js';
import { checkVersion, compareVersions, convertResult, SUPPORTED_VERSIONS, versionInfo } from '../../src/cni/version.js';
import { attachmentOf, sandboxLabels, sandboxName } from '../../src/cni/naming.js';
import { candidateAddresses, checkRanges } from '../../src/cni/ipranges.js';
import { buildResult } from '../../src/cni/result.js';
import type { CniResult } from '../../src/cni/types.js';
import { BpfnetError } from '../../src/util/errors.js';

/** The CNI code (and message) a throwing call ends with. */
function cniCode(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return { code: e.code, msg: e.message };
    throw e;
  }
  throw new Error('expected a CniError');
}

const conf = (o: Record<string, unknown>): string => JSON.stringify({ cniVersion: '1.1.0', name: 'mynet', type: 'bpfnet', ...o });

describe('netconf', () => {
  it('parses a full config with defaults', () => {
    const c = parseNetConf(conf({ subnet: '10.22.0.0/24', gateway: '10.22.0.1', options: { 'com.docker.network.driver.mtu': '1400' }, agentSocket: 'unix:///tmp/a.sock' }), 'ADD');
    expect(c).toMatchObject({ cniVersion: '1.1.0', name: 'mynet', network: 'mynet', subnet: '10.22.0.0/24', gateway: '10.22.0.1', agentSocket: '/tmp/a.sock' });
    expect(c.options).toEqual({ 'com.docker.network.driver.mtu': '1400' });
    expect(c.runtimeConfig).toEqual({ portMappings: [], ipRanges: [], ips: [] });
    expect(parseNetConf(conf({}), 'ADD').agentSocket).toBe('/run/bpfnet/bpfnet.sock');
    expect(parseNetConf(conf({ network: 'other' }), 'ADD').network).toBe('other');
  });

  it('reads the capabilities from runtimeConfig', () => {
    const c = parseNetConf(
      conf({
        runtimeConfig: {
          portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }, { hostPort: 5353, containerPort: 53, protocol: 'UDP', hostIP: '127.0.0.1' }],
          ipRanges: [[{ subnet: 'fd00::/64' }], [{ subnet: '10.22.0.0/24', rangeStart: '10.22.0.100', rangeEnd: '10.22.0.110' }]],
          dns: { servers: ['10.0.0.53'], searches: ['example.org'], options: ['ndots:2'] },
        },
      }),
      'ADD',
    );
    expect(c.runtimeConfig.portMappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
    ]);
    expect(publishSpecs(c.runtimeConfig.portMappings)).toEqual(['8080:80/tcp', '127.0.0.1:5353:53/udp']);
    expect(ipv4RangeSet(c.runtimeConfig.ipRanges)).toEqual([{ subnet: '10.22.0.0/24', rangeStart: '10.22.0.100', rangeEnd: '10.22.0.110' }]);
    expect(c.runtimeConfig.dns).toEqual({ nameservers: ['10.0.0.53'], search: ['example.org'], options: ['ndots:2'] });
    expect(parseNetConf(conf({ runtimeConfig: { mac: '02:AA:0a:16:00:05', ips: ['10.22.0.5/24'] } }), 'ADD').runtimeConfig).toMatchObject({ mac: '02:aa:0a:16:00:05', ips: ['10.22.0.5/24'] });
  });

  it.each([
    ['malformed JSON', '{"cniVersion": "1.1.0", ', CNI_ERR.DECODE, /not valid JSON/],
    ['empty stdin', '', CNI_ERR.DECODE, /no network configuration/],
    ['an array', '[1]', CNI_ERR.DECODE, /JSON object/],
    ['no cniVersion', JSON.stringify({ name: 'n1', type: 'bpfnet' }), CNI_ERR.INCOMPATIBLE_VERSION, /no cniVersion/],
    ['cniVersion 0.2.0', conf({ cniVersion: '0.2.0' }), CNI_ERR.INCOMPATIBLE_VERSION, /incompatible CNI versions.*0\.2\.0/],
    ['cniVersion 2.0.0', conf({ cniVersion: '2.0.0' }), CNI_ERR.INCOMPATIBLE_VERSION, /bpfnet supports/],
    ['cniVersion garbage', conf({ cniVersion: 'one' }), CNI_ERR.INCOMPATIBLE_VERSION, /MAJOR\.MINOR\.PATCH/],
    ['no name', JSON.stringify({ cniVersion: '1.0.0', type: 'bpfnet' }), CNI_ERR.INVALID_NETCONF, /missing name/],
    ['no type', JSON.stringify({ cniVersion: '1.0.0', name: 'n1' }), CNI_ERR.INVALID_NETCONF, /missing type/],
    ['bad name', conf({ name: 'my net' }), CNI_ERR.INVALID_NETCONF, /invalid network name/],
    ['one-char bpfnet network', conf({ name: 'a' }), CNI_ERR.INVALID_NETCONF, /set "network"/],
    ['an ipam section', conf({ ipam: { type: 'host-local' } }), CNI_ERR.UNSUPPORTED_FIELD, /IPAM built in/],
    ['bad subnet', conf({ subnet: '10.22.0.0' }), CNI_ERR.INVALID_NETCONF, /CIDR/],
    ['subnet with host bits', conf({ subnet: '10.22.0.5/24' }), CNI_ERR.INVALID_NETCONF, /host bits/],
    ['gateway without subnet', conf({ gateway: '10.22.0.1' }), CNI_ERR.INVALID_NETCONF, /needs subnet/],
    ['bad gateway', conf({ subnet: '10.22.0.0/24', gateway: 'x' }), CNI_ERR.INVALID_NETCONF, /not an IPv4/],
    ['options not strings', conf({ options: { a: 1 } }), CNI_ERR.INVALID_NETCONF, /must be a string/],
    ['relative agentSocket', conf({ agentSocket: 'bpfnet.sock' }), CNI_ERR.INVALID_NETCONF, /absolute path/],
    ['portMappings not a list', conf({ runtimeConfig: { portMappings: {} } }), CNI_ERR.INVALID_NETCONF, /must be a list/],
    ['port 0', conf({ runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80 }] } }), CNI_ERR.INVALID_NETCONF, /hostPort must be a port/],
    ['port missing', conf({ runtimeConfig: { portMappings: [{ hostPort: 80 }] } }), CNI_ERR.INVALID_NETCONF, /containerPort/],
    ['sctp', conf({ runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'sctp' }] } }), CNI_ERR.UNSUPPORTED_FIELD, /sctp/],
    ['IPv6 hostIP', conf({ runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, hostIP: '::' }] } }), CNI_ERR.UNSUPPORTED_FIELD, /IPv4 only/],
    ['range without subnet', conf({ runtimeConfig: { ipRanges: [[{ rangeStart: '10.0.0.1' }]] } }), CNI_ERR.INVALID_NETCONF, /missing runtimeConfig\.ipRanges\[0\]\[0\]\.subnet/],
    ['dns servers not a list', conf({ runtimeConfig: { dns: { servers: '1.1.1.1' } } }), CNI_ERR.INVALID_NETCONF, /list of strings/],
    ['prevResult not an object', conf({ prevResult: 'x' }), CNI_ERR.INVALID_NETCONF, /prevResult/],
    ['a bad mac', conf({ runtimeConfig: { mac: '02:42:0a' } }), CNI_ERR.INVALID_NETCONF, /not a MAC address/],
    ['a multicast mac', conf({ runtimeConfig: { mac: '01:00:5e:00:00:01' } }), CNI_ERR.INVALID_NETCONF, /multicast/],
  ])('refuses %s', (_what, stdin, code, msg) => {
    const r = cniCode(() => parseNetConf(stdin, 'ADD'));
    expect(r.code).toBe(code);
    expect(r.msg).toMatch(msg);
  });

  it('refuses commands the config version does not have', () => {
    expect(cniCode(() => parseNetConf(conf({ cniVersion: '0.3.1' }), 'CHECK')).code).toBe(CNI_ERR.INCOMPATIBLE_VERSION);
    expect(cniCode(() => parseNetConf(conf({ cniVersion: '1.0.0' }), 'GC')).msg).toMatch(/does not allow GC: it needs cniVersion 1\.1\.0/);
    expect(cniCode(() => parseNetConf(conf({ cniVersion: '1.0.0' }), 'STATUS')).code).toBe(CNI_ERR.INCOMPATIBLE_VERSION);
    expect(parseNetConf(conf({ cniVersion: '0.4.0' }), 'CHECK').cniVersion).toBe('0.4.0');
  });

  it('reads GC valid attachments', () => {
    const c = parseNetConf(conf({ 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] }), 'GC');
    expect(c.validAttachments).toEqual([{ containerID: 'c1', ifname: 'eth0' }]);
    expect(cniCode(() => parseNetConf(conf({ 'cni.dev/valid-attachments': [{ containerID: 'c1' }] }), 'GC')).code).toBe(CNI_ERR.INVALID_NETCONF);
  });

  it('accepts an empty ipam object and every supported version', () => {
    expect(parseNetConf(conf({ ipam: {} }), 'ADD').name).toBe('mynet');
    for (const v of SUPPORTED_VERSIONS) expect(parseNetConf(conf({ cniVersion: v }), 'ADD').cniVersion).toBe(v);
    expect(decodeConfig(' {"a":1} ')).toEqual({ a: 1 });
  });

  it('needs an IPv4 range set when ipRanges are given', () => {
    expect(ipv4RangeSet([])).toEqual([]);
    expect(cniCode(() => ipv4RangeSet([[{ subnet: 'fd00::/64' }]])).code).toBe(CNI_ERR.UNSUPPORTED_FIELD);
  });
});

describe('environment', () => {
  const base = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/proc/self/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin:/usr/lib/cni' };

  it('parses what libcni sets', () => {
    const e = parseEnv({ ...base, CNI_ARGS: 'IgnoreUnknown=1;IP=10.0.0.5' });
    expect(e).toEqual({ command: 'ADD', containerId: 'abc', netns: '/proc/self/ns/net', ifName: 'eth0', args: { IgnoreUnknown: '1', IP: '10.0.0.5' }, path: ['/opt/cni/bin', '/usr/lib/cni'] });
    // DEL: CNI_NETNS may be empty (the namespace may be gone).
    expect(parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).command).toBe('DEL');
    // GC and STATUS need no container.
    expect(parseEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }).command).toBe('GC');
  });

  it.each([
    ['unset command', { ...base, CNI_COMMAND: '' }, /CNI_COMMAND is not set/],
    ['unknown command', { ...base, CNI_COMMAND: 'UPDATE' }, /unknown CNI_COMMAND "UPDATE"/],
    ['missing container id', { ...base, CNI_CONTAINERID: undefined }, /\[CNI_CONTAINERID\] missing/],
    ['missing netns and ifname', { ...base, CNI_NETNS: undefined, CNI_IFNAME: undefined }, /\[CNI_NETNS,CNI_IFNAME\] missing/],
    ['bad container id', { ...base, CNI_CONTAINERID: 'a/b' }, /invalid characters in CNI_CONTAINERID/],
    ['long ifname', { ...base, CNI_IFNAME: 'a-very-long-ifname' }, /longer than 15/],
    ['relative netns', { ...base, CNI_NETNS: 'ns1' }, /absolute path/],
    ['missing netns file', { ...base, CNI_NETNS: '/run/netns/does-not-exist-bpfnet' }, /does not exist/],
    ['bad CNI_ARGS', { ...base, CNI_ARGS: 'novalue' }, /KEY=VALUE/],
  ])('refuses %s with code 4', (_w, env, msg) => {
    const r = cniCode(() => parseEnv(env));
    expect(r.code).toBe(CNI_ERR.INVALID_ENV);
    expect(r.msg).toMatch(msg);
  });

  it('validates interface names as the kernel does', () => {
    for (const ok of ['eth0', 'net1', 'a'.repeat(15)]) expect(() => validateIfName(ok)).not.toThrow();
    for (const bad of ['', '.', '..', 'a/b', 'a:b', 'a b', 'a'.repeat(16)]) expect(cniCode(() => validateIfName(bad)).code).toBe(CNI_ERR.INVALID_ENV);
    expect(parseCniArgs('A=1;;B=x=y')).toEqual({ A: '1', B: 'x=y' });
  });
});

describe('versions', () => {
  it('compares and negotiates', () => {
    expect(compareVersions('0.4.0', '1.0.0')).toBe(-1);
    expect(compareVersions('1.1.0', '1.0.0')).toBe(1);
    expect(compareVersions('0.3.1', '0.3.1')).toBe(0);
    expect(versionInfo()).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    expect(() => checkVersion('1.0.0', 'ADD')).not.toThrow();
  });

  const r: CniResult = {
    cniVersion: '1.1.0',
    interfaces: [{ name: 'bpvab', mtu: 1500 }, { name: 'eth0', mac: '02:42:0a:16:00:02', mtu: 1500, sandbox: '/run/netns/x' }],
    ips: [{ address: '10.22.0.2/24', gateway: '10.22.0.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1' }],
    dns: { nameservers: ['10.0.0.53'] },
  };

  it('keeps 1.1.0 as built and drops mtu for 1.0.0', () => {
    expect(convertResult(r, '1.1.0')).toEqual(r);
    const v1 = convertResult(r, '1.0.0');
    expect(v1.cniVersion).toBe('1.0.0');
    expect(v1.interfaces![1]).toEqual({ name: 'eth0', mac: '02:42:0a:16:00:02', sandbox: '/run/netns/x' });
    expect(v1.ips![0]).toEqual({ address: '10.22.0.2/24', gateway: '10.22.0.1', interface: 1 });
  });

  it.each(['0.3.0', '0.3.1', '0.4.0'])('tags IPs with their version for %s', (v) => {
    const old = convertResult(r, v);
    expect(old.cniVersion).toBe(v);
    expect(old.ips).toEqual([{ version: '4', address: '10.22.0.2/24', gateway: '10.22.0.1', interface: 1 }]);
    expect(old.routes).toEqual(r.routes);
    expect(old.dns).toEqual(r.dns);
    expect(old.interfaces!.every((i) => i.mtu === undefined)).toBe(true);
  });
});

describe('errors', () => {
  it('serialises as the spec says', () => {
    expect(new CniError(CNI_ERR.DECODE, 'bad', 'more').toJSON('1.0.0')).toEqual({ cniVersion: '1.0.0', code: 6, msg: 'bad', details: 'more' });
    expect(new CniError(CNI_ERR.DECODE, 'bad').toJSON('1.1.0')).toEqual({ cniVersion: '1.1.0', code: 6, msg: 'bad' });
  });

  it.each([
    ['E_UNAVAILABLE', CNI_ERR.TRY_AGAIN_LATER],
    ['E_INVALID_ARGUMENT', CNI_ERR.INVALID_NETCONF],
    ['E_NOT_FOUND', CNI_ERR.INVALID_NETCONF],
    ['E_CONFLICT', CNI_ERR.CONFLICT],
    ['E_EXHAUSTED', CNI_ERR.EXHAUSTED],
    ['E_NETLINK', CNI_ERR.AGENT_FAILED],
  ] as const)('maps agent %s to code %i', (agent, code) => {
    const e = fromAgentError(new BpfnetError(agent, 'why'), 'ADD');
    expect(e.code).toBe(code);
    expect(e.message).toBe('ADD: why');
    expect(e.details).toBe(`bpfnet ${agent}`);
  });
});

describe('naming', () => {
  it('is stable, readable and distinguishes long IDs with one prefix', () => {
    const a = sandboxName('0123456789abcdef0000', 'eth0', 'mynet');
    expect(a).toMatch(/^cni-0123456789ab-eth0-[0-9a-f]{8}$/);
    expect(sandboxName('0123456789abcdef0000', 'eth0', 'mynet')).toBe(a);
    expect(sandboxName('0123456789abcdef1111', 'eth0', 'mynet')).not.toBe(a);
    expect(sandboxName('0123456789abcdef0000', 'eth1', 'mynet')).not.toBe(a);
    expect(sandboxName('0123456789abcdef0000', 'eth0', 'other')).not.toBe(a);
    expect(sandboxName('c1', 'e@0', 'n')).toMatch(/^cni-c1-e_0-/);
  });

  it('finds attachments of a network by label', () => {
    const l = sandboxLabels('c1', 'eth0', 'mynet');
    expect(l).toEqual({ 'cni.containerid': 'c1', 'cni.ifname': 'eth0', 'cni.network': 'mynet' });
    expect(attachmentOf(l, 'mynet')).toEqual({ containerID: 'c1', ifname: 'eth0' });
    expect(attachmentOf(l, 'other')).toBeUndefined();
    expect(attachmentOf({}, 'mynet')).toBeUndefined();
  });
});

describe('ipRanges', () => {
  const ipam = { subnet: '10.22.0.0/24', gateway: '10.22.0.1', auxAddresses: { r: '10.22.0.3' } };

  it('picks free addresses inside the range, skipping reserved and used ones', () => {
    expect(candidateAddresses([{ subnet: '10.22.0.0/24' }], ipam, new Set(['10.22.0.2']), 3)).toEqual(['10.22.0.4', '10.22.0.5', '10.22.0.6']);
    expect(candidateAddresses([{ subnet: '10.22.0.0/24', rangeStart: '10.22.0.100', rangeEnd: '10.22.0.101' }], ipam, new Set(['10.22.0.100']))).toEqual(['10.22.0.101']);
    expect(candidateAddresses([{ subnet: '10.22.0.128/30' }], ipam, new Set())).toEqual(['10.22.0.129', '10.22.0.130']);
    expect(candidateAddresses([{ subnet: '10.22.0.0/24', rangeStart: '10.22.0.9', rangeEnd: '10.22.0.9' }], ipam, new Set(['10.22.0.9']))).toEqual([]);
  });

  it.each([
    [{ subnet: '10.23.0.0/24' }, /not inside network "n"'s subnet/],
    [{ subnet: '10.22.0.0/25', rangeStart: '10.22.0.200' }, /outside its subnet/],
    [{ subnet: '10.22.0.0/24', rangeStart: '10.22.0.20', rangeEnd: '10.22.0.10' }, /above rangeEnd/],
    [{ subnet: '10.22.0.0/24', gateway: '10.22.0.254' }, /differs from network "n"'s gateway/],
  ])('refuses a range that cannot apply: %j', (range, msg) => {
    const r = cniCode(() => checkRanges([range], ipam, 'n'));
    expect(r.code).toBe(CNI_ERR.INVALID_NETCONF);
    expect(r.msg).toMatch(msg);
  });
});

describe('result', () => {
  it('lists the host veth and the container interface, the address, the default route and dns', () => {
    const net = { id: 'n1', name: 'mynet', driver: 'bridge', internal: false, mtu: 1500, ipam: { subnet: '10.22.0.0/24', gateway: '10.22.0.1', auxAddresses: {} } };
    const ep = { id: 'e1', networkId: 'n1', ifName: 'eth0', hostIfName: 'bpv0123', mac: '02:42:0a:16:00:02', ipv4: '10.22.0.2', prefixLen: 24 };
    const detail = { sandbox: { name: 'cni-x' }, endpoints: [ep], networks: [net], links: [], filesDir: '', published: [] } as never;
    const r = buildResult(detail, { netns: '/run/netns/c1' }, { runtimeConfig: { portMappings: [], ipRanges: [], ips: [], dns: { nameservers: ['10.0.0.53'] } } });
    expect(r).toEqual({
      cniVersion: '1.1.0',
      interfaces: [{ name: 'bpv0123', mtu: 1500 }, { name: 'eth0', mac: '02:42:0a:16:00:02', mtu: 1500, sandbox: '/run/netns/c1' }],
      ips: [{ address: '10.22.0.2/24', gateway: '10.22.0.1', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.22.0.1' }],
      dns: { nameservers: ['10.0.0.53'] },
    });
    const internal = buildResult({ ...(detail as object), networks: [{ ...net, internal: true }] } as never, { netns: '/x' }, { runtimeConfig: { portMappings: [], ipRanges: [], ips: [] } });
    expect(internal.routes).toEqual([]);
    const second = buildResult(detail, { netns: '/x' }, { runtimeConfig: { portMappings: [], ipRanges: [], ips: [] } }, { defaultRoute: false });
    expect(second.routes).toEqual([]);
    expect(internal.dns).toBeUndefined();
  });
});
