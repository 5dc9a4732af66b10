/** src/model/inspect.ts: Docker-shaped JSON (compared with seed 002) and the CLI table. */
import { describe, expect, it } from 'vitest';
import { formatNetworkLs, formatTable, networkInspect, networkSummary, sandboxInspect } from '../../src/model/inspect.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/model/types.js';

// Seed 002's objects.
const BRIDGE_ID = '48bcb226d17e09092378deb2c4e9a070edb64f5bc6e0b0378edd45f5f248a6f2';
const MYBRIDGE_ID = '43435188760ce70d58099ab5fe27b85fc07e2f5e14d6748e6532daa5749d4963';
const BOX1 = '019a0daed76f2c71ccb7879a259cc04eac9b60a826529c383f104ffa1ad12f3d';
const BOX2 = '3325eedba7c2b16956b20d1eea968c74471e0fb42747fb73079f74bae460e16c';
const BOX3 = '2d7ce63d7e3f956564e684e343b7da2ae747e5679292c109096f619e73bce719';

const net = (over: Partial<NetworkRecord>): NetworkRecord => ({
  id: BRIDGE_ID,
  name: 'bridge',
  driver: 'bridge',
  created: '2022-03-04T18:00:02.632533487+08:00',
  internal: false,
  attachable: false,
  labels: {},
  options: {},
  ipam: { subnet: '172.17.0.0/16', gateway: '172.17.0.1', auxAddresses: {} },
  mtu: 1500,
  icc: true,
  masquerade: true,
  hostBindingIpv4: '0.0.0.0',
  predefined: false,
  ...over,
});

const bridge = net({
  predefined: true,
  bridgeName: 'docker0',
  options: {
    'com.docker.network.bridge.name': 'docker0',
    'com.docker.network.driver.mtu': '1500',
    'com.docker.network.bridge.default_bridge': 'true',
    'com.docker.network.bridge.enable_icc': 'true',
    'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
    'com.docker.network.bridge.enable_ip_masquerade': 'true',
  },
});
const mybridge = net({ id: MYBRIDGE_ID, name: 'mybridge', created: '2022-03-07T15:41:06.440007809+08:00', ipam: { subnet: '172.18.0.0/16', gateway: '172.18.0.1', auxAddresses: {} } });

const sb = (over: Partial<SandboxRecord>): SandboxRecord => ({
  id: BOX1,
  name: 'box1',
  created: '2022-03-07T07:44:18.269363219Z',
  mode: { kind: 'bridge', network: 'bridge' },
  hostname: 'box1',
  dns: [],
  netnsPath: '/run/bpfnet/netns/box1',
  ports: [],
  exposed: [],
  labels: {},
  ...over,
});

const ep = (over: Partial<EndpointRecord>): EndpointRecord => ({
  id: '8d09e83384eeeb6cb9fc31fadb1d9f39339ae4ccd6971dc790f60410797c6a07',
  networkId: BRIDGE_ID,
  sandboxId: BOX1,
  ifName: 'eth0',
  hostIfName: 'bpv8d09e833',
  mac: '02:42:ac:11:00:02',
  ipv4: '172.17.0.2',
  prefixLen: 16,
  aliases: [],
  created: '2022-03-07T07:44:18Z',
  ...over,
});

const box1 = sb({});
const box2 = sb({ id: BOX2, name: 'box2', hostname: 'box2' });
const box3 = sb({ id: BOX3, name: 'box3', hostname: '2d7ce63d7e3f', mode: { kind: 'bridge', network: 'mybridge' }, netnsPath: '/var/run/docker/netns/f967524cdbe0' });
const ep1 = ep({});
const ep2 = ep({ id: '52c096c53b562a205a8880417cbba8fe0ff0fb1c0cbf3fd7fa67f828fbd72ac4', sandboxId: BOX2, mac: '02:42:ac:11:00:03', ipv4: '172.17.0.3', hostIfName: 'bpv52c096c5' });
const ep3 = ep({ id: '0e2fa562b7f2050eb84114356ac9882dbac340a675a32036b14040c0db35b035', networkId: MYBRIDGE_ID, sandboxId: BOX3, mac: '02:42:ac:12:00:02', ipv4: '172.18.0.2', hostIfName: 'bpv0e2fa562' });

