/**
 * The control plane end to end: a real agent in its own node namespace,
 * driven through the CLI over its socket, with real sandboxes and packets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { AgentLab, CLI } from '../../src/lab/agentlab.js';
import { ECHO_SCRIPT, PROBE_SCRIPT } from '../../src/lab/lab.js';
import { UPLINK } from '../../src/lab/topology.js';

interface NetInspect {
  Name: string;
  Id: string;
  Driver: string;
  Internal: boolean;
  IPAM: { Config: { Subnet: string; Gateway: string }[] };
  Containers: Record<string, { Name: string; IPv4Address: string; MacAddress: string }>;
  Options: Record<string, string>;
}
interface SbInspect {
  Id: string;
  Name: string;
  NetworkSettings: { SandboxKey: string; Networks: Record<string, { IPAddress: string; Gateway: string; MacAddress: string }>; Ports: Record<string, { HostIp: string; HostPort: string }[] | null> };
  Endpoints?: { Network: string; IfName: string; HostIfName: string; HostIfIndex: number; IfIndex: number; Pairing: { Container: string } }[];
}

async function sbIp(lab: AgentLab, name: string, net: string): Promise<string> {
  const [d] = await lab.json<SbInspect[]>('sandbox', 'inspect', name);
  const ip = d!.NetworkSettings.Networks[net]?.IPAddress;
  if (!ip) throw new Error(`${name} has no address on ${net}: ${JSON.stringify(d)}`);
  return ip;
}

async function ping(lab: AgentLab, from: string, to: string): Promise<boolean> {
  const r = await lab.cli('exec', from, '--', 'ping', '-c1', '-W1', to);
  return r.code === 0;
}

/** Inside the sandbox's netns, without the CLI: what the kernel really has. */
async function inNetns(path: string, ...cmd: string[]): Promise<string> {
  return String((await execa('nsenter', [`--net=${path}`, '--', ...cmd])).stdout);
}

