/**
 * A real Docker engine for tests and benchmarks, confined to a network
 * namespace the caller created:
 *
 *   nsenter --net=NETNS dockerd --data-root D/data --exec-root D/exec -H unix://D/docker.sock ...
 *
 * Everything it owns is under one unique temp dir D (data, exec root, pid
 * file, socket, trust key, log), its containers under a cgroup parent of its
 * own, and its iptables rules and docker0 land in that namespace only, so two
 * engines (and the machine's own, if any) run side by side. dockerd starts a
 * containerd of its own (socket under D/exec). stop() removes containers,
 * processes, mounts, the temp dir, the cgroups and shim sockets it made.
 *
 * Checked on Debian 12's docker.io 20.10 with cgroups v1 (+ cgroup2 at
 * /sys/fs/cgroup/unified): it needs no configuration beyond these flags.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, rmSync, rmdirSync, symlinkSync, copyFileSync, writeFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { BpfnetError } from '../util/errors.js';

export const DOCKERD_BIN = '/usr/sbin/dockerd';
/** Debian's 20.10 client; /usr/local/bin/docker may be a newer one that this engine refuses. */
export const DOCKER_BIN = '/usr/bin/docker';
export const BUSYBOX_BIN = '/bin/busybox';

export interface DockerdOptions {
  /** The network namespace dockerd runs in (a /run/netns/NAME or /proc/PID/ns/net path). Required: never the root one. */
  netnsPath: string;
  /** Short unique name ([a-z0-9-], ≤ 16 chars): part of the temp dir and the cgroup parent. */
  name: string;
  /** --iptables (default true). */
  iptables?: boolean;
  /** --userland-proxy (default true, as dockerd). */
  userlandProxy?: boolean;
  /** --bip for docker0 (default 10.250.<random>.1/24); ignored with bridge "none". */
  bip?: string;
  /** --bridge: "none" for no default bridge. */
  bridge?: string;
  extraArgs?: string[];
  /** How long to wait for the API to answer (default 30 s). */
  readyTimeoutMs?: number;
}

export interface DockerResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface DockerRunOptions {
  input?: string;
  /** ms, default 60 s. */
  timeout?: number;
  /** Throw on a non-zero exit (default false). */
  check?: boolean;
}

const RUN_DIRS = ['/run/docker/plugins', '/run/docker', '/run/containerd/s', '/run/containerd'];

/** Why dockerd cannot run here, or undefined when it can. */
export async function dockerdAvailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'dockerd needs root';
  for (const [bin, pkg] of [
    [DOCKERD_BIN, 'docker.io'],
    [DOCKER_BIN, 'docker.io'],
    ['/usr/bin/containerd', 'containerd (docker.io dependency)'],
    ['/usr/sbin/runc', 'runc (docker.io dependency)'],
    ['/usr/bin/nsenter', 'util-linux'],
  ] as const) {
    try {
      accessSync(bin, constants.X_OK);
    } catch {
      // runc may live elsewhere on other distributions
      if (bin === '/usr/sbin/runc' && ['/usr/bin/runc', '/usr/local/sbin/runc'].some((p) => existsSync(p))) continue;
      return `${bin} not found: install ${pkg} (scripts/install-deps.sh does)`;
    }
  }
  if (!existsSync('/sys/fs/cgroup/cgroup.controllers') && !existsSync('/sys/fs/cgroup/memory')) return 'no usable cgroup hierarchy at /sys/fs/cgroup';
  const v = await execa(DOCKERD_BIN, ['--version'], { reject: false, timeout: 10_000 });
  if (v.exitCode !== 0) return `${DOCKERD_BIN} --version failed: ${String(v.stderr || v.stdout).trim()}`;
  return undefined;
}

/** The pids of processes whose command line mentions `needle` (our unique dir). */
function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

