/**
 * Individual `bpfnet doctor` checks. Each probe is read-only except the
 * throw-away netns test, which always cleans up after itself. Probes never
 * throw: failures become status 'fail' with a detail and a fix.
 */
import { randomBytes } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import os from 'node:os';
import { run, type RunResult } from '../util/exec.js';
import { CommandError } from '../util/errors.js';
import type { Probe } from './doctor.js';

/** Keeps every probe under a second even if a tool hangs. */
const TIMEOUT = 1000;
export const MIN_KERNEL: readonly [number, number] = [5, 10];
/** Native (driver) XDP on veth landed in 4.19. */
const MIN_XDP_VETH: readonly [number, number] = [4, 19];
const MIN_CLANG = 10;

export interface ToolSpec {
  id: string;
  bin: string;
  args: string[];
  pkg: string;
}

export const TOOLS: readonly ToolSpec[] = [
  { id: 'tool:clang', bin: 'clang', args: ['--version'], pkg: 'clang' },
  { id: 'tool:bpftool', bin: 'bpftool', args: ['version'], pkg: 'bpftool' },
  { id: 'tool:tc', bin: 'tc', args: ['-V'], pkg: 'iproute2' },
  { id: 'tool:ip', bin: 'ip', args: ['-V'], pkg: 'iproute2' },
  { id: 'tool:iptables', bin: 'iptables', args: ['--version'], pkg: 'iptables' },
  { id: 'tool:nft', bin: 'nft', args: ['--version'], pkg: 'nftables' },
  { id: 'tool:nsenter', bin: 'nsenter', args: ['--version'], pkg: 'util-linux' },
];

type Outcome = { ok: true; out: RunResult } | { ok: false; missing: boolean; msg: string };

/** run() folded into a value so probes can branch without try/catch. */
async function attempt(file: string, args: readonly string[], opts: { netns?: string; timeout?: number } = {}): Promise<Outcome> {
  try {
    return { ok: true, out: await run(file, args, { timeout: TIMEOUT, ...opts }) };
  } catch (e) {
    const missing = e instanceof CommandError && e.code === 'E_TOOL_MISSING';
    return { ok: false, missing, msg: e instanceof Error ? e.message : String(e) };
  }
}

/** Some tools print their version on stderr; take whichever has text. */
function firstLine(r: RunResult): string {
  return (r.stdout.trim() || r.stderr.trim()).split('\n')[0]?.trim() ?? '';
}

export function parseKernel(release: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

export function atLeast(v: readonly [number, number] | null, min: readonly [number, number]): boolean {
  return v !== null && (v[0] > min[0] || (v[0] === min[0] && v[1] >= min[1]));
}

export function parseClangMajor(versionLine: string): number | null {
  const m = /clang version (\d+)\./.exec(versionLine);
  return m ? Number(m[1]) : null;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

interface Mount {
  source: string;
  target: string;
  fstype: string;
}

/** /proc/self/mounts escapes spaces etc. as octal (\040). */
function parseMounts(text: string): Mount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length >= 3)
    .map(([source = '', target = '', fstype = '']) => ({ source, target: unescape(target), fstype }));
}

function mounts(): Promise<Mount[]> {
  return readFile('/proc/self/mounts', 'utf8').then(parseMounts, () => []);
}

// ---------------------------------------------------------------- probes

export function probeKernel(release = os.release()): Probe {
  const v = parseKernel(release);
  if (atLeast(v, MIN_KERNEL)) return { id: 'kernel', title: 'kernel version', status: 'ok', detail: release };
  return {
    id: 'kernel',
    title: 'kernel version',
    status: 'warn',
    detail: `${release} (eBPF dataplane needs ${MIN_KERNEL.join('.')}+ for the helpers used)`,
    fix: `upgrade to Linux ${MIN_KERNEL.join('.')} or newer`,
  };
}