describe('agent: networks, sandboxes, endpoints', () => {
  let lab: AgentLab;

  beforeAll(async () => {
    lab = await AgentLab.create({ defaultSubnet: '10.240.0.0/24' });
    await lab.start();
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('starts with the predefined bridge, host and none networks', async () => {
    const ls = await lab.json<{ Name: string; Driver: string }[]>('network', 'ls', '--format', 'json');
    expect(ls.map((n) => [n.Name, n.Driver])).toEqual([
      ['bridge', 'bridge'],
      ['host', 'host'],
      ['none', 'null'],
    ]);
    const table = await lab.ok('network', 'ls');
    expect(table.split('\n')[0]).toMatch(/^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$/);
    const [bridge] = await lab.json<NetInspect[]>('network', 'inspect', 'bridge');
    expect(bridge!.IPAM.Config[0]).toMatchObject({ Subnet: '10.240.0.0/24', Gateway: '10.240.0.1' });
    const link = await lab.node.ip('-j', 'addr', 'show', 'dev', 'bpfnet0');
    expect(link.stdout).toContain('10.240.0.1');
  });

  it('two sandboxes on a user network reach each other; another network cannot', async () => {
    await lab.ok('network', 'create', '--subnet', '10.241.0.0/24', 'n1');
    await lab.ok('network', 'create', '--subnet', '10.242.0.0/24', 'n2');
    await lab.ok('sandbox', 'create', '--name', 'sa', '--network', 'n1');
    await lab.ok('sandbox', 'create', '--name', 'sb', '--network', 'n1');
    await lab.ok('sandbox', 'create', '--name', 'sc', '--network', 'n2');
    const [a, b, c] = [await sbIp(lab, 'sa', 'n1'), await sbIp(lab, 'sb', 'n1'), await sbIp(lab, 'sc', 'n2')];
    expect([a, b, c]).toEqual(['10.241.0.2', '10.241.0.3', '10.242.0.2']);
    expect(await ping(lab, 'sa', b)).toBe(true);
    expect(await ping(lab, 'sb', a)).toBe(true);
    expect(await ping(lab, 'sa', c)).toBe(false);
    expect(await ping(lab, 'sc', a)).toBe(false);
    // Each can still reach its own gateway (the node).
    expect(await ping(lab, 'sc', '10.242.0.1')).toBe(true);
  });

  it('inspect shows Docker fields and the veth pairing (eth0@ifN)', async () => {
    const [n1] = await lab.json<NetInspect[]>('network', 'inspect', 'n1');
    expect(Object.values(n1!.Containers).map((c) => c.Name).sort()).toEqual(['sa', 'sb']);
    const ca = Object.values(n1!.Containers).find((c) => c.Name === 'sa')!;
    expect(ca.IPv4Address).toBe('10.241.0.2/24');
    expect(ca.MacAddress).toBe('02:42:0a:f1:00:02');
    const [a] = await lab.json<SbInspect[]>('sandbox', 'inspect', 'sa');
    const ep = a!.Endpoints![0]!;
    expect(ep.IfName).toBe('eth0');
    // The kernel agrees: inside, eth0's peer is the host veth's ifindex, and vice versa.
    const inside = JSON.parse(await inNetns(a!.NetworkSettings.SandboxKey, 'ip', '-j', 'link', 'show', 'eth0')) as { ifindex: number; link_index: number; address: string }[];
    expect(inside[0]!.ifindex).toBe(ep.IfIndex);
    expect(ep.Pairing.Container).toBe(`eth0@if${ep.HostIfIndex}`);
    expect(inside[0]!.link_index).toBe(ep.HostIfIndex);
    expect(inside[0]!.address).toBe('02:42:0a:f1:00:02');
    const host = JSON.parse((await lab.node.ip('-j', '-d', 'link', 'show', ep.HostIfName)).stdout) as { ifindex: number; master: string; ifalias?: string }[];
    expect(host[0]!.ifindex).toBe(ep.HostIfIndex);
    expect(host[0]!.master).toMatch(/^bn-/);
    expect(host[0]!.ifalias).toMatch(/^bpfnet:ep:/);
  });

  it('run: output passes through, exit code is the process\'s, --rm removes the sandbox', async () => {
    const r = await lab.cli('run', '--rm', '--name', 'r1', '--network', 'n1', '--', 'sh', '-c', 'echo out; echo err >&2; cat /etc/hostname; exit 7');
    expect(r.code).toBe(7);
    expect(r.stdout).toMatch(/^out\n[0-9a-f]{12}$/);
    expect(r.stderr).toContain('err');
    const ls = await lab.json<{ name: string }[]>('sandbox', 'ls', '--format', 'json');
    expect(ls.map((s) => s.name)).not.toContain('r1');
    // The address is free again: the next sandbox gets it.
    await lab.ok('sandbox', 'create', '--name', 'sd', '--network', 'n1');
    expect(await sbIp(lab, 'sd', 'n1')).toBe('10.241.0.4');
    await lab.ok('sandbox', 'rm', 'sd');
  });

  it('run: signals reach the process', async () => {
    const child = execa(process.execPath, [CLI, '--host', lab.host, 'run', '--rm', '--network', 'n1', '--', 'sh', '-c', 'trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 0.05; done'], { reject: false });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    child.kill('SIGTERM');
    const r = await child;
    expect(r.exitCode).toBe(42);
    expect(String(r.stdout)).toContain('got-term');
  });

  it('hosts, hostname and resolv.conf inside the sandbox are Docker\'s', async () => {
    const r = await lab.ok('run', '--rm', '--hostname', 'web1', '--network', 'n1', '--ip', '10.241.0.50', '--', 'sh', '-c', 'hostname; cat /etc/hosts; cat /etc/resolv.conf');
    const [hostname, ...rest] = r.split('\n');
    expect(hostname).toBe('web1');
    const text = rest.join('\n');
    expect(text).toContain('127.0.0.1\tlocalhost');
    expect(text).toContain('10.241.0.50\tweb1');
    // A user-defined network: the embedded resolver, with Docker's options.
    expect(text).toContain('nameserver 127.0.0.11');
    expect(text).toMatch(/^options .*ndots:0/m);
  });

  it('host mode shares the node stack and ignores -p with a warning', async () => {
    const r = await lab.cli('run', '--rm', '--network', 'host', '-p', '80:80', '--', 'ip', '-o', 'link', 'show', 'bpfnet0');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('bpfnet0');
    expect(r.stderr).toContain('Published ports are discarded when using host network mode');
  });

  it('none mode has only lo, up', async () => {
    const out = await lab.ok('run', '--rm', '--network', 'none', '--', 'ip', '-o', 'link');
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/: lo: <LOOPBACK,UP,LOWER_UP>/);
  });

  it('container mode joins the other sandbox\'s stack and refuses -p, --dns, --hostname', async () => {
    const out = await lab.ok('run', '--rm', '--network', 'container:sa', '--', 'ip', '-o', '-4', 'addr', 'show', 'eth0');
    expect(out).toContain('10.241.0.2/24');
    for (const [flag, msg] of [
      [['-p', '80'], 'port publishing'],
      [['--dns', '1.1.1.1'], 'dns'],
      [['--hostname', 'x'], 'hostname'],
    ] as const) {
      const r = await lab.cli('sandbox', 'create', '--network', 'container:sa', ...flag);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`conflicting options: ${msg}`);
    }
  });

  it('connect and disconnect: one sandbox on several networks', async () => {
    await lab.ok('network', 'connect', '--ip', '10.242.0.77', 'n2', 'sb');
    const [b] = await lab.json<SbInspect[]>('sandbox', 'inspect', 'sb');
    expect(Object.keys(b!.NetworkSettings.Networks).sort()).toEqual(['n1', 'n2']);
    const links = await inNetns(b!.NetworkSettings.SandboxKey, 'ip', '-o', '-4', 'addr');
    expect(links).toMatch(/eth1\s+inet 10\.242\.0\.77\/24/);
    expect(await ping(lab, 'sb', await sbIp(lab, 'sc', 'n2'))).toBe(true);
    // Default route stays on the first network.
    expect(await inNetns(b!.NetworkSettings.SandboxKey, 'ip', 'route', 'show', 'default')).toContain('via 10.241.0.1 dev eth0');
    await lab.ok('network', 'disconnect', 'n2', 'sb');
    expect(await inNetns(b!.NetworkSettings.SandboxKey, 'ip', '-o', 'link')).not.toContain('eth1');
  });

  it('routed driver: /32 routes, gateway answered by proxy ARP, forwarding by the node', async () => {
    await lab.ok('network', 'create', '-d', 'routed', '--subnet', '10.243.0.0/24', 'r1');
    await lab.ok('sandbox', 'create', '--name', 'ra', '--network', 'r1');
    await lab.ok('sandbox', 'create', '--name', 'rb', '--network', 'r1');
    const [ra] = await lab.json<SbInspect[]>('sandbox', 'inspect', 'ra');
    const inside = await inNetns(ra!.NetworkSettings.SandboxKey, 'ip', '-o', '-4', 'addr', 'show', 'eth0');
    expect(inside).toContain('10.243.0.2/32');
    expect(await inNetns(ra!.NetworkSettings.SandboxKey, 'ip', 'route', 'show', 'default')).toContain('via 10.243.0.1 dev eth0');
    const nodeRoutes = (await lab.node.ip('route', 'show', 'proto', '185')).stdout;
    expect(nodeRoutes).toMatch(/10\.243\.0\.2 dev bpv[0-9a-f]+ scope link/);
    expect(await ping(lab, 'ra', await sbIp(lab, 'rb', 'r1'))).toBe(true);
    // Routed networks are isolated from bridge networks too.
    expect(await ping(lab, 'ra', '10.241.0.2')).toBe(false);
  });

  it('run -p publishes through the eBPF dataplane: external client reaches it, source IP kept', async () => {
    const server = execa(process.execPath, [CLI, '--host', lab.host, 'run', '--rm', '--name', 'web', '--network', 'n1', '-p', '8080:80', '-p', '5353:53/udp', '--', process.execPath, ECHO_SCRIPT, '80', 'web'], { reject: false });
    let udp: ReturnType<typeof execa> | undefined;
    const ready = (p: ReturnType<typeof execa>, what: string) =>
      new Promise<void>((resolve, reject) => {
        p.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        void p.then((r) => reject(new Error(`${what} exited: ${String(r.stderr)}`)));
      });
    try {
      await ready(server, 'tcp server');
      udp = execa(process.execPath, [CLI, '--host', lab.host, 'exec', 'web', '--', process.execPath, ECHO_SCRIPT, '53', 'web'], { reject: false });
      await ready(udp, 'udp server');
      const [web] = await lab.json<SbInspect[]>('sandbox', 'inspect', 'web');
      expect(web!.NetworkSettings.Ports['80/tcp']).toEqual([{ HostIp: '0.0.0.0', HostPort: '8080' }]);
      const tcp = await lab.client.exec(process.execPath, [PROBE_SCRIPT, 'tcp', UPLINK.nodeIp, '8080', 'hi']);
      expect(tcp.stdout).toContain(`web tcp/80 saw ${UPLINK.clientIp}:`);
      const u = await lab.client.exec(process.execPath, [PROBE_SCRIPT, 'udp', UPLINK.nodeIp, '5353', 'hi']);
      expect(u.stdout).toContain(`web udp/53 saw ${UPLINK.clientIp}:`);
      const ls = await lab.ok('sandbox', 'ls');
      expect(ls).toMatch(/web\s+n1\s+0\.0\.0\.0:8080->80\/tcp, 0\.0\.0\.0:5353->53\/udp/);
      // Same host port again: refused at publish time, naming it.
      const dup = await lab.cli('sandbox', 'create', '--network', 'n1', '-p', '8080:81');
      expect(dup.code).not.toBe(0);
      expect(dup.stderr).toMatch(/8080/);
    } finally {
      udp?.kill('SIGTERM'); // forwarded to the server (SIGKILL would orphan it, holding the pipe)
      server.kill('SIGTERM');
      await Promise.allSettled([server, ...(udp ? [udp] : [])]);
    }
    // --rm: the sandbox and its ports are gone; the port is free again.
    expect((await lab.ok('sandbox', 'ls'))).not.toContain('web');
    await lab.ok('sandbox', 'create', '--name', 'web2', '--network', 'n1', '-p', '8080:81');
    await lab.ok('sandbox', 'rm', 'web2');
  });

  it('network rm is refused while endpoints exist, naming them', async () => {
    const r = await lab.cli('network', 'rm', 'n2');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/has active endpoints: sc \(eth0\)/);
    const pre = await lab.cli('network', 'rm', 'bridge');
    expect(pre.stderr).toContain('bridge is a pre-defined network and cannot be removed');
  });

  it('bad input: clear errors, non-zero exit, nothing changed', async () => {
    const before = await lab.ok('network', 'ls');
    const sbBefore = await lab.ok('sandbox', 'ls', '-q');
    const cases: [string[], RegExp][] = [
      [['network', 'create', '--subnet', '10.300.0.0/24', 'x1'], /10\.300\.0\.0\/24/],
      [['network', 'create', '--subnet', '10.241.0.0/25', 'x2'], /overlap/i],
      [['network', 'create', '--subnet', '10.250.0.0/24', '--gateway', '10.251.0.1', 'x3'], /outside subnet/],
      [['network', 'create', '-o', 'com.docker.network.bridge.name=averyveryverylongname', 'x4'], /15/],
      [['network', 'create', 'n1'], /already exists/],
      [['network', 'create', '-d', 'overlay', 'x5'], /unknown driver/],
      [['sandbox', 'create', '--network', 'nope'], /no such network/i],
      [['sandbox', 'create', '--name', 'sa', '--network', 'n1'], /already in use/],
      [['sandbox', 'create', '--network', 'n1', '--ip', '10.241.0.2'], /already in use|taken/i],
      [['sandbox', 'create', '--network', 'n1', '--ip', '10.99.0.2'], /outside/],
      [['sandbox', 'create', '--network', 'n1', '-p', '80:80:80:80'], /-p|publish|port/i],
      [['sandbox', 'create', '--network', 'n1', '-p', '1-2:3-5'], /range/i],
      [['sandbox', 'rm', 'nope'], /no such sandbox/i],
    ];
    for (const [args, msg] of cases) {
      const r = await lab.cli(...args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(msg);
    }
    expect(await lab.ok('network', 'ls')).toBe(before);
    expect(await lab.ok('sandbox', 'ls', '-q')).toBe(sbBefore);
  });

  it('a restarted agent keeps everything, and traffic keeps flowing across the restart', async () => {
    const nets = await lab.ok('network', 'ls');
    const sbs = await lab.ok('sandbox', 'ls');
    const b = await sbIp(lab, 'sb', 'n1');
    const aNetns = (await lab.json<SbInspect[]>('sandbox', 'inspect', 'sa'))[0]!.NetworkSettings.SandboxKey;
    await lab.stop();
    // The dataplane and namespaces keep working with no agent at all.
    expect(await inNetns(aNetns, 'ping', '-c1', '-W1', b)).toContain('1 received');
    await lab.start();
    expect(await lab.ok('network', 'ls')).toBe(nets);
    expect(await lab.ok('sandbox', 'ls')).toBe(sbs);
    expect(await ping(lab, 'sa', b)).toBe(true);
    expect(await ping(lab, 'sa', await sbIp(lab, 'sc', 'n2'))).toBe(false);
  });
});

