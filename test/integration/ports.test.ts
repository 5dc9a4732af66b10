/**
 * Operating it: per published port counters (`ports ls`, `port`, the
 * SandboxInspect API) and the dataplane's named counters (`stats drops`,
 * `--watch`, `info`), with a real agent, real sandboxes and real packets from
 * the lab's client namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { AgentLab, CLI } from '../../src/lab/agentlab.js';
import { ECHO_SCRIPT, PROBE_SCRIPT } from '../../src/lab/lab.js';
import { UPLINK } from '../../src/lab/topology.js';
import { Client } from '../../src/api/client.js';
import type { PortRow } from '../../src/cli/ports.js';

type Proc = ResultPromise<{ reject: false }>;

/** Resolves when the process prints "ready" (the echo server), rejects when it exits first. */
function ready(p: Proc, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    void p.then((r) => reject(new Error(`${what} exited: ${String(r.stderr)}`)));
  });
}

describe('ports and counters: ports ls, port, stats drops, inspect, info', () => {
  let lab: AgentLab;
  const servers: Proc[] = [];

  const probe = async (proto: 'tcp' | 'udp', port: number, msg: string): Promise<string> =>
    String((await lab.client.exec(process.execPath, [PROBE_SCRIPT, proto, UPLINK.nodeIp, String(port), msg], { timeout: 10_000 })).stdout);
  const row = (rows: PortRow[], hostPort: number, proto = 'tcp'): PortRow => {
    const r = rows.find((x) => x.hostPort === hostPort && x.proto === proto);
    if (!r) throw new Error(`no row for ${hostPort}/${proto} in ${JSON.stringify(rows)}`);
    return r;
  };

  beforeAll(async () => {
    lab = await AgentLab.create({ defaultSubnet: '10.244.0.0/24' });
    await lab.start();
    await lab.ok('network', 'create', '--subnet', '10.245.0.0/24', 'pnet');
    // A server published with run -p (tcp) plus a udp one exec'd into the same sandbox.
    const web = execa(process.execPath, [CLI, '--host', lab.host, 'run', '--rm', '--name', 'pweb', '--network', 'pnet', '-p', '8080:80', '-p', '5353:53/udp', '--', process.execPath, ECHO_SCRIPT, '80', 'pweb'], { reject: false });
    servers.push(web);
    await ready(web, 'tcp server');
    const udp = execa(process.execPath, [CLI, '--host', lab.host, 'exec', 'pweb', '--', process.execPath, ECHO_SCRIPT, '53', 'pweb'], { reject: false });
    servers.push(udp);
    await ready(udp, 'udp server');
    // A sandbox created with -p that never sees traffic.
    await lab.ok('sandbox', 'create', '--name', 'pidle', '--network', 'pnet', '-p', '127.0.0.1:9090:90');
  });

  afterAll(async () => {
    // SIGTERM is forwarded to the servers (SIGKILL would orphan them, holding the pipes).
    for (const s of servers) s.kill('SIGTERM');
    await Promise.allSettled(servers);
    await lab?.destroy();
  });

  it('ports ls lists every published port with its backend, network and counters', async () => {
    const rows = await lab.json<PortRow[]>('ports', 'ls', '--format', 'json');
    expect(rows.map((r) => `${r.sandbox} ${r.hostIp}:${r.hostPort}->${r.containerPort}/${r.proto}`).sort()).toEqual([
      'pidle 127.0.0.1:9090->90/tcp',
      'pweb 0.0.0.0:5353->53/udp',
      'pweb 0.0.0.0:8080->80/tcp',
    ]);
    const web = row(rows, 8080);
    expect(web).toMatchObject({ sandbox: 'pweb', network: 'pnet', proto: 'tcp', containerPort: 80, active: true });
    expect(web.containerIp).toMatch(/^10\.245\.0\.\d+$/);
    // The eBPF dataplane counts: numbers, not null.
    expect(typeof web.packets).toBe('number');
    expect(row(rows, 9090)).toMatchObject({ sandbox: 'pidle', hostIp: '127.0.0.1', packets: 0, bytes: 0 });

    const table = (await lab.ok('ports', 'ls')).split('\n');
    expect(table[0]).toMatch(/^SANDBOX\s+NETWORK\s+PORT\s+BACKEND\s+PACKETS\s+BYTES$/);
    expect(table.find((l) => l.includes('8080'))).toMatch(new RegExp(`^pweb\\s+pnet\\s+0\\.0\\.0\\.0:8080->80/tcp\\s+${web.containerIp.replace(/\./g, '\\.')}:80\\s+\\d+\\s+\\S+B$`));

    const only = await lab.json<PortRow[]>('ports', 'ls', '--sandbox', 'pidle', '--format', 'json');
    expect(only.map((r) => r.hostPort)).toEqual([9090]);
  });

  it('traffic from the client to the published ports increases their packets and bytes, and only theirs', async () => {
    const before = await lab.json<PortRow[]>('ports', 'ls', '--format', 'json');
    for (let i = 0; i < 3; i++) expect(await probe('tcp', 8080, `t${i}`)).toContain(`pweb tcp/80 saw ${UPLINK.clientIp}:`);
    expect(await probe('udp', 5353, 'u0')).toContain(`pweb udp/53 saw ${UPLINK.clientIp}:`);
    const after = await lab.json<PortRow[]>('ports', 'ls', '--format', 'json');

    const [t0, t1] = [row(before, 8080), row(after, 8080)];
    // Three connections: at least SYN, data and ACKs/FIN of each toward the container.
    expect(t1.packets! - t0.packets!).toBeGreaterThanOrEqual(3 * 3);
    expect(t1.bytes! - t0.bytes!).toBeGreaterThanOrEqual(3 * 3 * 40);
    const [u0, u1] = [row(before, 5353, 'udp'), row(after, 5353, 'udp')];
    expect(u1.packets! - u0.packets!).toBeGreaterThanOrEqual(1);
    expect(u1.bytes! - u0.bytes!).toBeGreaterThanOrEqual(28 + 'u0'.length);
    expect(row(after, 9090)).toMatchObject({ packets: 0, bytes: 0 });
  });

  it("port prints Docker's lines, with counters on request", async () => {
    // Sorted by container port, like Docker's (execa strips the last newline).
    expect(await lab.ok('port', 'pweb')).toBe('53/udp -> 0.0.0.0:5353\n80/tcp -> 0.0.0.0:8080');
    expect(await lab.ok('port', 'pweb', '80')).toBe('0.0.0.0:8080');
    expect(await lab.ok('port', 'pweb', '53/udp')).toBe('0.0.0.0:5353');
    const none = await lab.cli('port', 'pweb', '81');
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("No public port '81/tcp' published for pweb");

    const before = await lab.json<PortRow[]>('port', 'pweb', '80', '--format', 'json');
    expect(before).toHaveLength(1);
    await probe('tcp', 8080, 'again');
    const after = await lab.json<PortRow[]>('port', 'pweb', '80', '--format', 'json');
    expect(after[0]!.packets!).toBeGreaterThan(before[0]!.packets!);
    expect(after[0]!.bytes!).toBeGreaterThan(before[0]!.bytes!);
    const text = await lab.ok('port', 'pweb', '--counters');
    expect(text).toMatch(new RegExp(`^53/udp -> 0\\.0\\.0\\.0:5353  \\d+ packets, \\S+B\n80/tcp -> 0\\.0\\.0\\.0:8080  ${after[0]!.packets} packets, \\S+B$`));
  });

  it('the SandboxInspect API carries each port with its counters', async () => {
    const client = await Client.connect(lab.host);
    try {
      const d = (await client.call('SandboxInspect', { ref: 'pweb' })).value;
      const p = d.published.find((x) => x.hostPort === 8080)!;
      expect(p).toMatchObject({ hostIp: '0.0.0.0', proto: 'tcp', containerPort: 80, networkName: 'pnet', active: true, counted: true });
      expect(p.packets).toBeGreaterThan(0);
      expect(p.bytes).toBeGreaterThan(0);
    } finally {
      client.close();
    }
  });

  it('stats drops shows the named counters: DNAT counted, nothing dropped for this traffic', async () => {
    const s = await lab.json<{ dataplane: string; counters: Record<string, { packets: number; bytes: number }> }>('stats', 'drops', '--format', 'json');
    expect(s.dataplane).toBe('ebpf');
    expect(s.counters['dnat']!.packets).toBeGreaterThan(0);
    expect(s.counters['dnat']!.bytes).toBeGreaterThan(0);
    expect(s.counters['rnat']!.packets).toBeGreaterThan(0);
    expect(s.counters['rewrite_fail']).toEqual({ packets: 0, bytes: 0 });
    expect(Object.keys(s.counters)).toContain('drop_spoof');

    const table = (await lab.ok('stats', 'drops')).split('\n');
    expect(table[0]).toMatch(/^COUNTER\s+PACKETS\s+BYTES\s+MEANING$/);
    expect(table[1]).toMatch(new RegExp(`^dnat\\s+[1-9]\\d*\\s+\\S+B\\s+published-port DNAT applied$`));

    const info = await lab.json<{ counters: { name: string; packets: number }[] }>('info', '--format', 'json');
    expect(info.counters.find((c) => c.name === 'dnat')!.packets).toBeGreaterThan(0);
  });

  it('stats drops --watch prints a line per changed counter while traffic flows, and exits 0 on SIGINT', async () => {
    const w = execa(process.execPath, [CLI, '--host', lab.host, 'stats', 'drops', '--watch', '--interval', '0.2', '--format', 'json'], { reject: false });
    try {
      let seen = '';
      w.stdout!.on('data', (d: Buffer) => (seen += d.toString()));
      // Traffic until the watcher reports a DNAT change (bounded: 30 probes).
      for (let i = 0; i < 30 && !/"name":"dnat"/.test(seen); i++) {
        await probe('tcp', 8080, `w${i}`);
        await new Promise((r) => setTimeout(r, 300));
      }
      w.kill('SIGINT');
      const r = await w;
      expect(r.exitCode).toBe(0);
      const lines = String(r.stdout).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { time: string; name: string; packets: number; bytes: number; totalPackets: number });
      expect(lines.length).toBeGreaterThan(0);
      const dnat = lines.find((l) => l.name === 'dnat')!;
      expect(dnat.packets).toBeGreaterThan(0);
      expect(dnat.totalPackets).toBeGreaterThanOrEqual(dnat.packets);
      expect(Number.isNaN(Date.parse(dnat.time))).toBe(false);
    } finally {
      w.kill('SIGKILL');
      await w;
    }
  });

  it('table --watch: a header, then aligned lines; bad input is refused before anything runs', async () => {
    const w = execa(process.execPath, [CLI, '--host', lab.host, 'stats', 'drops', '-w', '--interval', '0.2'], { reject: false });
    try {
      let seen = '';
      w.stdout!.on('data', (d: Buffer) => (seen += d.toString()));
      for (let i = 0; i < 30 && !/\ndnat|\n\S+\s+dnat\s/.test(seen); i++) {
        await probe('udp', 5353, `w${i}`);
        await new Promise((r) => setTimeout(r, 300));
      }
      w.kill('SIGINT');
      const r = await w;
      expect(r.exitCode).toBe(0);
      const out = String(r.stdout).split('\n');
      expect(out[0]).toMatch(/^TIME\s+COUNTER\s+PACKETS\s+BYTES\s+TOTAL PACKETS$/);
      expect(out.some((l) => /^\d\d:\d\d:\d\d\s+dnat\s+\+\d+\s+\+\S+B\s+\d+$/.test(l))).toBe(true);
    } finally {
      w.kill('SIGKILL');
      await w;
    }
    const bad = await lab.cli('stats', 'drops', '--watch', '--interval', '0');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/invalid --interval "0"/);
  });

  it('unknown sandboxes are errors; a removed sandbox takes its ports out of the list', async () => {
    const r = await lab.cli('ports', 'ls', '--sandbox', 'nosuch');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/nosuch.*\[E_NOT_FOUND\]/);
    const p = await lab.cli('port', 'nosuch');
    expect(p.code).not.toBe(0);
    expect(p.stderr).toContain('[E_NOT_FOUND]');

    await lab.ok('sandbox', 'rm', 'pidle');
    const rows = await lab.json<PortRow[]>('ports', 'ls', '--format', 'json');
    expect(rows.map((x) => x.sandbox)).not.toContain('pidle');
  });
});

