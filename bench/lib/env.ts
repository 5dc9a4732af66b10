/**
 * Benchmark plumbing: progress on stderr, bpffs roots that are always removed
 * (finally blocks, and SIGINT/SIGTERM), and the machine description recorded
 * with every result.
 */
import os from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { tryRun } from '../../src/util/exec.js';
import { withBpfRoot, type BpfRoot } from '../../test/harness/bpfroot.js';

export const BENCH_DIR = join(PACKAGE_ROOT, 'bench');
export const RESULTS_DIR = join(BENCH_DIR, 'results');

const started = Date.now();

/** One progress line on stderr (stdout carries only the result tables). */
export function progress(msg: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${t}s] ${msg}\n`);
}

// ---- cleanup ---------------------------------------------------------------

const pending = new Set<() => Promise<void>>();
let signalsHooked = false;
let interrupted: Promise<void> | undefined;

async function runPending(): Promise<void> {
  for (const c of [...pending]) {
    pending.delete(c);
    await c().catch((e: unknown) => process.stderr.write(`[bench] cleanup failed: ${(e as Error).message}\n`));
  }
}

/**
 * A persistent listener (not `once`): execa's signal-exit re-sends the signal
 * to the process when it thinks it is the last listener, which would kill us
 * half-way through the cleanup; with this listener still registered the
 * re-sent signal lands here and is ignored.
 */
function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      process.stderr.write(`[bench] ${sig}: removing bpffs roots and namespaces\n`);
      interrupted = runPending().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}

/** When a signal started the cleanup: resolves once it is done (the process then exits). */
export function interruption(): Promise<void> | undefined {
  return interrupted;
}

/**
 * Register an async cleanup that also runs on SIGINT/SIGTERM (before the
 * process exits). Returns the function to call in a finally block: it
 * unregisters the cleanup and runs it (once, whoever calls first).
 */
export function registerCleanup(fn: () => Promise<void>): () => Promise<void> {
  hookSignals();
  let done: Promise<void> | undefined;
  const cleanup = () => (done ??= fn());
  pending.add(cleanup);
  return async () => {
    pending.delete(cleanup);
    await cleanup();
  };
}

/**
 * A private bpffs root and empty netns (test/harness/bpfroot.ts), registered
 * so that an interrupted run removes it too. Call release() in a finally.
 */
export async function benchRoot(): Promise<BpfRoot & { release(): Promise<void> }> {
  hookSignals();
  const r = await withBpfRoot();
  let done: Promise<void> | undefined;
  const cleanup = () => (done ??= r.cleanup()); // idempotent: signal and finally may both call it
  pending.add(cleanup);
  return {
    ...r,
    release: async () => {
      pending.delete(cleanup);
      await cleanup();
    },
  };
}

/** Run fn with a set of roots that are released whatever happens. */
export async function withRoots<T>(count: number, fn: (roots: BpfRoot[]) => Promise<T>): Promise<T> {
  const roots: (BpfRoot & { release(): Promise<void> })[] = [];
  try {
    for (let i = 0; i < count; i++) roots.push(await benchRoot());
    return await fn(roots);
  } finally {
    for (const r of roots.reverse()) await r.release().catch((e: unknown) => progress(`cleanup of ${r.root} failed: ${(e as Error).message}`));
  }
}

// ---- machine ---------------------------------------------------------------

export interface MachineInfo {
  kernel: string;
  arch: string;
  cpuModel: string;
  cpuCount: number;
  memoryGiB: number;
  node: string;
  clang: string;
  bpftool: string;
  loadavgStart: number[];
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpus = os.cpus();
  const clang = await tryRun('clang', ['--version']);
  const bpftool = await tryRun('bpftool', ['version']);
  return {
    kernel: os.release(),
    arch: os.arch(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuCount: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    clang: clang?.stdout.split('\n')[0]?.trim() ?? 'not found',
    bpftool: bpftool?.stdout.split('\n').map((l) => l.trim()).filter(Boolean).join('; ') ?? 'not found',
    loadavgStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
