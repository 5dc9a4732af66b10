/**
 * The behaviour suite's world: one real agent (in a given dataplane mode) in
 * its own node namespace, an external client namespace that also plays "the
 * internet", and sandboxes on four networks:
 *
 *   client ns  eth0 198.18.0.2, lo 203.0.113.1 ("internet")
 *      |
 *   node ns    up0 198.18.0.1 + 198.18.0.3 (second node IP), default via the client
 *      |-- n1 10.71.0.0/24        srv (publishes), a2
 *      |-- n2 10.72.0.0/24        b1
 *      |-- in 10.73.0.0/24 --internal        i1, i2
 *      `-- nc 10.74.0.0/24 enable_icc=false   c1, c2
 *
 * srv publishes 80, 81 and 82 (tcp+udp): 8080 on every address, 8081 on
 * 127.0.0.1, 8082 on 198.18.0.3 only. Every sandbox runs the echo server
 * (src/lab/echo.ts) on port 7 (and srv on 80-82), whose replies name the
 * client address it saw. Nothing outside these namespaces is touched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { AgentLab } from '../../src/lab/agentlab.js';
import { ECHO_SCRIPT, waitReady } from '../../src/lab/lab.js';
import { run } from '../../src/util/exec.js';
import type { Probe, ProbeResult } from '../../src/lab/multiprobe.js';
import { PACKAGE_ROOT } from '../../src/util/paths.js';

export const MULTIPROBE = join(PACKAGE_ROOT, 'dist', 'src', 'lab', 'multiprobe.js');
export const HOLDCLIENT = join(PACKAGE_ROOT, 'dist', 'src', 'lab', 'holdclient.js');

export const NODE_IP = '198.18.0.1';
export const NODE_IP2 = '198.18.0.3';
export const CLIENT_IP = '198.18.0.2';
export const INTERNET_IP = '203.0.113.1';
export const INTERNET_PORT = 9000;

/** A dataplane mode; ebpf-xdp is eBPF with --xdp native (published ports translated in XDP first). */
export type Mode = 'ebpf' | 'ebpf-xdp' | 'iptables' | 'nftables';

const MODE_ARGS: Record<Mode, string[]> = {
  ebpf: ['--dataplane', 'ebpf'],
  'ebpf-xdp': ['--dataplane', 'ebpf', '--xdp', 'native'],
  iptables: ['--dataplane', 'iptables'],
  nftables: ['--dataplane', 'nftables'],
};

export interface Sandbox {
  name: string;
  ip: string;
  netns: string;
}

/** A namespace something can be run in: the client, the node, or a sandbox. */
export interface Place {
  name: string;
  netns: string;
}

const NETWORKS = [
  { name: 'n1', subnet: '10.71.0.0/24', opts: [] as string[] },
  { name: 'n2', subnet: '10.72.0.0/24', opts: [] },
  { name: 'in', subnet: '10.73.0.0/24', opts: ['--internal'] },
  { name: 'nc', subnet: '10.74.0.0/24', opts: ['-o', 'com.docker.network.bridge.enable_icc=false'] },
];

const SANDBOXES: { name: string; network: string; publish?: string[]; ports: number[] }[] = [
  {
    name: 'srv',
    network: 'n1',
    publish: ['8080:80/tcp', '8080:80/udp', '127.0.0.1:8081:81/tcp', '127.0.0.1:8081:81/udp', `${NODE_IP2}:8082:82/tcp`, `${NODE_IP2}:8082:82/udp`],
    ports: [7, 80, 81, 82],
  },
  { name: 'a2', network: 'n1', ports: [7] },
  { name: 'b1', network: 'n2', ports: [7] },
  { name: 'i1', network: 'in', ports: [7] },
  { name: 'i2', network: 'in', ports: [7] },
  { name: 'c1', network: 'nc', ports: [7] },
  { name: 'c2', network: 'nc', ports: [7] },
];

export class World {
  readonly sandboxes = new Map<string, Sandbox>();
  private readonly servers: ChildProcess[] = [];

  private constructor(readonly mode: Mode, readonly lab: AgentLab) {}