async function waitGone(pids: number[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!pids.some(alive)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !pids.some(alive);
}

/** Mount points at or under dir, deepest first (/proc/self/mountinfo: we share dockerd's mount namespace). */
function mountsUnder(dir: string): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  const points = text
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(dir + '/'));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Is any dockerd running on the machine (ours or not)? Then shared /run dirs stay. */
function anyDockerd(): boolean {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/comm`, 'utf8').trim() === 'dockerd') return true;
    } catch {
      /* gone */
    }
  }
  return false;
}

/** GET /_ping on the engine's socket. */
function ping(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: sock, path: '/_ping', method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

export class Dockerd {
  private child: ChildProcess | undefined;
  private readonly createdRunDirs: string[];
  private readonly containerIds = new Set<string>();
  private stopped = false;

  private constructor(
    readonly name: string,
    readonly netnsPath: string,
    /** The unique temp dir everything lives under. */
    readonly dir: string,
    readonly args: string[],
    readonly cgroupParent: string,
    createdRunDirs: string[],
  ) {
    this.createdRunDirs = createdRunDirs;
  }

  get sock(): string {
    return join(this.dir, 'docker.sock');
  }
  get host(): string {
    return `unix://${this.sock}`;
  }
  get pid(): number {
    return this.child?.pid ?? 0;
  }
  get dataRoot(): string {
    return join(this.dir, 'data');
  }
  get execRoot(): string {
    return join(this.dir, 'exec');
  }
  /** containerd's socket (dockerd's managed containerd). */
  get containerdSock(): string {
    return join(this.execRoot, 'containerd', 'containerd.sock');
  }
  get logFile(): string {
    return join(this.dir, 'dockerd.log');
  }

  /** dockerd's (and its containerd's) output so far. */
  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  static async start(o: DockerdOptions): Promise<Dockerd> {
    if (!/^[a-z0-9][a-z0-9-]{0,15}$/.test(o.name)) throw new BpfnetError('E_INVALID_ARGUMENT', `dockerd name "${o.name}": use up to 16 of [a-z0-9-]`);
    if (!o.netnsPath || !existsSync(o.netnsPath)) throw new BpfnetError('E_NETNS', `dockerd needs a network namespace the caller created; ${o.netnsPath || '(none)'} does not exist`);
    // Not ours (the tests' and the machine's) and not init's when we may look at it.
    const target = statSync(o.netnsPath);
    for (const own of ['/proc/self/ns/net', '/proc/1/ns/net']) {
      let st;
      try {
        st = statSync(own);
      } catch {
        continue;
      }
      if (st.ino === target.ino && st.dev === target.dev) throw new BpfnetError('E_NETNS', `refusing to start dockerd in ${own === '/proc/1/ns/net' ? 'the root' : "the caller's own"} network namespace: create one for it`);
    }
    const why = await dockerdAvailable();
    if (why) throw new BpfnetError('E_TOOL_MISSING', why);

    // Short: containerd's and the shims' unix socket paths derive from it (108-byte limit).
    const dir = join(tmpdir(), `bnd-${o.name}-${randomBytes(3).toString('hex')}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // A config file of our own, so /etc/docker/daemon.json (if any) does not leak in;
    // 20.10 would otherwise create /etc/docker/key.json (its trust key; no flag for it).
    writeFileSync(join(dir, 'daemon.json'), JSON.stringify({ 'deprecated-key-path': join(dir, 'key.json') }) + '\n');
    const createdRunDirs = RUN_DIRS.filter((d) => !existsSync(d));
    const cgroupParent = `/${o.name}-${randomBytes(3).toString('hex')}`;
    const bridgeArgs = o.bridge === 'none' ? ['--bridge=none'] : [...(o.bridge ? [`--bridge=${o.bridge}`] : [`--bip=${o.bip ?? `10.250.${randomInt(0, 256)}.1/24`}`])];
    const args = [
      '--data-root', join(dir, 'data'),
      '--exec-root', join(dir, 'exec'),
      '--pidfile', join(dir, 'docker.pid'),
      '-H', `unix://${join(dir, 'docker.sock')}`,
      '--config-file', join(dir, 'daemon.json'),
      // Containers' cgroups under a parent of our own (default /docker is shared and left behind).
      '--cgroup-parent', cgroupParent,
      `--iptables=${o.iptables ?? true}`,
      `--userland-proxy=${o.userlandProxy ?? true}`,
      ...bridgeArgs,
      // Containers that ignore SIGTERM (busybox sh as PID 1) would hold a stop for 15 s.
      '--shutdown-timeout', '2',
      '--log-level', 'info',
      ...(o.extraArgs ?? []),
    ];
    const d = new Dockerd(o.name, o.netnsPath, dir, args, cgroupParent, createdRunDirs);
    try {
      await d.spawnAndWait(o.readyTimeoutMs ?? 30_000);
    } catch (e) {
      await d.stop().catch(() => undefined);
      throw e;
    }
    return d;
  }

  private async spawnAndWait(timeoutMs: number): Promise<void> {
    const fd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      // nsenter execs dockerd: the child's pid is dockerd's.
      child = spawn('nsenter', [`--net=${this.netnsPath}`, '--', DOCKERD_BIN, ...this.args], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.stopped = false;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new BpfnetError('E_COMMAND_FAILED', `dockerd exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${this.log().slice(-3000)}`);
      }
      if (await ping(this.sock)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new BpfnetError('E_TIMEOUT', `dockerd did not answer on ${this.sock} within ${timeoutMs} ms:\n${this.log().slice(-3000)}`);
  }

  /** /usr/bin/docker -H unix://sock ARGS; never throws unless opts.check. */
  async docker(args: string[], opts: DockerRunOptions = {}): Promise<DockerResult> {
    const r = await execa(DOCKER_BIN, ['-H', this.host, ...args], {
      reject: false,
      timeout: opts.timeout ?? 60_000,
      // The client's config (contexts, auth) stays in our dir, not ~/.docker.
      env: { DOCKER_CONFIG: join(this.dir, 'client') },
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
    const res = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? 1 };
    if (opts.check && res.exitCode !== 0) {
      throw new BpfnetError('E_COMMAND_FAILED', `docker ${args.join(' ')} exited ${res.exitCode}: ${res.stderr.trim() || res.stdout.trim()}`, { ...res });
    }
    if (args[0] === 'run' || args[0] === 'create') {
      const id = res.stdout.trim().split('\n').pop() ?? '';
      if (/^[0-9a-f]{64}$/.test(id)) this.containerIds.add(id);
    }
    return res;
  }

  /** docker ARGS, throwing with the output on failure; returns stdout trimmed. */
  async ok(args: string[], opts: Omit<DockerRunOptions, 'check'> = {}): Promise<string> {
    return (await this.docker(args, { ...opts, check: true })).stdout.trim();
  }

  private async rememberContainers(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    const r = await this.docker(['ps', '-aq', '--no-trunc'], { timeout: 10_000 });
    for (const id of r.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) this.containerIds.add(id);
  }

  /** SIGTERM dockerd (it stops its containers and containerd), SIGKILL when it hangs. */
  private async stopProcess(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 25_000);
    await exited;
    clearTimeout(t);
  }

  /**
   * Stop and start dockerd again with the same flags and data (containers with
   * a restart policy come back). dockerd stops each container with its stop
   * timeout (10 s): run long-lived test containers with --init (busybox as
   * PID 1 ignores SIGTERM) or --stop-timeout 1.
   */
  async restart(): Promise<void> {
    await this.rememberContainers().catch(() => undefined);
    await this.stopProcess();
    // Its containerd exits with it; wait so the new one can take the socket.
    await waitGone(pidsMentioning(join(this.execRoot, 'containerd', 'containerd.toml')), 10_000);
    await this.spawnAndWait(30_000);
  }

  /**
   * Stops dockerd, its containerd, shims and containers, and removes what it
   * made: mounts (overlays, container netns files, the data-root bind), the
   * temp dir, the cgroup parent, shim sockets, and /run dirs that did not
   * exist before (when no other dockerd runs). Idempotent.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.rememberContainers().catch(() => undefined);
    if (this.child && this.child.exitCode === null && this.containerIds.size) {
      await this.docker(['rm', '-f', ...this.containerIds], { timeout: 30_000 }).catch(() => undefined);
    }
    await this.stopProcess();
    // Whatever survived: containerd and shims (they name our dir), container processes (our cgroup).
    const leftovers = [...pidsMentioning(this.dir), ...this.cgroupPids()];
    if (leftovers.length) {
      for (const p of leftovers) kill(p, 'SIGKILL');
      await waitGone(leftovers, 5000);
    }
    for (const m of mountsUnder(this.dir)) {
      const r = await execa('umount', [m], { reject: false });
      if (r.exitCode !== 0) await execa('umount', ['-l', m], { reject: false });
    }
    // Shim sockets: /run/containerd/s/sha256(<containerd address>/<ns>/<id>) (containerd 1.6).
    for (const id of this.containerIds) {
      const h = createHash('sha256').update(join(this.containerdSock, 'moby', id)).digest('hex');
      rmSync(join('/run/containerd/s', h), { force: true });
    }
    this.removeCgroups();
    rmSync(this.dir, { recursive: true, force: true });
    if (!anyDockerd()) {
      for (const d of this.createdRunDirs) {
        try {
          rmdirSync(d); // only when empty
        } catch {
          /* in use or not empty: leave it */
        }
      }
    }
    this.stopped = true;
    this.child = undefined;
  }

  /** Every controller's directory for our cgroup parent (v1 hierarchies and the unified one). */
  private cgroupDirs(): string[] {
    const out: string[] = [];
    try {
      for (const c of readdirSync('/sys/fs/cgroup')) {
        const p = join('/sys/fs/cgroup', c, this.cgroupParent);
        if (existsSync(p)) out.push(p);
      }
    } catch {
      /* no cgroupfs */
    }
    const unified = join('/sys/fs/cgroup', this.cgroupParent);
    if (existsSync(join(unified, 'cgroup.procs'))) out.push(unified);
    return out;
  }

  private cgroupPids(): number[] {
    const pids = new Set<number>();
    const walk = (d: string): void => {
      try {
        for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.add(Number(l));
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
      } catch {
        /* gone */
      }
    };
    for (const d of this.cgroupDirs()) walk(d);
    return [...pids];
  }

  private removeCgroups(): void {
    const rm = (d: string): void => {
      try {
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rm(join(d, e.name));
        rmdirSync(d);
      } catch {
        /* busy or gone */
      }
    };
    for (const d of this.cgroupDirs()) rm(d);
  }
}