describe('agent: crash consistency', () => {
  let lab: AgentLab;
  beforeAll(async () => {
    lab = await AgentLab.create({ defaultSubnet: '10.244.0.0/24' });
    await lab.start();
    await lab.ok('network', 'create', '--subnet', '10.245.0.0/24', 'n1');
    await lab.ok('sandbox', 'create', '--name', 'peer', '--network', 'n1');
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  for (const point of ['sandbox-recorded', 'endpoint-veth', 'sandbox-plumbed']) {
    it(`kill -9 at ${point} during a create: consistent and working after restart`, async () => {
      await lab.stop();
      await lab.start({ env: { BPFNET_CRASH_AT: point } });
      const name = `k-${point}`;
      const r = await lab.cli('sandbox', 'create', '--name', name, '--network', 'n1');
      expect(r.code).not.toBe(0);
      expect(await lab.exited()).toBe('SIGKILL');
      lab.agent = undefined;
      await lab.start();
      // The record landed before the crash, so the sandbox exists, whole.
      const ip = await sbIp(lab, name, 'n1');
      expect(await ping(lab, name, await sbIp(lab, 'peer', 'n1'))).toBe(true);
      expect(await ping(lab, 'peer', ip)).toBe(true);
      // Exactly one veth per endpoint: nothing half-made left over.
      const links = (await lab.node.ip('-o', 'link', 'show')).stdout.split('\n').filter((l) => /: bpv/.test(l));
      const eps = (await lab.json<{ name: string }[]>('sandbox', 'ls', '--format', 'json')).length;
      expect(links).toHaveLength(eps);
      await lab.ok('sandbox', 'rm', name);
    });
  }

  it('reconcile removes bpfnet-marked leftovers and leaves foreign devices alone', async () => {
    await lab.stop();
    await lab.node.ip('link', 'add', 'bpvdeadbeef', 'type', 'veth', 'peer', 'name', 'bpvdeadbee2');
    await lab.node.ip('link', 'set', 'bpvdeadbeef', 'alias', 'bpfnet:ep:deadbeefdead');
    await lab.node.ip('link', 'add', 'foreign0', 'type', 'bridge');
    await lab.start();
    const names = (await lab.node.ip('-o', 'link', 'show')).stdout;
    expect(names).not.toContain('bpvdeadbeef');
    expect(names).toContain('foreign0');
  });
});

describe('agent: embedded DNS (on by default)', () => {
  /** A sandbox's own DNS server on 0.0.0.0:53, UDP and TCP: every query gets A 203.0.113.53. */
  const OWN_DNS_SERVER = `
  const dgram = require('dgram'), net = require('net');
  function answer(q) {
    let o = 12; while (q[o]) o += q[o] + 1; o += 5;
    const h = Buffer.from(q.subarray(0, o)); h.writeUInt16BE(0x8180, 2); h.writeUInt16BE(1, 6); h.writeUInt32BE(0, 8);
    return Buffer.concat([h, Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 203, 0, 113, 53])]);
  }
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(answer(m), r.port, r.address));
  u.bind(53, '0.0.0.0', () => {
    net.createServer((c) => {
      let b = Buffer.alloc(0);
      c.on('data', (d) => { b = Buffer.concat([b, d]); while (b.length >= 2 && b.length >= 2 + b.readUInt16BE(0)) { const a = answer(b.subarray(2, 2 + b.readUInt16BE(0))); b = b.subarray(2 + b.readUInt16BE(0)); const l = Buffer.alloc(2); l.writeUInt16BE(a.length); c.write(Buffer.concat([l, a])); } });
      c.on('error', () => {});
    }).listen(53, '0.0.0.0', () => console.log('ready'));
  });
`;

  let lab: AgentLab;
  /** What listens on 127.0.0.11 inside a sandbox (ss): "udp:PORT", "tcp:PORT". */
  const resolverPorts = async (name: string): Promise<string[]> => {
    const [d] = await lab.json<SbInspect[]>('sandbox', 'inspect', name);
    const key = d!.NetworkSettings.SandboxKey;
    const udp = await inNetns(key, 'ss', '-Hlnu');
    const tcp = await inNetns(key, 'ss', '-Hlnt');
    return [...[...udp.matchAll(/127\.0\.0\.11:(\d+)/g)].map((m) => `udp:${m[1]}`), ...[...tcp.matchAll(/127\.0\.0\.11:(\d+)/g)].map((m) => `tcp:${m[1]}`)];
  };
  const dnsEntries = async (): Promise<number> => {
    const r = await execa('bpftool', ['-j', 'map', 'dump', 'pinned', `${lab.bpffsRoot}/maps/bpfnet_dns`]);
    return (JSON.parse(String(r.stdout)) as unknown[]).length;
  };

  beforeAll(async () => {
    lab = await AgentLab.create({ defaultSubnet: '10.246.0.0/24' });
    await lab.start();
    await lab.ok('network', 'create', '--subnet', '10.241.0.0/24', 'n1');
    await lab.ok('network', 'create', '--subnet', '10.242.0.0/24', 'n2');
    for (const [name, net] of [['sa', 'n1'], ['sb', 'n1'], ['sc', 'n2']] as const) await lab.ok('sandbox', 'create', '--name', name, '--network', net);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('names on shared networks only, aliases, gone when removed', async () => {
    const getent = (from: string, name: string) => lab.cli('exec', from, '--', 'getent', 'hosts', name);
    expect((await getent('sa', 'sb')).stdout).toMatch(/^10\.241\.0\.3\s+sb/);
    expect((await getent('sb', 'sa.n1')).stdout).toMatch(/^10\.241\.0\.2\s/);
    // sc is on n2 only: not visible from n1 (forwarded upstream, which has nothing).
    expect((await getent('sa', 'sc')).code).not.toBe(0);
    expect((await getent('sc', 'sa')).code).not.toBe(0);
    await lab.ok('sandbox', 'create', '--name', 'al', '--network', 'n1', '--network-alias', 'db');
    expect((await getent('sa', 'db')).stdout).toMatch(/^10\.241\.0\.\d+\s+db/);
    const rc = await lab.ok('exec', 'sa', '--', 'cat', '/etc/resolv.conf');
    expect(rc).toMatch(/^nameserver 127\.0\.0\.11$/m);
    expect(rc).toMatch(/^options .*ndots:0/m);
    expect(await dnsEntries()).toBe(4);
    await lab.ok('sandbox', 'rm', 'al');
    expect((await getent('sa', 'db')).code).not.toBe(0);
    // Its redirect went with it (the map entry; the tc filter went with its netns).
    expect(await dnsEntries()).toBe(3);
  });

  it('names appear on connect and disappear on disconnect', async () => {
    const getent = (from: string, name: string) => lab.cli('exec', from, '--', 'getent', 'hosts', name);
    await lab.ok('network', 'connect', 'n2', 'sa');
    expect((await getent('sc', 'sa')).stdout).toMatch(/^10\.242\.0\.\d+\s+sa/);
    expect((await getent('sa', 'sc')).stdout).toMatch(/^10\.242\.0\.2\s+sc/);
    await lab.ok('network', 'disconnect', 'n2', 'sa');
    expect((await getent('sc', 'sa')).code).not.toBe(0);
    expect((await getent('sa', 'sc')).code).not.toBe(0);
    expect((await getent('sa', 'sb')).stdout).toMatch(/^10\.241\.0\.3\s+sb/);
  });

  it('port 53 stays the sandbox\'s: a server on 0.0.0.0:53 (UDP and TCP) runs, and names resolve through 127.0.0.11:53 (UDP and TCP)', async (ctx) => {
    if ((await execa('dig', ['-v'], { reject: false })).exitCode !== 0) ctx.skip();
    const ports = await resolverPorts('sa');
    expect(ports).toHaveLength(2);
    expect(ports.some((p) => p.endsWith(':53'))).toBe(false);
    const [d] = await lab.json<SbInspect[]>('sandbox', 'inspect', 'sa');
    // The sandbox's own resolver: answers every A query with 203.0.113.53 (UDP and TCP).
    const server = execa('nsenter', [`--net=${d!.NetworkSettings.SandboxKey}`, '--', process.execPath, '-e', OWN_DNS_SERVER], { reject: false });
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
        void server.then((r) => reject(new Error(`own server exited: ${String(r.stderr)}`)));
      });
      const dig = async (...args: string[]) => (await lab.ok('exec', 'sa', '--', 'dig', '+short', '+tries=1', '+time=2', ...args)).trim();
      expect(await dig('@127.0.0.1', 'anything.test')).toBe('203.0.113.53');
      expect(await dig('@127.0.0.1', '+tcp', 'anything.test')).toBe('203.0.113.53');
      expect(await dig('@127.0.0.11', 'sb')).toBe('10.241.0.3');
      expect(await dig('@127.0.0.11', '+tcp', 'sb')).toBe('10.241.0.3');
      expect((await lab.ok('exec', 'sa', '--', 'getent', 'hosts', 'sb'))).toMatch(/^10\.241\.0\.3\s+sb/);
    } finally {
      server.kill('SIGKILL');
      await server;
    }
  });

  it('names survive an agent restart (resolver re-attached by reconcile, on the same port)', async () => {
    const before = await resolverPorts('sa');
    await lab.stop();
    // Stopped: the redirect stays in place (53 leads to the closed port, not to 0.0.0.0:53 of the sandbox).
    expect(await dnsEntries()).toBe(3);
    await lab.start();
    expect((await lab.cli('exec', 'sa', '--', 'getent', 'hosts', 'sb')).stdout).toMatch(/^10\.241\.0\.3\s+sb/);
    expect(await resolverPorts('sa')).toEqual(before);
    expect(await dnsEntries()).toBe(3);
  });

  it('--no-embedded-dns: new sandboxes on user-defined networks get the node\'s resolv.conf', async () => {
    await lab.stop();
    await lab.start({ args: ['--no-embedded-dns'] });
    const r = await lab.ok('run', '--rm', '--network', 'n1', '--', 'cat', '/etc/resolv.conf');
    expect(r).not.toContain('127.0.0.11');
    expect(r).toContain(`nameserver ${UPLINK.clientIp}`);
  });
});
