/** src/model/ids.ts: ids, references, MACs and device names. */
import { describe, expect, it } from 'vitest';
import {
  BRIDGE_PREFIX,
  bridgeDeviceName,
  hostVethName,
  isFullId,
  macFromIpv4,
  newId,
  resolveRef,
  shortId,
  VETH_PREFIX,
} from '../../src/model/ids.js';
import { validateDeviceName } from '../../src/model/names.js';
import { fails } from '../harness/errors.js';


describe('ids', () => {
  it('newId: 64 lowercase hex, different every time', () => {
    const ids = new Set(Array.from({ length: 200 }, () => newId()));
    expect(ids.size).toBe(200);
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      expect(isFullId(id)).toBe(true);
    }
  });

  it('newId skips ids whose short form is all digits (like Docker)', () => {
    const digits = new Uint8Array(32).fill(0x11); // "1111..."
    const mixed = new Uint8Array(32).fill(0xab);
    let calls = 0;
    const id = newId(() => (calls++ === 0 ? digits : mixed));
    expect(id).toBe('ab'.repeat(32));
    expect(calls).toBe(2);
  });

  it('newId refuses a broken random source', () => {
    fails(() => newId(() => new Uint8Array(4)));
    fails(() => newId(() => new Uint8Array(32).fill(0x12)));
  });

  it('shortId and isFullId', () => {
    expect(shortId('48bcb226d17e09092378deb2c4e9a070edb64f5bc6e0b0378edd45f5f248a6f2')).toBe('48bcb226d17e');
    expect(isFullId('48bcb226d17e')).toBe(false);
    expect(isFullId('48BCB226D17E09092378DEB2C4E9A070EDB64F5BC6E0B0378EDD45F5F248A6F2')).toBe(false);
  });
});

describe('resolveRef', () => {
  // The seed's networks.
  const nets = [
    { id: '48bcb226d17e09092378deb2c4e9a070edb64f5bc6e0b0378edd45f5f248a6f2', name: 'bridge' },
    { id: '3ea7c9283722aaaa0000000000000000000000000000000000000000000000aa', name: 'host' },
    { id: '43435188760ce70d58099ab5fe27b85fc07e2f5e14d6748e6532daa5749d4963', name: 'mybridge' },
    { id: 'eee2e5b9cf19bbbb0000000000000000000000000000000000000000000000bb', name: 'none' },
    { id: '4343ffff00000000000000000000000000000000000000000000000000000000', name: '48bcb' },
  ];

  it.each([
    ['exact id', '43435188760ce70d58099ab5fe27b85fc07e2f5e14d6748e6532daa5749d4963', 'mybridge'],
    ['exact name', 'mybridge', 'mybridge'],
    ['unique prefix', '434351', 'mybridge'],
    ['short id', '48bcb226d17e', 'bridge'],
    ['one character prefix', 'e', 'none'],
    ['a name wins over an id prefix', '48bcb', '48bcb'],
  ])('%s', (_n, ref, want) => {
    expect(resolveRef(ref, nets).name).toBe(want);
  });

  it('ambiguous prefix -> E_CONFLICT listing the candidates', () => {
    const e = fails(() => resolveRef('4343', nets), 'E_CONFLICT');
    expect(e.message).toBe('network ID prefix "4343" is ambiguous: it matches 2 networks: 43435188760c (mybridge), 4343ffff0000 (48bcb); give more characters of the ID or use the name');
    expect((e.details.candidates as unknown[]).length).toBe(2);
  });

  it.each(['nope', 'ff', '48bcb226d17e0909237X', 'MYBRIDGE'])('not found: %j', (ref) => {
    const e = fails(() => resolveRef(ref, nets), 'E_NOT_FOUND');
    expect(e.message).toBe(`no such network: ${ref} (no network has that name, ID or ID prefix); run "bpfnet network ls" to see the existing ones`);
  });

  it('kind in messages; empty ref', () => {
    expect(fails(() => resolveRef('x', [], 'sandbox'), 'E_NOT_FOUND').message).toContain('no such sandbox: x');
    expect(fails(() => resolveRef('', nets)).message).toBe('no network given; pass a network name, ID or ID prefix');
  });
});

describe('MAC addresses (Docker <= 27 scheme)', () => {
  it.each([
    ['172.17.0.2', '02:42:ac:11:00:02'],
    ['172.17.0.3', '02:42:ac:11:00:03'],
    ['172.18.0.2', '02:42:ac:12:00:02'],
    ['10.255.0.1', '02:42:0a:ff:00:01'],
    ['0.0.0.0', '02:42:00:00:00:00'],
  ])('%s -> %s', (ip, mac) => {
    expect(macFromIpv4(ip)).toBe(mac);
  });

  it('refuses non-IPv4', () => {
    fails(() => macFromIpv4('fd00::2'));
    fails(() => macFromIpv4('172.17.0'));
  });
});

describe('device names', () => {
  const id = '0e2fa562b7f2050eb84114356ac9882dbac340a675a32036b14040c0db35b035';

  it('host veth: bpv + 8 hex = 11 characters', () => {
    expect(VETH_PREFIX).toBe('bpv');
    expect(hostVethName(id)).toBe('bpv0e2fa562');
    expect(hostVethName(id)).toHaveLength(11);
    expect(validateDeviceName(hostVethName(id))).toBe('bpv0e2fa562');
  });

  it('bridge: bn- + 12 hex = 15 characters (the kernel maximum)', () => {
    expect(BRIDGE_PREFIX).toBe('bn-');
    expect(bridgeDeviceName(id)).toBe('bn-0e2fa562b7f2');
    expect(bridgeDeviceName(id)).toHaveLength(15);
    expect(validateDeviceName(bridgeDeviceName(id))).toBe('bn-0e2fa562b7f2');
  });

  it.each(['', 'xyz', '0E2FA562B7F2', '0e2fa5'])('refuses id %j', (bad) => {
    expect(fails(() => bridgeDeviceName(bad)).message).toContain('does not start with 12 lowercase hex characters; pass the full 64-hex id');
  });

  it('veth needs 8 hex', () => {
    expect(fails(() => hostVethName('0e2fa5')).message).toContain('endpoint id "0e2fa5" does not start with 8 lowercase hex characters');
  });
});
