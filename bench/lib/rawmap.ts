/**
 * Direct libbpf access to a pinned map for benchmark bookkeeping (filling,
 * counting and clearing outside the timed sections), through the same `bpf`
 * package src/maps/backend.ts uses. Not a second map layer: nothing timed as
 * "the map layer" goes through here.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
type BpfModule = typeof import('bpf');
let mod: BpfModule | undefined;
const bpf = (): BpfModule => (mod ??= require('bpf') as BpfModule);

export class RawPinnedMap {
  private readonly ref: import('bpf').MapRef;
  private readonly map: import('bpf').RawMap;

  constructor(readonly path: string) {
    this.ref = bpf().createMapRef(bpf().objGet(path), { transfer: true });
    this.map = new (bpf().RawMap)(this.ref);
  }

  get maxEntries(): number {
    return this.ref.maxEntries;
  }

  keys(): Buffer[] {
    return [...this.map.keys()].map((k) => Buffer.from(k));
  }

  count(): number {
    let n = 0;
    for (const _ of this.map.keys()) n++;
    return n;
  }

  /** BPF_MAP_UPDATE_BATCH in chunks (one syscall per chunk). */
  setBatch(entries: [Buffer, Buffer][], chunk = 8192): void {
    for (let i = 0; i < entries.length; i += chunk) this.map.setBatch(entries.slice(i, i + chunk));
  }

  /** BPF_MAP_DELETE_BATCH: fails on the first missing key (ENOENT). */
  deleteBatch(keys: Buffer[], chunk = 8192): void {
    for (let i = 0; i < keys.length; i += chunk) this.map.deleteBatch(keys.slice(i, i + chunk));
  }

  /** Remove every entry; returns how many there were. */
  clear(): number {
    const keys = this.keys();
    if (keys.length) this.deleteBatch(keys);
    return keys.length;
  }

  close(): void {
    this.ref.close();
  }
}

export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
