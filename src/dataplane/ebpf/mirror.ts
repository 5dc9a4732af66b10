/**
 * Keeping a pinned map equal to a desired set of entries, cheaply.
 *
 * The first sync of a map in this process reads what the map holds (a
 * restarted agent finds its pins full: that read is the reconcile); after
 * that, a mirror of the encoded entries this process wrote is the "current"
 * side of the diff, so publishing one more port with 50k published writes one
 * entry and reads none. Entries are compared encoded (hex), which is both the
 * identity the kernel uses and much cheaper than comparing decoded objects.
 *
 * Two phases so that bad input changes nothing: prepare() encodes and checks
 * capacity for every map, commit() writes. A failed write drops the mirror,
 * so the next sync re-reads the map instead of trusting a half-written state.
 */
import { codecsForMap } from '../../maps/codec.js';
import { openBackend, pinnedMapInfo } from '../../maps/backend.js';
import { maps, type MapName, type MapTypes } from '../../maps/generated/abi.js';
import { BpfnetError } from '../../util/errors.js';
import { join } from 'node:path';

export interface SyncCounts {
  added: number;
  updated: number;
  removed: number;
}

export interface PreparedSync {
  name: MapName;
  upsert: [Buffer, Buffer][];
  remove: Buffer[];
  /** The mirror after commit. */
  next: Map<string, string>;
  counts: SyncCounts;
}

const BPF_MAP_TYPE_ARRAY = 2;

export class MapMirror {
  private readonly mirrors = new Map<MapName, Map<string, string>>();

  constructor(readonly mapDir: string) {}

  private readonly encoded = new Map<MapName, WeakMap<object, string>>();
  private encodedOf(name: MapName): WeakMap<object, string> {
    let m = this.encoded.get(name);
    if (!m) this.encoded.set(name, (m = new WeakMap()));
    return m;
  }

  /** max_entries per map: fixed for the life of the pins this process loaded. */
  private readonly capacity = new Map<MapName, number>();
  private maxEntries(name: MapName): number {
    let n = this.capacity.get(name);
    if (n === undefined) {
      n = pinnedMapInfo(join(this.mapDir, name)).maxEntries;
      this.capacity.set(name, n);
    }
    return n;
  }

  private async current(name: MapName): Promise<Map<string, string>> {
    let m = this.mirrors.get(name);
    if (m) return m;
    m = new Map();
    const raw = openBackend(join(this.mapDir, name), 'libbpf');
    try {
      for await (const [k, v] of raw.entries()) m.set(k.toString('hex'), v.toString('hex'));
    } finally {
      raw.close();
    }
    this.mirrors.set(name, m);
    return m;
  }

  /** Encode and diff. Throws E_MAP_FULL before anything is written when the desired set does not fit. */
  async prepare<N extends MapName>(name: N, desired: [MapTypes[N]['key'], MapTypes[N]['value']][]): Promise<PreparedSync> {
    const c = codecsForMap(name);
    const want = new Map<string, string>();
    const hex = this.encodedOf(name);
    // Frozen entry objects (portEntries') keep their encoding across applies.
    const enc = (o: unknown, codec: { encode(x: never): Buffer }): string => {
      const cacheable = typeof o === 'object' && o !== null && Object.isFrozen(o);
      let h = cacheable ? hex.get(o) : undefined;
      if (h === undefined) {
        h = codec.encode(o as never).toString('hex');
        if (cacheable) hex.set(o, h);
      }
      return h;
    };
    for (const [k, v] of desired) want.set(enc(k, c.key), enc(v, c.value));
    const max = this.maxEntries(name);
    if (want.size > max) {
      throw new BpfnetError('E_MAP_FULL', `map ${name} holds at most ${max} entries but ${want.size} are needed: raise it with --map-size ${name}=N`, { map: name, maxEntries: max, needed: want.size });
    }
    const cur = await this.current(name);
    const upsert: [Buffer, Buffer][] = [];
    const counts: SyncCounts = { added: 0, updated: 0, removed: 0 };
    for (const [k, v] of want) {
      const have = cur.get(k);
      if (have === v) continue;
      if (have === undefined) counts.added++;
      else counts.updated++;
      upsert.push([Buffer.from(k, 'hex'), Buffer.from(v, 'hex')]);
    }
    // Array slots always exist: nothing to delete there.
    const remove: Buffer[] = [];
    if (maps[name].type !== BPF_MAP_TYPE_ARRAY) {
      for (const k of cur.keys()) if (!want.has(k)) remove.push(Buffer.from(k, 'hex'));
      counts.removed = remove.length;
    }
    return { name, upsert, remove, next: want, counts };
  }

