/**
 * Compiling bpf/*.c with clang, cached by content: the key covers the entry
 * file, every header under bpf/lib, the flags and the compiler's version, so
 * an unchanged tree never recompiles and a changed header always does.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../util/exec.js';
import { BpfnetError, CommandError } from '../util/errors.js';
import { BPF_CACHE_DIR, BPF_SRC_DIR } from '../util/paths.js';

export interface CompileOptions {
  srcDir?: string;
  cacheDir?: string;
  clang?: string;
  /** Extra -D definitions (per-interface constants), part of the cache key. */
  defines?: Record<string, string | number>;
}

export interface CompiledObject {
  name: string;
  path: string;
  hash: string;
  cached: boolean;
}

let clangVersion: Promise<string> | undefined;
let multiarch: Promise<string> | undefined;

async function headersDigest(srcDir: string, h: ReturnType<typeof createHash>): Promise<void> {
  const libDir = join(srcDir, 'lib');
  const names = existsSync(libDir) ? (await readdir(libDir)).filter((n) => n.endsWith('.h')).sort() : [];
  for (const n of names) h.update(`\0${n}\0`).update(await readFile(join(libDir, n)));
}

export async function compile(name: string, opts: CompileOptions = {}): Promise<CompiledObject> {
  const srcDir = opts.srcDir ?? BPF_SRC_DIR;
  const cacheDir = opts.cacheDir ?? BPF_CACHE_DIR;
  const clang = opts.clang ?? 'clang';
  const src = join(srcDir, `${name}.c`);
  if (!existsSync(src)) throw new BpfnetError('E_NOT_FOUND', `no BPF program source ${src}`, { name });

  clangVersion ??= run(clang, ['--version']).then((r) => r.stdout.split('\n')[0] ?? '');
  multiarch ??= run('gcc', ['-dumpmachine']).then((r) => r.stdout.trim(), () => 'x86_64-linux-gnu');
  const flags = ['-O2', '-g', '-target', 'bpf', '-Wall', '-Werror', `-I/usr/include/${await multiarch}`];
  for (const [k, v] of Object.entries(opts.defines ?? {}).sort()) flags.push(`-D${k}=${v}`);

  const h = createHash('sha256');
  h.update(await clangVersion).update(flags.join(' ')).update(await readFile(src));
  await headersDigest(srcDir, h);
  const hash = h.digest('hex').slice(0, 16);
  const out = join(cacheDir, `${name}-${hash}.o`);
  if (existsSync(out)) return { name, path: out, hash, cached: true };

  await mkdir(cacheDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    await run(clang, [...flags, '-c', src, '-o', tmp], { timeout: 120_000 });
  } catch (e) {
    if (e instanceof CommandError && e.code === 'E_COMMAND_FAILED') {
      const firstError = e.stderr.split('\n').find((l) => l.includes('error:')) ?? e.stderr.split('\n')[0];
      throw new CommandError('E_COMMAND_FAILED', `compiling ${src} failed: ${firstError}`, e.command, e.exitCode, e.stderr);
    }
    throw e;
  }
  await rename(tmp, out); // atomic: concurrent compiles never see half an object
  return { name, path: out, hash, cached: false };
}
