/**
 * The bpfnet CNI plugin exec'd as libcni does, against a real agent in a
 * throw-away node namespace (AgentLab). Container namespaces are made with
 * `ip netns add`, like a runtime makes them before ADD. Real packets: pings
 * between the containers and to the gateway, and a published port reached
 * from the lab's client namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { AgentLab } from '../../src/lab/agentlab.js';
import { ECHO_SCRIPT, probe, waitReady } from '../../src/lab/lab.js';
import { Netns } from '../../src/lab/netns.js';
import { UPLINK } from '../../src/lab/topology.js';
import { agentState, execPlugin, pluginOk, sandboxNames, type PluginCall } from './cni-helpers.js';

const SUBNET = '10.231.0.0/24';
const GW = '10.231.0.1';

async function ping(ns: Netns, to: string): Promise<boolean> {
  const r = await execa('nsenter', [`--net=${ns.path}`, '--', 'ping', '-c1', '-W1', to], { reject: false });
  return r.exitCode === 0;
}

describe('bpfnet CNI plugin, exec\'d directly', () => {
  let lab: AgentLab;
  const ns: Record<string, Netns> = {};
  let conf: Record<string, unknown>;
  /** ADD results by container. */
  const added: Record<string, Record<string, unknown>> = {};

  const call = (command: string, cid: string, extra: Partial<PluginCall> = {}): PluginCall => ({
    command,
    containerId: cid,
    netns: ns[cid]?.path ?? '',
    ifName: 'eth0',
    conf,
    ...extra,
  });

  beforeAll(async () => {
    lab = await AgentLab.create({ defaultSubnet: '10.230.0.0/24' });
    await lab.start();
    for (const c of ['c1', 'c2', 'c3', 'c4', 'c5']) ns[c] = await Netns.create(`cni-${lab.id}-${c}`);
    conf = { cniVersion: '1.1.0', name: 'cninet', type: 'bpfnet', subnet: SUBNET, agentSocket: lab.socket, capabilities: { portMappings: true, ipRanges: true, dns: true } };
  });

  afterAll(async () => {
    for (const n of Object.values(ns)) await n.destroy();
    await lab?.destroy();
  });

  it('VERSION and STATUS', async () => {
    const v = await execPlugin({ command: 'VERSION', conf: { cniVersion: '1.1.0' } });
    expect(v.code).toBe(0);
    expect(v.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    const ok = await execPlugin({ command: 'STATUS', conf, env: { CNI_COMMAND: 'STATUS', CNI_PATH: '/x' } });
    expect(ok).toMatchObject({ code: 0, stdout: '' });
    const unknown = await execPlugin({ command: 'STATUS', conf: { ...conf, subnet: undefined, network: 'nosuch' }, env: { CNI_COMMAND: 'STATUS', CNI_PATH: '/x' } });
    expect(unknown.code).not.toBe(0);
    expect(unknown.json).toMatchObject({ code: 50, msg: expect.stringContaining('"nosuch" does not exist') });
  });

  it('ADD creates the network on first use and returns the attachment', async () => {
    const r = await pluginOk(
      call('ADD', 'c1', {
        conf: { ...conf, runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }], dns: { servers: ['10.0.0.53'], searches: ['example.org'] } } },
      }),
    );
    added['c1'] = r!;
    expect(r).toMatchObject({
      cniVersion: '1.1.0',
      interfaces: [{ name: expect.stringMatching(/^bpv/) }, { name: 'eth0', mac: '02:42:0a:e7:00:02', sandbox: ns['c1']!.path }],
      ips: [{ address: '10.231.0.2/24', gateway: GW, interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: GW }],
      dns: { nameservers: ['10.0.0.53'], search: ['example.org'] },
    });
    // The kernel agrees: inside the runtime's namespace, eth0 with the address and the default route.
    const addr = JSON.parse((await ns['c1']!.ip('-j', 'addr', 'show', 'dev', 'eth0')).stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
    expect(addr[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain('10.231.0.2/24');
    expect((await ns['c1']!.ip('route', 'show', 'default')).stdout).toContain(`default via ${GW} dev eth0`);
    expect(await ping(ns['c1']!, GW)).toBe(true);
    const net = await lab.json<{ Name: string; IPAM: { Config: { Subnet: string }[] } }[]>('network', 'inspect', 'cninet');
    expect(net[0]!.IPAM.Config[0]!.Subnet).toBe(SUBNET);
  });

  it('a second container (config 0.4.0) reaches the first; results in the old shape', async () => {
    const r = await pluginOk(call('ADD', 'c2', { conf: { ...conf, cniVersion: '0.4.0' } }));
    added['c2'] = r!;
    expect(r).toMatchObject({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.231.0.3/24', gateway: GW, interface: 1 }] });
    expect(await ping(ns['c2']!, '10.231.0.2')).toBe(true);
    expect(await ping(ns['c1']!, '10.231.0.3')).toBe(true);
  });

  it('the published port reaches the container from the client namespace', async () => {
    await waitReady(ns['c1']!.spawn(process.execPath, [ECHO_SCRIPT, '80', 'c1']), 'echo in c1');
    expect(await probe(lab.client, 'tcp', UPLINK.nodeIp, 8080, 'via-cni')).toMatch(new RegExp(`^c1 tcp/80 saw ${UPLINK.clientIp}:\\d+: via-cni$`));
  });

  it('CHECK passes on a healthy attachment; a repeated ADD returns the same result', async () => {
    const chk = await execPlugin(call('CHECK', 'c1', { conf: { ...conf, prevResult: added['c1'] } }));
    expect(chk).toMatchObject({ code: 0, stdout: '' });
    const again = await pluginOk(call('ADD', 'c2', { conf: { ...conf, cniVersion: '0.4.0' } }));
    expect(again).toEqual(added['c2']);
  });

  it('ipRanges, the ips and mac capabilities choose address and MAC', async () => {
    const r3 = await pluginOk(call('ADD', 'c3', { conf: { ...conf, runtimeConfig: { ipRanges: [[{ subnet: SUBNET, rangeStart: '10.231.0.100', rangeEnd: '10.231.0.110' }]] } } }));
    expect(r3).toMatchObject({ ips: [{ address: '10.231.0.100/24' }] });
    const r4 = await pluginOk(call('ADD', 'c4', { conf: { ...conf, runtimeConfig: { ipRanges: [[{ subnet: SUBNET, rangeStart: '10.231.0.100', rangeEnd: '10.231.0.110' }]] } } }));
    expect(r4).toMatchObject({ ips: [{ address: '10.231.0.101/24' }] });
    expect(await ping(ns['c4']!, '10.231.0.100')).toBe(true);
    await pluginOk(call('DEL', 'c4'));
    const r5 = await pluginOk(call('ADD', 'c4', { conf: { ...conf, runtimeConfig: { ips: ['10.231.0.200/24'], mac: '02:00:00:00:00:c4' } } }));
    expect(r5).toMatchObject({ ips: [{ address: '10.231.0.200/24' }], interfaces: [{}, { name: 'eth0', mac: '02:00:00:00:00:c4' }] });
    expect((await ns['c4']!.ip('link', 'show', 'eth0')).stdout).toContain('link/ether 02:00:00:00:00:c4');
    await pluginOk(call('DEL', 'c4'));
  });

  it('CHECK finds a broken endpoint and says what is wrong', async () => {
    const hostIf = (added['c2']!['interfaces'] as { name: string }[])[0]!.name;
    await lab.node.ip('link', 'del', hostIf);
    const r = await execPlugin(call('CHECK', 'c2', { conf: { ...conf, cniVersion: '0.4.0', prevResult: added['c2'] } }));
    expect(r.code).not.toBe(0);
    expect(r.json).toMatchObject({ cniVersion: '0.4.0', code: 103 });
    expect(r.json!['msg']).toMatch(new RegExp(`host-side veth ${hostIf} is missing`));
    expect(r.json!['msg']).toMatch(/interface eth0 does not exist in/);
    // An address change is caught too (prevResult vs the attachment).
    const wrong = await execPlugin(call('CHECK', 'c1', { conf: { ...conf, prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.231.0.77/24' }] } } }));
    expect(wrong.json).toMatchObject({ code: 103, msg: expect.stringContaining('prevResult has 10.231.0.77/24 but the endpoint has 10.231.0.2/24') });
  });

  it('DEL removes the attachment, leaves the namespace, and is idempotent', async () => {
    const before = await sandboxNames(lab.host);
    expect(before.filter((n) => n.startsWith('cni-c2-'))).toHaveLength(1);
    for (let i = 0; i < 2; i++) expect(await execPlugin(call('DEL', 'c2', { conf: { ...conf, cniVersion: '0.4.0', prevResult: added['c2'] } }))).toMatchObject({ code: 0, stdout: '' });
    // DEL without CNI_NETNS (the runtime's namespace may be gone) is fine too.
    expect((await execPlugin(call('DEL', 'c2', { netns: '' }))).code).toBe(0);
    expect((await sandboxNames(lab.host)).filter((n) => n.startsWith('cni-c2-'))).toEqual([]);
    expect((await execa('ip', ['netns', 'list'])).stdout).toContain(ns['c2']!.name);
    // c2's namespace can be attached again.
    const r = await pluginOk(call('ADD', 'c2'));
    expect(r).toMatchObject({ ips: [{ address: '10.231.0.3/24' }] });
  });

  it('GC removes this network\'s attachments that are not listed as valid', async () => {
    const gcEnv = { CNI_COMMAND: 'GC', CNI_PATH: '/x' };
    const keep = [{ containerID: 'c1', ifname: 'eth0' }, { containerID: 'c2', ifname: 'eth0' }];
    expect(await execPlugin({ command: 'GC', env: gcEnv, conf: { ...conf, 'cni.dev/valid-attachments': keep } })).toMatchObject({ code: 0, stdout: '' });
    const names = await sandboxNames(lab.host);
    expect(names.filter((n) => n.startsWith('cni-c3-'))).toEqual([]);
    expect(names.filter((n) => /^cni-c[12]-/.test(n))).toHaveLength(2);
    expect(await ping(ns['c1']!, '10.231.0.3')).toBe(true);
  });

  it('concurrent first ADDs on a new network both succeed (one creates it, the other uses it)', async () => {
    const par = { ...conf, name: 'parnet', subnet: '10.235.0.0/24' };
    const [a, b] = await Promise.all([pluginOk(call('ADD', 'c3', { conf: par })), pluginOk(call('ADD', 'c4', { conf: par }))]);
    const addrs = [a, b].map((r) => (r!['ips'] as { address: string }[])[0]!.address).sort();
    expect(addrs).toEqual(['10.235.0.2/24', '10.235.0.3/24']);
    expect(await ping(ns['c3']!, '10.235.0.1')).toBe(true);
    await Promise.all([pluginOk(call('DEL', 'c3', { conf: par })), pluginOk(call('DEL', 'c4', { conf: par }))]);
  });

  it('a second attachment in the same namespace leaves the first one\'s default route alone', async () => {
    const side = { ...conf, name: 'sidenet', subnet: '10.236.0.0/24' };
    const r = await pluginOk(call('ADD', 'c1', { ifName: 'net1', conf: side }));
    expect(r).toMatchObject({ ips: [{ address: '10.236.0.2/24', gateway: '10.236.0.1' }], routes: [] });
    expect((await ns['c1']!.ip('route', 'show', 'default')).stdout).toContain(`default via ${GW} dev eth0`);
    expect(await ping(ns['c1']!, '10.236.0.1')).toBe(true);
    expect((await execPlugin(call('CHECK', 'c1', { conf: { ...conf, prevResult: added['c1'] } }))).code).toBe(0);
    expect((await execPlugin(call('CHECK', 'c1', { ifName: 'net1', conf: { ...side, prevResult: r } }))).code).toBe(0);
    await pluginOk(call('DEL', 'c1', { ifName: 'net1', conf: side }));
    expect((await ns['c1']!.ip('route', 'show', 'default')).stdout).toContain(`default via ${GW} dev eth0`);
  });

  describe('bad input: the protocol\'s error object, nothing changed', () => {
    const fresh = { cniVersion: '1.1.0', name: 'freshnet', type: 'bpfnet', subnet: '10.232.0.0/24' };
    const cases: [string, () => PluginCall, number, RegExp][] = [
      ['malformed JSON', () => call('ADD', 'c5', { conf: '{"cniVersion":"1.1.0","name":' }), 6, /not valid JSON/],
      ['missing name', () => call('ADD', 'c5', { conf: { cniVersion: '1.1.0', type: 'bpfnet', agentSocket: lab.socket } }), 7, /missing name/],
      ['unsupported version', () => call('ADD', 'c5', { conf: { ...conf, cniVersion: '0.2.0' } }), 1, /incompatible CNI versions/],
      ['unknown network', () => call('ADD', 'c5', { conf: { ...conf, name: 'other', subnet: undefined } }), 7, /unknown bpfnet network "other"/],
      ['ipam section', () => call('ADD', 'c5', { conf: { ...conf, ipam: { type: 'host-local' } } }), 2, /IPAM built in/],
      ['sctp port', () => call('ADD', 'c5', { conf: { ...conf, runtimeConfig: { portMappings: [{ hostPort: 9, containerPort: 9, protocol: 'sctp' }] } } }), 2, /sctp/],
      ['subnet mismatch', () => call('ADD', 'c5', { conf: { ...conf, subnet: '10.239.0.0/24' } }), 7, /exists with subnet 10\.231\.0\.0\/24/],
      ['taken host port', () => call('ADD', 'c5', { conf: { ...conf, runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } } }), 100, /8080/],
      ['taken host port on a new network', () => call('ADD', 'c5', { conf: { ...fresh, agentSocket: lab.socket, runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } } }), 100, /8080/],
      ['ipRange outside the subnet', () => call('ADD', 'c5', { conf: { ...conf, runtimeConfig: { ipRanges: [[{ subnet: '10.9.0.0/24' }]] } } }), 7, /not inside/],
      ['address in use', () => call('ADD', 'c5', { conf: { ...conf, runtimeConfig: { ips: ['10.231.0.2/24'] } } }), 100, /already in use/],
      ['interface already in the namespace', () => call('ADD', 'c5', { ifName: 'lo' }), 100, /interface lo already exists/],
      ['missing CNI_NETNS', () => call('ADD', 'c5', { netns: '' }), 4, /\[CNI_NETNS\] missing/],
      ['missing CNI_CONTAINERID', () => call('ADD', '', { netns: ns['c5']!.path }), 4, /\[CNI_CONTAINERID\] missing/],
      ['a netns that does not exist', () => call('ADD', 'c5', { netns: '/run/netns/bpfnet-cni-nope' }), 4, /does not exist/],
      ['unknown command', () => ({ ...call('ADD', 'c5'), env: { CNI_COMMAND: 'BOGUS', CNI_PATH: '/x' } }), 4, /unknown CNI_COMMAND/],
      ['CHECK of an unknown container', () => call('CHECK', 'c5', { conf: { ...conf, prevResult: { cniVersion: '1.1.0' } } }), 3, /no bpfnet attachment for container c5/],
      ['CHECK without prevResult', () => call('CHECK', 'c1'), 7, /needs prevResult/],
      ['GC without valid attachments', () => ({ ...call('GC', ''), env: { CNI_COMMAND: 'GC', CNI_PATH: '/x' } }), 7, /valid-attachments/],
      ['GC with an old config version', () => ({ ...call('GC', ''), conf: { ...conf, cniVersion: '1.0.0' }, env: { CNI_COMMAND: 'GC', CNI_PATH: '/x' } }), 1, /does not allow GC/],
    ];
    it.each(cases)('%s', async (_what, mk, code, msg) => {
      const before = await agentState(lab.host);
      const r = await execPlugin(mk());
      expect(r.code).not.toBe(0);
      expect(r.json).toMatchObject({ code, msg: expect.stringMatching(msg) });
      expect(typeof r.json!['cniVersion']).toBe('string');
      expect(await agentState(lab.host)).toBe(before);
      expect((await ns['c5']!.ip('-j', 'link')).stdout).not.toContain('eth0');
    });

    it('without a reachable agent: ADD says try again later, DEL succeeds, STATUS is 50', async () => {
      const away = { ...conf, agentSocket: `${lab.dir}/no-agent.sock` };
      const add = await execPlugin(call('ADD', 'c5', { conf: away }));
      expect(add.json).toMatchObject({ code: 11, msg: expect.stringContaining('needs a running `bpfnet agent`') });
      expect(await execPlugin(call('DEL', 'c5', { conf: away }))).toMatchObject({ code: 0, stdout: '' });
      const st = await execPlugin({ command: 'STATUS', conf: away, env: { CNI_COMMAND: 'STATUS', CNI_PATH: '/x' } });
      expect(st.json).toMatchObject({ code: 50 });
    });

    it('without CNI_COMMAND: usage on stderr, error 4', async () => {
      const r = await execPlugin({ command: '', conf: '', env: {} });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('bpfnet CNI plugin');
      expect(r.json).toMatchObject({ code: 4 });
    });
  });

  it('DEL of the last attachments leaves the network', async () => {
    for (const c of ['c1', 'c2']) await pluginOk(call('DEL', c));
    expect((await sandboxNames(lab.host)).filter((n) => n.startsWith('cni-'))).toEqual([]);
    const nets = await lab.json<{ Name: string }[]>('network', 'ls', '--format', 'json');
    expect(nets.map((n) => n.Name)).toContain('cninet');
    expect(nets.map((n) => n.Name)).not.toContain('freshnet');
  });
});
