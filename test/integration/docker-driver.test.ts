/**
 * bpfnet as Docker's remote network driver and IPAM driver (issue 6), against
 * a real dockerd that shares the agent's node namespace (Docker looks up
 * Join's SrcName there):
 *
 *   client ns 198.18.0.2 ---- up0 198.18.0.1  node ns: bpfnet agent --docker-plugin
 *     (echo server :7000)                     + dockerd (-d bpfnet-<id>)
 *
 * Docker drives everything through the plugin socket; the test checks what
 * the kernel and bpfnet's records show, and sends real packets. Bad input
 * goes straight to the socket over HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentLab } from '../../src/lab/agentlab.js';
import { ECHO_SCRIPT, PROBE_SCRIPT, waitReady } from '../../src/lab/lab.js';
import { UPLINK } from '../../src/lab/topology.js';
import { dockerdAvailable, ensureBusyboxImage, startDockerd, type Dockerd } from '../../src/lab/dockerd.js';
import { Client } from '../../src/api/client.js';
import { pluginCall } from '../../src/docker/server.js';
import { CONTENT_TYPE } from '../../src/docker/protocol.js';

const unavailable = await dockerdAvailable();

/** busybox httpd answering /cgi-bin/ip with the client address it saw. */
const HTTPD = [
  'sh', '-c',
  'mkdir -p /www/cgi-bin && printf \'#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho "docker saw $REMOTE_ADDR"\\n\' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www',
];