describe('networkInspect', () => {
  it('the default bridge matches seed 002 (plus the fields newer Docker adds)', () => {
    const j = networkInspect(bridge, [ep1, ep2, ep3], new Map([box1, box2, box3].map((s) => [s.id, s])));
    // Seed 002 verbatim, with newer Docker's EnableIPv4/Ingress/ConfigFrom/ConfigOnly and Options {} (the seed's old Docker printed null).
    expect(JSON.stringify(j, null, 1)).toBe(
      JSON.stringify(
        {
          Name: 'bridge',
          Id: BRIDGE_ID,
          Created: '2022-03-04T18:00:02.632533487+08:00',
          Scope: 'local',
          Driver: 'bridge',
          EnableIPv4: true,
          EnableIPv6: false,
          IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: '172.17.0.0/16', Gateway: '172.17.0.1' }] },
          Internal: false,
          Attachable: false,
          Ingress: false,
          ConfigFrom: { Network: '' },
          ConfigOnly: false,
          Containers: {
            [BOX1]: { Name: 'box1', EndpointID: '8d09e83384eeeb6cb9fc31fadb1d9f39339ae4ccd6971dc790f60410797c6a07', MacAddress: '02:42:ac:11:00:02', IPv4Address: '172.17.0.2/16', IPv6Address: '' },
            [BOX2]: { Name: 'box2', EndpointID: '52c096c53b562a205a8880417cbba8fe0ff0fb1c0cbf3fd7fa67f828fbd72ac4', MacAddress: '02:42:ac:11:00:03', IPv4Address: '172.17.0.3/16', IPv6Address: '' },
          },
          Options: {
            'com.docker.network.bridge.default_bridge': 'true',
            'com.docker.network.bridge.enable_icc': 'true',
            'com.docker.network.bridge.enable_ip_masquerade': 'true',
            'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
            'com.docker.network.bridge.name': 'docker0',
            'com.docker.network.driver.mtu': '1500',
          },
          Labels: {},
        },
        null,
        1,
      ),
    );
  });

  it('mybridge from seed 002 with box3; a sandbox lookup by record works too', () => {
    const j = networkInspect(mybridge, [ep1, ep3], { [BOX3]: box3 });
    expect(j.Containers).toEqual({ [BOX3]: { Name: 'box3', EndpointID: ep3.id, MacAddress: '02:42:ac:12:00:02', IPv4Address: '172.18.0.2/16', IPv6Address: '' } });
    expect(j.IPAM.Config).toEqual([{ Subnet: '172.18.0.0/16', Gateway: '172.18.0.1' }]);
    expect(networkInspect(mybridge, [], {}).Containers).toEqual({});
  });

  it('IPRange and AuxiliaryAddresses in Docker order, labels, internal', () => {
    const n = net({
      id: 'a'.repeat(64),
      name: 'custom',
      internal: true,
      attachable: true,
      labels: { team: 'web', app: 'x' },
      ipam: { subnet: '10.1.0.0/16', ipRange: '10.1.4.0/24', gateway: '10.1.0.1', auxAddresses: { router: '10.1.0.2', b: '10.1.0.3' } },
    });
    const j = networkInspect(n, [], {});
    expect(JSON.stringify(j.IPAM.Config)).toBe('[{"Subnet":"10.1.0.0/16","IPRange":"10.1.4.0/24","Gateway":"10.1.0.1","AuxiliaryAddresses":{"b":"10.1.0.3","router":"10.1.0.2"}}]');
    expect(Object.keys(j.Labels)).toEqual(['app', 'team']);
    expect(j.Internal).toBe(true);
    expect(j.Attachable).toBe(true);
  });

  it('host and null networks have no IPAM config; unknown sandboxes are keyed ep-<id>', () => {
    const host = net({ id: 'b'.repeat(64), name: 'host', driver: 'host', ipam: null, predefined: true });
    const j = networkInspect(host, [ep({ networkId: host.id, sandboxId: 'gone', ipv4: '' })], {});
    expect(j.IPAM).toEqual({ Driver: 'default', Options: {}, Config: [] });
    expect(j.Driver).toBe('host');
    expect(j.Containers).toEqual({ [`ep-${ep1.id}`]: { Name: '', EndpointID: ep1.id, MacAddress: '02:42:ac:11:00:02', IPv4Address: '', IPv6Address: '' } });
  });
});