describe('map sizes: a configuration that does not fit is refused before anything changes', () => {
  let lab: AgentLab;

  beforeAll(async () => {
    lab = await AgentLab.create({ defaultSubnet: '10.246.0.0/24', args: ['--map-size', 'bpfnet_ports=4'] });
    await lab.start();
    await lab.ok('network', 'create', '--subnet', '10.247.0.0/24', 'small');
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('E_MAP_FULL names the map and the flag; the sandbox and its ports are not recorded', async () => {
    await lab.ok('sandbox', 'create', '--name', 'fits', '--network', 'small', '-p', '8001-8003:8001-8003');
    const r = await lab.cli('sandbox', 'create', '--name', 'toomany', '--network', 'small', '-p', '9001-9002:9001-9002');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('E_MAP_FULL');
    expect(r.stderr).toContain('--map-size bpfnet_ports=');
    expect((await lab.cli('sandbox', 'inspect', 'toomany')).code).not.toBe(0);
    const rows = await lab.json<PortRow[]>('ports', 'ls', '--format', 'json');
    expect(rows.map((x) => x.hostPort).sort()).toEqual([8001, 8002, 8003]);
    // One more still fits.
    await lab.ok('sandbox', 'create', '--name', 'last', '--network', 'small', '-p', '9001:80');
  });

  it('a restart with a bigger --map-size migrates the pinned map and keeps every port', async () => {
    await lab.stop();
    await lab.start({ args: ['--map-size', 'bpfnet_ports=64'] });
    expect(lab.agentLog).toContain('BPF map resized; entries kept');
    await lab.ok('sandbox', 'create', '--name', 'more', '--network', 'small', '-p', '9101-9110:9101-9110');
    const rows = await lab.json<PortRow[]>('ports', 'ls', '--format', 'json');
    expect(rows.filter((x) => x.active).length).toBe(14);
  });
});
