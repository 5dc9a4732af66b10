import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { render, GENERATED } from '../../src/api/gen.js';
import { decode, encode } from '../../src/api/schema.js';
import { FrameReader, frame, MAX_FRAME } from '../../src/api/transport.js';
import { METHODS } from '../../src/api/methods.js';
import { schema, PACKAGE } from '../../src/api/schema.js';

describe('api schema', () => {
  it('generated types match proto/bpfnet.proto (run `make gen` when this fails)', () => {
    expect(readFileSync(GENERATED, 'utf8')).toBe(render());
  });

  it('every method names request and response messages that exist', () => {
    for (const [m, spec] of Object.entries(METHODS)) {
      expect(() => schema().lookupType(`${PACKAGE}.${spec.req}`), m).not.toThrow();
      expect(() => schema().lookupType(`${PACKAGE}.${spec.res}`), m).not.toThrow();
    }
  });

  it('round-trips a network with maps, optional fields and a nested message', () => {
    const n = {
      id: 'a'.repeat(64), name: 'n1', driver: 'bridge', created: '2026-01-01T00:00:00.000Z', internal: true, attachable: false,
      labels: { a: 'b' }, options: { 'com.docker.network.bridge.name': 'br1' },
      ipam: { subnet: '10.0.0.0/24', gateway: '10.0.0.1', auxAddresses: { r: '10.0.0.9' } },
      bridgeName: 'br1', mtu: 1400, icc: false, masquerade: true, hostBindingIpv4: '0.0.0.0', predefined: false,
    };
    const back = decode('Network', encode('Network', n));
    expect(back).toMatchObject(n);
    expect(back.hostIpv4).toBeUndefined();
    expect(back.ipam?.ipRange).toBeUndefined();
  });

  it('decodes defaults for absent fields and refuses malformed bytes with a clear error', () => {
    expect(decode('SandboxCreateRequest', new Uint8Array())).toMatchObject({ name: '', publish: [], publishAll: false, dns: [] });
    expect(() => decode('Network', Uint8Array.from([0x0a, 0xff, 0xff]))).toThrow(/malformed Network message/);
  });

  it('refuses a wrongly typed field before encoding', () => {
    expect(() => encode('Network', { mtu: 'big' as unknown as number })).toThrow(/Network: mtu/);
  });
});

describe('framing', () => {
  it('reassembles frames split and merged arbitrarily', () => {
    const a = frame(Buffer.from('hello'));
    const b = frame(Buffer.from(''));
    const c = frame(Buffer.alloc(1000, 7));
    const all = Buffer.concat([a, b, c]);
    for (const step of [1, 3, 7, 64, all.length]) {
      const r = new FrameReader();
      const got: Buffer[] = [];
      for (let i = 0; i < all.length; i += step) got.push(...r.push(all.subarray(i, i + step)));
      expect(got.map((g) => g.length)).toEqual([5, 0, 1000]);
      expect(got[0]!.toString()).toBe('hello');
    }
  });

  it('refuses a frame larger than the limit', () => {
    const r = new FrameReader();
    const h = Buffer.alloc(4);
    h.writeUInt32BE(MAX_FRAME + 1, 0);
    expect(() => r.push(h)).toThrow(/exceeds/);
  });
});
