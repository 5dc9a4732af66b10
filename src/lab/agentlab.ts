/**
 * A real agent in a throw-away node namespace, for tests and benchmarks:
 *
 *   client ns  eth0 198.18.0.2 ---- up0 198.18.0.1  node ns (agent runs here)
 *
 * Every path (state, run dir, socket, bpffs root) is unique, so several
 * agent labs run side by side. stop() leaves kernel state (as a real stop
 * does); destroy() removes everything: sandbox namespaces (bind mounts under
 * the run dir), pins, dirs, and the namespaces (which takes the bridges and
 * veths with them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Netns } from './netns.js';
import { UPLINK } from './topology.js';
import { PACKAGE_ROOT } from '../util/paths.js';
import { removeRoot } from '../loader/load.js';
import { removeNetnsDir } from '../netlink/index.js';

export const CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface AgentLabOptions {
  /** Extra agent flags. */
  args?: string[];
  /** Environment for the agent (e.g. BPFNET_CRASH_AT). */
  env?: Record<string, string>;
  /** Default network subnet (keeps tests off the Docker pools). */
  defaultSubnet?: string;
}

export class AgentLab {
  agent: ChildProcess | undefined;
  agentLog = '';

  private constructor(
    readonly id: string,
    readonly node: Netns,
    readonly client: Netns,
    readonly dir: string,
    readonly bpffsRoot: string,
    readonly opts: AgentLabOptions,
  ) {}

  get stateDir(): string {
    return join(this.dir, 'state');
  }
  get runDir(): string {
    return join(this.dir, 'run');
  }
  get socket(): string {
    return join(this.dir, 'run', 'bpfnet.sock');
  }
  get host(): string {
    return `unix://${this.socket}`;
  }

  static async create(opts: AgentLabOptions = {}): Promise<AgentLab> {
    const id = randomBytes(3).toString('hex');
    const node = await Netns.create(`ba-${id}-node`);
    let client: Netns | undefined;
    try {
      client = await Netns.create(`ba-${id}-cli`);
      await node.ip('link', 'add', UPLINK.dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client.name);
      await node.ip('addr', 'add', `${UPLINK.nodeIp}/${UPLINK.prefix}`, 'dev', UPLINK.dev);
      await node.ip('link', 'set', UPLINK.dev, 'up');
      await client.ip('addr', 'add', `${UPLINK.clientIp}/${UPLINK.prefix}`, 'dev', 'eth0');
      await client.ip('link', 'set', 'eth0', 'up');
      await client.ip('route', 'add', 'default', 'via', UPLINK.nodeIp);
    } catch (e) {
      await client?.destroy();
      await node.destroy();
      throw e;
    }
    const dir = join(tmpdir(), `bpfnet-lab-${id}`);
    mkdirSync(dir, { recursive: true });
    // The node's resolver is the client namespace (nothing listens there unless
    // a test starts a DNS server): tests never depend on the machine's DNS.
    writeFileSync(join(dir, 'resolv.conf'), `nameserver ${UPLINK.clientIp}\noptions timeout:1 attempts:1\n`);
    return new AgentLab(id, node, client, dir, `/sys/fs/bpf/bpfnet-lab-${id}`, opts);
  }

  /** Starts the agent and waits until its socket answers. */
  async start(extra: { env?: Record<string, string>; args?: string[] } = {}): Promise<void> {
    const args = [
      `--net=${this.node.path}`, '--', process.execPath, CLI, '--host', this.host, 'agent',
      '--state-dir', this.stateDir, '--run-dir', this.runDir, '--bpffs-root', this.bpffsRoot,
      '--uplink', UPLINK.dev, '--default-bridge', `bpfnet0`, '--log-level', 'debug', '--resolv-conf', join(this.dir, 'resolv.conf'),
      ...(this.opts.defaultSubnet ? ['--default-subnet', this.opts.defaultSubnet] : []),
      ...(this.opts.args ?? []), ...(extra.args ?? []),
    ];
    const child = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.opts.env, ...extra.env } });
    this.agent = child;
    child.stdout!.on('data', (d: Buffer) => (this.agentLog += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.agentLog += d.toString()));
    const from = this.agentLog.length;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`agent exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${this.agentLog}`);
      }
      if (this.agentLog.slice(from).includes('"agent ready"')) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`agent not ready after 20 s:\n${this.agentLog}`);
  }

  /** Resolves when the agent process has exited (e.g. after a crash point). */
  exited(): Promise<number | string | null> {
    const a = this.agent;
    if (!a) return Promise.resolve(null);
    if (a.exitCode !== null || a.signalCode !== null) return Promise.resolve(a.exitCode ?? a.signalCode);
    return new Promise((r) => a.once('exit', (code, sig) => r(code ?? sig)));
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const a = this.agent;
    if (!a) return;
    const done = this.exited();
    a.kill(signal);
    await done;
    this.agent = undefined;
  }

  /** `bpfnet --host <lab> ...args`, never throwing: exit code and output. */
  async cli(...args: string[]): Promise<CliResult> {
    const r = await execa(process.execPath, [CLI, '--host', this.host, ...args], { reject: false, timeout: 60_000 });
    return { code: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /** Like cli() but throws with the output when the command fails. */
  async ok(...args: string[]): Promise<string> {
    const r = await this.cli(...args);
    if (r.code !== 0) throw new Error(`bpfnet ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async json<T = unknown>(...args: string[]): Promise<T> {
    return JSON.parse(await this.ok(...args)) as T;
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL').catch(() => undefined);
    removeNetnsDir(join(this.runDir, 'netns'));
    await execa('umount', [join(this.runDir, 'hostns')], { reject: false });
    await this.client.destroy();
    await this.node.destroy();
    await removeRoot(this.bpffsRoot).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