export async function probeBtf(): Promise<Probe> {
  const base = { id: 'btf', title: 'kernel BTF' };
  if (await exists('/sys/kernel/btf/vmlinux')) return { ...base, status: 'ok', detail: '/sys/kernel/btf/vmlinux present' };
  return {
    ...base,
    status: 'fail',
    detail: '/sys/kernel/btf/vmlinux missing',
    fix: 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y',
  };
}

export async function probeBpffs(bpffsRoot: string): Promise<Probe> {
  const base = { id: 'bpffs', title: 'bpf filesystem' };
  const mounted = (await mounts()).some((m) => m.target === '/sys/fs/bpf' && m.fstype === 'bpf');
  if (!mounted) {
    return { ...base, status: 'warn', detail: 'not mounted (the agent mounts it at start)', fix: 'mount -t bpf bpf /sys/fs/bpf' };
  }
  const root = (await exists(bpffsRoot)) ? `${bpffsRoot} exists` : `${bpffsRoot} not created yet`;
  return { ...base, status: 'ok', detail: `/sys/fs/bpf mounted; ${root}` };
}

/** Shared by the tool probes and the iptables/nftables probes so each tool runs once. */
export function versionRunner(): (t: ToolSpec) => Promise<Outcome> {
  const cache = new Map<string, Promise<Outcome>>();
  return (t) => {
    let p = cache.get(t.id);
    if (!p) cache.set(t.id, (p = attempt(t.bin, t.args)));
    return p;
  };
}

export async function probeTool(t: ToolSpec, version: (t: ToolSpec) => Promise<Outcome>): Promise<Probe> {
  const base = { id: t.id, title: t.bin };
  const r = await version(t);
  if (!r.ok) {
    return r.missing
      ? { ...base, status: 'fail', detail: 'not installed', fix: `apt-get install ${t.pkg}` }
      : { ...base, status: 'fail', detail: r.msg, fix: `reinstall ${t.pkg} (apt-get install --reinstall ${t.pkg})` };
  }
  const line = firstLine(r.out);
  if (t.bin === 'clang') {
    const major = parseClangMajor(line);
    if (major === null || major < MIN_CLANG) {
      return { ...base, status: 'fail', detail: `${line} (need clang >= ${MIN_CLANG})`, fix: `apt-get install clang (version ${MIN_CLANG} or newer)` };
    }
  }
  return { ...base, status: 'ok', detail: line };
}

/**
 * clsact and XDP share one throw-away netns with a veth pair, so the test
 * touches nothing outside it. The netns is deleted in `finally`, whatever happened.
 */