describe('network ls', () => {
  const nets = [
    net({ id: 'eee2e5b9cf19' + '0'.repeat(52), name: 'none', driver: 'null', ipam: null }),
    mybridge,
    bridge,
    net({ id: '3ea7c9283722' + '0'.repeat(52), name: 'host', driver: 'host', ipam: null }),
  ];

  it('networkSummary rows', () => {
    expect(networkSummary(bridge)).toEqual({ ID: '48bcb226d17e', Name: 'bridge', Driver: 'bridge', Scope: 'local' });
    expect(nets.map(networkSummary).map((r) => r.Name)).toEqual(['none', 'mybridge', 'bridge', 'host']);
  });

  it('the table, sorted by name, laid out like seed 002 / the docker CLI', () => {
    expect(formatNetworkLs(nets)).toBe(
      [
        'NETWORK ID     NAME       DRIVER    SCOPE',
        '48bcb226d17e   bridge     bridge    local',
        '3ea7c9283722   host       host      local',
        '43435188760c   mybridge   bridge    local',
        'eee2e5b9cf19   none       null      local',
        '',
      ].join('\n'),
    );
  });
});

describe('formatTable', () => {
  it.each<[string, string[], string[][], string]>([
    ['header only', ['A', 'B'], [], `${'A'.padEnd(10)}B\n`],
    ['minimum width 10, padding 3', ['ID', 'X'], [['1', 'y']], `${'ID'.padEnd(10)}X\n${'1'.padEnd(10)}y\n`],
    ['wide cells: widest + 3', ['NAME', 'V'], [['a-very-long-name', '1'], ['b', '22']], `${'NAME'.padEnd(19)}V\n${'a-very-long-name'.padEnd(19)}1\n${'b'.padEnd(19)}22\n`],
    ['the last column is not padded; short rows are fine', ['A', 'B', 'C'], [['x']], `${'A'.padEnd(10)}${'B'.padEnd(10)}C\nx\n`],
    ['unicode counts characters', ['N', 'V'], [['héllo', '1']], `${'N'.padEnd(10)}V\n${'héllo'.padEnd(10)}1\n`],
  ])('%s', (_n, headers, rows, want) => {
    expect(formatTable(headers, rows)).toBe(want);
  });
});

