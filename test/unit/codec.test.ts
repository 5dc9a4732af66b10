/**
 * The BTF-driven codecs (src/maps/codec.ts): round trips for every struct of
 * the generated ABI, network byte order, zeroed padding, and validation
 * errors that name the offending field.
 */
import { describe, expect, it } from 'vitest';
import { bufToIp, codecForType, codecsForMap, ipToBuf, structCodec, type Codec } from '../../src/maps/codec.js';
import { maps, structs, type MapName } from '../../src/maps/generated/abi.js';
import type { FieldLayout, StructLayout } from '../../src/maps/btf.js';
import { BpfnetError } from '../../src/util/errors.js';

const STRUCT_NAMES = Object.keys(structs) as (keyof typeof structs)[];
const MAP_NAMES = Object.keys(maps) as MapName[];

/** A deterministic, non-trivial value for every field kind (n varies it). */
function sampleField(f: FieldLayout, n: number): unknown {
  switch (f.kind) {
    case 'ip4_be': return `${10 + n}.${(f.offset * 7 + n) % 256}.${200 + (n % 50)}.${1 + f.offset}`;
    case 'port_be': return (0x1234 + n * 977 + f.offset) & 0xffff;
    case 'mac': return ['02', '42', (n & 0xff).toString(16).padStart(2, '0'), (f.offset & 0xff).toString(16).padStart(2, '0'), 'be', 'ef'].join(':');
    case 'u8': return (0xa5 + n + f.offset) & 0xff;
    case 'u16': return (0xbeef + n * 31 + f.offset) & 0xffff;
    case 'u32': return (0xdeadbeef + n * 7919 + f.offset) >>> 0;
    case 'u64': return 0x0123456789abcdefn + BigInt(n) * 0x1000000001n + BigInt(f.offset);
    case 'pad': return undefined;
  }
}

function sample(layout: StructLayout, n = 0): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const f of layout.fields) if (f.kind !== 'pad') o[f.name] = sampleField(f, n);
  return o;
}

function errorOf(fn: () => unknown): BpfnetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfnetError);
    return e as BpfnetError;
  }
  throw new Error('expected a throw');
}