export function startDockerd(o: DockerdOptions): Promise<Dockerd> {
  return Dockerd.start(o);
}

/**
 * A minimal image from the machine's static busybox (no registry is reachable):
 * /bin/busybox plus one symlink per applet, imported as TAG. Idempotent.
 */
export async function ensureBusyboxImage(d: Dockerd, tag = 'bb'): Promise<string> {
  if ((await d.docker(['image', 'inspect', '--format', '{{.Id}}', tag])).exitCode === 0) return tag;
  if (!existsSync(BUSYBOX_BIN)) throw new BpfnetError('E_TOOL_MISSING', `${BUSYBOX_BIN} not found: install busybox-static`);
  const root = join(d.dir, `rootfs-${randomBytes(3).toString('hex')}`);
  try {
    for (const sub of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'var', 'www']) mkdirSync(join(root, sub), { recursive: true });
    copyFileSync(BUSYBOX_BIN, join(root, 'bin', 'busybox'));
    const list = await execa(BUSYBOX_BIN, ['--list']);
    for (const applet of String(list.stdout).split('\n').map((s) => s.trim())) {
      if (applet && applet !== 'busybox' && !applet.includes('/')) symlinkSync('busybox', join(root, 'bin', applet));
    }
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    const tar = execa('tar', ['-C', root, '-c', '.'], { buffer: false });
    const imp = execa(DOCKER_BIN, ['-H', d.host, 'import', '-c', 'CMD ["/bin/sh"]', '-c', 'ENV PATH=/bin', '-', tag], { reject: false, env: { DOCKER_CONFIG: join(d.dir, 'client') } });
    tar.stdout!.pipe(imp.stdin!);
    const [, r] = await Promise.all([tar, imp]);
    if (r.exitCode !== 0) throw new BpfnetError('E_COMMAND_FAILED', `docker import ${tag} failed: ${String(r.stderr)}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return tag;
}
