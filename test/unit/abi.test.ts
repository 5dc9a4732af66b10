/**
 * The map ABI is written once, in bpf/lib/maps.h; src/maps/generated/abi.ts
 * is generated from the objects' BTF. These tests fail when the two drift,
 * prove that a header change is detected, and pin every size the kernel
 * checks (key/value sizes) against the layouts the codecs use.
 */
import { copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, GENERATED_PATH } from '../../src/maps/gen/cli.js';
import { abiFromBtf, readBtf, type Abi, type StructLayout } from '../../src/maps/btf.js';
import { codecForType, structCodec } from '../../src/maps/codec.js';
import { maps, structs } from '../../src/maps/generated/abi.js';
import { compile } from '../../src/loader/compile.js';
import { PACKAGE_ROOT } from '../../src/util/paths.js';

const OBJECTS = ['build/bpf/uplink.o', 'build/bpf/endpoint.o'];
const DRIFT_HINT = 'bpf/lib/maps.h changed: run `make gen`';

/** Fails (with what to do) unless the objects exist and are newer than every BPF source. */
async function requireBuiltObjects(): Promise<void> {
  const missing = OBJECTS.filter((o) => !existsSync(join(PACKAGE_ROOT, o)));
  if (missing.length) throw new Error(`${missing.join(', ')} missing: run \`make\` (or \`make bpf\`) first`);
  // Each object against its own entry file and every shared header (what make rebuilds it from).
  const headers = (await readdir(join(PACKAGE_ROOT, 'bpf', 'lib'))).filter((h) => h.endsWith('.h')).map((h) => `bpf/lib/${h}`);
  for (const o of OBJECTS) {
    const built = (await stat(join(PACKAGE_ROOT, o))).mtimeMs;
    for (const s of [`bpf/${basename(o, '.o')}.c`, ...headers]) {
      if (existsSync(join(PACKAGE_ROOT, s)) && (await stat(join(PACKAGE_ROOT, s))).mtimeMs > built) throw new Error(`${s} is newer than ${o}: run \`make\` first`);
    }
  }
}

describe('generated ABI drift check', () => {
  it('src/maps/generated/abi.ts is exactly what the objects\' BTF generates', async () => {
    await requireBuiltObjects();
    // generate() names its sources by basename, so absolute paths give the same text.
    const generated = await generate(OBJECTS.map((o) => join(PACKAGE_ROOT, o)));
    const committed = await readFile(join(PACKAGE_ROOT, GENERATED_PATH), 'utf8');
    expect(GENERATED_PATH).toBe('src/maps/generated/abi.ts');
    expect(generated, DRIFT_HINT).toBe(committed);
  });
});

describe('drift detection works', () => {
  let work: string;
  let original: Abi;
  let changed: Abi;
  let originalText: string;
  let changedText: string;

  /** Copy bpf/ to `dir` (optionally editing lib/maps.h), compile both objects, generate from copies named like build/bpf's. */
  async function buildCopy(dir: string, edit?: (mapsH: string) => string): Promise<{ abi: Abi; text: string }> {
    const src = join(dir, 'bpf');
    await cp(join(PACKAGE_ROOT, 'bpf'), src, { recursive: true });
    if (edit) {
      const h = join(src, 'lib', 'maps.h');
      const before = await readFile(h, 'utf8');
      const after = edit(before);
      expect(after, 'the edit of maps.h applied').not.toBe(before);
      await writeFile(h, after);
    }
    const out = join(dir, 'objs');
    await mkdir(out, { recursive: true });
    const objs: string[] = [];
    for (const name of ['uplink', 'endpoint']) {
      const o = await compile(name, { srcDir: src, cacheDir: join(dir, 'cache') });
      expect(o.cached).toBe(false);
      // generate() names its sources by basename: use the names make gives them.
      const dst = join(out, `${name}.o`);
      await copyFile(o.path, dst);
      objs.push(dst);
    }
    const parts = await Promise.all(objs.map(async (o) => abiFromBtf(await readBtf(o))));
    return { abi: parts[0]!, text: await generate(objs) };
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'bpfnet-abi-'));
    const orig = await buildCopy(join(work, 'orig'));
    // port_value.flags __u16 -> __u32: the struct grows from 8 to 12 bytes.
    const chg = await buildCopy(join(work, 'changed'), (h) =>
      h.replace(/(struct port_value \{[^}]*?)__u16(\s+flags;)/, '$1__u32$2'));
    [original, originalText, changed, changedText] = [orig.abi, orig.text, chg.abi, chg.text];
  }, 180_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('an unchanged copy generates the committed file (the pipeline itself is stable)', async () => {
    const committed = await readFile(join(PACKAGE_ROOT, GENERATED_PATH), 'utf8');
    expect(originalText, DRIFT_HINT).toBe(committed);
  });

  it('a changed field in maps.h changes the generated text', () => {
    expect(changedText).not.toBe(originalText);
    expect(changedText).toContain('/** struct port_value (12 bytes) */');
    expect(changedText).toMatch(/"bpfnet_ports": \{[^}]*"valueSize": 12/);
  });

  it('and changes the codec layout size of that struct', () => {
    const before = original.structs.find((s) => s.name === 'port_value')!;
    const after = changed.structs.find((s) => s.name === 'port_value')!;
    expect(before.size).toBe(8);
    expect(after.size).toBe(12);
    expect(after.fields.find((f) => f.name === 'flags')).toEqual({ name: 'flags', offset: 8, size: 4, kind: 'u32' });
    expect(structCodec(before).size).toBe(codecForType('port_value').size);
    expect(structCodec(after).size).not.toBe(codecForType('port_value').size);
    expect(structCodec(after).size).toBe(12);
    expect(changed.maps.find((m) => m.name === 'bpfnet_ports')!.valueSize).toBe(12);
    // Nothing else moved.
    const others = (a: Abi) => JSON.stringify({ ...a, structs: a.structs.filter((s) => s.name !== 'port_value'), maps: a.maps.filter((m) => m.name !== 'bpfnet_ports') });
    expect(others(changed)).toBe(others(original));
  });
});

