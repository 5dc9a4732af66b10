/**
 * Typed handles on bpfnet's pinned maps: keys and values are the TypeScript
 * objects generated from the C structs, encoded by the BTF-derived codecs.
 */
import { join } from 'node:path';
import { maps, type MapName, type MapTypes } from './generated/abi.js';
import { codecsForMap, type Codec } from './codec.js';
import { BpftoolBackend, openBackend, type BackendName, type RawBackend } from './backend.js';
import { PER_CPU_TYPES } from './types.js';
import { BpfnetError } from '../util/errors.js';

export const DEFAULT_BACKEND: BackendName = 'libbpf';

export function mapPinPath(mapDir: string, name: MapName): string {
  return join(mapDir, name);
}

export class TypedMap<N extends MapName> {
  private readonly key: Codec<MapTypes[N]['key']>;
  private readonly value: Codec<MapTypes[N]['value']>;

  private constructor(
    readonly name: N,
    readonly path: string,
    private readonly raw: RawBackend,
  ) {
    const c = codecsForMap(name);
    this.key = c.key as Codec<MapTypes[N]['key']>;
    this.value = c.value as Codec<MapTypes[N]['value']>;
  }

  /** Open the pinned map `name` under mapDir (e.g. /sys/fs/bpf/bpfnet/maps). */
  static open<N extends MapName>(mapDir: string, name: N, backend: BackendName = DEFAULT_BACKEND): TypedMap<N> {
    if (PER_CPU_TYPES.has(maps[name].type)) {
      throw new BpfnetError('E_INVALID_ARGUMENT', `map ${name} is per-CPU: read it with readPerCpu()`);
    }
    const path = mapPinPath(mapDir, name);
    return new TypedMap(name, path, openBackend(path, backend));
  }

  get backend(): BackendName {
    return this.raw.name;
  }

  async get(key: MapTypes[N]['key']): Promise<MapTypes[N]['value'] | undefined> {
    const v = await this.raw.get(this.key.encode(key));
    return v ? this.value.decode(v) : undefined;
  }

  async set(key: MapTypes[N]['key'], value: MapTypes[N]['value'], flags = 0): Promise<void> {
    await this.raw.set(this.key.encode(key), this.value.encode(value), flags);
  }

  async delete(key: MapTypes[N]['key']): Promise<boolean> {
    return this.raw.delete(this.key.encode(key));
  }

  async *entries(): AsyncIterable<[MapTypes[N]['key'], MapTypes[N]['value']]> {
    for await (const [k, v] of this.raw.entries()) yield [this.key.decode(k), this.value.decode(v)];
  }

  async toArray(): Promise<[MapTypes[N]['key'], MapTypes[N]['value']][]> {
    const out: [MapTypes[N]['key'], MapTypes[N]['value']][] = [];
    for await (const e of this.entries()) out.push(e);
    return out;
  }

  /** Encodes everything first, so bad input changes nothing. */
  async setMany(entries: [MapTypes[N]['key'], MapTypes[N]['value']][]): Promise<void> {
    const raw = entries.map(([k, v]) => [this.key.encode(k), this.value.encode(v)] as [Buffer, Buffer]);
    await this.raw.setBatch(raw);
  }

  async deleteMany(keys: MapTypes[N]['key'][]): Promise<void> {
    await this.raw.deleteBatch(keys.map((k) => this.key.encode(k)));
  }

  close(): void {
    this.raw.close();
  }
}

/** Sum of a per-CPU map's values, per key (metrics). */
export async function readPerCpu<N extends MapName>(mapDir: string, name: N): Promise<[MapTypes[N]['key'], MapTypes[N]['value']][]> {
  const { key, value } = codecsForMap(name);
  const rows = await new BpftoolBackend(mapPinPath(mapDir, name)).perCpuEntries();
  return rows.map(([k, perCpu]) => {
    const sum: Record<string, unknown> = {};
    for (const buf of perCpu) {
      for (const [f, v] of Object.entries(value.decode(buf) as Record<string, unknown>)) {
        sum[f] = typeof v === 'bigint' ? ((sum[f] as bigint | undefined) ?? 0n) + v : v;
      }
    }
    return [key.decode(k) as MapTypes[N]["key"], sum as unknown as MapTypes[N]["value"]];
  });
}
