/**
 * Loading compiled objects: maps are created (or reused) under
 * <root>/maps/<name> first, so every object shares them and a restarted agent
 * keeps their state; programs are pinned under <root>/progs/<object>-<hash>/,
 * content-addressed, so loading the same object twice is a no-op and a new
 * version sits beside the old one until attachments have been replaced.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from '../util/exec.js';
import { BpfnetError, CommandError } from '../util/errors.js';
import { abiFromBtf, readBtf, type Abi, type MapLayout } from '../maps/btf.js';
import { pinnedMapInfo } from '../maps/backend.js';
import { mapTypeName } from '../maps/types.js';
import { ensureBpffs } from './bpffs.js';
import { compile, type CompileOptions } from './compile.js';

export interface LoadOptions extends CompileOptions {
  /** bpffs root, e.g. /sys/fs/bpf/bpfnet (tests use their own). */
  root: string;
  /** max_entries overrides per map name. */
  mapSizes?: Record<string, number>;
  /** Program type for bpftool (classifier for tc, xdp for XDP); default from section names. */
  progType?: 'classifier' | 'xdp';
}

export interface LoadedObject {
  name: string;
  hash: string;
  dir: string;
  /** program name -> pin path */
  progs: Record<string, string>;
  maps: Record<string, string>;
  reused: boolean;
}

export const mapsDir = (root: string) => join(root, 'maps');
export const progsDir = (root: string) => join(root, 'progs');

/** Create a map from its BTF layout, or check that the pinned one matches it. */
export async function ensureMap(root: string, m: MapLayout, maxEntries?: number): Promise<string> {
  const path = join(mapsDir(root), m.name);
  const entries = maxEntries ?? m.maxEntries;
  if (existsSync(path)) {
    const info = pinnedMapInfo(path);
    if (info.type !== m.type || info.keySize !== m.keySize || info.valueSize !== m.valueSize) {
      throw new BpfnetError(
        'E_MAP_SCHEMA',
        `map ${m.name} pinned at ${path} is ${mapTypeName(info.type)} key ${info.keySize} value ${info.valueSize} bytes, ` +
          `but the program expects ${mapTypeName(m.type)} key ${m.keySize} value ${m.valueSize}: migrate it or remove the pin`,
        { path, pinned: info, expected: m },
      );
    }
    return path;
  }
  await mkdir(mapsDir(root), { recursive: true });
  const args = ['map', 'create', path, 'type', mapTypeName(m.type), 'key', String(m.keySize), 'value', String(m.valueSize),
    'entries', String(entries), 'name', m.name.slice(0, 15)];
  if (m.flags) args.push('flags', String(m.flags));
  try {
    await run('bpftool', args);
  } catch (e) {
    if (existsSync(path)) return ensureMap(root, m, maxEntries); // lost a race with another loader
    throw e;
  }
  return path;
}

/** The kernel's verdict, from libbpf's "-- BEGIN PROG LOAD LOG --" block. */
export function verifierMessage(stderr: string): { prog?: string; line: string } {
  const prog = /prog '([^']+)': BPF program load failed/.exec(stderr)?.[1];
  const log = /-- BEGIN PROG LOAD LOG --\n([\s\S]*?)-- END PROG LOAD LOG --/.exec(stderr)?.[1] ?? '';
  const lines = log.split('\n').map((l) => l.trim()).filter((l) => l && !/^processed \d+ insns/.test(l) && !/^verification time/.test(l) && !/^stack depth/.test(l));
  // The verdict is everything after the last instruction the verifier printed
  // (the error, then any hint such as "R6 offset is outside of the packet").
  const lastInsn = lines.reduce((at, l, i) => (/^\d+: \(/.test(l) ? i : at), -1);
  const verdict = lines.slice(lastInsn + 1).join('; ');
  const line = verdict || (stderr.split('\n').find((l) => /error|failed|invalid/i.test(l)) ?? 'unknown error');
  return prog === undefined ? { line } : { prog, line };
}

// Objects are content-addressed, so an object path always has the same BTF:
// read it once per process instead of spawning bpftool on every apply.
const abiCache = new Map<string, Promise<Abi>>();
function objectAbi(path: string): Promise<Abi> {
  let abi = abiCache.get(path);
  if (!abi) {
    abi = readBtf(path).then(abiFromBtf);
    abi.catch(() => abiCache.delete(path));
    abiCache.set(path, abi);
  }
  return abi;
}

export async function loadObject(name: string, opts: LoadOptions): Promise<LoadedObject> {
  await ensureBpffs(opts.root);
  const obj = await compile(name, opts);
  const abi = await objectAbi(obj.path);
  const maps: Record<string, string> = {};
  for (const m of abi.maps) maps[m.name] = await ensureMap(opts.root, m, opts.mapSizes?.[m.name]);

  const dir = join(progsDir(opts.root), `${name}-${obj.hash}`);
  if (existsSync(dir)) {
    const pinned = await readdir(dir);
    if (pinned.length > 0) {
      return { name, hash: obj.hash, dir, progs: Object.fromEntries(pinned.map((p) => [p, join(dir, p)])), maps, reused: true };
    }
  }
  // Load into a scratch dir and rename: a crash never leaves half a version.
  // (bpffs refuses names containing a dot, hence no ".tmp".)
  await mkdir(progsDir(opts.root), { recursive: true });
  const tmp = join(progsDir(opts.root), `tmp-${name}-${randomBytes(4).toString('hex')}`);
  const reuse = Object.entries(maps).flatMap(([n, p]) => ['map', 'name', n, 'pinned', p]);
  const type = opts.progType ? ['type', opts.progType] : [];
  try {
    await run('bpftool', ['prog', 'loadall', obj.path, tmp, ...type, ...reuse], { timeout: 120_000 });
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    if (e instanceof CommandError && e.code === 'E_COMMAND_FAILED') {
      const v = verifierMessage(e.stderr);
      throw new CommandError('E_VERIFIER', `kernel rejected program ${v.prog ?? name}: ${v.line}`, e.command, e.exitCode, e.stderr);
    }
    throw e;
  }
  const pinned = await readdir(dir);
  return { name, hash: obj.hash, dir, progs: Object.fromEntries(pinned.map((p) => [p, join(dir, p)])), maps, reused: false };
}

/** Remove pinned versions of `name` other than `keepHash` (attached programs stay alive). */
export async function pruneVersions(root: string, name: string, keepHash: string): Promise<string[]> {
  const d = progsDir(root);
  if (!existsSync(d)) return [];
  const stale = (await readdir(d)).filter((n) => n.startsWith(`${name}-`) && n !== `${name}-${keepHash}` && /^[0-9a-f]{16}$/.test(n.slice(name.length + 1)));
  for (const n of stale) await rm(join(d, n), { recursive: true, force: true });
  return stale;
}

/** Remove everything under root: pins only; attached programs keep running until detached. */
export async function removeRoot(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
}
