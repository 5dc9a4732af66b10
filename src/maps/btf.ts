/**
 * Reads the map ABI (map definitions, key/value structs, enums) out of a
 * compiled BPF object's BTF, via `bpftool btf dump ... format raw -j`.
 * The result drives code generation and the drift check, so the C header
 * stays the only place a layout is written by hand.
 */
import { run } from '../util/exec.js';
import { BpfnetError } from '../util/errors.js';

/** Field kinds: semantic typedefs from bpf/lib/maps.h, then plain integers. */
export type FieldKind = 'ip4_be' | 'port_be' | 'mac' | 'u8' | 'u16' | 'u32' | 'u64' | 'pad';

export interface FieldLayout {
  name: string;
  offset: number;
  size: number;
  kind: FieldKind;
}

export interface StructLayout {
  name: string;
  size: number;
  fields: FieldLayout[];
}

export interface EnumLayout {
  name: string;
  values: Record<string, number>;
}

export interface MapLayout {
  name: string;
  type: number;
  /** Struct name, or a scalar kind / enum name for scalar keys (array maps). */
  key: string;
  value: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

export interface Abi {
  maps: MapLayout[];
  structs: StructLayout[];
  enums: EnumLayout[];
}

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number; bitfield_size?: number }[];
  values?: { name: string; val: number }[];
  vars?: { type_id: number }[];
}

const SCALAR_TYPEDEFS: Record<string, FieldKind> = {
  ip4_be: 'ip4_be',
  port_be: 'port_be',
  __u8: 'u8',
  __u16: 'u16',
  __u32: 'u32',
  __u64: 'u64',
};

export async function readBtf(objectPath: string): Promise<BtfType[]> {
  const { stdout } = await run('bpftool', ['btf', 'dump', 'file', objectPath, 'format', 'raw', '-j']);
  return (JSON.parse(stdout) as { types: BtfType[] }).types;
}