  async commit(p: PreparedSync): Promise<void> {
    if (p.upsert.length === 0 && p.remove.length === 0) {
      this.mirrors.set(p.name, p.next);
      return;
    }
    const raw = openBackend(join(this.mapDir, p.name), 'libbpf');
    try {
      // Deletes first: a full map makes room before new entries arrive.
      if (p.remove.length) await raw.deleteBatch(p.remove);
      if (p.upsert.length) await raw.setBatch(p.upsert);
      this.mirrors.set(p.name, p.next);
    } catch (e) {
      this.mirrors.delete(p.name);
      throw e;
    } finally {
      raw.close();
    }
  }

  /**
   * Upsert and delete a few entries, in O(change): publishing one more port
   * with 50k published encodes and writes one entry. Same guarantees as
   * prepare+commit: E_MAP_FULL before any write, a failed write drops the mirror.
   */
  async patch<N extends MapName>(name: N, upsert: [MapTypes[N]['key'], MapTypes[N]['value']][], remove: MapTypes[N]['key'][]): Promise<SyncCounts & { removedKeys: Buffer[] }> {
    const c = codecsForMap(name);
    const cur = await this.current(name);
    const up: [Buffer, Buffer][] = [];
    const counts = { added: 0, updated: 0, removed: 0 };
    const delKeys: Buffer[] = [];
    const upKeys = new Set<string>();
    for (const [k, v] of upsert) {
      const kb = c.key.encode(k);
      const vb = c.value.encode(v);
      const kh = kb.toString('hex');
      upKeys.add(kh);
      const have = cur.get(kh);
      if (have === vb.toString('hex')) continue;
      if (have === undefined) counts.added++;
      else counts.updated++;
      up.push([kb, vb]);
    }
    for (const k of remove) {
      const kb = c.key.encode(k);
      const kh = kb.toString('hex');
      if (!upKeys.has(kh) && cur.has(kh)) delKeys.push(kb);
    }
    counts.removed = delKeys.length;
    const max = this.maxEntries(name);
    const needed = cur.size + counts.added - counts.removed;
    if (needed > max) {
      throw new BpfnetError('E_MAP_FULL', `map ${name} holds at most ${max} entries but ${needed} are needed: raise it with --map-size ${name}=N`, { map: name, maxEntries: max, needed });
    }
    if (up.length === 0 && delKeys.length === 0) return { ...counts, removedKeys: [] };
    const raw = openBackend(join(this.mapDir, name), 'libbpf');
    try {
      if (delKeys.length) await raw.deleteBatch(delKeys);
      if (up.length) await raw.setBatch(up);
    } catch (e) {
      this.mirrors.delete(name);
      throw e;
    } finally {
      raw.close();
    }
    for (const k of delKeys) cur.delete(k.toString('hex'));
    for (const [k, v] of up) cur.set(k.toString('hex'), v.toString('hex'));
    return { ...counts, removedKeys: delKeys };
  }

  /** Delete these keys where present (missing is fine): counters of unpublished ports. */
  async deleteKeys(name: MapName, keys: Buffer[]): Promise<number> {
    if (keys.length === 0) return 0;
    const raw = openBackend(join(this.mapDir, name), 'libbpf');
    try {
      let n = 0;
      for (const k of keys) if (await raw.delete(k)) n++;
      return n;
    } finally {
      raw.close();
    }
  }
}
