/**
 * The loader against the real kernel: compile cache, content-addressed
 * program pins, shared map pins and their schema check, verifier errors, tc
 * and XDP attachment, version pruning, and typed map access through both
 * backends. Every test gets its own bpffs root and network namespace (with a
 * veth pair d0/d1); all of them are removed in afterAll, pass or fail.
 */
import { existsSync, readdirSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from '../../src/loader/compile.js';
import { ensureMap, loadObject, mapsDir, progsDir, pruneVersions, type LoadedObject, type MapMigration } from '../../src/loader/load.js';
import { attachTc, detachTc, ensureClsact, listTc, TC_HANDLE, TC_PREF, type TcAttachment, type TcTarget } from '../../src/loader/tc.js';
import { Rtnl } from '../../src/netlink/index.js';
import { attachXdp, detachXdp, getXdp } from '../../src/loader/xdp.js';
import { testRun } from '../../src/loader/testrun.js';
import { readPerCpu, TypedMap } from '../../src/maps/map.js';
import { openBackend, type BackendName } from '../../src/maps/backend.js';
import { maps, MetricId, type AddrKey, type AddrValue, type PortKey, type PortValue } from '../../src/maps/generated/abi.js';
import { run } from '../../src/util/exec.js';
import { BpfnetError, CommandError } from '../../src/util/errors.js';
import { BPF_SRC_DIR } from '../../src/util/paths.js';
import { withBpfRoot, type BpfRoot } from '../harness/bpfroot.js';

// ---- fixtures -----------------------------------------------------------------

const cleanups: (() => Promise<unknown>)[] = [];

afterAll(async () => {
  // Last in, first out; one failing cleanup must not skip the others.
  for (const c of cleanups.reverse()) await c().catch((e: unknown) => console.error('cleanup failed:', e));
  cleanups.length = 0;
});

interface Fixture extends BpfRoot {
  /** Name of the namespace (for `ip -n`); `netns` is its path. */
  nsName: string;
}

/** A private bpffs root and an empty namespace holding veth pair d0 <-> d1, both up. */
async function fixture(): Promise<Fixture> {
  const b = await withBpfRoot();
  cleanups.push(() => b.cleanup());
  const nsName = basename(b.netns);
  await run('ip', ['-n', nsName, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
  await run('ip', ['-n', nsName, 'link', 'set', 'd0', 'up']);
  await run('ip', ['-n', nsName, 'link', 'set', 'd1', 'up']);
  return { ...b, nsName };
}

async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `bpfnet-${prefix}-`));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** A copy of bpf/ that a test may edit. */
async function srcCopy(): Promise<string> {
  const d = join(await tempDir('src'), 'bpf');
  await cp(BPF_SRC_DIR, d, { recursive: true });
  return d;
}

interface MapShow { id: number; type: string; name: string; bytes_key: number; bytes_value: number; max_entries: number; flags: number }
interface ProgShow { id: number; name: string; type: string; map_ids?: number[] }

async function mapShow(path: string): Promise<MapShow> {
  return JSON.parse((await run('bpftool', ['-j', 'map', 'show', 'pinned', path])).stdout) as MapShow;
}

async function progShow(path: string): Promise<ProgShow> {
  return JSON.parse((await run('bpftool', ['-j', 'prog', 'show', 'pinned', path])).stdout) as ProgShow;
}

async function rejection(p: Promise<unknown>): Promise<BpfnetError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BpfnetError);
    return e as BpfnetError;
  }
  throw new Error('expected a rejection');
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof BpfnetError ? e.code : `non-bpfnet error: ${String(e)}`;
  }
}

const MAP_NAMES = Object.keys(maps).sort();

// ---- compile -------------------------------------------------------------------

