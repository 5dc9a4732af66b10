/**
 * The compiled benchmark tools (bench/tools/*.c), built at bench time with
 * gcc or clang -O2 into build/bench/ (never committed). A binary is named
 * after the hash of its source, compiler and flags, so an edited source is
 * rebuilt and an unchanged one is reused; a build goes to a temporary name
 * and is renamed, so an interrupted build never leaves a half-written tool.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { run, tryRun } from '../../src/util/exec.js';
import { BENCH_DIR, progress } from './env.js';

export const TOOLS_SRC = join(BENCH_DIR, 'tools');
export const TOOLS_OUT = join(PACKAGE_ROOT, 'build', 'bench');
const CFLAGS = ['-O2', '-Wall', '-Wextra', '-pthread'];

let compiler: Promise<{ cc: string; version: string }> | undefined;

/** $CC, else gcc, else clang: the first that runs. */
function findCompiler(): Promise<{ cc: string; version: string }> {
  return (compiler ??= (async () => {
    for (const cc of [process.env.CC, 'gcc', 'clang'].filter((x): x is string => !!x)) {
      const v = await tryRun(cc, ['--version']);
      if (v) return { cc, version: v.stdout.split('\n')[0]?.trim() ?? cc };
    }
    throw new Error('no C compiler: install gcc or clang (scripts/install-deps.sh installs clang)');
  })());
}

export interface BuiltTool {
  name: string;
  path: string;
  compiler: string;
  built: boolean;
}

/**
 * Build bench/tools/<name>.c (or reuse the binary of the same source).
 * static: linked statically, to run inside a container image without a libc
 * (the busybox image of the docker peer).
 */
export async function buildTool(name: string, opts: { static?: boolean } = {}): Promise<BuiltTool> {
  const src = join(TOOLS_SRC, `${name}.c`);
  const { cc, version } = await findCompiler();
  const text = await readFile(src);
  const flags = [...CFLAGS, ...(opts.static ? ['-static'] : [])];
  const hash = createHash('sha256').update(text).update(`\0${cc}\0${version}\0${flags.join(' ')}`).digest('hex').slice(0, 12);
  const out = join(TOOLS_OUT, `${name}${opts.static ? '-static' : ''}-${hash}`);
  if (existsSync(out)) return { name, path: out, compiler: version, built: false };
  await mkdir(TOOLS_OUT, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    await run(cc, [...flags, '-o', tmp, src]);
    await rename(tmp, out);
  } finally {
    await rm(tmp, { force: true });
  }
  progress(`built ${name} with ${cc} ${flags.join(' ')} -> ${out}`);
  return { name, path: out, compiler: version, built: true };
}
