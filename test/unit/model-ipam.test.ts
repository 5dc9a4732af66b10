/** src/model/ipam.ts: default pools, --subnet/--gateway/--ip-range/--aux-address, endpoint addresses. */
import { describe, expect, it } from 'vitest';
import { allocateAddress, choosePool, DEFAULT_POOLS, releaseAddress, reservedAddresses, resolveIpam, subnetPrefixLen } from '../../src/model/ipam.js';
import type { IpamConfig } from '../../src/model/types.js';
import { fails } from '../harness/errors.js';
import type { ErrorCode } from '../../src/util/errors.js';


const none = { usedSubnets: [], hostRoutes: [] };

describe('DEFAULT_POOLS', () => {
  it("is Docker's list: 172.17-31/16 then 192.168/16 cut into /20s (31 in all)", () => {
    expect(DEFAULT_POOLS).toHaveLength(31);
    expect(DEFAULT_POOLS.slice(0, 3)).toEqual(['172.17.0.0/16', '172.18.0.0/16', '172.19.0.0/16']);
    expect(DEFAULT_POOLS[14]).toBe('172.31.0.0/16');
    expect(DEFAULT_POOLS[15]).toBe('192.168.0.0/20');
    expect(DEFAULT_POOLS[16]).toBe('192.168.16.0/20');
    expect(DEFAULT_POOLS[30]).toBe('192.168.240.0/20');
  });
});

describe('choosePool', () => {
  it.each([
    ['nothing in use', [], [], '172.17.0.0/16'],
    ['docker0 in use', ['172.17.0.0/16'], [], '172.18.0.0/16'],
    ['a /24 inside the first pool blocks the whole pool', ['172.17.5.0/24'], [], '172.18.0.0/16'],
    ['a /12 covering 172.16-31 skips every /16', ['172.16.0.0/12'], [], '192.168.0.0/20'],
    ['a route to 172.17/16 on the host', [], ['172.17.0.0/16'], '172.18.0.0/16'],
    ['the seed host: docker0 route and eth0 in 172.19.64.0/20', ['172.17.0.0/16'], ['172.17.0.0/16', '172.19.64.0/20', '169.254.0.0/16'], '172.18.0.0/16'],
    ['routes to 172.17 and 172.18, network in 172.19', ['172.19.0.0/16'], ['172.17.0.0/16', '172.18.1.0/24'], '172.20.0.0/16'],
    ['a host route (bare address) inside a pool', [], ['172.17.0.9'], '172.18.0.0/16'],
    ['the default route is ignored', [], ['0.0.0.0/0', 'default'], '172.17.0.0/16'],
    ['a LAN on 192.168.1.0/24 skips only the /20 that holds it', ['172.16.0.0/12'], ['192.168.1.0/24'], '192.168.16.0/20'],
    ['named used subnets work too', [{ subnet: '172.17.0.0/16', network: 'bridge' }], [], '172.18.0.0/16'],
  ])('%s', (_name, usedSubnets, hostRoutes, want) => {
    expect(choosePool({ usedSubnets, hostRoutes })).toBe(want);
  });

  it('every pool skipped -> E_EXHAUSTED with the Docker message and a suggestion', () => {
    const e = fails(() => choosePool({ usedSubnets: [...DEFAULT_POOLS], hostRoutes: [] }), 'E_EXHAUSTED');
    expect(e.message).toBe(
      'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network; pass --subnet with a free range, e.g. --subnet 10.0.0.0/16 (or remove unused networks)',
    );
  });

  it('exhaustion through routes alone, and the suggestion avoids used ranges', () => {
    const e = fails(() => choosePool({ usedSubnets: [], hostRoutes: ['172.16.0.0/12', '192.168.0.0/16', '10.0.0.0/16'] }), 'E_EXHAUSTED');
    expect(e.message).toContain('could not find an available, non-overlapping IPv4 address pool among the defaults');
    expect(e.message).toContain('--subnet 10.1.0.0/16');
  });

  it('no suggestion when 10/8 is taken too', () => {
    const e = fails(() => choosePool({ usedSubnets: ['10.0.0.0/8'], hostRoutes: ['172.16.0.0/12', '192.168.0.0/16'] }), 'E_EXHAUSTED');
    expect(e.message).toBe('could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network; pass --subnet (or remove unused networks)');
  });

  it('custom pool list', () => {
    expect(choosePool({ usedSubnets: ['10.9.0.0/24'], hostRoutes: [], pools: ['10.9.0.0/24', '10.9.1.0/24'] })).toBe('10.9.1.0/24');
  });

  it('refuses a garbage route', () => {
    expect(fails(() => choosePool({ usedSubnets: [], hostRoutes: ['nonsense'] })).message).toContain('host route "nonsense" is not an IPv4 address');
  });
});