  get client(): Place {
    return { name: 'client', netns: this.lab.client.path };
  }
  get node(): Place {
    return { name: 'node', netns: this.lab.node.path };
  }
  sb(name: string): Sandbox {
    const s = this.sandboxes.get(name);
    if (!s) throw new Error(`no sandbox ${name} in the world`);
    return s;
  }

  static async create(mode: Mode): Promise<World> {
    const lab = await AgentLab.create({ defaultSubnet: '10.70.0.0/24', args: [...MODE_ARGS[mode], '--embedded-dns'] });
    const w = new World(mode, lab);
    try {
      await lab.node.ip('addr', 'add', `${NODE_IP2}/24`, 'dev', 'up0');
      await lab.node.ip('route', 'add', 'default', 'via', CLIENT_IP);
      await lab.client.ip('addr', 'add', `${INTERNET_IP}/32`, 'dev', 'lo');
      // The client knows the way to container subnets (a LAN neighbour
      // trying direct access, which gateway mode nat must refuse).
      for (const n of NETWORKS) await lab.client.ip('route', 'add', n.subnet, 'via', NODE_IP);
      w.servers.push(lab.client.spawn(process.execPath, [ECHO_SCRIPT, String(INTERNET_PORT), 'internet', INTERNET_IP]));
      await waitReady(w.servers.at(-1)!, 'internet echo');
      await lab.start();
      for (const n of NETWORKS) await lab.ok('network', 'create', '--subnet', n.subnet, ...n.opts, n.name);
      for (const s of SANDBOXES) {
        const args = ['sandbox', 'create', '--name', s.name, '--network', s.network, ...(s.publish ?? []).flatMap((p) => ['-p', p])];
        await lab.ok(...args);
        const insp = (await lab.json<{ NetworkSettings: { SandboxKey: string; Networks: Record<string, { IPAddress: string }> } }[]>('sandbox', 'inspect', s.name))[0]!;
        const ip = insp.NetworkSettings.Networks[s.network]!.IPAddress;
        w.sandboxes.set(s.name, { name: s.name, ip, netns: insp.NetworkSettings.SandboxKey });
        for (const port of s.ports) {
          const child = spawn('nsenter', [`--net=${insp.NetworkSettings.SandboxKey}`, '--', process.execPath, ECHO_SCRIPT, String(port), s.name], { stdio: ['ignore', 'pipe', 'pipe'] });
          w.servers.push(child);
          await waitReady(child, `${s.name}:${port}`);
        }
      }
      return w;
    } catch (e) {
      await w.destroy();
      throw e;
    }
  }

  /** Run probes concurrently from one place. */
  async probe(from: Place, probes: Probe[]): Promise<ProbeResult[]> {
    const r = await run(process.execPath, [MULTIPROBE, JSON.stringify(probes)], { netns: from.netns, timeout: 30_000 });
    return JSON.parse(r.stdout) as ProbeResult[];
  }

  /** A command inside a place's netns; never throws: exit code and output. */
  async exec(from: Place, file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await run(file, args, { netns: from.netns, timeout: 20_000 });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const x = e as { exitCode?: number; stdout?: string; stderr?: string; message: string };
      return { code: x.exitCode ?? 1, stdout: x.stdout ?? '', stderr: x.stderr ?? x.message };
    }
  }

  /** A long-lived connection from `from` (see src/lab/holdclient.ts). */
  hold(from: Place, host: string, port: number): HeldConnection {
    return new HeldConnection(spawn('nsenter', [`--net=${from.netns}`, '--', process.execPath, HOLDCLIENT, host, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  async destroy(): Promise<void> {
    for (const s of this.servers) s.kill('SIGKILL');
    await this.lab.destroy();
  }
}

export class HeldConnection {
  private buf = '';
  private waiters: (() => void)[] = [];
  exited = false;

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.buf += d;
      for (const w of this.waiters.splice(0)) w();
    });
    child.on('exit', () => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Send a line and wait for the reply that echoes it; undefined when none comes. */
  async say(line: string, ms = 3000): Promise<string | undefined> {
    this.child.stdin!.write(`${line}\n`);
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.buf.split('\n').find((l) => l.endsWith(`: ${line}`));
      if (hit) return hit;
      if (this.exited || Date.now() > deadline) return undefined;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(0, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}