/** Extract the ABI from BTF types. Pure; throws on layouts the codecs cannot express. */
export function abiFromBtf(types: BtfType[]): Abi {
  const byId = new Map(types.map((t) => [t.id, t]));
  const get = (id: number): BtfType => {
    const t = byId.get(id);
    if (!t) throw new BpfnetError('E_MAP_SCHEMA', `BTF type id ${id} missing`);
    return t;
  };
  const skipQualifiers = (id: number): BtfType => {
    let t = get(id);
    while (t.kind === 'CONST' || t.kind === 'VOLATILE') t = get(t.type_id!);
    return t;
  };
  const structs = new Map<string, StructLayout>();
  const enums = new Map<string, EnumLayout>();

  const fieldKind = (id: number, ctx: string): { kind: FieldKind; size: number } => {
    const t = skipQualifiers(id);
    if (t.kind === 'TYPEDEF') {
      if (t.name === 'mac_addr') return { kind: 'mac', size: 6 };
      const k = SCALAR_TYPEDEFS[t.name];
      if (k) return { kind: k, size: { ip4_be: 4, port_be: 2, mac: 6, u8: 1, u16: 2, u32: 4, u64: 8, pad: 0 }[k] };
      return fieldKind(t.type_id!, ctx);
    }
    if (t.kind === 'ARRAY') {
      const elem = fieldKind(t.type_id!, ctx);
      return { kind: 'pad', size: elem.size * (t.nr_elems ?? 0) };
    }
    if (t.kind === 'ENUM') return { kind: 'u32', size: t.size ?? 4 };
    throw new BpfnetError('E_MAP_SCHEMA', `${ctx}: unsupported BTF kind ${t.kind} (${t.name}); use the typedefs of bpf/lib/maps.h`);
  };

  const describe = (id: number, ctx: string): { name: string; size: number } => {
    const t = skipQualifiers(id);
    if (t.kind === 'STRUCT') {
      if (!structs.has(t.name)) {
        const fields: FieldLayout[] = (t.members ?? []).map((m) => {
          if (m.bitfield_size) throw new BpfnetError('E_MAP_SCHEMA', `${t.name}.${m.name}: bitfields are not part of the map ABI`);
          const { kind, size } = fieldKind(m.type_id, `${t.name}.${m.name}`);
          return { name: m.name, offset: m.bits_offset / 8, size, kind: m.name.startsWith('pad') ? 'pad' : kind };
        });
        structs.set(t.name, { name: t.name, size: t.size!, fields });
      }
      return { name: t.name, size: t.size! };
    }
    if (t.kind === 'ENUM') {
      if (!enums.has(t.name)) {
        enums.set(t.name, { name: t.name, values: Object.fromEntries((t.values ?? []).map((v) => [v.name, v.val])) });
      }
      return { name: `enum ${t.name}`, size: t.size ?? 4 };
    }
    const { kind, size } = fieldKind(id, ctx);
    return { name: kind, size };
  };

  // __uint(type, X) is encoded as `int (*type)[X]`: a pointer to an array of X.
  const uintMember = (id: number): number => get(get(id).type_id!).nr_elems ?? 0;
  const typeMember = (id: number): number => get(id).type_id!;

  const maps: MapLayout[] = [];
  for (const sec of types.filter((t) => t.kind === 'DATASEC' && t.name === '.maps')) {
    for (const v of sec.vars ?? []) {
      const variable = get(v.type_id);
      const def = get(variable.type_id!);
      const m: Partial<MapLayout> & { name: string } = { name: variable.name, flags: 0 };
      for (const mem of def.members ?? []) {
        if (mem.name === 'type') m.type = uintMember(mem.type_id);
        else if (mem.name === 'max_entries') m.maxEntries = uintMember(mem.type_id);
        else if (mem.name === 'map_flags') m.flags = uintMember(mem.type_id);
        else if (mem.name === 'key' || mem.name === 'value') {
          const d = describe(typeMember(mem.type_id), `${variable.name}.${mem.name}`);
          if (mem.name === 'key') [m.key, m.keySize] = [d.name, d.size];
          else [m.value, m.valueSize] = [d.name, d.size];
        }
      }
      if (m.type === undefined || m.key === undefined || m.value === undefined || m.maxEntries === undefined) {
        throw new BpfnetError('E_MAP_SCHEMA', `map ${m.name}: needs type, key, value and max_entries in its BTF definition`);
      }
      maps.push(m as MapLayout);
    }
  }
  // Enums used only as constants still matter (metric ids): collect them all.
  for (const t of types) if (t.kind === 'ENUM' && t.name && t.name !== '(anon)') describe(t.id, t.name);

  const byName = <T extends { name: string }>(a: T, b: T) => a.name.localeCompare(b.name);
  return {
    maps: maps.sort(byName),
    structs: [...structs.values()].sort(byName),
    enums: [...enums.values()].sort(byName),
  };
}

/** Merge the ABIs of several objects; the same name must mean the same layout everywhere. */
export function mergeAbi(parts: Abi[]): Abi {
  const out: Abi = { maps: [], structs: [], enums: [] };
  const seen = new Map<string, string>();
  for (const part of parts) {
    for (const [kind, list] of [['maps', part.maps], ['structs', part.structs], ['enums', part.enums]] as const) {
      for (const item of list) {
        const key = `${kind}:${item.name}`;
        const json = JSON.stringify(item);
        const prev = seen.get(key);
        if (prev === undefined) {
          seen.set(key, json);
          (out[kind] as (typeof item)[]).push(item);
        } else if (prev !== json) {
          throw new BpfnetError('E_MAP_SCHEMA', `${kind} ${item.name} differs between objects: ${prev} vs ${json}`);
        }
      }
    }
  }
  const byName = <T extends { name: string }>(a: T, b: T) => a.name.localeCompare(b.name);
  out.maps.sort(byName);
  out.structs.sort(byName);
  out.enums.sort(byName);
  return out;
}