describe('resolveIpam', () => {
  it('no subnet: first free pool, gateway = first host, userConfigured false', () => {
    expect(resolveIpam({}, { usedSubnets: ['172.17.0.0/16'], hostRoutes: [] })).toEqual({
      subnet: '172.18.0.0/16',
      gateway: '172.18.0.1',
      auxAddresses: {},
      userConfigured: false,
    });
  });

  it('no subnet and no pool left: E_EXHAUSTED', () => {
    fails(() => resolveIpam({}, { usedSubnets: [...DEFAULT_POOLS], hostRoutes: [] }), 'E_EXHAUSTED');
  });

  it.each<[string, Parameters<typeof resolveIpam>[0], IpamConfig]>([
    ['subnet only', { subnet: '10.1.0.0/16' }, { subnet: '10.1.0.0/16', gateway: '10.1.0.1', auxAddresses: {}, userConfigured: true }],
    ['subnet + gateway', { subnet: '10.1.0.0/16', gateway: '10.1.255.254' }, { subnet: '10.1.0.0/16', gateway: '10.1.255.254', auxAddresses: {}, userConfigured: true }],
    [
      'subnet + ip-range + aux',
      { subnet: '10.1.0.0/16', ipRange: '10.1.4.0/24', auxAddresses: { router: '10.1.0.2', printer: '10.1.4.9' } },
      { subnet: '10.1.0.0/16', ipRange: '10.1.4.0/24', gateway: '10.1.0.1', auxAddresses: { router: '10.1.0.2', printer: '10.1.4.9' }, userConfigured: true },
    ],
    ['ip-range equal to subnet', { subnet: '10.1.0.0/24', ipRange: '10.1.0.0/24' }, { subnet: '10.1.0.0/24', ipRange: '10.1.0.0/24', gateway: '10.1.0.1', auxAddresses: {}, userConfigured: true }],
    ['a /30 is the smallest bridge subnet', { subnet: '10.1.0.0/30' }, { subnet: '10.1.0.0/30', gateway: '10.1.0.1', auxAddresses: {}, userConfigured: true }],
    ['--subnet may overlap a host route (Docker only checks routes for default pools)', { subnet: '192.168.1.0/24' }, { subnet: '192.168.1.0/24', gateway: '192.168.1.1', auxAddresses: {}, userConfigured: true }],
  ])('%s', (_n, req, want) => {
    expect(resolveIpam(req, { usedSubnets: ['172.17.0.0/16'], hostRoutes: ['192.168.1.0/24'] })).toEqual(want);
  });

  it('host bits in --subnet: refused like Docker 25+, naming the canonical form', () => {
    const e = fails(() => resolveIpam({ subnet: '10.1.2.3/16' }, none));
    expect(e.message).toBe('invalid subnet 10.1.2.3/16: it has host bits set; it should be 10.1.0.0/16');
  });

  it('host bits in --subnet / --ip-range are canonicalised with acceptHostBits (older Docker)', () => {
    expect(resolveIpam({ subnet: '10.1.2.3/16', ipRange: '10.1.7.7/24' }, { ...none, acceptHostBits: true })).toEqual({
      subnet: '10.1.0.0/16',
      ipRange: '10.1.7.0/24',
      gateway: '10.1.0.1',
      auxAddresses: {},
      userConfigured: true,
    });
  });

  it.each<[string, Parameters<typeof resolveIpam>[0], string]>([
    ['invalid CIDR', { subnet: '10.1.0.0' }, 'subnet "10.1.0.0" is not in CIDR notation'],
    ['invalid CIDR prefix', { subnet: '10.1.0.0/40' }, 'prefix length "40" must be a number 0-32'],
    ['IPv6 subnet', { subnet: 'fd00::/64' }, 'is an IPv6 prefix: bpfnet supports IPv4 only'],
    ['/31 for bridge', { subnet: '10.1.0.0/31' }, 'subnet 10.1.0.0/31 is too small for a bridge network: /31 leaves no room'],
    ['/32 for bridge', { subnet: '10.1.0.7/32' }, 'subnet 10.1.0.7/32 is too small for a bridge network'],
    ['gateway outside subnet', { subnet: '10.2.0.0/16', gateway: '10.1.0.1' }, 'gateway 10.1.0.1 is outside subnet 10.2.0.0/16; pick an address inside it, e.g. 10.2.0.1'],
    ['gateway = network address', { subnet: '10.2.0.0/16', gateway: '10.2.0.0' }, 'gateway 10.2.0.0 is the network address of subnet 10.2.0.0/16; pick a host address inside it, e.g. 10.2.0.1'],
    ['gateway = broadcast', { subnet: '10.2.0.0/16', gateway: '10.2.255.255' }, 'gateway 10.2.255.255 is the broadcast address of subnet 10.2.0.0/16'],
    ['gateway garbage', { subnet: '10.2.0.0/16', gateway: 'router' }, 'gateway "router" is not an IPv4 address'],
    ['gateway IPv6', { subnet: '10.2.0.0/16', gateway: 'fd00::1' }, 'gateway "fd00::1" is IPv6'],
    ['gateway without subnet', { gateway: '10.5.0.1' }, 'gateway 10.5.0.1 was given without a subnet: every --gateway or --ip-range needs a corresponding --subnet containing it; add one, e.g. --subnet 10.5.0.0/24'],
    ['ip-range without subnet', { ipRange: '10.5.0.0/24' }, 'ip-range 10.5.0.0/24 was given without a subnet'],
    ['aux without subnet', { auxAddresses: { r: '10.5.0.2' } }, 'no matching subnet for aux-address r=10.5.0.2: auxiliary addresses need a --subnet containing them; add one, e.g. --subnet 10.5.0.0/24'],
    ['ip-range outside subnet', { subnet: '10.1.0.0/16', ipRange: '10.2.0.0/24' }, 'ip-range 10.2.0.0/24 is not inside its subnet 10.1.0.0/16; pick a range inside the subnet, e.g. 10.1.0.0/24'],
    ['ip-range bigger than subnet', { subnet: '10.1.0.0/16', ipRange: '10.0.0.0/8' }, 'ip-range 10.0.0.0/8 is bigger than its subnet 10.1.0.0/16'],
    ['ip-range with host bits', { subnet: '10.1.0.0/16', ipRange: '10.1.2.3/24' }, 'invalid ip-range 10.1.2.3/24: it has host bits set; it should be 10.1.2.0/24'],
    ['ip-range garbage', { subnet: '10.1.0.0/16', ipRange: 'half' }, 'ip-range "half" is not in CIDR notation'],
    ['aux outside subnet', { subnet: '10.1.0.0/16', auxAddresses: { r: '10.9.0.1' } }, 'aux-address r 10.9.0.1 is outside subnet 10.1.0.0/16; pick an address inside it, e.g. 10.1.0.1'],
    ['aux = network address', { subnet: '10.1.0.0/16', auxAddresses: { r: '10.1.0.0' } }, 'aux-address r 10.1.0.0 is the network address'],
    ['aux = broadcast', { subnet: '10.1.0.0/16', auxAddresses: { r: '10.1.255.255' } }, 'aux-address r 10.1.255.255 is the broadcast address'],
    ['aux = gateway', { subnet: '10.1.0.0/16', auxAddresses: { r: '10.1.0.1' } }, 'aux-address r=10.1.0.1 is the gateway address of subnet 10.1.0.0/16'],
    ['aux duplicate', { subnet: '10.1.0.0/16', auxAddresses: { a: '10.1.0.5', b: '10.1.0.5' } }, 'aux-address b=10.1.0.5 duplicates aux-address a=10.1.0.5; give each auxiliary name its own address'],
    ['aux garbage', { subnet: '10.1.0.0/16', auxAddresses: { a: 'x' } }, 'aux-address a "x" is not an IPv4 address'],
    ['aux without name', { subnet: '10.1.0.0/16', auxAddresses: { '': '10.1.0.5' } }, 'aux-address "=10.1.0.5" has no name; write it as NAME=ADDRESS'],
  ])('refuses %s', (_n, req, msg) => {
    expect(fails(() => resolveIpam(req, none)).message).toContain(msg);
  });

  it.each([
    ['same subnet', '172.18.0.0/16'],
    ['inside', '172.18.3.0/24'],
    ['around', '172.16.0.0/12'],
  ])('--subnet overlapping an existing network (%s) -> E_CONFLICT naming it', (_n, subnet) => {
    const e = fails(() => resolveIpam({ subnet }, { usedSubnets: [{ subnet: '172.18.0.0/16', network: 'mybridge' }], hostRoutes: [] }), 'E_CONFLICT');
    expect(e.message).toContain(`subnet ${subnet} overlaps subnet 172.18.0.0/16 of network "mybridge"; pick a subnet that overlaps no existing network, e.g. --subnet `);
    expect(e.details).toMatchObject({ conflictsWith: '172.18.0.0/16' });
  });

  it('the conflict suggestion is a free pool', () => {
    const e = fails(() => resolveIpam({ subnet: '172.17.0.0/16' }, { usedSubnets: ['172.17.0.0/16'], hostRoutes: ['172.18.0.0/16'] }), 'E_CONFLICT');
    expect(e.message).toBe('subnet 172.17.0.0/16 overlaps subnet 172.17.0.0/16 of an existing network; pick a subnet that overlaps no existing network, e.g. --subnet 172.19.0.0/16');
  });

  it('/31 and /32 are allowed for the routed driver', () => {
    expect(resolveIpam({ subnet: '10.1.0.0/31' }, { ...none, driver: 'routed' })).toMatchObject({ subnet: '10.1.0.0/31', gateway: '10.1.0.0' });
  });
});

