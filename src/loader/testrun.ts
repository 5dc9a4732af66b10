/**
 * BPF_PROG_TEST_RUN through bpftool: run a pinned program on one packet
 * (unit tests) or `repeat` times (per-packet cost). The input is copied in
 * once: a program that rewrites the packet sees its own output from the
 * second repeat on (bench/progcost.ts adds mirror entries for that).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../util/exec.js';
import { invalidArgument } from '../util/errors.js';

export interface TestRunResult {
  retval: number;
  /** Average ns per run, as the kernel measured it. */
  durationNs: number;
  output: Buffer;
}

/** The kernel refuses shorter skb inputs: an Ethernet header, and for IPv4
 * frames also a minimal IPv4 header (34 bytes), for IPv6 54. */
export const MIN_SKB_INPUT = 14;
export function minInput(frame: Buffer, xdp = false): number {
  // XDP (bpf_prog_test_run_xdp) only asks for an Ethernet header.
  if (xdp) return MIN_SKB_INPUT;
  const type = frame.length >= 14 ? frame.readUInt16BE(12) : 0;
  return type === 0x0800 ? 34 : type === 0x86dd ? 54 : MIN_SKB_INPUT;
}

/**
 * `netns`: where to run. The FIB helpers see that namespace's routes and
 * forwarding settings; unit tests use an empty one so results are fixed.
 * `xdp`: the pin is an XDP program (the kernel's minimum input is then an
 * Ethernet header only; retval is the XDP action).
 */
export async function testRun(pin: string, input: Buffer, opts: { repeat?: number; netns?: string; xdp?: boolean } = {}): Promise<TestRunResult> {
  const min = minInput(input, opts.xdp);
  if (input.length < min) throw invalidArgument(`BPF_PROG_TEST_RUN needs at least ${min} bytes for this frame, got ${input.length}`);
  const dir = await mkdtemp(join(tmpdir(), 'bpfnet-run-'));
  try {
    const inFile = join(dir, 'in');
    const outFile = join(dir, 'out');
    await writeFile(inFile, input);
    const { stdout } = await run('bpftool', ['-j', 'prog', 'run', 'pinned', pin, 'data_in', inFile, 'data_out', outFile,
      'data_size_out', String(input.length + 256), 'repeat', String(opts.repeat ?? 1)], { timeout: 300_000, netns: opts.netns });
    const r = JSON.parse(stdout) as { retval: number; duration: number };
    return { retval: r.retval, durationNs: r.duration, output: await readFile(outFile).catch(() => Buffer.alloc(0)) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