describe('compile cache', () => {
  it('second compile is cached, with the same path and hash', async () => {
    const cacheDir = await tempDir('cache');
    const a = await compile('uplink', { cacheDir });
    expect(a.cached).toBe(false);
    expect(a.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(a.path).toBe(join(cacheDir, `uplink-${a.hash}.o`));
    expect(existsSync(a.path)).toBe(true);
    const b = await compile('uplink', { cacheDir });
    expect(b).toEqual({ ...a, cached: true });
    // No temporary files are left beside the object.
    expect(await readdir(cacheDir)).toEqual([basename(a.path)]);
  });

  it('the key is content, not location; any header under lib/ and -D defines change it', async () => {
    const cacheDir = await tempDir('cache');
    const orig = await compile('uplink', { cacheDir });
    const src = await srcCopy();
    const cacheDir2 = await tempDir('cache');
    const copy = await compile('uplink', { srcDir: src, cacheDir: cacheDir2 });
    expect(copy.hash).toBe(orig.hash);
    expect(copy.cached).toBe(false);

    // fib.h is not even included by uplink.c: every header counts.
    await writeFile(join(src, 'lib', 'fib.h'), `${await readFile(join(src, 'lib', 'fib.h'), 'utf8')}\n/* changed */\n`);
    const changed = await compile('uplink', { srcDir: src, cacheDir: cacheDir2 });
    expect(changed.hash).not.toBe(orig.hash);
    expect(changed.cached).toBe(false);
    expect(changed.path).not.toBe(copy.path);
    expect((await compile('uplink', { srcDir: src, cacheDir: cacheDir2 })).cached).toBe(true);

    // A changed entry file changes it too.
    await writeFile(join(src, 'uplink.c'), `${await readFile(join(src, 'uplink.c'), 'utf8')}\n/* changed */\n`);
    expect((await compile('uplink', { srcDir: src, cacheDir: cacheDir2 })).hash).not.toBe(changed.hash);

    const defined = await compile('uplink', { cacheDir, defines: { BPFNET_TEST_VARIANT: 1 } });
    expect(defined.hash).not.toBe(orig.hash);
    expect(defined.cached).toBe(false);
  });

  it('a missing source is E_NOT_FOUND; a compile error is E_COMMAND_FAILED with the first error line', async () => {
    const cacheDir = await tempDir('cache');
    const e1 = await rejection(compile('no_such_program', { cacheDir }));
    expect(e1.code).toBe('E_NOT_FOUND');

    const src = await srcCopy();
    await writeFile(join(src, 'broken.c'), '#include "lib/common.h"\nint broken(void) { return undeclared_thing; }\n');
    const e2 = await rejection(compile('broken', { srcDir: src, cacheDir }));
    expect(e2).toBeInstanceOf(CommandError);
    expect(e2.code).toBe('E_COMMAND_FAILED');
    expect(e2.message).toMatch(/^compiling .*broken\.c failed: .*error: .*undeclared_thing/);
    expect(await readdir(cacheDir)).toEqual([]);
  });
});

// ---- load ----------------------------------------------------------------------

describe('loadObject', () => {
  it('is content-addressed: loading twice reuses the pinned programs', async () => {
    const fx = await fixture();
    const a = await loadObject('uplink', { root: fx.root });
    expect(a.reused).toBe(false);
    expect(a.dir).toBe(join(progsDir(fx.root), `uplink-${a.hash}`));
    expect(Object.keys(a.progs).sort()).toEqual(['from_uplink', 'to_uplink']);
    const idA = (await progShow(a.progs.from_uplink!)).id;

    const b = await loadObject('uplink', { root: fx.root });
    expect(b.reused).toBe(true);
    expect(b.progs).toEqual(a.progs);
    expect(b.maps).toEqual(a.maps);
    expect(b.hash).toBe(a.hash);
    expect((await progShow(b.progs.from_uplink!)).id).toBe(idA);
    expect(await readdir(progsDir(fx.root))).toEqual([`uplink-${a.hash}`]);
  });

  it('maps are created once under <root>/maps and shared between uplink and endpoint', async () => {
    const fx = await fixture();
    const up = await loadObject('uplink', { root: fx.root });
    expect(Object.keys(up.maps).sort()).toEqual(MAP_NAMES);
    for (const [n, p] of Object.entries(up.maps)) expect(p).toBe(join(mapsDir(fx.root), n));
    const ids = Object.fromEntries(await Promise.all(MAP_NAMES.map(async (n) => [n, (await mapShow(up.maps[n]!)).id] as const)));

    const ep = await loadObject('endpoint', { root: fx.root });
    expect(ep.reused).toBe(false);
    expect(Object.keys(ep.progs)).toEqual(['from_container']);
    expect(ep.maps).toEqual(up.maps);
    for (const n of MAP_NAMES) expect((await mapShow(ep.maps[n]!)).id, n).toBe(ids[n]);
    expect((await readdir(mapsDir(fx.root))).sort()).toEqual(MAP_NAMES);

    // Both programs really use the pinned maps (not private copies).
    const upProg = await progShow(up.progs.from_uplink!);
    const epProg = await progShow(ep.progs.from_container!);
    for (const n of ['bpfnet_ports', 'bpfnet_addrs', 'bpfnet_nat_ct', 'bpfnet_metrics']) expect(upProg.map_ids, `from_uplink uses ${n}`).toContain(ids[n]);
    for (const n of ['bpfnet_nat_ct', 'bpfnet_metrics']) expect(epProg.map_ids, `from_container uses ${n}`).toContain(ids[n]);
    const known = new Set(Object.values(ids));
    for (const id of [...(upProg.map_ids ?? []), ...(epProg.map_ids ?? [])]) {
      // Anything else is libbpf's internal .rodata/.bss, never a second copy of ours.
      if (!known.has(id)) expect(MAP_NAMES, `unexpected map ${id}`).not.toContain((await run('bpftool', ['-j', 'map', 'show', 'id', String(id)]).then((r) => JSON.parse(r.stdout) as MapShow)).name);
    }

    // Reloading changes nothing either.
    await loadObject('uplink', { root: fx.root });
    for (const n of MAP_NAMES) expect((await mapShow(up.maps[n]!)).id, n).toBe(ids[n]);
  });

  it('maps are created from their BTF definitions', async () => {
    const fx = await fixture();
    const up = await loadObject('uplink', { root: fx.root });
    for (const n of MAP_NAMES) {
      const m = maps[n as keyof typeof maps];
      const s = await mapShow(up.maps[n]!);
      expect({ name: s.name, key: s.bytes_key, value: s.bytes_value, max: s.max_entries, flags: s.flags }, n)
        .toEqual({ name: n.slice(0, 15), key: m.keySize, value: m.valueSize, max: m.maxEntries, flags: m.flags });
    }
    expect((await mapShow(up.maps.bpfnet_nat_ct!)).type).toBe('lru_hash');
    expect((await mapShow(up.maps.bpfnet_metrics!)).type).toBe('percpu_array');
  });

  it('a pinned map with another layout is replaced by an empty one of the right layout, and pinned programs are dropped', async () => {
    const fx = await fixture();
    await loadObject('uplink', { root: fx.root });
    expect((await readdir(progsDir(fx.root))).length).toBe(1);
    const path = join(mapsDir(fx.root), 'bpfnet_addrs');
    await rm(path);
    await run('bpftool', ['map', 'create', path, 'type', 'hash', 'key', '8', 'value', '4', 'entries', '4', 'name', 'bpfnet_addrs']);
    const oldId = (await mapShow(path)).id;
    const seen: MapMigration[] = [];
    await ensureMap(fx.root, maps.bpfnet_addrs, undefined, (m) => seen.push(m));
    const now = await mapShow(path);
    expect(now.id).not.toBe(oldId);
    expect({ key: now.bytes_key, value: now.bytes_value, type: now.type }).toEqual({ key: 4, value: 4, type: 'hash' });
    expect(seen).toEqual([expect.objectContaining({ map: 'bpfnet_addrs', kept: false, copied: 0 })]);
    // Programs bound to the old map must be reloaded.
    expect(existsSync(progsDir(fx.root))).toBe(false);
    // Another type with the same sizes is replaced too.
    await rm(path);
    await run('bpftool', ['map', 'create', path, 'type', 'array', 'key', '4', 'value', '4', 'entries', '4', 'name', 'bpfnet_addrs']);
    await ensureMap(fx.root, maps.bpfnet_addrs);
    expect((await mapShow(path)).type).toBe('hash');
  });

  it('mapSizes resizes a pinned map, keeping its entries, and the reloaded program uses the new map', async () => {
    const fx = await fixture();
    const up = await loadObject('uplink', { root: fx.root, mapSizes: { bpfnet_ports: 1024 } });
    expect((await mapShow(up.maps.bpfnet_ports!)).max_entries).toBe(1024);
    expect((await mapShow(up.maps.bpfnet_addrs!)).max_entries).toBe(maps.bpfnet_addrs.maxEntries);
    expect((await progShow(up.progs.from_uplink!)).map_ids).toContain((await mapShow(up.maps.bpfnet_ports!)).id);
    const ports = TypedMap.open(mapsDir(fx.root), 'bpfnet_ports');
    await ports.setMany([[{ addr: '0.0.0.0', port: 8080, proto: 6 }, { backend_addr: '198.19.0.2', backend_port: 80, flags: 0 }]]);
    ports.close();
    const seen: MapMigration[] = [];
    const up2 = await loadObject('uplink', { root: fx.root, mapSizes: { bpfnet_ports: 2048 }, onMigrate: (m) => seen.push(m) });
    expect(seen).toEqual([expect.objectContaining({ map: 'bpfnet_ports', kept: true, copied: 1, from: expect.objectContaining({ maxEntries: 1024 }) })]);
    expect((await mapShow(up2.maps.bpfnet_ports!)).max_entries).toBe(2048);
    expect(up2.reused).toBe(false);
    expect((await progShow(up2.progs.from_uplink!)).map_ids).toContain((await mapShow(up2.maps.bpfnet_ports!)).id);
    const again = TypedMap.open(mapsDir(fx.root), 'bpfnet_ports');
    expect(await again.toArray()).toEqual([[{ addr: '0.0.0.0', port: 8080, proto: 6 }, { backend_addr: '198.19.0.2', backend_port: 80, flags: 0 }]]);
    again.close();
  });

  it('a verifier rejection is E_VERIFIER with the kernel\'s reason, and pins nothing', async () => {
    const fx = await fixture();
    const src = await srcCopy();
    const cacheDir = await tempDir('cache');
    await writeFile(join(src, 'oob.c'), [
      '#include "lib/common.h"',
      '#include "lib/maps.h"',
      '',
      'SEC("tc")',
      'int oob_read(struct __sk_buff *skb)',
      '{',
      '\tvoid *data = (void *)(long)skb->data;',
      '',
      '\tmetric_inc(METRIC_PASS, skb->len);',
      '\treturn *(__u32 *)data ? TC_ACT_OK : TC_ACT_SHOT; /* no bounds check against data_end */',
      '}',
      '',
      'char _license[] SEC("license") = "Dual BSD/GPL";',
      '',
    ].join('\n'));

    const e = await rejection(loadObject('oob', { root: fx.root, srcDir: src, cacheDir }));
    expect(e).toBeInstanceOf(CommandError);
    expect(e.code).toBe('E_VERIFIER');
    expect(e.message).toMatch(/^kernel rejected program oob_read: /);
    // The reason is made of lines of the kernel's verifier log.
    const stderr = (e as CommandError).stderr;
    const log = /-- BEGIN PROG LOAD LOG --\n([\s\S]*?)-- END PROG LOAD LOG --/.exec(stderr)?.[1] ?? '';
    expect(log).toContain('invalid access to packet');
    const reason = e.message.replace(/^kernel rejected program oob_read: /, '');
    expect(reason).not.toBe('');
    const logLines = log.split('\n').map((l) => l.trim());
    for (const part of reason.split('; ')) expect(logLines).toContain(part);

    // No version dir and no scratch dir left behind.
    const left = existsSync(progsDir(fx.root)) ? await readdir(progsDir(fx.root)) : [];
    expect(left.filter((n) => n.startsWith('tmp-'))).toEqual([]);
    expect(left).toEqual([]);
    // The maps it asked for were created before loading, and still work.
    expect((await readdir(mapsDir(fx.root))).sort()).toEqual(MAP_NAMES);
  });

  // BUG (src/loader/load.ts, verifierMessage): it keeps only the last log
  // line, but the kernel reports a packet bounds error as two lines,
  // "invalid access to packet, off=0 size=4, R6(...)" then the hint
  // "R6 offset is outside of the packet", so the message loses the actual
  // error. Flip to `it` once verifierMessage keeps the lines after the last
  // instruction.
  it('the E_VERIFIER message names the failed access ("invalid access to packet")', async () => {
    const fx = await fixture();
    const src = await srcCopy();
    await writeFile(join(src, 'oob.c'), [
      '#include "lib/common.h"',
      'SEC("tc")',
      'int oob_read(struct __sk_buff *skb)',
      '{',
      '\treturn *(__u32 *)(void *)(long)skb->data ? TC_ACT_OK : TC_ACT_SHOT;',
      '}',
      'char _license[] SEC("license") = "Dual BSD/GPL";',
      '',
    ].join('\n'));
    const e = await rejection(loadObject('oob', { root: fx.root, srcDir: src, cacheDir: await tempDir('cache') }));
    expect(e.code).toBe('E_VERIFIER');
    expect(e.message).toContain('invalid access to packet');
  });
});

// ---- tc ------------------------------------------------------------------------

interface TcFilterJson {
  protocol: string;
  pref: number;
  kind: string;
  chain: number;
  options?: {
    handle?: string;
    bpf_name?: string;
    'direct-action'?: boolean;
    prog?: { id: number; name: string; tag: string };
  };
}

/** What iproute2 itself lists on the hook: `tc -j filter show dev D ingress|egress`. */
async function tcShow(t: TcTarget): Promise<TcFilterJson[]> {
  const { stdout } = await run('tc', ['-j', 'filter', 'show', 'dev', t.dev, t.direction], { netns: t.netns });
  return (stdout.trim() ? JSON.parse(stdout) : []) as TcFilterJson[];
}

/** The filter entries with options (tc also prints one header line per pref). */
async function tcShowFilters(t: TcTarget): Promise<TcFilterJson[]> {
  return (await tcShow(t)).filter((f) => f.options);
}

/** iproute2's view of one of our attachments, field by field. */
function tcViewOf(a: TcAttachment, name: string): TcFilterJson {
  return {
    protocol: 'all',
    pref: a.pref,
    kind: 'bpf',
    chain: 0,
    options: expect.objectContaining({
      handle: `0x${a.handle.toString(16)}`,
      bpf_name: name,
      'direct-action': true,
      prog: expect.objectContaining({ id: a.progId, name: a.progName, tag: a.tag }),
    }) as TcFilterJson['options'],
  };
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('tc attachment', () => {
  it('attach is idempotent, replace keeps one filter, detach is idempotent', async () => {
    const fx = await fixture();
    const up = await loadObject('uplink', { root: fx.root });
    const empty = await loadObject('empty', { root: fx.root });
    expect(Object.keys(empty.progs).sort()).toEqual(['empty_tc', 'empty_xdp']);
    const t: TcTarget = { netns: fx.netns, dev: 'd0', direction: 'ingress' };
    const upId = (await progShow(up.progs.from_uplink!)).id;
    const emptyId = (await progShow(empty.progs.empty_tc!)).id;

    expect(await listTc(t)).toEqual([]);
    const a1 = await attachTc({ ...t, pin: up.progs.from_uplink! });
    expect(a1).toMatchObject({ netns: fx.netns, dev: 'd0', direction: 'ingress', pref: TC_PREF, handle: TC_HANDLE, progId: upId, progName: 'from_uplink' });
    expect(a1.tag).toMatch(/^[0-9a-f]{16}$/);

    const a2 = await attachTc({ ...t, pin: up.progs.from_uplink! });
    expect(a2).toEqual(a1);
    expect(await listTc(t)).toEqual([a1]);

    const a3 = await attachTc({ ...t, pin: empty.progs.empty_tc! });
    expect(a3.progId).toBe(emptyId);
    expect(a3.progId).not.toBe(a1.progId);
    expect(a3.progName).toBe('empty_tc');
    expect([a3.pref, a3.handle]).toEqual([a1.pref, a1.handle]);
    expect(await listTc(t)).toEqual([a3]);
    // tc itself lists exactly one filter with a program on d0 ingress.
    const raw = JSON.parse((await run('tc', ['-j', 'filter', 'show', 'dev', 'd0', 'ingress'], { netns: fx.netns })).stdout) as { options?: unknown }[];
    expect(raw.filter((f) => f.options)).toHaveLength(1);
    // Egress is a separate hook, and d1 is untouched.
    expect(await listTc({ ...t, direction: 'egress' })).toEqual([]);
    expect(await listTc({ ...t, dev: 'd1' })).toEqual([]);

    expect(await detachTc(t)).toBe(true);
    expect(await listTc(t)).toEqual([]);
    expect(await detachTc(t)).toBe(false);
  });

  it('iproute2 sees exactly what was attached: clsact, pref, handle, program id/name/tag, direct-action', async () => {
    const fx = await fixture();
    const up = await loadObject('uplink', { root: fx.root });
    const empty = await loadObject('empty', { root: fx.root });
    const ing: TcTarget = { netns: fx.netns, dev: 'd0', direction: 'ingress' };
    const eg: TcTarget = { ...ing, direction: 'egress' };
    const a = await attachTc({ ...ing, pin: up.progs.from_uplink! });
    const b = await attachTc({ ...eg, pin: empty.progs.empty_tc!, pref: 200, handle: 7 });
    expect(a.progId).toBe((await progShow(up.progs.from_uplink!)).id);

    expect(await tcShowFilters(ing)).toEqual([tcViewOf(a, 'from_uplink')]);
    expect(await tcShowFilters(eg)).toEqual([tcViewOf(b, 'empty_tc')]);
    // One header entry per pref, then the filter: nothing else on either hook.
    expect(await tcShow(ing)).toHaveLength(2);
    const { stdout } = await run('tc', ['-j', 'qdisc', 'show', 'dev', 'd0'], { netns: fx.netns });
    const qdiscs = JSON.parse(stdout) as { kind: string; handle: string; parent?: string }[];
    expect(qdiscs.filter((q) => q.kind === 'clsact')).toEqual([expect.objectContaining({ handle: 'ffff:', parent: 'ffff:fff1' })]);
    // And the kernel runs it: bpftool lists it on d0's tc ingress hook.
    const net = JSON.parse((await run('bpftool', ['-j', 'net', 'show', 'dev', 'd0'], { netns: fx.netns })).stdout) as { tc?: { id: number; kind: string }[] }[];
    expect(net.flatMap((r) => r.tc ?? []).map((x) => [x.kind, x.id]).sort()).toEqual([['clsact/egress', b.progId], ['clsact/ingress', a.progId]].sort());

    expect(await detachTc(ing)).toBe(true);
    expect(await detachTc({ ...eg, pref: 200, handle: 7 })).toBe(true);
    expect(await tcShowFilters(ing)).toEqual([]);
    expect(await tcShowFilters(eg)).toEqual([]);
  });

  it('a filter attached with iproute2 (how bpfnet used to) is listed by its program name, replaced in place and detached', async () => {
    const fx = await fixture();
    const empty = await loadObject('empty', { root: fx.root });
    const up = await loadObject('uplink', { root: fx.root });
    const t: TcTarget = { netns: fx.netns, dev: 'd1', direction: 'ingress' };
    await run('tc', ['qdisc', 'replace', 'dev', 'd1', 'clsact'], { netns: fx.netns });
    await run('tc', ['filter', 'replace', 'dev', 'd1', 'ingress', 'pref', String(TC_PREF), 'handle', `0x${TC_HANDLE.toString(16)}`,
      'bpf', 'direct-action', 'object-pinned', empty.progs.empty_tc!], { netns: fx.netns });
    expect((await tcShowFilters(t))[0]?.options?.bpf_name).toBe('empty_tc:[*fsobj]');
    const listed = await listTc(t);
    expect(listed).toEqual([{ ...t, pref: TC_PREF, handle: TC_HANDLE, progId: (await progShow(empty.progs.empty_tc!)).id, progName: 'empty_tc', tag: expect.stringMatching(/^[0-9a-f]{16}$/) as string }]);

    const a = await attachTc({ ...t, pin: up.progs.from_uplink! });
    expect(await listTc(t)).toEqual([a]);
    expect(await tcShowFilters(t)).toEqual([tcViewOf(a, 'from_uplink')]);
    expect(await detachTc(t)).toBe(true);
    expect(await tcShowFilters(t)).toEqual([]);
  });

  it('ensureClsact keeps what is attached; detaching one hook leaves the other', async () => {
    const fx = await fixture();
    const empty = await loadObject('empty', { root: fx.root });
    const ing: TcTarget = { netns: fx.netns, dev: 'd0', direction: 'ingress' };
    const eg: TcTarget = { ...ing, direction: 'egress' };
    await ensureClsact({ netns: fx.netns, dev: 'd0' });
    await ensureClsact({ netns: fx.netns, dev: 'd0' });
    const a = await attachTc({ ...ing, pin: empty.progs.empty_tc! });
    const b = await attachTc({ ...eg, pin: empty.progs.empty_tc! });
    await ensureClsact({ netns: fx.netns, dev: 'd0' });
    expect(await listTc(ing)).toEqual([a]);
    expect(await listTc(eg)).toEqual([b]);
    expect(await detachTc(ing)).toBe(true);
    expect(await listTc(ing)).toEqual([]);
    expect(await listTc(eg)).toEqual([b]);
    expect(await detachTc(eg)).toBe(true);
  });

  it('detach removes only bpfnet\'s filter', async () => {
    const fx = await fixture();
    const empty = await loadObject('empty', { root: fx.root });
    const t: TcTarget = { netns: fx.netns, dev: 'd0', direction: 'egress' };
    await attachTc({ ...t, pin: empty.progs.empty_tc! });
    const other = await attachTc({ ...t, pin: empty.progs.empty_tc!, pref: 200, handle: 1 });
    expect(await listTc(t)).toHaveLength(2);
    expect(await detachTc(t)).toBe(true);
    expect(await listTc(t)).toEqual([other]);
    expect(await detachTc({ ...t, pref: 200, handle: 1 })).toBe(true);
    expect(await listTc(t)).toEqual([]);
  });

  it('a filter of another kind in bpfnet\'s slot: attach is refused, detach leaves it alone', async () => {
    const fx = await fixture();
    const empty = await loadObject('empty', { root: fx.root });
    const t: TcTarget = { netns: fx.netns, dev: 'd1', direction: 'ingress' };
    await run('tc', ['qdisc', 'replace', 'dev', 'd1', 'clsact'], { netns: fx.netns });
    await run('tc', ['filter', 'add', 'dev', 'd1', 'ingress', 'pref', String(TC_PREF), 'protocol', 'all', 'u32', 'match', 'u32', '0', '0'], { netns: fx.netns });
    const e = await rejection(attachTc({ ...t, pin: empty.progs.empty_tc! }));
    expect(e.code).toBe('E_NETLINK');
    expect(e.message).toContain('Specified filter kind does not match existing one');
    expect(await listTc(t)).toEqual([]);
    expect(await detachTc(t)).toBe(false);
    expect((await tcShow(t)).filter((f) => f.kind === 'u32').length).toBeGreaterThan(0);
  });

  it('refuses pins that are not tc programs, and closes every fd it opened', async () => {
    const fx = await fixture();
    const empty = await loadObject('empty', { root: fx.root });
    await loadObject('uplink', { root: fx.root }); // pins the maps
    const t: TcTarget = { netns: fx.netns, dev: 'd1', direction: 'ingress' };
    const before = openFds();
    const xdp = await rejection(attachTc({ ...t, pin: empty.progs.empty_xdp! }));
    expect(xdp.code).toBe('E_INVALID_ARGUMENT');
    expect(xdp.message).toMatch(/not a tc \(sched_cls\) program/);
    const map = await rejection(attachTc({ ...t, pin: join(mapsDir(fx.root), 'bpfnet_ports') }));
    expect(map.code).toBe('E_INVALID_ARGUMENT');
    expect((await rejection(attachTc({ ...t, pin: join(fx.root, 'no-such-pin') }))).code).toBe('E_NOT_FOUND');
    expect(openFds()).toBe(before);
    // Refused before anything changed on the device: not even a clsact.
    const qdiscs = async (): Promise<string[]> =>
      (JSON.parse((await run('tc', ['-j', 'qdisc', 'show', 'dev', 'd1'], { netns: fx.netns })).stdout) as { kind: string }[]).map((q) => q.kind);
    expect(await qdiscs()).not.toContain('clsact');
    for (let i = 0; i < 20; i++) await attachTc({ ...t, pin: empty.progs.empty_tc! });
    await listTc(t);
    await detachTc(t);
    expect(await detachTc(t)).toBe(false);
    expect(openFds()).toBe(before);
    expect(await qdiscs()).toContain('clsact');
  });

  it('attaches to many new devices in a row, each with exactly our filter', async () => {
    const fx = await fixture();
    const ep = await loadObject('endpoint', { root: fx.root });
    const pin = Object.values(ep.progs)[0]!;
    const r = Rtnl.open(fx.netns);
    try {
      for (let i = 0; i < 40; i++) {
        r.createVeth({ name: `tv${i}`, peerName: `tp${i}`, up: true });
        await attachTc({ netns: fx.netns, dev: `tv${i}`, direction: 'ingress', pin });
      }
      // Every new device carries exactly our filter (timing lives in bench/, not here).
      for (let i = 0; i < 40; i++) {
        const l = await listTc({ netns: fx.netns, dev: `tv${i}`, direction: 'ingress' });
        expect(l.map((a) => [a.pref, a.handle])).toEqual([[TC_PREF, TC_HANDLE]]);
      }
    } finally {
      r.close();
    }
  });

  it('a missing device is E_NOT_FOUND, and detaching from it is a no-op', async () => {
    const fx = await fixture();
    const empty = await loadObject('empty', { root: fx.root });
    const t: TcTarget = { netns: fx.netns, dev: 'nope0', direction: 'ingress' };
    const e = await rejection(attachTc({ ...t, pin: empty.progs.empty_tc! }));
    expect(e.code).toBe('E_NOT_FOUND');
    expect(e.message).toBe(`device nope0 not found in netns ${fx.netns}`);
    expect((await rejection(listTc(t))).code).toBe('E_NOT_FOUND');
    expect((await rejection(ensureClsact(t))).message).toBe(`device nope0 not found in netns ${fx.netns}`);
    expect(await detachTc(t)).toBe(false);
  });
});

// ---- XDP -----------------------------------------------------------------------

describe('XDP attachment', () => {
  it('native attach, overwrite with another program, detach', async () => {
    const fx = await fixture();
    const e1 = await loadObject('empty', { root: fx.root });
    // Same source, another -D: another version with its own program ids.
    // (Its own cache dir keeps test-only variants out of build/bpf/cache.)
    const e2 = await loadObject('empty', { root: fx.root, defines: { BPFNET_TEST_VARIANT: 2 }, cacheDir: await tempDir('cache') });
    expect(e2.hash).not.toBe(e1.hash);
    const id1 = (await progShow(e1.progs.empty_xdp!)).id;
    const id2 = (await progShow(e2.progs.empty_xdp!)).id;
    expect(id2).not.toBe(id1);
    const dev = { netns: fx.netns, dev: 'd0' };

    expect(await getXdp(dev)).toBeUndefined();
    const a = await attachXdp({ ...dev, pin: e1.progs.empty_xdp!, mode: 'native' });
    expect(a).toEqual({ netns: fx.netns, dev: 'd0', mode: 'driver', progId: id1 });
    expect(await getXdp(dev)).toEqual(a);

    // Attaching the same program again is fine.
    expect(await attachXdp({ ...dev, pin: e1.progs.empty_xdp!, mode: 'native' })).toEqual(a);
    // overwrite swaps in the other program: still exactly one on d0.
    const b = await attachXdp({ ...dev, pin: e2.progs.empty_xdp!, mode: 'native' });
    expect(b).toEqual({ ...a, progId: id2 });
    const shown = JSON.parse((await run('bpftool', ['-j', 'net', 'show'], { netns: fx.netns })).stdout) as { xdp?: { devname: string; id: number }[] }[];
    expect(shown.flatMap((r) => r.xdp ?? [])).toEqual([expect.objectContaining({ devname: 'd0', id: id2 })]);
    expect(await getXdp({ ...dev, dev: 'd1' })).toBeUndefined();

    expect(await detachXdp(dev)).toBe(true);
    expect(await getXdp(dev)).toBeUndefined();
    expect(await detachXdp(dev)).toBe(false);
  });

  it('generic mode attaches and detaches too', async () => {
    const fx = await fixture();
    const e = await loadObject('empty', { root: fx.root });
    const a = await attachXdp({ netns: fx.netns, dev: 'd1', pin: e.progs.empty_xdp!, mode: 'generic' });
    expect(a.mode).toBe('generic');
    expect(a.progId).toBe((await progShow(e.progs.empty_xdp!)).id);
    expect(await detachXdp({ netns: fx.netns, dev: 'd1' })).toBe(true);
    expect(await getXdp({ netns: fx.netns, dev: 'd1' })).toBeUndefined();
  });

  it('a missing device is E_NOT_FOUND', async () => {
    const fx = await fixture();
    const e = await loadObject('empty', { root: fx.root });
    const err = await rejection(attachXdp({ netns: fx.netns, dev: 'nope0', pin: e.progs.empty_xdp!, mode: 'native' }));
    expect(err.code).toBe('E_NOT_FOUND');
  });
});

// ---- pruneVersions -------------------------------------------------------------

describe('pruneVersions', () => {
  it('removes other versions of the object, keeps the named hash, others and scratch dirs', async () => {
    const fx = await fixture();
    const keep = await loadObject('empty', { root: fx.root });
    const variant = { defines: { BPFNET_TEST_VARIANT: 1 }, cacheDir: await tempDir('cache') };
    const old = await loadObject('empty', { root: fx.root, ...variant });
    const up = await loadObject('uplink', { root: fx.root });
    await mkdir(join(progsDir(fx.root), 'tmp-empty-deadbeef'));
    await mkdir(join(progsDir(fx.root), 'empty-notahash'));

    // An attached program of a pruned version keeps running.
    const t: TcTarget = { netns: fx.netns, dev: 'd0', direction: 'ingress' };
    const attached = await attachTc({ ...t, pin: old.progs.empty_tc! });

    expect(await pruneVersions(fx.root, 'empty', keep.hash)).toEqual([`empty-${old.hash}`]);
    expect((await readdir(progsDir(fx.root))).sort()).toEqual(
      [`empty-${keep.hash}`, 'empty-notahash', 'tmp-empty-deadbeef', `uplink-${up.hash}`].sort());
    expect(existsSync(keep.progs.empty_tc!)).toBe(true);
    expect(await listTc(t)).toEqual([attached]);
    expect(await pruneVersions(fx.root, 'empty', keep.hash)).toEqual([]);

    // The kept version is still reused as is.
    const again: LoadedObject = await loadObject('empty', { root: fx.root });
    expect(again.reused).toBe(true);
    expect(again.progs).toEqual(keep.progs);
    // And the pruned one is loaded afresh if asked for again.
    const reloaded = await loadObject('empty', { root: fx.root, ...variant });
    expect(reloaded.reused).toBe(false);
    expect(reloaded.hash).toBe(old.hash);
    await detachTc(t);
  });

  it('a root without programs has nothing to prune', async () => {
    const fx = await fixture();
    expect(await pruneVersions(fx.root, 'empty', '0000000000000000')).toEqual([]);
    expect(await pruneVersions(join(fx.root, 'no-such-dir'), 'empty', '0000000000000000')).toEqual([]);
  });
});

// ---- typed maps ------------------------------------------------------------------

const BACKENDS: BackendName[] = ['libbpf', 'bpftool'];

const pk = (port: number, addr = '0.0.0.0', proto = 6): PortKey => ({ addr, port, proto });
const pv = (backend_port: number, backend_addr = '198.19.0.2'): PortValue => ({ backend_addr, backend_port, flags: 0 });
const byKey = <K, V>(rows: [K, V][]): [K, V][] => [...rows].sort((a, b) => JSON.stringify(a[0]).localeCompare(JSON.stringify(b[0])));

/** The same sequence of operations, recorded; both backends must record the same. */
async function portsScenario(m: TypedMap<'bpfnet_ports'>): Promise<unknown[]> {
  const t: unknown[] = [];
  const snap = async (label: string) => t.push([label, byKey(await m.toArray())]);
  await snap('initially');
  t.push(['get missing', await m.get(pk(1))]);
  await m.set(pk(1), pv(10));
  await m.set(pk(2, '198.18.0.1', 17), pv(20, '198.19.0.3'));
  t.push(['get 1', await m.get(pk(1))]);
  t.push(['get 2', await m.get(pk(2, '198.18.0.1', 17))]);
  t.push(['get 2 other proto', await m.get(pk(2, '198.18.0.1', 6))]);
  t.push(['noexist on existing', await codeOf(m.set(pk(1), pv(99), 1))]);
  t.push(['exist on missing', await codeOf(m.set(pk(3), pv(99), 2))]);
  t.push(['exist on existing', await codeOf(m.set(pk(1), pv(11), 2))]);
  t.push(['get 1 updated', await m.get(pk(1))]);
  t.push(['delete 2', await m.delete(pk(2, '198.18.0.1', 17))]);
  t.push(['delete 2 again', await m.delete(pk(2, '198.18.0.1', 17))]);
  await snap('after deletes');
  await m.setMany(Array.from({ length: 20 }, (_, i) => [pk(100 + i), pv(1000 + i)] as [PortKey, PortValue]));
  await m.setMany([[pk(1), pv(12)]]);
  await snap('after setMany');
  await m.deleteMany([pk(100), pk(105), pk(119), pk(4242) /* absent */]);
  await snap('after deleteMany');
  await m.setMany([]);
  await m.deleteMany([]);
  t.push(['bad setMany', await codeOf(m.setMany([[pk(7), pv(7)], [pk(8), pv(70000)]]))]);
  t.push(['bad set', await codeOf(m.set({ addr: 'not-an-ip', port: 1, proto: 6 }, pv(1)))]);
  await snap('after bad input');
  await m.deleteMany((await m.toArray()).map(([k]) => k));
  await snap('emptied');
  return t;
}

describe('TypedMap on real pins', () => {
  let fx: Fixture | undefined;
  const setup = async (): Promise<Fixture> => {
    fx ??= await fixture();
    await loadObject('uplink', { root: fx.root, mapSizes: { bpfnet_addrs: 4 } });
    return fx;
  };

  it('libbpf and bpftool backends give identical results', async () => {
    const { mapDir } = await setup();
    const transcripts: Record<string, unknown[]> = {};
    for (const b of BACKENDS) {
      const m = TypedMap.open(mapDir, 'bpfnet_ports', b);
      try {
        expect(m.backend).toBe(b);
        transcripts[b] = await portsScenario(m);
      } finally {
        m.close();
      }
    }
    expect(transcripts.bpftool).toEqual(transcripts.libbpf);
    // And the transcript is right, not merely equal.
    const t = new Map(transcripts.libbpf!.map((x) => x as [string, unknown]));
    expect(t.get('initially')).toEqual([]);
    expect(t.get('get missing')).toBeUndefined();
    expect(t.get('get 1')).toEqual(pv(10));
    expect(t.get('get 2')).toEqual(pv(20, '198.19.0.3'));
    expect(t.get('get 2 other proto')).toBeUndefined();
    expect(t.get('noexist on existing')).toBe('E_COMMAND_FAILED');
    expect(t.get('exist on missing')).toBe('E_COMMAND_FAILED');
    expect(t.get('exist on existing')).toBe('ok');
    expect(t.get('get 1 updated')).toEqual(pv(11));
    expect([t.get('delete 2'), t.get('delete 2 again')]).toEqual([true, false]);
    expect(t.get('after deletes')).toEqual([[pk(1), pv(11)]]);
    expect(t.get('after setMany')).toHaveLength(21);
    expect(t.get('after setMany')).toContainEqual([pk(1), pv(12)]);
    const afterDel = t.get('after deleteMany') as [PortKey, PortValue][];
    expect(afterDel).toHaveLength(18);
    expect(afterDel.map(([k]) => k.port)).not.toContain(105);
    expect(t.get('bad setMany')).toBe('E_INVALID_ARGUMENT');
    expect(t.get('bad set')).toBe('E_INVALID_ARGUMENT');
    expect(t.get('after bad input')).toEqual(afterDel); // bad input wrote nothing
    expect(t.get('emptied')).toEqual([]);
  });

  it('what one backend writes the other reads, byte for byte', async () => {
    const { mapDir } = await setup();
    const lib = TypedMap.open(mapDir, 'bpfnet_ports', 'libbpf');
    const tool = TypedMap.open(mapDir, 'bpfnet_ports', 'bpftool');
    try {
      await lib.set(pk(8080, '198.18.0.1'), pv(80));
      await tool.set(pk(53, '0.0.0.0', 17), pv(5353, '198.19.0.9'));
      const want = byKey([[pk(8080, '198.18.0.1'), pv(80)], [pk(53, '0.0.0.0', 17), pv(5353, '198.19.0.9')]] as [PortKey, PortValue][]);
      expect(byKey(await lib.toArray())).toEqual(want);
      expect(byKey(await tool.toArray())).toEqual(want);
      // Network byte order on the wire: bpftool's own dump shows the key bytes.
      const dump = JSON.parse((await run('bpftool', ['-j', 'map', 'dump', 'pinned', lib.path])).stdout) as { key: string[] }[];
      expect(dump.map((e) => e.key.map((x) => x.replace(/^0x/, '')).join('')).sort()).toEqual(['00000000003511' + '00', 'c61200011f900600'].sort());
      await lib.deleteMany([pk(8080, '198.18.0.1'), pk(53, '0.0.0.0', 17)]);
      expect(await tool.toArray()).toEqual([]);
    } finally {
      lib.close();
      tool.close();
    }
  });

  it('inserting past max_entries is E_MAP_FULL (libbpf backend)', async () => {
    const { mapDir } = await setup();
    const m = TypedMap.open(mapDir, 'bpfnet_addrs', 'libbpf');
    try {
      expect((await mapShow(m.path)).max_entries).toBe(4);
      const five: [AddrKey, AddrValue][] = [1, 2, 3, 4, 5].map((i) => [{ addr: `198.18.0.${i}` }, { flags: 0 }]);
      const e = await rejection(m.setMany(five));
      expect(e.code).toBe('E_MAP_FULL');
      expect(e.message).toContain('is full');
      expect(await m.toArray()).toHaveLength(4);
      await m.deleteMany(five.map(([k]) => k));
      for (const [k, v] of five.slice(0, 4)) await m.set(k, v);
      const e2 = await rejection(m.set(five[4]![0], five[4]![1]));
      expect(e2.code).toBe('E_MAP_FULL');
      // Updating an existing key of a full map still works.
      await m.set(five[0]![0], { flags: 1 });
      expect(await m.get(five[0]![0])).toEqual({ flags: 1 });
      await m.deleteMany(five.map(([k]) => k));
      expect(await m.toArray()).toEqual([]);
    } finally {
      m.close();
    }
  });

  /** Overfill bpfnet_addrs (max_entries 4) through the bpftool backend; returns what each way of inserting threw. */
  async function overfillWithBpftool(mapDir: string): Promise<{ code: string; message: string }[]> {
    const m = TypedMap.open(mapDir, 'bpfnet_addrs', 'bpftool');
    const out: { code: string; message: string }[] = [];
    const attempt = async (p: Promise<unknown>) => {
      try {
        await p;
        out.push({ code: 'ok', message: '' });
      } catch (e) {
        out.push({ code: e instanceof BpfnetError ? e.code : 'non-bpfnet', message: (e as Error).message });
      }
    };
    try {
      const five: [AddrKey, AddrValue][] = [1, 2, 3, 4, 5].map((i) => [{ addr: `198.18.0.${i}` }, { flags: 0 }]);
      await attempt(m.setMany(five));
      expect(await m.toArray()).toHaveLength(4);
      await attempt(m.set(five[4]![0], five[4]![1]));
      expect(await m.toArray()).toHaveLength(4);
      await m.deleteMany(five.map(([k]) => k));
      expect(await m.toArray()).toEqual([]);
    } finally {
      m.close();
    }
    return out;
  }

  it('inserting past max_entries with the bpftool backend fails and stores 4 entries', async () => {
    const { mapDir } = await setup();
    const got = await overfillWithBpftool(mapDir);
    console.info(`bpftool backend, map full: ${got.map((g) => `${g.code} (${g.message})`).join('; ')}`);
    for (const g of got) {
      expect(['E_MAP_FULL', 'E_COMMAND_FAILED']).toContain(g.code);
      expect(g.message).toMatch(/full|Argument list too long/);
    }
  });

  // BUG (src/maps/backend.ts, BpftoolBackend.set/setBatch): a full map comes
  // back as a generic E_COMMAND_FAILED ("... Argument list too long"), not
  // E_MAP_FULL as from the libbpf backend. Flip to `it` once fixed.
  it('inserting past max_entries with the bpftool backend is E_MAP_FULL', async () => {
    const { mapDir } = await setup();
    expect((await overfillWithBpftool(mapDir)).map((g) => g.code)).toEqual(['E_MAP_FULL', 'E_MAP_FULL']);
  });

  it('TypedMap.open on a per-CPU map is E_INVALID_ARGUMENT, for either backend', async () => {
    const { mapDir } = await setup();
    for (const b of BACKENDS) {
      let err: unknown;
      try {
        TypedMap.open(mapDir, 'bpfnet_metrics', b).close();
      } catch (e) {
        err = e;
      }
      expect(err, b).toBeInstanceOf(BpfnetError);
      expect((err as BpfnetError).code).toBe('E_INVALID_ARGUMENT');
      expect((err as BpfnetError).message).toContain('readPerCpu');
    }
    // The raw libbpf backend refuses it too (it would overrun its buffers).
    let raw: unknown;
    try {
      openBackend(join(mapDir, 'bpfnet_metrics'), 'libbpf').close();
    } catch (e) {
      raw = e;
    }
    expect((raw as BpfnetError).code).toBe('E_INVALID_ARGUMENT');
  });

  it('opening a map that is not pinned is E_NOT_FOUND (libbpf)', async () => {
    const fx2 = await fixture();
    let err: unknown;
    try {
      TypedMap.open(mapsDir(fx2.root), 'bpfnet_ports', 'libbpf');
    } catch (e) {
      err = e;
    }
    expect((err as BpfnetError).code).toBe('E_NOT_FOUND');
  });

  it('readPerCpu(bpfnet_metrics) returns METRIC_MAX rows of bigint sums', async () => {
    const { mapDir, root, netns } = await setup();
    const rows = await readPerCpu(mapDir, 'bpfnet_metrics');
    expect(rows).toHaveLength(MetricId.METRIC_MAX);
    expect(rows.map(([k]) => k)).toEqual(Array.from({ length: MetricId.METRIC_MAX }, (_, i) => i));
    for (const [, v] of rows) {
      expect(typeof v.packets).toBe('bigint');
      expect(typeof v.bytes).toBe('bigint');
    }

    // Count one packet: a 60-byte ARP frame passes from_uplink as METRIC_PASS.
    const up = await loadObject('uplink', { root, mapSizes: { bpfnet_addrs: 4 } });
    const frame = Buffer.alloc(60);
    frame.fill(0xff, 0, 6);
    Buffer.from('020000000001', 'hex').copy(frame, 6);
    frame.writeUInt16BE(0x0806, 12);
    const before = new Map(rows);
    const r = await testRun(up.progs.from_uplink!, frame, { netns });
    expect(r.retval).toBe(0);
    const after = new Map(await readPerCpu(mapDir, 'bpfnet_metrics'));
    for (const [id, v] of after) {
      const b = before.get(id)!;
      const delta = { packets: v.packets - b.packets, bytes: v.bytes - b.bytes };
      expect(delta, `metric ${id}`).toEqual(id === MetricId.METRIC_PASS ? { packets: 1n, bytes: 60n } : { packets: 0n, bytes: 0n });
    }
  });
});
