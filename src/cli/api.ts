/** Shared plumbing of the CLI commands that talk to the agent. */
import type { Command } from 'commander';
import { Client, resolveHost } from '../api/client.js';
import type { Method, Req, Res } from '../api/methods.js';

export const json = (v: unknown): string => `${JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x), 2)}\n`;

/** The --host of the root command (or BPFNET_HOST, or the default socket). */
export function hostOf(cmd: Command): string {
  const o = cmd.optsWithGlobals() as { host?: string };
  return resolveHost(o.host);
}

/** One call on a fresh connection; warnings go to stderr like Docker's. */
export async function call<M extends Method>(cmd: Command, method: M, req: Partial<Req<M>> = {}): Promise<Res<M>> {
  const client = await Client.connect(hostOf(cmd));
  try {
    const r = await client.call(method, req);
    for (const w of r.warnings) process.stderr.write(`WARNING: ${w}\n`);
    return r.value;
  } finally {
    client.close();
  }
}

/** Repeatable option collector: `-p 80 -p 81`. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function out(s: string): void {
  process.stdout.write(s);
}

export type Format = 'table' | 'json';

export function parseFormat(f: string | undefined): Format {
  if (!f || f === 'table') return 'table';
  if (f === 'json') return 'json';
  throw new Error(`unknown --format "${f}": use table or json`);
}

/** One failed item of a multi-item command (rm a b c): reported, the rest go on. */
export function reportError(e: unknown): void {
  const code = typeof e === 'object' && e !== null && 'code' in e ? ` [${String((e as { code: unknown }).code)}]` : '';
  process.stderr.write(`bpfnet: ${(e as Error).message}${code}\n`);
}

/** Runs fn for each ref, reporting failures; exit code 1 if any failed. */
export async function eachRef(refs: string[], fn: (ref: string) => Promise<void>): Promise<void> {
  let failed = 0;
  for (const ref of refs) {
    try {
      await fn(ref);
    } catch (e) {
      failed++;
      reportError(e);
    }
  }
  if (failed) process.exitCode = 1;
}