describe('allocateAddress', () => {
  const net = (over: Partial<IpamConfig> = {}): IpamConfig => ({ subnet: '10.1.0.0/24', gateway: '10.1.0.1', auxAddresses: {}, userConfigured: true, ...over });

  it('reserved: network, broadcast, gateway, aux', () => {
    expect([...reservedAddresses(net({ auxAddresses: { r: '10.1.0.9' } })).keys()].sort()).toEqual(['10.1.0.0', '10.1.0.1', '10.1.0.255', '10.1.0.9']);
  });

  it.each<[string, Partial<IpamConfig>, string[], string]>([
    ['first free after the gateway', {}, [], '10.1.0.2'],
    ['skips used', {}, ['10.1.0.2', '10.1.0.3'], '10.1.0.4'],
    ['fills holes first', {}, ['10.1.0.2', '10.1.0.4'], '10.1.0.3'],
    ['skips aux addresses', { auxAddresses: { a: '10.1.0.2', b: '10.1.0.3' } }, [], '10.1.0.4'],
    ['gateway elsewhere: .1 is free', { gateway: '10.1.0.254' }, [], '10.1.0.1'],
    ['inside ip-range', { subnet: '10.1.0.0/16', ipRange: '10.1.4.0/24' }, [], '10.1.4.0'],
    ['ip-range starting at the subnet skips network and gateway', { subnet: '10.1.0.0/16', ipRange: '10.1.0.0/24' }, [], '10.1.0.2'],
    ['seed: 172.17/16 with box1 -> box2 gets .3', { subnet: '172.17.0.0/16', gateway: '172.17.0.1' }, ['172.17.0.2'], '172.17.0.3'],
  ])('%s', (_n, over, used, want) => {
    expect(allocateAddress(net(over), new Set(used))).toBe(want);
  });

  it('release and reuse: a freed address is handed out again first', () => {
    let used = new Set<string>();
    const ipam = net();
    const a = allocateAddress(ipam, used);
    used.add(a);
    const b = allocateAddress(ipam, used);
    used.add(b);
    const c = allocateAddress(ipam, used);
    used.add(c);
    expect([a, b, c]).toEqual(['10.1.0.2', '10.1.0.3', '10.1.0.4']);
    used = releaseAddress(used, b);
    expect(used.has(b)).toBe(false);
    expect(allocateAddress(ipam, used)).toBe(b);
  });

  it('exhaustion: /30 has one address for a container', () => {
    const ipam = net({ subnet: '10.1.0.0/30' });
    expect(allocateAddress(ipam, new Set())).toBe('10.1.0.2');
    const e = fails(() => allocateAddress(ipam, new Set(['10.1.0.2']), undefined, { network: 'tiny' }), 'E_EXHAUSTED');
    expect(e.message).toBe('no free address left in subnet 10.1.0.0/30 on network "tiny" (1 in use, 3 reserved); disconnect an endpoint, or use a network with a larger --subnet');
  });

  it('exhaustion of an ip-range', () => {
    const ipam = net({ subnet: '10.1.0.0/16', ipRange: '10.1.9.0/30' });
    const used = new Set(['10.1.9.0', '10.1.9.1', '10.1.9.2', '10.1.9.3']);
    expect(fails(() => allocateAddress(ipam, used), 'E_EXHAUSTED').message).toContain('no free address left in ip-range 10.1.9.0/30 of subnet 10.1.0.0/16 (4 in use, 3 reserved); disconnect an endpoint, or use a network with a larger --subnet/--ip-range');
  });

  describe('static address', () => {
    it('accepted when free and inside the subnet', () => {
      expect(allocateAddress(net(), new Set(['10.1.0.2']), '10.1.0.77')).toBe('10.1.0.77');
    });

    it('outside --ip-range but inside the subnet is allowed (like Docker)', () => {
      expect(allocateAddress(net({ subnet: '10.1.0.0/16', ipRange: '10.1.4.0/24' }), new Set(), '10.1.9.9')).toBe('10.1.9.9');
    });

    it.each<[string, string, ErrorCode, string]>([
      ['taken', '10.1.0.2', 'E_CONFLICT', 'address 10.1.0.2 is already in use on network "n1"; pick a free address, e.g. 10.1.0.3, or omit --ip to get one'],
      ['the gateway', '10.1.0.1', 'E_CONFLICT', 'address 10.1.0.1 is reserved as the gateway of 10.1.0.0/24 on network "n1"; pick a free address, e.g. 10.1.0.3'],
      ['an aux address', '10.1.0.50', 'E_CONFLICT', 'address 10.1.0.50 is reserved as auxiliary address "printer" of 10.1.0.0/24 on network "n1"'],
      ['the network address', '10.1.0.0', 'E_INVALID_ARGUMENT', 'address 10.1.0.0 is reserved as the network address of 10.1.0.0/24'],
      ['the broadcast address', '10.1.0.255', 'E_INVALID_ARGUMENT', 'address 10.1.0.255 is reserved as the broadcast address of 10.1.0.0/24'],
      ['outside the subnet', '10.2.0.5', 'E_INVALID_ARGUMENT', 'address 10.2.0.5 is outside subnet 10.1.0.0/24 on network "n1"; pick an address inside it, e.g. 10.1.0.3'],
      ['garbage', '10.1.0', 'E_INVALID_ARGUMENT', 'requested address "10.1.0" is not an IPv4 address'],
      ['IPv6', 'fd00::5', 'E_INVALID_ARGUMENT', 'requested address "fd00::5" is IPv6'],
    ])('refused when %s', (_n, ip, code, msg) => {
      const e = fails(() => allocateAddress(net({ auxAddresses: { printer: '10.1.0.50' } }), new Set(['10.1.0.2']), ip, { network: 'n1' }), code);
      expect(e.message).toContain(msg);
    });

    it('refused on a network whose subnet came from the default pools', () => {
      const e = fails(() => allocateAddress(net({ userConfigured: false }), new Set(), '10.1.0.9', { network: 'auto' }));
      expect(e.message).toBe('a static address (10.1.0.9) can only be given on networks with a user-configured subnet on network "auto"; create the network with --subnet, or omit --ip to get one from 10.1.0.0/24');
    });

    it('older records without userConfigured accept a static address', () => {
      const { userConfigured: _u, ...legacy } = net();
      expect(allocateAddress(legacy, new Set(), '10.1.0.9')).toBe('10.1.0.9');
    });
  });

  it('subnetPrefixLen', () => {
    expect(subnetPrefixLen(net({ subnet: '172.18.0.0/16' }))).toBe(16);
  });
});