describe('sandboxInspect', () => {
  it('box3 on mybridge (seed 002), with a published port and the veth pairing', () => {
    const s = { ...box3, ports: [{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp' as const }], exposed: ['53/udp'] };
    const j = sandboxInspect(s, [ep3, ep1], new Map([[MYBRIDGE_ID, mybridge], [BRIDGE_ID, bridge]]), { [ep3.id]: { hostIfIndex: 1220, peerIfIndex: 2 } });
    expect(j.Id).toBe(BOX3);
    expect(j.Name).toBe('/box3');
    expect(j.HostConfig).toEqual({ NetworkMode: 'mybridge', Dns: [], PortBindings: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }] } });
    expect(j.Config).toEqual({ Hostname: '2d7ce63d7e3f', ExposedPorts: { '53/udp': {}, '80/tcp': {} } });
    expect(j.NetworkSettings).toEqual({
      Bridge: '',
      SandboxID: BOX3,
      SandboxKey: '/var/run/docker/netns/f967524cdbe0',
      Ports: { '53/udp': null, '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }] },
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: '',
      Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: '',
      IPPrefixLen: 0,
      IPv6Gateway: '',
      MacAddress: '',
      Networks: {
        mybridge: {
          IPAMConfig: null,
          Links: null,
          Aliases: null,
          MacAddress: '02:42:ac:12:00:02',
          DriverOpts: null,
          GwPriority: 0,
          NetworkID: MYBRIDGE_ID,
          EndpointID: '0e2fa562b7f2050eb84114356ac9882dbac340a675a32036b14040c0db35b035',
          Gateway: '172.18.0.1',
          IPAddress: '172.18.0.2',
          IPPrefixLen: 16,
          IPv6Gateway: '',
          GlobalIPv6Address: '',
          GlobalIPv6PrefixLen: 0,
          DNSNames: ['box3', '2d7ce63d7e3f'],
        },
      },
    });
    expect(j.Endpoints).toEqual([
      {
        EndpointID: ep3.id,
        NetworkID: MYBRIDGE_ID,
        Network: 'mybridge',
        IfName: 'eth0',
        HostIfName: 'bpv0e2fa562',
        MacAddress: '02:42:ac:12:00:02',
        IPv4Address: '172.18.0.2/16',
        IfIndex: 2,
        HostIfIndex: 1220,
        Pairing: { Container: 'eth0@if1220', Host: 'bpv0e2fa562@if2' },
      },
    ]);
  });

  it('default bridge fills the legacy top-level fields; no DNS names there; two networks in ifName order', () => {
    const e2 = ep({ id: 'c'.repeat(64), networkId: MYBRIDGE_ID, ifName: 'eth1', ipv4: '172.18.0.5', mac: '02:42:ac:12:00:05', aliases: ['web', 'box1'] });
    const j = sandboxInspect(box1, [e2, ep1], { [BRIDGE_ID]: bridge, [MYBRIDGE_ID]: mybridge });
    expect(j.NetworkSettings).toMatchObject({ EndpointID: ep1.id, Gateway: '172.17.0.1', IPAddress: '172.17.0.2', IPPrefixLen: 16, MacAddress: '02:42:ac:11:00:02' });
    expect(j.NetworkSettings.Networks.bridge).toMatchObject({ Aliases: null, DNSNames: null, IPAddress: '172.17.0.2' });
    expect(j.NetworkSettings.Networks.mybridge).toMatchObject({ Aliases: ['web', 'box1'], DNSNames: ['box1', 'web', '019a0daed76f'] });
    expect(Object.keys(j.NetworkSettings.Networks)).toEqual(['bridge', 'mybridge']);
    expect(j.Endpoints.map((e) => e.IfName)).toEqual(['eth0', 'eth1']);
    expect(j.Endpoints[0]).toMatchObject({ IfIndex: null, HostIfIndex: null, Pairing: null });
  });

  it('host mode: no ports, no networks, empty sandbox key', () => {
    const j = sandboxInspect(sb({ mode: { kind: 'host' }, netnsPath: '', ports: [{ hostIp: '0.0.0.0', hostPort: 80, containerPort: 80, proto: 'tcp' }], exposed: ['80'] }), [], {});
    expect(j.NetworkSettings.Ports).toEqual({});
    expect(j.NetworkSettings.Networks).toEqual({});
    expect(j.NetworkSettings.SandboxKey).toBe('');
    expect(j.HostConfig.NetworkMode).toBe('host');
  });

  it('container and none modes', () => {
    expect(sandboxInspect(sb({ mode: { kind: 'container', sandboxId: BOX2 } }), [], {}).HostConfig.NetworkMode).toBe(`container:${BOX2}`);
    expect(sandboxInspect(sb({ mode: { kind: 'none' } }), [], {}).HostConfig.NetworkMode).toBe('none');
  });
});
