/**
 * Driving the compiled traffic tools (bench/tools/connrate.c, echo.c) across
 * a PeerLab: the echo server in the container, the generator in the client
 * namespace, and what the generator prints.
 */
import { cpus } from 'node:os';
import { waitReady } from '../../src/lab/lab.js';
import { UPLINK } from '../../src/lab/topology.js';
import { run } from '../../src/util/exec.js';
import type { PeerLab } from './peers.js';

/** Latency percentiles connrate.c prints (µs). */
export interface LatencyUs {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  min: number;
  max: number;
  mean: number;
}
export interface CrrOut {
  mode: 'crr';
  connections: number;
  errors: number;
  errorsByKind: Record<string, number>;
  lastError: string;
  elapsedS: number;
  wallS: number;
  ratePerS: number;
  latencyUs: LatencyUs;
}
export interface RrOut {
  mode: 'rr';
  requests: number;
  errors: number;
  lastError: string;
  elapsedS: number;
  ratePerS: number;
  latencyUs: LatencyUs;
}

export interface CrrArgs {
  port: number;
  durationS: number;
  warmupS: number;
  concurrency: number;
  threads: number;
  timeoutMs: number;
  close: 'rst' | 'fin';
}

export const crrArgs = (a: CrrArgs): string[] =>
  ['crr', '--host', UPLINK.nodeIp, '--port', String(a.port), '--duration', String(a.durationS), '--warmup', String(a.warmupS),
    '--concurrency', String(a.concurrency), '--threads', String(a.threads), '--timeout-ms', String(a.timeoutMs), '--close', a.close];

export const rrArgs = (port: number, durationS: number, warmupS = 0.1): string[] =>
  ['rr', '--host', UPLINK.nodeIp, '--port', String(port), '--duration', String(durationS), '--warmup', String(warmupS)];

/** Run a tool in the client netns (pinned to one CPU when cpu is a number) and parse its JSON output. */
export async function runClient<T>(clientNetns: string, bin: string, args: string[], seconds: number, cpu: number | null = null): Promise<T> {
  const [file, argv] = cpu === null ? [bin, args] : ['taskset', ['-c', String(cpu), bin, ...args]];
  const { stdout } = await run(file, argv, { netns: clientNetns, timeout: (seconds + 20) * 1000 });
  return JSON.parse(stdout) as T;
}

export const ALL_CPUS = `0-${Math.max(0, cpus().length - 1)}`;

/** Every thread of a process onto these CPUs (taskset -a -p). */
export async function pinProcess(pid: number, cpuList: string): Promise<void> {
  await run('taskset', ['-a', '-p', '-c', cpuList, String(pid)]);
}

/** Run fn with the process and fn's clients pinned to `cpu` (null: no pinning), then unpin. */
export async function pinnedTo<T>(pid: number, cpu: number | null, fn: () => Promise<T>): Promise<T> {
  if (cpu === null) return fn();
  if (cpu < 0 || cpu >= cpus().length) throw new Error(`no CPU ${cpu}`);
  await pinProcess(pid, String(cpu));
  try {
    return await fn();
  } finally {
    await pinProcess(pid, ALL_CPUS);
  }
}

/**
 * Start echo.c in the container on these ports; resolves to its pid once it
 * listens. nsenter execs the server (no fork for a net ns), so the child's
 * pid is the server's. It dies with the container namespace (Netns.destroy).
 */
export async function startEcho(lab: PeerLab, bin: string, ports: number[], threads: number): Promise<number> {
  const server = lab.topo.containers[0]!.ns.spawn(bin, [...ports.flatMap((p) => ['--port', String(p)]), '--threads', String(threads)]);
  await waitReady(server, 'echo server');
  return server.pid!;
}

/** What one job of connection workloads needs (a subset of ConnrateOptions). */
export interface ConnRunOptions {
  durationS: number;
  warmupS: number;
  concurrency: number;
  clientThreads: number;
  timeoutMs: number;
  close: 'rst' | 'fin';
  serialDurationS: number;
  rrDurationS: number;
  pinCpu: number | null;
}

/**
 * The three connection workloads against one port: crr (new connections,
 * concurrent, unpinned), then serial (one at a time) and rr (one long-lived
 * connection) with the client and the server pinned to o.pinCpu.
 */
export async function connectionRuns(clientNetns: string, bin: string, serverPid: number, port: number, o: ConnRunOptions): Promise<{ crr: CrrOut; serial: CrrOut; rr: RrOut }> {
  const base = { port, timeoutMs: o.timeoutMs, close: o.close };
  const crr = await runClient<CrrOut>(clientNetns, bin, crrArgs({ ...base, durationS: o.durationS, warmupS: o.warmupS, concurrency: o.concurrency, threads: o.clientThreads }), o.durationS + o.warmupS);
  const [serial, rr] = await pinnedTo(serverPid, o.pinCpu, async () => [
    await runClient<CrrOut>(clientNetns, bin, crrArgs({ ...base, durationS: o.serialDurationS, warmupS: 0.1, concurrency: 1, threads: 1 }), o.serialDurationS + 0.1, o.pinCpu),
    await runClient<RrOut>(clientNetns, bin, rrArgs(port, o.rrDurationS), o.rrDurationS + 0.1, o.pinCpu),
  ] as const);
  return { crr, serial, rr };
}
