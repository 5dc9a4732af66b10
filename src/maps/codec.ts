/**
 * Binary codecs for map keys and values, driven by the BTF-generated layouts
 * in generated/abi.ts. Encoding validates every field (bad input gets a clear
 * error naming the field) and zeroes padding, which hashing depends on.
 */
import { isIPv4 } from 'node:net';
import type { FieldKind, FieldLayout } from './btf.js';
import { structs, type MapName, maps } from './generated/abi.js';
import { invalidArgument } from '../util/errors.js';

export interface Codec<T> {
  readonly size: number;
  encode(value: T, out?: Buffer, offset?: number): Buffer;
  decode(buf: Buffer, offset?: number): T;
}

interface LayoutLike {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly FieldLayout[];
}

const MAX: Partial<Record<FieldKind, number>> = { port_be: 0xffff, u8: 0xff, u16: 0xffff, u32: 0xffffffff };

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

export function ipToBuf(ip: string, out: Buffer, off: number): void {
  const parts = ip.split('.');
  for (let i = 0; i < 4; i++) out[off + i] = Number(parts[i]);
}

export function bufToIp(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

function writeField(f: FieldLayout, v: unknown, out: Buffer, off: number, where: string): void {
  const o = off + f.offset;
  if (f.kind === 'pad') return;
  if (f.kind === 'ip4_be') {
    if (typeof v !== 'string' || !isIPv4(v)) throw invalidArgument(`${where}.${f.name}: expected an IPv4 address like 192.0.2.1, got ${JSON.stringify(v)}`);
    ipToBuf(v, out, o);
    return;
  }
  if (f.kind === 'mac') {
    if (typeof v !== 'string' || !MAC_RE.test(v)) throw invalidArgument(`${where}.${f.name}: expected a MAC address like 02:42:c0:a8:00:02, got ${JSON.stringify(v)}`);
    const b = v.split(':');
    for (let i = 0; i < 6; i++) out[o + i] = Number.parseInt(b[i]!, 16);
    return;
  }
  if (f.kind === 'u64') {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) throw invalidArgument(`${where}.${f.name}: expected a u64 bigint, got ${String(v)}`);
    out.writeBigUInt64LE(v, o);
    return;
  }
  const max = MAX[f.kind]!;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw invalidArgument(`${where}.${f.name}: expected an integer 0..${max}, got ${JSON.stringify(v)}`);
  }
  switch (f.kind) {
    case 'port_be': out.writeUInt16BE(v, o); break;
    case 'u8': out.writeUInt8(v, o); break;
    case 'u16': out.writeUInt16LE(v, o); break;
    case 'u32': out.writeUInt32LE(v, o); break;
  }
}

function readField(f: FieldLayout, buf: Buffer, off: number): unknown {
  const o = off + f.offset;
  switch (f.kind) {
    case 'ip4_be': return bufToIp(buf, o);
    case 'port_be': return buf.readUInt16BE(o);
    case 'mac': return [...buf.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
    case 'u8': return buf.readUInt8(o);
    case 'u16': return buf.readUInt16LE(o);
    case 'u32': return buf.readUInt32LE(o);
    case 'u64': return buf.readBigUInt64LE(o);
    default: return undefined;
  }
}

export function structCodec<T>(layout: LayoutLike): Codec<T> {
  const fields = layout.fields.filter((f) => f.kind !== 'pad');
  return {
    size: layout.size,
    encode(value: T, out = Buffer.alloc(layout.size), offset = 0): Buffer {
      if (typeof value !== 'object' || value === null) throw invalidArgument(`${layout.name}: expected an object`);
      out.fill(0, offset, offset + layout.size);
      for (const f of fields) writeField(f, (value as Record<string, unknown>)[f.name], out, offset, layout.name);
      return out;
    },
    decode(buf: Buffer, offset = 0): T {
      const o: Record<string, unknown> = {};
      for (const f of fields) o[f.name] = readField(f, buf, offset);
      return o as T;
    },
  };
}

/** u32 scalar (array-map indexes, enum keys). */

const scalar: Codec<number> = {
  size: 4,
  encode: (v, out = Buffer.alloc(4), off = 0) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw invalidArgument(`expected a u32, got ${v}`);
    out.writeUInt32LE(v, off);
    return out;
  },
  decode: (buf, off = 0) => buf.readUInt32LE(off),
};

/** Codec for a map's key or value type name as the ABI records it. */
export function codecForType(name: string): Codec<unknown> {
  if (name.startsWith('enum ') || name === 'u32') return scalar as Codec<unknown>;
  const layout = (structs as Record<string, LayoutLike>)[name];
  if (!layout) throw invalidArgument(`no layout for type ${name} in the map ABI`);
  return structCodec(layout);
}

export function codecsForMap(name: MapName): { key: Codec<unknown>; value: Codec<unknown> } {
  const m = maps[name];
  return { key: codecForType(m.key), value: codecForType(m.value) };
}
