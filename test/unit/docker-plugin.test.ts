/**
 * The Docker plugin's pure layer: request validation, the mapping onto
 * bpfnet's API, IPAM pool/address choice, and the handlers' protocol
 * behaviour against a fake agent (what is called, in which order, and that
 * refused requests call nothing that changes state). The real thing, with a
 * real dockerd, is test/integration/docker-driver.test.ts.
 */
import { mkdtempSync, rmSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEndpointRequest, createNetworkRequest, joinRequest, parseBody, portBindings, requestAddressRequest, requestPoolRequest } from '../../src/docker/validate.js';
import { genericOptions, joinResponse, macFor, networkCreate, portSpecs, unpublishSpecs } from '../../src/docker/mapping.js';
import { ipamHandlers, nodeRoutes, pickAddress, pickPool } from '../../src/docker/ipam.js';
import { networkHandlers, type AgentApi } from '../../src/docker/network.js';
import { PluginState } from '../../src/docker/state.js';
import { dockerUserRules } from '../../src/dataplane/iptables/dockeruser.js';
import { BpfnetError } from '../../src/util/errors.js';
import type { Messages } from '../../src/api/generated/types.js';

const NID = 'a'.repeat(64);
const EID = 'b'.repeat(64);

describe('validate', () => {
  it('parses bodies: empty and null are {}, malformed JSON and non-objects are refused with the method', () => {
    expect(parseBody('X.Y', '')).toEqual({});
    expect(parseBody('X.Y', 'null')).toEqual({});
    expect(() => parseBody('NetworkDriver.Join', '{"a":')).toThrow(/^NetworkDriver\.Join: malformed JSON/);
    expect(() => parseBody('X.Y', '"s"')).toThrow(/must be a JSON object, got string/);
    expect(() => parseBody('X.Y', '[]')).toThrow(/got an array/);
  });

  it('CreateNetwork: ids, pools, gateways and aux addresses as Docker sends them', () => {
    const r = createNetworkRequest({ NetworkID: NID, Options: {}, IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.55.0.0/24', Gateway: '10.55.0.1/24', AuxAddresses: { r: '10.55.0.5/24' } }], IPv6Data: [] });
    expect(r.IPv4Data[0]).toEqual({ AddressSpace: 'LocalDefault', Pool: '10.55.0.0/24', Gateway: '10.55.0.1/24', AuxAddresses: { r: '10.55.0.5/24' } });
    expect(() => createNetworkRequest({})).toThrow(/NetworkID is missing/);
    expect(() => createNetworkRequest({ NetworkID: 'abc' })).toThrow(/64-hex-digit/);
    expect(() => createNetworkRequest({ NetworkID: NID, IPv4Data: {} })).toThrow(/IPv4Data must be a JSON array/);
    expect(() => createNetworkRequest({ NetworkID: NID, IPv4Data: [{ Pool: '10.1.0.0/24', Gateway: '10.1.0.1' }] })).toThrow(/Gateway must be an IPv4 address with its prefix length/);
    expect(() => createNetworkRequest({ NetworkID: NID, IPv4Data: [{ Pool: 'x' }] })).toThrow(/NetworkDriver\.CreateNetwork: /);
  });

  it('CreateEndpoint needs the address; the MAC, when given, must be unicast', () => {
    expect(createEndpointRequest({ NetworkID: NID, EndpointID: EID, Interface: { Address: '10.1.0.2/24', MacAddress: '02:42:0A:01:00:02' } }).Interface.MacAddress).toBe('02:42:0a:01:00:02');
    expect(() => createEndpointRequest({ NetworkID: NID, EndpointID: EID, Interface: {} })).toThrow(/Interface\.Address is missing/);
    expect(() => createEndpointRequest({ NetworkID: NID, EndpointID: EID, Interface: { Address: '10.1.0.2/24', MacAddress: '01:00:5e:00:00:01' } })).toThrow(/multicast/);
    expect(() => createEndpointRequest({ NetworkID: NID, EndpointID: EID, Interface: { Address: 'fe80::1/64' } })).toThrow(/IPv4/);
  });

  it('Join needs an absolute SandboxKey', () => {
    expect(joinRequest({ NetworkID: NID, EndpointID: EID, SandboxKey: '/var/run/docker/netns/abc' }).SandboxKey).toBe('/var/run/docker/netns/abc');
    expect(() => joinRequest({ NetworkID: NID, EndpointID: EID })).toThrow(/SandboxKey is missing/);
    expect(() => joinRequest({ NetworkID: NID, EndpointID: EID, SandboxKey: 'netns' })).toThrow(/absolute path/);
  });

  it('port bindings are checked field by field', () => {
    expect(portBindings('M', {})).toEqual([]);
    expect(portBindings('M', { 'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8099, HostPortEnd: 8099 }] })).toHaveLength(1);
    expect(() => portBindings('M', { 'com.docker.network.portmap': {} })).toThrow(/JSON array/);
    expect(() => portBindings('M', { 'com.docker.network.portmap': [{ Proto: 6, Port: 70000 }] })).toThrow(/Port must be an integer 0-65535/);
    expect(() => portBindings('M', { 'com.docker.network.portmap': [{ Proto: 6 }] })).toThrow(/container port\) is missing/);
  });

  it('IPAM requests', () => {
    expect(requestPoolRequest({ Pool: '10.0.0.0/24' })).toEqual({ AddressSpace: '', Pool: '10.0.0.0/24', SubPool: '', Options: {}, V6: false });
    expect(() => requestPoolRequest({ V6: 'yes' })).toThrow(/V6 must be true or false/);
    expect(() => requestPoolRequest({ Options: { a: 1 } })).toThrow(/Options\.a must be a string/);
    expect(requestAddressRequest({ PoolID: 'p', Options: { RequestAddressType: 'com.docker.network.gateway' } }).Options).toEqual({ RequestAddressType: 'com.docker.network.gateway' });
    expect(() => requestAddressRequest({})).toThrow(/PoolID is missing/);
  });
});

describe('mapping', () => {
  const req = (over: Partial<Parameters<typeof networkCreate>[0]> = {}) => ({ NetworkID: NID, Options: {}, IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.55.0.0/24', Gateway: '10.55.0.1/24' }], IPv6Data: [], ...over });

  it('CreateNetwork → a bridge network named docker-<id12>, labelled with the full id, -o options and --internal kept', () => {
    expect(networkCreate(req({ Options: { 'com.docker.network.generic': { 'com.docker.network.bridge.name': 'br9', 'com.docker.network.driver.mtu': 1400 }, 'com.docker.network.internal': true } }))).toEqual({
      name: `docker-${NID.slice(0, 12)}`,
      driver: 'bridge',
      subnet: '10.55.0.0/24',
      gateway: '10.55.0.1',
      auxAddresses: {},
      internal: true,
      attachable: true,
      labels: { 'com.docker.network.id': NID },
      options: { 'com.docker.network.bridge.name': 'br9', 'com.docker.network.driver.mtu': '1400' },
    });
  });

  it('CreateNetwork refuses IPv6, no pool, several pools, and non-scalar -o values', () => {
    expect(() => networkCreate(req({ Options: { 'com.docker.network.enable_ipv6': true } }))).toThrow(/IPv6 is not supported/);
    expect(() => networkCreate(req({ IPv6Data: [{ AddressSpace: '', Pool: 'fd00::/64' }] }))).toThrow(/IPv6/);
    expect(() => networkCreate(req({ IPv4Data: [] }))).toThrow(/IPv4Data is empty/);
    expect(() => networkCreate(req({ IPv4Data: [{ AddressSpace: '', Pool: '10.1.0.0/24' }, { AddressSpace: '', Pool: '10.2.0.0/24' }] }))).toThrow(/one IPv4 subnet, got 2/);
    expect(() => genericOptions({ 'com.docker.network.generic': { a: { b: 1 } } })).toThrow(/-o a: the value must be a string/);
    expect(() => networkCreate(req({ Options: { 'com.docker.network.internal': 'perhaps' } }))).toThrow(/true or false/);
  });

  it('port bindings → Docker -p specs; IPv6 host addresses left out; sctp refused', () => {
    const b = (o: object) => ({ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 0, HostPortEnd: 0, ...o });
    expect(portSpecs('M', [b({ HostPort: 8080, HostPortEnd: 8080 }), b({ Proto: 17, Port: 53, HostIP: '127.0.0.1', HostPort: 5353 }), b({}), b({ HostIP: '10.0.0.1' }), b({ HostPort: 8000, HostPortEnd: 8010 }), b({ HostIP: '::', HostPort: 8080 })])).toEqual({
      specs: ['8080:80/tcp', '127.0.0.1:5353:53/udp', '80/tcp', '10.0.0.1::80/tcp', '8000-8010:80/tcp'],
      skipped: ['[::]:8080:80/tcp'],
    });
    expect(() => portSpecs('M', [b({ Proto: 132 })])).toThrow(/sctp is not supported/);
    expect(unpublishSpecs([{ hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp' }, { hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp' }])).toEqual(['0.0.0.0:8080/tcp']);
  });

  it('Join: SrcName to move, eth prefix, the gateway (none on internal networks)', () => {
    expect(joinResponse('bpp1234', { internal: false, ipam: { gateway: '10.55.0.1' } })).toEqual({ InterfaceName: { SrcName: 'bpp1234', DstPrefix: 'eth' }, Gateway: '10.55.0.1' });
    expect(joinResponse('bpp1234', { internal: true, ipam: { gateway: '10.55.0.1' } })).toEqual({ InterfaceName: { SrcName: 'bpp1234', DstPrefix: 'eth' }, DisableGatewayService: true });
    expect(macFor('172.17.0.2/16')).toBe('02:42:ac:11:00:02');
  });
});

describe('IPAM choices', () => {
  it('a given pool is checked for overlaps; none given takes the first free default pool', () => {
    expect(pickPool({ Pool: '10.9.0.5/24', SubPool: '10.9.0.128/25' }, [], [])).toEqual({ pool: '10.9.0.0/24', subPool: '10.9.0.128/25' });
    expect(() => pickPool({ Pool: '10.9.0.0/16', SubPool: '' }, [{ subnet: '10.9.3.0/24', what: 'subnet 10.9.3.0/24 of bpfnet network "x"' }], [])).toThrow(/overlaps with subnet 10\.9\.3\.0\/24 of bpfnet network "x"/);
    expect(() => pickPool({ Pool: '10.9.0.0/24', SubPool: '10.8.0.0/25' }, [], [])).toThrow(/not inside Pool/);
    expect(pickPool({ Pool: '', SubPool: '' }, [{ subnet: '172.17.0.0/16', what: '' }], ['172.18.5.0/24'])).toEqual({ pool: '172.19.0.0/16' });
  });

  it('addresses: the gateway is the first host, endpoints come from the range, taken ones are refused', () => {
    const p = { addressSpace: 'LocalDefault', pool: '10.9.0.0/24', subPool: '10.9.0.128/25', addresses: ['10.9.0.1'] };
    expect(pickAddress({ ...p, addresses: [] }, '', true)).toBe('10.9.0.1');
    expect(pickAddress(p, '', false)).toBe('10.9.0.129');
    expect(pickAddress(p, '10.9.0.7/24', false)).toBe('10.9.0.7');
    expect(() => pickAddress(p, '10.9.0.1', false)).toThrow(/already in use/);
    expect(() => pickAddress(p, '10.9.0.255', false)).toThrow(/network or broadcast/);
    expect(() => pickAddress(p, '10.10.0.1', false)).toThrow(/outside pool/);
    expect(() => pickAddress({ addressSpace: '', pool: '10.9.0.0/30', addresses: ['10.9.0.1', '10.9.0.2'] }, '', false)).toThrow(/no available IPv4 addresses/);
  });

  it('reads the node\'s routes from /proc/net/route', () => {
    const text = ['Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT', 'up0\t00000000\t010012C6\t0003\t0\t0\t0\t00000000\t0\t0\t0', 'up0\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0', 'docker0\t0000FA0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0'].join('\n');
    expect(nodeRoutes(text)).toEqual(['198.18.0.0/24', '10.250.0.0/16']);
  });
});

describe('coexistence: DOCKER-USER accepts', () => {
  it('one accept per direction per network: by device for bridges, by subnet for routed', () => {
    expect(dockerUserRules([{ bridge: 'bn-1', subnet: '10.1.0.0/24' }, { subnet: '10.2.0.0/24' }])).toEqual([
      '-i bn-1 -m comment --comment "bpfnet: judged by bpfnet" -j ACCEPT',
      '-o bn-1 -m comment --comment "bpfnet: judged by bpfnet" -j ACCEPT',
      '-s 10.2.0.0/24 -m comment --comment "bpfnet: judged by bpfnet" -j ACCEPT',
      '-d 10.2.0.0/24 -m comment --comment "bpfnet: judged by bpfnet" -j ACCEPT',
    ]);
  });
});

/** A fake agent: records calls, holds networks and sandboxes like the real one. */
class FakeAgent implements AgentApi {
  calls: string[] = [];
  nets: Messages['Network'][] = [];
  sbs: (Messages['Sandbox'] & { eps: Messages['Endpoint'][] })[] = [];
  async call(method: string, req: Record<string, unknown>): Promise<never> {
    this.calls.push(method);
    const out = ((): unknown => {
      switch (method) {
        case 'NetworkList':
          return { networks: this.nets };
        case 'SandboxList':
          return { sandboxes: this.sbs };
        case 'NetworkInspect':
          return { network: this.nets.find((n) => n.id === req['ref']), endpoints: this.sbs.flatMap((s) => s.eps), sandboxes: [] };
        case 'NetworkCreate': {
          const n = { id: `n${this.nets.length + 1}`, name: req['name'], labels: req['labels'], internal: req['internal'], ipam: { subnet: req['subnet'], gateway: req['gateway'] ?? '' } } as unknown as Messages['Network'];
          this.nets.push(n);
          return n;
        }
        case 'NetworkRemove':
          this.nets = this.nets.filter((n) => n.id !== req['ref']);
          return { ids: [req['ref']], names: [] };
        case 'SandboxCreate': {
          const id = `s${this.sbs.length + 1}`;
          const ep = { id: `e-${id}`, ipv4: req['ipv4'], mac: req['mac'], peerName: `bpp${id}` } as unknown as Messages['Endpoint'];
          const sb = { id, name: req['name'], labels: req['labels'], ports: [], eps: [ep] } as unknown as FakeAgent['sbs'][number];
          this.sbs.push(sb);
          return { sandbox: sb, endpoints: [ep] };
        }
        case 'SandboxRemove':
          this.sbs = this.sbs.filter((s) => s.id !== req['ref']);
          return { ids: [req['ref']], names: [] };
        case 'PortPublish': {
          const sb = this.sbs.find((s) => s.id === req['sandbox'])!;
          for (const spec of req['publish'] as string[]) {
            if (spec.startsWith('9999:')) throw new BpfnetError('E_CONFLICT', 'Bind for 0.0.0.0:9999 failed: port is already allocated');
            const parts = spec.split(':');
            const [hp, rest] = parts.slice(-2) as [string, string];
            sb.ports.push({ hostIp: '0.0.0.0', hostPort: Number(hp), containerPort: Number(rest.split('/')[0]), proto: 'tcp' });
          }
          return { ports: [] };
        }
        case 'PortUnpublish': {
          const sb = this.sbs.find((s) => s.id === req['sandbox'])!;
          sb.ports = [];
          return { ports: [] };
        }
        default:
          throw new Error(`unexpected ${method}`);
      }
    })();
    return out as never;
  }
  /** Calls that change state. */
  get writes(): string[] {
    return this.calls.filter((c) => !/List|Inspect/.test(c));
  }
}

describe('network driver handlers (fake agent)', () => {
  let dir: string;
  let agent: FakeAgent;
  let h: ReturnType<typeof networkHandlers>;
  let state: PluginState;
  const call = (m: string, body: object | string) => h[m]!(typeof body === 'string' ? body : JSON.stringify(body));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bpfnet-dplug-'));
    agent = new FakeAgent();
    state = PluginState.load(join(dir, 'state.json'));
    h = networkHandlers({ api: agent, state });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the whole life of a container: create, join, publish, revoke, leave, delete', async () => {
    await call('CreateNetwork', { NetworkID: NID, Options: {}, IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.55.0.0/24', Gateway: '10.55.0.1/24' }] });
    expect(agent.writes).toEqual(['NetworkCreate']);
    // Same again (Docker restarting): a no-op.
    await call('CreateNetwork', { NetworkID: NID, IPv4Data: [{ Pool: '10.55.0.0/24' }] });
    expect(agent.writes).toEqual(['NetworkCreate']);

    expect(await call('CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.55.0.2/24' } })).toEqual({ Interface: { MacAddress: '02:42:0a:37:00:02' } });
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).endpoints[EID]).toEqual({ networkId: NID, address: '10.55.0.2/24', mac: '02:42:0a:37:00:02' });
    expect(await call('EndpointOperInfo', { NetworkID: NID, EndpointID: EID })).toEqual({ Value: {} });
    expect(await call('Join', { NetworkID: NID, EndpointID: EID, SandboxKey: '/run/docker/netns/x' })).toEqual({ InterfaceName: { SrcName: 'bpps1', DstPrefix: 'eth' }, Gateway: '10.55.0.1' });
    expect(agent.sbs[0]).toMatchObject({ name: `docker-${EID.slice(0, 12)}`, labels: { 'com.docker.endpoint.id': EID, 'com.docker.network.id': NID, 'com.docker.sandbox.key': '/run/docker/netns/x' } });

    const pm = { 'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }] };
    await call('ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: pm });
    expect(agent.sbs[0]!.ports).toHaveLength(1);
    // Programmed again: replaced, not refused as taken by itself.
    await call('ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: pm });
    expect(agent.sbs[0]!.ports).toHaveLength(1);
    // A refused publish puts the previous ports back.
    await expect(call('ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 81, HostPort: 9999 }] } })).rejects.toThrow(/^NetworkDriver\.ProgramExternalConnectivity: Bind for 0\.0\.0\.0:9999/);
    expect(agent.sbs[0]!.ports.map((p) => p.hostPort)).toEqual([8080]);
    await call('RevokeExternalConnectivity', { NetworkID: NID, EndpointID: EID });
    expect(agent.sbs[0]!.ports).toEqual([]);

    await call('Leave', { NetworkID: NID, EndpointID: EID });
    expect(agent.sbs).toEqual([]);
    await call('DeleteEndpoint', { NetworkID: NID, EndpointID: EID });
    await call('DeleteNetwork', { NetworkID: NID });
    expect(agent.nets).toEqual([]);
    expect(state.endpoints).toEqual({});
  });

  it('a MAC Docker chose is used as is, and not returned', async () => {
    await call('CreateNetwork', { NetworkID: NID, IPv4Data: [{ Pool: '10.55.0.0/24' }] });
    expect(await call('CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.55.0.2/24', MacAddress: '02:00:00:00:00:09' } })).toEqual({});
    await call('Join', { NetworkID: NID, EndpointID: EID, SandboxKey: '/k' });
    expect(agent.sbs[0]!.eps[0]!.mac).toBe('02:00:00:00:00:09');
  });

  it('refused requests change nothing: unknown network or endpoint, wrong network, address conflicts, joined twice', async () => {
    await call('CreateNetwork', { NetworkID: NID, IPv4Data: [{ Pool: '10.55.0.0/24' }] });
    await call('CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.55.0.2/24' } });
    await call('Join', { NetworkID: NID, EndpointID: EID, SandboxKey: '/k' });
    const writes = agent.writes.length;
    const saved = readFileSync(join(dir, 'state.json'), 'utf8');
    const other = 'c'.repeat(64);
    const refused: [string, object, RegExp][] = [
      ['CreateNetwork', { NetworkID: NID, IPv4Data: [{ Pool: '10.56.0.0/24' }] }, /exists already in bpfnet/],
      ['CreateEndpoint', { NetworkID: other, EndpointID: other, Interface: { Address: '10.55.0.3/24' } }, /unknown network/],
      ['CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.55.0.3/24' } }, /exists already/],
      ['CreateEndpoint', { NetworkID: NID, EndpointID: other, Interface: { Address: '10.55.0.2/24' } }, /10\.55\.0\.2 is already in use/],
      ['Join', { NetworkID: NID, EndpointID: EID, SandboxKey: '/k' }, /joined a sandbox already/],
      ['Join', { NetworkID: other, EndpointID: EID, SandboxKey: '/k' }, /belongs to network/],
      ['Leave', { NetworkID: NID, EndpointID: other }, /unknown endpoint/],
      ['DeleteEndpoint', { NetworkID: NID, EndpointID: other }, /unknown endpoint/],
      ['DeleteNetwork', { NetworkID: other }, /unknown network/],
    ];
    for (const [m, body, msg] of refused) await expect(call(m, body), m).rejects.toThrow(msg);
    expect(agent.writes.length).toBe(writes);
    expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe(saved);
  });

  it('IPAM: pools persist in the state file; releases need what was requested', async () => {
    const ipam = ipamHandlers({ state, networks: async () => [{ subnet: '10.1.0.0/24', name: 'mine' }], routes: () => [] });
    const pool = await ipam['RequestPool']!(JSON.stringify({ AddressSpace: 'LocalDefault', Pool: '10.9.0.0/24' }));
    expect(pool).toEqual({ PoolID: 'LocalDefault/10.9.0.0/24', Pool: '10.9.0.0/24', Data: {} });
    expect(await ipam['RequestAddress']!(JSON.stringify({ PoolID: pool['PoolID'], Options: { RequestAddressType: 'com.docker.network.gateway' } }))).toEqual({ Address: '10.9.0.1/24', Data: {} });
    expect(await ipam['RequestAddress']!(JSON.stringify({ PoolID: pool['PoolID'] }))).toEqual({ Address: '10.9.0.2/24', Data: {} });
    const reloaded = PluginState.load(join(dir, 'state.json'));
    expect(reloaded.pools['LocalDefault/10.9.0.0/24']!.addresses).toEqual(['10.9.0.1', '10.9.0.2']);
    await expect(ipam['RequestPool']!(JSON.stringify({ Pool: '10.1.0.0/16' }))).rejects.toThrow(/overlaps with subnet 10\.1\.0\.0\/24 of bpfnet network "mine"/);
    await expect(ipam['ReleaseAddress']!(JSON.stringify({ PoolID: pool['PoolID'], Address: '10.9.0.3/24' }))).rejects.toThrow(/not allocated/);
    await ipam['ReleaseAddress']!(JSON.stringify({ PoolID: pool['PoolID'], Address: '10.9.0.2/24' }));
    await ipam['ReleasePool']!(JSON.stringify({ PoolID: pool['PoolID'] }));
    expect(state.pools).toEqual({});
    expect(existsSync(join(dir, 'state.json.tmp'))).toBe(false);
  });

  it('a state file that is not bpfnet\'s is refused, not overwritten', () => {
    const p = join(dir, 'bad.json');
    writeFileSync(p, '{oops');
    expect(() => PluginState.load(p)).toThrow(/not valid JSON/);
  });
});
