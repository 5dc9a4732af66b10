/**
 * Network namespaces for the lab, tests and benchmarks: named netns under
 * /run/netns, entered with nsenter so bpffs pins stay visible.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { run, type RunResult } from '../util/exec.js';

export class Netns {
  readonly path: string;
  private readonly children = new Set<ChildProcess>();

  constructor(readonly name: string) {
    this.path = `/run/netns/${name}`;
  }

  static async create(name: string): Promise<Netns> {
    await run('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** `ip -n NAME ...` (ip only needs rtnetlink, so its /sys remount is harmless). */
  ip(...args: string[]): Promise<RunResult> {
    return run('ip', ['-n', this.name, ...args]);
  }

  exec(file: string, args: string[] = [], opts: { timeout?: number } = {}): Promise<RunResult> {
    return run(file, args, { netns: this.path, ...opts });
  }

  sysctl(key: string, value: string): Promise<RunResult> {
    return this.exec('sysctl', ['-qw', `${key}=${value}`]);
  }

  /** Start a long-running process inside; killed by destroy(). */
  spawn(file: string, args: string[]): ChildProcess {
    const child = spawn('nsenter', [`--net=${this.path}`, '--', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** Let started processes outlive this one (lab --keep). */
  release(): void {
    for (const c of this.children) {
      c.stdout?.destroy();
      c.stderr?.destroy();
      c.unref();
    }
    this.children.clear();
  }

  async destroy(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
    await run('ip', ['netns', 'del', this.name]).catch(() => undefined);
  }
}