describe.skipIf(unavailable)(`Docker remote network + IPAM driver${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let lab: AgentLab;
  let d: Dockerd;
  let api: Client;
  let plug = '';
  let sock = '';
  const children: ChildProcess[] = [];

  const docker = (...args: string[]) => d.ok(args);
  const ip = (ctr: string, net: string) => docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, ctr);
  const networks = async () => (await api.call('NetworkList', {})).value.networks.filter((n) => !n.predefined);
  const sandboxes = async () => (await api.call('SandboxList', {})).value.sandboxes;
  const pluginState = () => (existsSync(join(lab.stateDir, 'docker-plugin.json')) ? readFileSync(join(lab.stateDir, 'docker-plugin.json'), 'utf8') : '(none)');
  const nodeLinks = async () => (JSON.parse((await lab.node.ip('-j', 'link')).stdout) as { ifname: string }[]).map((l) => l.ifname);
  const dockerId = (net: string) => docker('network', 'inspect', '-f', '{{.Id}}', net);
  const ping = async (ctr: string, to: string) => (await d.docker(['exec', ctr, 'ping', '-c1', '-W1', to])).exitCode === 0;
  /** docker-proxy processes of our dockerd (other engines on the machine have their own). */
  const proxies = () =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
          return stat.includes('(docker-proxy)') && Number(stat.split(') ')[1]!.split(' ')[1]) === d.pid;
        } catch {
          return false;
        }
      });

  beforeAll(async () => {
    lab = await AgentLab.create({ defaultSubnet: '10.232.0.0/24' });
    plug = `bpfnet-t${lab.id}`;
    sock = `/run/docker/plugins/${plug}.sock`;
    // dockerd first (as at boot: FORWARD policy DROP), then the agent with the plugin.
    d = await startDockerd({ netnsPath: lab.node.path, name: `dd${lab.id}`, bip: '10.250.233.1/24' });
    await lab.start({ args: ['--docker-plugin', sock] });
    api = await Client.connect(lab.host);
    await ensureBusyboxImage(d);
    const out = spawn('nsenter', [`--net=${lab.client.path}`, '--', process.execPath, ECHO_SCRIPT, '7000', 'outside'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(out);
    await waitReady(out, 'outside server');
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    api?.close();
    await d?.docker(['rm', '-f', 'c1', 'c2', 'c3', 'c4', 'web', 'web2', 'i0', 'i1', 'i2', 'r1']).catch(() => undefined);
    await lab?.stop().catch(() => undefined); // closes the plugin socket
    if (sock) rmSync(sock, { force: true });
    await d?.stop();
    await lab?.destroy();
  });

  it('activates as NetworkDriver and IpamDriver; unknown methods are 404', async () => {
    const a = await pluginCall(sock, 'Plugin.Activate', undefined);
    expect(a).toMatchObject({ status: 200, body: { Implements: ['NetworkDriver', 'IpamDriver'] } });
    expect(a.contentType).toBe(CONTENT_TYPE);
    expect((await pluginCall(sock, 'NetworkDriver.GetCapabilities', {})).body).toEqual({ Scope: 'local', ConnectivityScope: 'local' });
    expect((await pluginCall(sock, 'IpamDriver.GetCapabilities', {})).body).toEqual({ RequiresMACAddress: false, RequiresRequestReplay: false });
    expect((await pluginCall(sock, 'IpamDriver.GetDefaultAddressSpaces', {})).body).toEqual({ LocalDefaultAddressSpace: 'LocalDefault', GlobalDefaultAddressSpace: 'GlobalDefault' });
    expect((await pluginCall(sock, 'NetworkDriver.DiscoverNew', { DiscoveryType: 1, DiscoveryData: {} })).body).toEqual({});
    expect((await pluginCall(sock, 'NetworkDriver.DiscoverDelete', { DiscoveryType: 1, DiscoveryData: {} })).body).toEqual({});
    expect((await pluginCall(sock, 'NetworkDriver.AllocateNetwork', { NetworkID: 'x' })).body['Err']).toMatch(/not supported/);
    expect((await pluginCall(sock, 'NetworkDriver.FreeNetwork', { NetworkID: 'x' })).body['Err']).toMatch(/not supported/);
    const u = await pluginCall(sock, 'NetworkDriver.Frobnicate', {});
    expect(u.status).toBe(404);
    expect(u.body['Err']).toMatch(/unknown method/);
  });

  it('docker network create -d: a bpfnet network with Docker\'s subnet and the -o options', async () => {
    await docker('network', 'create', '-d', plug, '--subnet', '10.66.0.0/24', '-o', `com.docker.network.bridge.name=bdt${lab.id}`, 'net1');
    await docker('network', 'create', '-d', plug, '--subnet', '10.67.0.0/24', '-o', 'com.docker.network.bridge.enable_icc=false', 'net2');
    const [id1, id2] = [await dockerId('net1'), await dockerId('net2')];
    const nets = await networks();
    const n1 = nets.find((n) => n.labels['com.docker.network.id'] === id1)!;
    const n2 = nets.find((n) => n.labels['com.docker.network.id'] === id2)!;
    expect(n1).toMatchObject({ name: `docker-${id1.slice(0, 12)}`, driver: 'bridge', bridgeName: `bdt${lab.id}`, icc: true, ipam: { subnet: '10.66.0.0/24', gateway: '10.66.0.1' } });
    expect(n2).toMatchObject({ name: `docker-${id2.slice(0, 12)}`, icc: false, ipam: { subnet: '10.67.0.0/24' } });
    const br = JSON.parse((await lab.node.ip('-j', 'addr', 'show', 'dev', `bdt${lab.id}`)).stdout) as { addr_info: { local: string }[] }[];
    expect(br[0]!.addr_info.map((a) => a.local)).toContain('10.66.0.1');
  });

  it('bad input to every method: the protocol\'s error object, nothing changed', async () => {
    const net1 = await dockerId('net1');
    const before = { nets: JSON.stringify(await networks()), sbs: JSON.stringify(await sandboxes()), state: pluginState() };
    const unknownNet = 'f'.repeat(64);
    const unknownEp = 'e'.repeat(64);
    const cases: [string, unknown, RegExp][] = [
      ['NetworkDriver.CreateNetwork', '{"NetworkID": ', /malformed JSON/],
      ['NetworkDriver.CreateNetwork', '[1,2]', /must be a JSON object/],
      ['NetworkDriver.CreateNetwork', { Options: {}, IPv4Data: [] }, /NetworkID is missing/],
      ['NetworkDriver.CreateNetwork', { NetworkID: 'abc', IPv4Data: [{ Pool: '10.68.0.0/24' }] }, /64-hex-digit/],
      ['NetworkDriver.CreateNetwork', { NetworkID: unknownNet, IPv4Data: [] }, /IPv4Data is empty/],
      ['NetworkDriver.CreateNetwork', { NetworkID: unknownNet, IPv4Data: [{ Pool: '10.68.0.0/33' }] }, /10\.68\.0\.0\/33/],
      ['NetworkDriver.CreateNetwork', { NetworkID: unknownNet, IPv4Data: [{ Pool: '10.66.0.0/25', Gateway: '10.66.0.1/25' }] }, /overlap/i],
      ['NetworkDriver.CreateNetwork', { NetworkID: unknownNet, IPv4Data: [{ Pool: '10.68.0.0/24' }], Options: { 'com.docker.network.generic': { 'com.docker.network.bridge.enable_icc': 'maybe' } } }, /enable_icc/],
      ['NetworkDriver.CreateNetwork', { NetworkID: unknownNet, IPv4Data: [{ Pool: '10.68.0.0/24' }], Options: { 'com.docker.network.enable_ipv6': true } }, /IPv6/],
      ['NetworkDriver.DeleteNetwork', '', /NetworkID is missing/],
      ['NetworkDriver.DeleteNetwork', { NetworkID: unknownNet }, /unknown network/],
      ['NetworkDriver.CreateEndpoint', 'nope', /malformed JSON/],
      ['NetworkDriver.CreateEndpoint', { NetworkID: net1, EndpointID: unknownEp }, /Interface\.Address is missing/],
      ['NetworkDriver.CreateEndpoint', { NetworkID: net1, EndpointID: unknownEp, Interface: { Address: '10.66.0.9' } }, /prefix length/],
      ['NetworkDriver.CreateEndpoint', { NetworkID: net1, EndpointID: unknownEp, Interface: { Address: '10.99.0.9/24' } }, /outside the network's subnet/],
      ['NetworkDriver.CreateEndpoint', { NetworkID: unknownNet, EndpointID: unknownEp, Interface: { Address: '10.66.0.9/24' } }, /unknown network/],
      ['NetworkDriver.CreateEndpoint', { NetworkID: net1, EndpointID: unknownEp, Interface: { Address: '10.66.0.9/24', MacAddress: 'zz' } }, /MacAddress/],
      ['NetworkDriver.EndpointOperInfo', { NetworkID: net1, EndpointID: unknownEp }, /unknown endpoint/],
      ['NetworkDriver.DeleteEndpoint', { NetworkID: net1 }, /EndpointID is missing/],
      ['NetworkDriver.DeleteEndpoint', { NetworkID: net1, EndpointID: unknownEp }, /unknown endpoint/],
      ['NetworkDriver.Join', { NetworkID: net1, EndpointID: unknownEp }, /SandboxKey is missing/],
      ['NetworkDriver.Join', { NetworkID: net1, EndpointID: unknownEp, SandboxKey: '/var/run/docker/netns/x' }, /unknown endpoint/],
      ['NetworkDriver.Leave', '{', /malformed JSON/],
      ['NetworkDriver.Leave', { NetworkID: net1, EndpointID: unknownEp }, /unknown endpoint/],
      ['NetworkDriver.ProgramExternalConnectivity', { NetworkID: net1, EndpointID: unknownEp, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8081 }] } }, /unknown endpoint/],
      ['NetworkDriver.ProgramExternalConnectivity', { NetworkID: net1, EndpointID: unknownEp, Options: { 'com.docker.network.portmap': 'x' } }, /portmap/],
      ['NetworkDriver.ProgramExternalConnectivity', { NetworkID: net1, EndpointID: unknownEp, Options: { 'com.docker.network.portmap': [{ Proto: 132, Port: 80 }] } }, /sctp/],
      ['NetworkDriver.RevokeExternalConnectivity', { NetworkID: net1, EndpointID: unknownEp }, /unknown endpoint/],
      ['NetworkDriver.RevokeExternalConnectivity', { EndpointID: unknownEp }, /NetworkID is missing/],
      ['IpamDriver.RequestPool', '{]', /malformed JSON/],
      ['IpamDriver.RequestPool', { Pool: '10.69.0.0/24', V6: true }, /IPv6/],
      ['IpamDriver.RequestPool', { Pool: 'ten/8' }, /ten\/8/],
      ['IpamDriver.RequestPool', { Pool: '10.66.0.0/16' }, /overlaps with subnet 10\.66\.0\.0\/24/],
      ['IpamDriver.RequestPool', { SubPool: '10.69.0.0/25' }, /SubPool .* needs Pool/],
      ['IpamDriver.RequestPool', { AddressSpace: 'Elsewhere', Pool: '10.69.0.0/24' }, /unknown AddressSpace/],
      ['IpamDriver.ReleasePool', {}, /PoolID is missing/],
      ['IpamDriver.ReleasePool', { PoolID: 'LocalDefault/10.70.0.0/24' }, /unknown PoolID/],
      ['IpamDriver.RequestAddress', { PoolID: 'LocalDefault/10.70.0.0/24' }, /unknown PoolID/],
      ['IpamDriver.RequestAddress', { PoolID: 'LocalDefault/10.70.0.0/24', Address: 'x.y' }, /Address must be an IPv4 address/],
      ['IpamDriver.ReleaseAddress', { PoolID: 'LocalDefault/10.70.0.0/24' }, /Address is missing/],
      ['IpamDriver.ReleaseAddress', { PoolID: 'LocalDefault/10.70.0.0/24', Address: '10.70.0.2/24' }, /unknown PoolID/],
    ];
    for (const [method, body, msg] of cases) {
      const r = await pluginCall(sock, method, body as object | string);
      const field = method.startsWith('Ipam') ? 'Error' : 'Err';
      expect(r.status, method).toBe(200);
      expect(r.body[field], `${method} ${JSON.stringify(body)}`).toMatch(msg);
      expect(String(r.body[field]), method).toContain(method);
    }
    expect(JSON.stringify(await networks())).toBe(before.nets);
    expect(JSON.stringify(await sandboxes())).toBe(before.sbs);
    expect(pluginState()).toBe(before.state);
  });

  it('containers on a bpfnet network reach each other (by name) and the outside, masqueraded', async () => {
    await docker('run', '-d', '--init', '--name', 'c1', '--network', 'net1', 'bb', 'sleep', '600');
    await docker('run', '-d', '--init', '--name', 'c2', '--network', 'net1', 'bb', 'sleep', '600');
    const [a, b] = [await ip('c1', 'net1'), await ip('c2', 'net1')];
    expect([a, b]).toEqual(['10.66.0.2', '10.66.0.3']);
    // bpfnet's records: one sandbox per endpoint, same address and MAC as Docker's.
    const sb = (await sandboxes()).filter((s) => s.labels['com.docker.endpoint.id']);
    expect(sb).toHaveLength(2);
    const c1Ep = (await api.call('SandboxInspect', { ref: sb.find((s) => s.labels['com.docker.endpoint.id'] === '')?.id ?? sb[0]!.id })).value.endpoints[0]!;
    expect(c1Ep).toMatchObject({ ipv4: a, mac: '02:42:0a:42:00:02' });
    expect(await d.ok(['exec', 'c1', 'cat', '/sys/class/net/eth0/address'])).toBe(c1Ep.mac);
    expect(await d.ok(['exec', 'c1', 'ip', 'route', 'show', 'default'])).toContain('via 10.66.0.1 dev eth0');
    expect(await ping('c1', 'c2')).toBe(true);
    expect(await ping('c2', a)).toBe(true);
    const out = await d.ok(['exec', 'c1', 'sh', '-c', `echo hi | nc -w 3 ${UPLINK.clientIp} 7000`]);
    expect(out).toContain(`outside tcp/7000 saw ${UPLINK.nodeIp}:`);
  });

  it('-p 8080:80 is published by bpfnet: client source kept, no docker-proxy, no Docker DNAT rule', async () => {
    await docker('run', '-d', '--init', '--name', 'web', '--network', 'net1', '-p', '8080:80', 'bb', ...HTTPD);
    const r = await lab.client.exec(process.execPath, [PROBE_SCRIPT, 'tcp', UPLINK.nodeIp, '8080', 'GET /cgi-bin/ip HTTP/1.0\r\n\r\n']);
    expect(r.stdout).toContain(`docker saw [::ffff:${UPLINK.clientIp}]`);
    const ports = (await api.call('PortList', {})).value.ports;
    expect(ports).toEqual([expect.objectContaining({ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp', containerIp: await ip('web', 'net1'), active: true })]);
    expect(proxies()).toEqual([]);
    const nat = (await lab.node.exec('iptables-save', ['-t', 'nat'])).stdout;
    expect(nat).not.toMatch(/--dport 8080/);
    // Docker itself publishes nothing for a remote driver.
    expect(await docker('port', 'web')).toBe('');
    // The host port is taken: the second container does not start, and leaves nothing behind.
    const sbs = (await sandboxes()).length;
    const dup = await d.docker(['run', '-d', '--init', '--name', 'web2', '--network', 'net1', '-p', '8080:81', 'bb', 'sleep', '600']);
    expect(dup.exitCode).not.toBe(0);
    expect(dup.stderr).toMatch(/ProgramExternalConnectivity: .*8080/);
    await docker('rm', '-f', 'web2');
    expect((await sandboxes()).length).toBe(sbs);
    // Stopping the container revokes the port.
    await docker('rm', '-f', 'web');
    expect((await api.call('PortList', {})).value.ports).toEqual([]);
  });

  it('enable_icc=false isolates containers of net2; the gateway still answers', async () => {
    await docker('run', '-d', '--init', '--name', 'c3', '--network', 'net2', 'bb', 'sleep', '600');
    await docker('run', '-d', '--init', '--name', 'c4', '--network', 'net2', 'bb', 'sleep', '600');
    expect(await ping('c3', await ip('c4', 'net2'))).toBe(false);
    expect(await ping('c3', '10.67.0.1')).toBe(true);
  });

  it('--internal: no gateway, no default route, no docker_gwbridge', async () => {
    await docker('network', 'create', '-d', plug, '--internal', '--subnet', '10.72.0.0/24', 'net6');
    const n = (await networks()).find((x) => x.ipam?.subnet === '10.72.0.0/24')!;
    expect(n.internal).toBe(true);
    await docker('run', '-d', '--init', '--name', 'i0', '--network', 'net6', 'bb', 'sleep', '600');
    expect(await d.ok(['exec', 'i0', 'ip', 'route'])).toBe('10.72.0.0/24 dev eth0 scope link  src 10.72.0.2');
    expect(await docker('network', 'ls', '--format', '{{.Name}}')).not.toContain('docker_gwbridge');
    await docker('rm', '-f', 'i0');
    await docker('network', 'rm', 'net6');
  });

  it('network connect / disconnect add and remove an endpoint (and its devices)', async () => {
    const linksBefore = await nodeLinks();
    await docker('network', 'connect', 'net2', 'c1');
    const a2 = await ip('c1', 'net2');
    expect(a2).toMatch(/^10\.67\.0\.\d+$/);
    expect(await d.ok(['exec', 'c1', 'ip', '-o', '-4', 'addr', 'show', 'eth1'])).toContain(`${a2}/24`);
    expect((await sandboxes()).filter((s) => s.labels['com.docker.endpoint.id'])).toHaveLength(5);
    expect((await nodeLinks()).length).toBe(linksBefore.length + 1);
    await docker('network', 'disconnect', 'net2', 'c1');
    expect(await d.ok(['exec', 'c1', 'ip', '-o', 'link'])).not.toContain('eth1');
    expect((await sandboxes()).filter((s) => s.labels['com.docker.endpoint.id'])).toHaveLength(4);
    expect((await nodeLinks()).sort()).toEqual([...linksBefore].sort());
    expect(await ping('c1', 'c2')).toBe(true);
  });

  it('IPAM driver: pools from bpfnet, overlaps refused, remembered across an agent restart', async () => {
    await docker('network', 'create', '-d', plug, '--ipam-driver', plug, '--subnet', '10.71.0.0/24', '--ip-range', '10.71.0.128/25', 'net3');
    const ipam = JSON.parse(await docker('network', 'inspect', '-f', '{{json .IPAM}}', 'net3')) as { Driver: string; Config: { Subnet: string; IPRange: string }[] };
    expect(ipam).toMatchObject({ Driver: plug, Config: [{ Subnet: '10.71.0.0/24', IPRange: '10.71.0.128/25' }] });
    await docker('run', '-d', '--init', '--name', 'i1', '--network', 'net3', 'bb', 'sleep', '600');
    // The gateway is the pool's first address; endpoints come from the range.
    expect(await docker('inspect', '-f', '{{.NetworkSettings.Networks.net3.Gateway}}', 'i1')).toBe('10.71.0.1');
    expect(await ip('i1', 'net3')).toBe('10.71.0.129');
    // An agent restart: pools, addresses and endpoints are remembered; running containers keep working.
    await lab.stop();
    await lab.start({ args: ['--docker-plugin', sock] });
    api.close();
    api = await Client.connect(lab.host);
    const over = await d.docker(['network', 'create', '-d', plug, '--ipam-driver', plug, '--subnet', '10.71.0.0/16', 'net4']);
    expect(over.exitCode).not.toBe(0);
    expect(over.stderr).toMatch(/IpamDriver\.RequestPool: Pool 10\.71\.0\.0\/16 overlaps with pool 10\.71\.0\.0\/24/);
    await docker('run', '-d', '--init', '--name', 'i2', '--network', 'net3', 'bb', 'sleep', '600');
    expect(await ip('i2', 'net3')).toBe('10.71.0.130');
    expect(await ping('i1', 'i2')).toBe(true);
    expect(await ping('c1', 'c2')).toBe(true);
    // Without --subnet: the first free default pool, as bpfnet picks for its own networks.
    await docker('network', 'create', '-d', plug, '--ipam-driver', plug, 'net5');
    expect(await docker('network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', 'net5')).toMatch(/^172\.(1[7-9]|2\d|3[01])\.0\.0\/16$/);
  });

  it('a dockerd restart: containers come back on their bpfnet network, ports published again', async () => {
    await docker('run', '-d', '--init', '--restart', 'always', '--name', 'r1', '--network', 'net1', '-p', '8081:80', 'bb', ...HTTPD);
    await d.restart();
    const served = async () => (await lab.client.exec(process.execPath, [PROBE_SCRIPT, 'tcp', UPLINK.nodeIp, '8081', 'GET /cgi-bin/ip HTTP/1.0\r\n\r\n']).catch((e: Error) => ({ stdout: e.message }))).stdout;
    let out = '';
    for (let i = 0; i < 50 && !out.includes('docker saw'); i++) {
      out = await served();
      if (!out.includes('docker saw')) await new Promise((r) => setTimeout(r, 200));
    }
    expect(out).toContain(`docker saw [::ffff:${UPLINK.clientIp}]`);
    // Containers without a restart policy were stopped: Docker left and deleted their endpoints.
    expect((await sandboxes()).filter((s) => s.labels['com.docker.endpoint.id'])).toHaveLength(1);
    expect(proxies()).toEqual([]);
  });

  it('after the restarts Docker\'s Leave/DeleteEndpoint still clean up; network rm leaves nothing', async () => {
    await docker('rm', '-f', 'c1', 'c2', 'c3', 'c4', 'i1', 'i2', 'r1');
    expect((await sandboxes()).filter((s) => s.labels['com.docker.endpoint.id'])).toEqual([]);
    await docker('network', 'rm', 'net1', 'net2', 'net3', 'net5');
    expect(await networks()).toEqual([]);
    const links = await nodeLinks();
    expect(links.filter((l) => /^(bpv|bpp|bn-|bdt)/.test(l))).toEqual([]);
    expect(JSON.parse(pluginState())).toEqual({ version: 1, pools: {}, endpoints: {} });
    expect(existsSync(sock)).toBe(true);
  });
});