export async function probeNetns(release = os.release()): Promise<[Probe, Probe]> {
  const ns = `bpfnet-doctor-${randomBytes(3).toString('hex')}`;
  const clsact = { id: 'clsact', title: 'tc clsact qdisc' };
  const xdp = { id: 'xdp', title: 'XDP on veth' };
  const fail = (msg: string, fix: string): [Probe, Probe] => [
    { ...clsact, status: 'fail', detail: msg, fix },
    { ...xdp, status: 'fail', detail: msg, fix },
  ];
  try {
    const add = await attempt('ip', ['netns', 'add', ns]);
    if (!add.ok) return fail(`cannot create test netns: ${add.msg}`, add.missing ? 'apt-get install iproute2' : 'run as root');
    const veth = await attempt('ip', ['-n', ns, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
    if (!veth.ok) return fail(`cannot create veth: ${veth.msg}`, 'load the veth module (modprobe veth)');
    const up = await attempt('ip', ['-n', ns, 'link', 'set', 'd0', 'up']);
    if (!up.ok) return fail(`cannot bring veth up: ${up.msg}`, 'check dmesg for veth errors');

    const q = await attempt('tc', ['qdisc', 'add', 'dev', 'd0', 'clsact'], { netns: `/run/netns/${ns}` });
    const clsactProbe: Probe = q.ok
      ? { ...clsact, status: 'ok', detail: 'clsact qdisc attaches to veth' }
      : { ...clsact, status: 'fail', detail: q.msg, fix: q.missing ? 'apt-get install iproute2 util-linux' : 'use a kernel with CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF' };
    // Nothing is loaded: native XDP on veth is a matter of kernel version once veth works.
    const xdpProbe: Probe = atLeast(parseKernel(release), MIN_XDP_VETH)
      ? { ...xdp, status: 'ok', detail: `native XDP on veth (kernel >= ${MIN_XDP_VETH.join('.')})` }
      : { ...xdp, status: 'warn', detail: `kernel ${release} has no native XDP on veth`, fix: `upgrade to Linux ${MIN_XDP_VETH.join('.')}+` };
    return [clsactProbe, xdpProbe];
  } finally {
    // Longer timeout than the probes: leaking a netns is worse than a slow doctor.
    await attempt('ip', ['netns', 'del', ns], { timeout: 5000 });
  }
}

export async function probeCgroup2(): Promise<Probe> {
  const base = { id: 'cgroup2', title: 'cgroup v2' };
  const cg = (await mounts()).filter((m) => m.fstype === 'cgroup2').map((m) => m.target);
  const target = cg.find((t) => t === '/sys/fs/cgroup') ?? cg.find((t) => t === '/sys/fs/cgroup/unified') ?? cg[0];
  if (target) return { ...base, status: 'ok', detail: target };
  return {
    ...base,
    status: 'warn',
    detail: 'no cgroup2 mount (needed later for socket-level translation)',
    fix: 'mount -t cgroup2 none /sys/fs/cgroup/unified',
  };
}

export async function probeBpfSyscall(): Promise<Probe> {
  const base = { id: 'bpf', title: 'bpf() syscall' };
  if (process.getuid?.() !== 0) return { ...base, status: 'fail', detail: 'not running as root', fix: 'run as root' };
  const unpriv = (await readFile('/proc/sys/kernel/unprivileged_bpf_disabled', 'utf8').catch(() => '?')).trim();
  const info = `unprivileged_bpf_disabled=${unpriv}`; // info only: we run as root
  const r = await attempt('bpftool', ['prog', 'show']);
  if (!r.ok && r.missing) return { ...base, status: 'warn', detail: `cannot check without bpftool; ${info}`, fix: 'apt-get install bpftool' };
  if (!r.ok) return { ...base, status: 'fail', detail: `${r.msg}; ${info}`, fix: 'use a kernel with CONFIG_BPF_SYSCALL=y' };
  const progs = r.out.stdout.split('\n').filter((l) => /^\d+:/.test(l)).length;
  return { ...base, status: 'ok', detail: `works (${progs} program${progs === 1 ? '' : 's'} loaded); ${info}` };
}

export async function probeIptables(version: (t: ToolSpec) => Promise<Outcome>): Promise<Probe> {
  const base = { id: 'iptables', title: 'iptables backend' };
  const r = await version(TOOLS.find((t) => t.bin === 'iptables')!);
  if (!r.ok) return { ...base, status: 'fail', detail: r.missing ? 'iptables not installed' : r.msg, fix: 'apt-get install iptables' };
  const line = firstLine(r.out);
  // iptables < 1.8 prints no backend and is always legacy.
  const backend = line.includes('nf_tables') ? 'nf_tables' : 'legacy';
  return { ...base, status: 'ok', detail: `${backend} (${line})` };
}

export async function probeNftables(version: (t: ToolSpec) => Promise<Outcome>): Promise<Probe> {
  const base = { id: 'nftables', title: 'nftables' };
  const v = await version(TOOLS.find((t) => t.bin === 'nft')!);
  if (!v.ok) return { ...base, status: 'fail', detail: v.missing ? 'nft not installed' : v.msg, fix: 'apt-get install nftables' };
  const r = await attempt('nft', ['list', 'tables']); // read-only
  if (!r.ok) return { ...base, status: 'fail', detail: r.msg, fix: 'use a kernel with CONFIG_NF_TABLES' };
  const tables = r.out.stdout.split('\n').filter((l) => l.startsWith('table ')).length;
  return { ...base, status: 'ok', detail: `nft list tables works (${tables} tables)` };
}