function expectInvalid(fn: () => unknown, ...mention: (string | RegExp)[]): BpfnetError {
  const e = errorOf(fn);
  expect(e.code).toBe('E_INVALID_ARGUMENT');
  for (const m of mention) expect(e.message).toMatch(typeof m === 'string' ? new RegExp(m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : m);
  return e;
}

describe('codec round trips', () => {
  it('the generated ABI has structs to test', () => {
    expect(STRUCT_NAMES.length).toBeGreaterThanOrEqual(7);
  });

  for (const name of STRUCT_NAMES) {
    describe(`struct ${name}`, () => {
      const layout = structs[name] as StructLayout;
      const codec = codecForType(name);

      it('encodes to exactly the struct size', () => {
        expect(codec.size).toBe(layout.size);
        expect(codec.encode(sample(layout)).length).toBe(layout.size);
      });

      it('decode(encode(v)) === v for several values', () => {
        for (let n = 0; n < 5; n++) {
          const v = sample(layout, n);
          expect(codec.decode(codec.encode(v))).toEqual(v);
        }
      });

      it('round trips all-zero and all-max values', () => {
        const zero: Record<string, unknown> = {};
        const max: Record<string, unknown> = {};
        for (const f of layout.fields) {
          if (f.kind === 'pad') continue;
          zero[f.name] = f.kind === 'ip4_be' ? '0.0.0.0' : f.kind === 'mac' ? '00:00:00:00:00:00' : f.kind === 'u64' ? 0n : 0;
          max[f.name] = f.kind === 'ip4_be' ? '255.255.255.255' : f.kind === 'mac' ? 'ff:ff:ff:ff:ff:ff' : f.kind === 'u64' ? 0xffffffffffffffffn
            : f.kind === 'u32' ? 0xffffffff : f.kind === 'u8' ? 0xff : 0xffff;
        }
        expect(codec.encode(zero).equals(Buffer.alloc(layout.size))).toBe(true);
        expect(codec.decode(codec.encode(zero))).toEqual(zero);
        expect(codec.decode(codec.encode(max))).toEqual(max);
      });

      it('zero-fills padding and never reports it', () => {
        const out = Buffer.alloc(layout.size, 0xff);
        codec.encode(sample(layout), out);
        for (const f of layout.fields.filter((x) => x.kind === 'pad')) {
          expect([...out.subarray(f.offset, f.offset + f.size)], `${name}.${f.name}`).toEqual(new Array(f.size).fill(0));
        }
        const decoded = codec.decode(out) as Record<string, unknown>;
        for (const f of layout.fields.filter((x) => x.kind === 'pad')) expect(decoded).not.toHaveProperty(f.name);
      });

      it('encodes at an offset without touching the bytes around it', () => {
        const out = Buffer.alloc(layout.size + 6, 0xee);
        const v = sample(layout, 3);
        codec.encode(v, out, 3);
        expect([...out.subarray(0, 3)]).toEqual([0xee, 0xee, 0xee]);
        expect([...out.subarray(3 + layout.size)]).toEqual([0xee, 0xee, 0xee]);
        expect(codec.decode(out, 3)).toEqual(v);
        expect(out.subarray(3, 3 + layout.size).equals(codec.encode(v))).toBe(true);
      });

      it('ignores extra properties', () => {
        const v = sample(layout, 1);
        expect(codec.encode({ ...v, extra: 'x' }).equals(codec.encode(v))).toBe(true);
      });
    });
  }

  it('every map has key and value codecs of its declared sizes', () => {
    for (const name of MAP_NAMES) {
      const { key, value } = codecsForMap(name);
      expect(key.size, `${name} key`).toBe(maps[name].keySize);
      expect(value.size, `${name} value`).toBe(maps[name].valueSize);
    }
  });

  it('u32 / enum scalar keys are little-endian u32', () => {
    const c = codecForType('enum metric_id') as Codec<number>;
    expect(c.size).toBe(4);
    expect(c.encode(0x01020304).toString('hex')).toBe('04030201');
    expect(c.decode(c.encode(7))).toBe(7);
    expect(codecForType('u32').decode(Buffer.from('ffffffff', 'hex'))).toBe(0xffffffff);
    expectInvalid(() => c.encode(-1), 'expected a u32');
    expectInvalid(() => c.encode(2 ** 32), 'expected a u32');
    expectInvalid(() => c.encode(1.5), 'expected a u32');
  });

  it('an unknown type has no codec', () => {
    expectInvalid(() => codecForType('struct_that_does_not_exist'), 'no layout for type struct_that_does_not_exist');
  });
});

describe('byte order', () => {
  const pk = codecForType('port_key');
  const pv = codecForType('port_value');
  const ctv = codecForType('nat_ct_value');

  it('port_be and ip4_be are network byte order', () => {
    // port_key: addr(4) port(2) proto(1) pad(1)
    expect(pk.encode({ addr: '198.18.0.1', port: 8080, proto: 6 }).toString('hex')).toBe('c6120001' + '1f90' + '06' + '00');
    expect(pv.encode({ backend_addr: '10.0.0.2', backend_port: 80, flags: 0 }).toString('hex')).toBe('0a000002' + '0050' + '0000');
  });

  it('host-order integers are little-endian', () => {
    // nat_ct_value: orig_addr(4) orig_port(2) flags u16(2) client_addr(4) pad(4) last_seen_ns u64(8)
    const b = ctv.encode({ orig_addr: '192.0.2.1', orig_port: 443, flags: 0x0102, client_addr: '10.0.0.9', last_seen_ns: 0x1122334455667788n });
    expect(b.toString('hex')).toBe('c0000201' + '01bb' + '0201' + '0a000009' + '00000000' + '8877665544332211');
    expect(codecForType('addr_value').encode({ flags: 0x01020304 }).toString('hex')).toBe('04030201');
  });

  it('decodes network-order bytes', () => {
    expect(pk.decode(Buffer.from('c61200011f901100', 'hex'))).toEqual({ addr: '198.18.0.1', port: 8080, proto: 17 });
  });

  it('ipToBuf / bufToIp', () => {
    const b = Buffer.alloc(6);
    ipToBuf('198.18.0.1', b, 1);
    expect(b.toString('hex')).toBe('00c612000100');
    expect(bufToIp(b, 1)).toBe('198.18.0.1');
  });
});

describe('validation', () => {
  const pk = codecForType('port_key');
  const pv = codecForType('port_value');
  const ctk = codecForType('nat_ct_key');
  const ctv = codecForType('nat_ct_value');
  const mv = codecForType('metric_value');
  const good = { addr: '198.18.0.1', port: 8080, proto: 6 };

  it('rejects bad IPv4 strings, naming the field', () => {
    for (const addr of ['300.1.1.1', '1.2.3', '1.2.3.4.5', 'localhost', '', '::1', ' 1.2.3.4', '1.2.3.-4']) {
      const e = expectInvalid(() => pk.encode({ ...good, addr }), 'port_key.addr', 'expected an IPv4 address');
      expect(e.message).toContain(JSON.stringify(addr));
    }
    expectInvalid(() => pk.encode({ ...good, addr: 0xc6120001 }), 'port_key.addr');
    expectInvalid(() => pv.encode({ backend_addr: '10.0.0.256', backend_port: 1, flags: 0 }), 'port_value.backend_addr');
  });

  it('rejects out-of-range ports, naming the field', () => {
    expectInvalid(() => pk.encode({ ...good, port: 70000 }), 'port_key.port', '0..65535', '70000');
    expectInvalid(() => pk.encode({ ...good, port: 65536 }), 'port_key.port');
    expectInvalid(() => pk.encode({ ...good, port: -1 }), 'port_key.port', '-1');
    expectInvalid(() => pk.encode({ ...good, port: 80.5 }), 'port_key.port');
    expectInvalid(() => pk.encode({ ...good, port: '80' }), 'port_key.port');
    expectInvalid(() => pk.encode({ ...good, port: Number.NaN }), 'port_key.port');
    expectInvalid(() => pv.encode({ backend_addr: '10.0.0.2', backend_port: 70000, flags: 0 }), 'port_value.backend_port');
    expect(pk.decode(pk.encode({ ...good, port: 65535 }))).toEqual({ ...good, port: 65535 });
  });

  it('rejects negative and oversized integers of every width', () => {
    expectInvalid(() => pk.encode({ ...good, proto: -6 }), 'port_key.proto', '0..255');
    expectInvalid(() => pk.encode({ ...good, proto: 256 }), 'port_key.proto');
    expectInvalid(() => pv.encode({ backend_addr: '10.0.0.2', backend_port: 1, flags: 65536 }), 'port_value.flags', '0..65535');
    expectInvalid(() => codecForType('addr_value').encode({ flags: -1 }), 'addr_value.flags', '0..4294967295');
    expectInvalid(() => codecForType('addr_value').encode({ flags: 2 ** 32 }), 'addr_value.flags');
    expectInvalid(() => mv.encode({ packets: -1n, bytes: 0n }), 'metric_value.packets', 'u64');
    expectInvalid(() => mv.encode({ packets: 0n, bytes: 2n ** 64n }), 'metric_value.bytes');
    // u64 fields take bigints only.
    expectInvalid(() => mv.encode({ packets: 1, bytes: 0n }), 'metric_value.packets');
  });

  it('rejects missing fields, naming them', () => {
    expectInvalid(() => pk.encode({ addr: '198.18.0.1', proto: 6 }), 'port_key.port', 'undefined');
    expectInvalid(() => pk.encode({ port: 80, proto: 6 }), 'port_key.addr');
    expectInvalid(() => pk.encode({ addr: '198.18.0.1', port: 80 }), 'port_key.proto');
    expectInvalid(() => ctk.encode({ saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 1, proto: 6 }), 'nat_ct_key.dport');
    expectInvalid(() => ctv.encode({ orig_addr: '10.0.0.1', orig_port: 1, flags: 0, client_addr: '0.0.0.0' }), 'nat_ct_value.last_seen_ns');
  });

  it('rejects non-objects', () => {
    for (const v of [null, undefined, 42, 'port', 1n, true]) {
      expectInvalid(() => pk.encode(v), 'port_key: expected an object');
    }
  });

  it('a failed encode throws instead of returning a half-written buffer', () => {
    // TypedMap.setMany encodes everything before writing anything, so a throw
    // here is what keeps bad input out of the map.
    const out = Buffer.alloc(8, 0xaa);
    expect(() => pk.encode({ ...good, proto: 999 }, out)).toThrow(BpfnetError);
  });
});

describe('structCodec on an ad-hoc layout', () => {
  it('handles explicit padding in the middle', () => {
    const layout: StructLayout = {
      name: 'adhoc',
      size: 12,
      fields: [
        { name: 'a', offset: 0, size: 1, kind: 'u8' },
        { name: 'pad0', offset: 1, size: 3, kind: 'pad' },
        { name: 'b', offset: 4, size: 4, kind: 'ip4_be' },
        { name: 'c', offset: 8, size: 2, kind: 'port_be' },
        { name: 'pad1', offset: 10, size: 2, kind: 'pad' },
      ],
    };
    const c = structCodec<{ a: number; b: string; c: number }>(layout);
    const out = Buffer.alloc(12, 0xff);
    c.encode({ a: 1, b: '1.2.3.4', c: 0x1f90 }, out);
    expect(out.toString('hex')).toBe('01000000' + '01020304' + '1f90' + '0000');
    expect(c.decode(out)).toEqual({ a: 1, b: '1.2.3.4', c: 8080 });
  });
});
