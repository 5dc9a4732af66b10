/**
 * `bpfnet doctor`: probe what this machine can do and pick the dataplane the
 * agent would use. Never throws; every problem is a probe with a fix.
 */
import { DEFAULT_BPFFS_ROOT } from '../util/paths.js';
import os from 'node:os';
import {
  MIN_KERNEL,
  TOOLS,
  atLeast,
  parseClangMajor,
  parseKernel,
  probeBpfSyscall,
  probeBpffs,
  probeBtf,
  probeCgroup2,
  probeIptables,
  probeKernel,
  probeNetns,
  probeNftables,
  probeTool,
  versionRunner,
} from './probes.js';
import { fallbackNotes, type FallbackNote } from './fallback.js';

export type ProbeStatus = 'ok' | 'warn' | 'fail';

export interface Probe {
  id: string;
  title: string;
  status: ProbeStatus;
  detail: string;
  fix?: string;
}

export type Dataplane = 'ebpf' | 'iptables' | 'nftables' | 'none';

export interface DoctorReport {
  kernel: string;
  probes: Probe[];
  dataplane: {
    selected: Dataplane;
    reason: string;
    available: { ebpf: boolean; iptables: boolean; nftables: boolean };
  };
  /** Where the iptables/nftables fallbacks cannot match eBPF on this machine. */
  fallback?: FallbackNote[];
}

/** Last line of defence: a probe bug becomes a failed probe, not a crashed doctor. */
function crashed(id: string, title: string, e: unknown): Probe {
  return { id, title, status: 'fail', detail: `probe crashed: ${e instanceof Error ? e.message : String(e)}`, fix: 'report this as a bpfnet bug' };
}

async function guard(id: string, title: string, p: () => Promise<Probe> | Probe): Promise<Probe> {
  try {
    return await p();
  } catch (e) {
    return crashed(id, title, e);
  }
}

export async function runDoctor(opts: { bpffsRoot?: string } = {}): Promise<DoctorReport> {
  const release = os.release();
  const version = versionRunner();
  const netns = probeNetns(release).catch((e: unknown): [Probe, Probe] => [crashed('clsact', 'tc clsact qdisc', e), crashed('xdp', 'XDP on veth', e)]);
  // All probes are independent; run them together so doctor costs ~one probe.
  const [kernel, btf, bpffs, bpf, cgroup2, [clsact, xdp], tools, iptables, nftables] = await Promise.all([
    guard('kernel', 'kernel version', () => probeKernel(release)),
    guard('btf', 'kernel BTF', probeBtf),
    guard('bpffs', 'bpf filesystem', () => probeBpffs(opts.bpffsRoot ?? DEFAULT_BPFFS_ROOT)),
    guard('bpf', 'bpf() syscall', probeBpfSyscall),
    guard('cgroup2', 'cgroup v2', probeCgroup2),
    netns,
    Promise.all(TOOLS.map((t) => guard(t.id, t.bin, () => probeTool(t, version)))),
    guard('iptables', 'iptables backend', () => probeIptables(version)),
    guard('nftables', 'nftables', () => probeNftables(version)),
  ]);
  const probes = [kernel, btf, bpffs, bpf, cgroup2, clsact, xdp, ...tools, iptables, nftables];
  const fallback = await fallbackNotes().catch(() => undefined);
  return { kernel: release, probes, dataplane: selectDataplane(release, probes), ...(fallback ? { fallback } : {}) };
}

/** ebpf if everything the eBPF loader needs works; else the first packet-filter fallback present. */
export function selectDataplane(release: string, probes: readonly Probe[]): DoctorReport['dataplane'] {
  const ok = (id: string) => probes.find((p) => p.id === id)?.status === 'ok';
  const blockers: string[] = [];
  const kv = parseKernel(release);
  if (!atLeast(kv, MIN_KERNEL)) blockers.push(`kernel ${release} < ${MIN_KERNEL.join('.')}`);
  if (!ok('btf')) blockers.push('BTF missing');
  for (const tool of ['clang', 'bpftool', 'tc']) {
    const p = probes.find((x) => x.id === `tool:${tool}`);
    if (p?.status !== 'ok') blockers.push(p?.detail === 'not installed' || !p ? `${tool} missing` : `${tool} unusable`);
  }
  if (!ok('clsact')) blockers.push('clsact not supported');

  const available = { ebpf: blockers.length === 0, iptables: ok('tool:iptables'), nftables: ok('tool:nft') };
  if (available.ebpf) {
    const clang = parseClangMajor(probes.find((p) => p.id === 'tool:clang')?.detail ?? '');
    return {
      selected: 'ebpf',
      reason: `kernel ${kv?.join('.')} with BTF, clsact and clang ${clang}: eBPF dataplane`,
      available,
    };
  }
  const why = blockers.join(', ');
  if (available.iptables) return { selected: 'iptables', reason: `${why}: falling back to iptables`, available };
  if (available.nftables) return { selected: 'nftables', reason: `${why}: falling back to nftables`, available };
  return { selected: 'none', reason: `${why}, and neither iptables nor nft is usable: no dataplane available`, available };
}