describe('sizes pinned: layouts, maps and codecs agree', () => {
  const layouts = structs as Record<string, StructLayout>;
  const sizeOf = (type: string): number => layouts[type]?.size ?? (type === 'u32' || type.startsWith('enum ') ? 4 : NaN);

  for (const [name, m] of Object.entries(maps)) {
    it(`${name}: key ${m.key} is ${m.keySize} bytes, value ${m.value} is ${m.valueSize} bytes`, () => {
      expect(sizeOf(m.key)).toBe(m.keySize);
      expect(sizeOf(m.value)).toBe(m.valueSize);
      expect(codecForType(m.key).size).toBe(m.keySize);
      expect(codecForType(m.value).size).toBe(m.valueSize);
    });
  }

  it('every struct is used by a map', () => {
    const used = new Set(Object.values(maps).flatMap((m) => [m.key, m.value]));
    for (const s of Object.keys(structs)) expect(used, s).toContain(s);
  });

  for (const [name, s] of Object.entries(layouts)) {
    it(`struct ${name}: fields lie inside the struct, in order, without overlap`, () => {
      let end = 0;
      for (const f of s.fields) {
        expect(f.offset, `${name}.${f.name}`).toBeGreaterThanOrEqual(end);
        expect(f.size).toBeGreaterThan(0);
        end = f.offset + f.size;
      }
      expect(end).toBeLessThanOrEqual(s.size);
    });

    it(`struct ${name}: padding is zero-filled by the codec`, () => {
      const c = codecForType(name);
      const v: Record<string, unknown> = {};
      for (const f of s.fields) {
        if (f.kind === 'pad') continue;
        v[f.name] = f.kind === 'ip4_be' ? '255.255.255.255' : f.kind === 'mac' ? 'ff:ff:ff:ff:ff:ff' : f.kind === 'u64' ? 2n ** 64n - 1n : f.kind === 'u8' ? 255 : f.kind === 'u32' ? 2 ** 32 - 1 : 65535;
      }
      const out = Buffer.alloc(s.size, 0xab);
      c.encode(v, out);
      // Every byte not covered by a data field (explicit pad fields and
      // implicit holes alike) must be zero: hash maps compare whole keys.
      const data = new Set<number>();
      for (const f of s.fields) if (f.kind !== 'pad') for (let i = 0; i < f.size; i++) data.add(f.offset + i);
      for (let i = 0; i < s.size; i++) {
        if (!data.has(i)) expect(out[i], `${name} byte ${i}`).toBe(0);
        else expect(out[i], `${name} byte ${i}`).not.toBe(0xab);
      }
    });
  }

  it('map keys have no implicit holes (explicit pad fields cover them)', () => {
    for (const m of Object.values(maps)) {
      const s = layouts[m.key];
      if (!s) continue;
      const covered = s.fields.reduce((n, f) => n + f.size, 0);
      expect(covered, `${m.key} (key of ${m.name})`).toBe(s.size);
    }
  });

  it('explicit pad fields in keys are typed pad', () => {
    expect(layouts.port_key!.fields.find((f) => f.name === 'pad')).toEqual({ name: 'pad', offset: 7, size: 1, kind: 'pad' });
    expect(layouts.nat_ct_key!.fields.find((f) => f.name === 'pad')).toEqual({ name: 'pad', offset: 13, size: 3, kind: 'pad' });
  });
});
