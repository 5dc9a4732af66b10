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
import { openBackend, pinnedMapInfo } from '../maps/backend.js';
import { PER_CPU_TYPES } from '../maps/types.js';
import { mapTypeName } from '../maps/types.js';
import { ensureBpffs } from './bpffs.js';
import { compile, type CompileOptions } from './compile.js';

export interface LoadOptions extends CompileOptions {
  /** bpffs root, e.g. /sys/fs/bpf/bpfnet (tests use their own). */
  root: string;
  /** max_entries overrides per map name. */
  mapSizes?: Record<string, number>;
  /** Called when a pinned map had to be migrated (size or layout change). */
  onMigrate?: (e: MapMigration) => void;
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

/**
 * Create a map from its BTF layout, or reuse the pinned one. A pinned map of
 * another size or layout (a --map-size change, an upgrade) is migrated: a new
 * map is created beside it, entries are copied when the layout is the same
 * (a resize keeps NAT state and published ports), and the new pin replaces the
 * old one with one rename. Programs still attached keep the old map until they
 * are replaced; every pinned program version is dropped so the next load binds
 * to the new maps. Per-CPU maps (counters) and changed layouts start empty:
 * the agent rewrites its configuration maps on the next apply anyway.
 */
export async function ensureMap(root: string, m: MapLayout, maxEntries?: number, onMigrate?: (e: MapMigration) => void): Promise<string> {
  const path = join(mapsDir(root), m.name);
  const entries = maxEntries ?? m.maxEntries;
  if (existsSync(path)) {
    const info = pinnedMapInfo(path);
    const sameLayout = info.type === m.type && info.keySize === m.keySize && info.valueSize === m.valueSize;
    // Without an explicit size the pinned one stands: only the agent's
    // dataplane (which passes every size) decides sizes, never another
    // loader sharing the root.
    if (sameLayout && (maxEntries === undefined || info.maxEntries === entries)) return path;
    const tmp = join(mapsDir(root), `tmp-${m.name}-${randomBytes(4).toString('hex')}`);
    await createMap(tmp, m, entries);
    let copied = 0;
    try {
      if (sameLayout && !PER_CPU_TYPES.has(m.type)) copied = await copyEntries(path, tmp, entries);
      await rm(progsDir(root), { recursive: true, force: true });
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new BpfnetError('E_MAP_MIGRATE', `map ${m.name} at ${path} could not be migrated to ${entries} entries: ${(e as Error).message}`, { path }, { cause: e });
    }
    onMigrate?.({ map: m.name, from: { maxEntries: info.maxEntries, keySize: info.keySize, valueSize: info.valueSize }, to: { maxEntries: entries, keySize: m.keySize, valueSize: m.valueSize }, copied, kept: sameLayout && !PER_CPU_TYPES.has(m.type) });
    return path;
  }
  await mkdir(mapsDir(root), { recursive: true });
  try {
    await createMap(path, m, entries);
  } catch (e) {
    if (existsSync(path)) return ensureMap(root, m, maxEntries, onMigrate); // lost a race with another loader
    throw e;
  }
  return path;
}

export interface MapMigration {
  map: string;
  from: { maxEntries: number; keySize: number; valueSize: number };
  to: { maxEntries: number; keySize: number; valueSize: number };
  /** Entries carried over (0 when the layout changed or the map is per-CPU). */
  copied: number;
  kept: boolean;
}

async function createMap(path: string, m: MapLayout, entries: number): Promise<void> {
  const args = ['map', 'create', path, 'type', mapTypeName(m.type), 'key', String(m.keySize), 'value', String(m.valueSize),
    'entries', String(entries), 'name', m.name.slice(0, 15)];
  if (m.flags) args.push('flags', String(m.flags));
  await run('bpftool', args);
}

/** Copy up to `limit` entries (a shrink keeps what fits; LRU state is best effort anyway). */
async function copyEntries(from: string, to: string, limit: number): Promise<number> {
  const src = openBackend(from, 'libbpf');
  const dst = openBackend(to, 'libbpf');
  try {
    let batch: [Buffer, Buffer][] = [];
    let n = 0;
    for await (const [k, v] of src.entries()) {
      if (n + batch.length >= limit) break;
      batch.push([Buffer.from(k), Buffer.from(v)]);
      if (batch.length === 4096) {
        await dst.setBatch(batch);
        n += batch.length;
        batch = [];
      }
    }
    await dst.setBatch(batch);
    return n + batch.length;
  } finally {
    src.close();
    dst.close();
  }
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
  for (const m of abi.maps) maps[m.name] = await ensureMap(opts.root, m, opts.mapSizes?.[m.name], opts.onMigrate);

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
