/** src/model/ipv4.ts: parsing, formatting and prefix arithmetic. */
import { describe, expect, it } from 'vitest';
import {
  broadcastAddress,
  canonicalCidr,
  cidrContains,
  cidrOverlaps,
  cidrSize,
  containsCidr,
  formatCidr,
  formatIpv4,
  hasHostBits,
  isIpv4,
  maskOf,
  networkAddress,
  nthAddress,
  nthHost,
  parseCidr,
  parseIpv4,
  subdivide,
} from '../../src/model/ipv4.js';
import { fails } from '../harness/errors.js';
import { BpfnetError } from '../../src/util/errors.js';


describe('parseIpv4 / formatIpv4', () => {
  it.each([
    ['0.0.0.0', 0],
    ['10.1.2.3', 0x0a010203],
    ['172.17.0.2', 0xac110002],
    ['255.255.255.255', 0xffffffff],
  ])('%s <-> %d', (s, v) => {
    expect(parseIpv4(s)).toBe(v);
    expect(formatIpv4(v)).toBe(s);
    expect(isIpv4(s)).toBe(true);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.-1', 'a.b.c.d', ' 1.2.3.4', '1.2.3.4 ', '1..2.3', '0x1.2.3.4', '1.2.3.4/8'])('refuses %j', (s) => {
    expect(isIpv4(s)).toBe(false);
    const e = fails(() => parseIpv4(s, 'gateway'));
    expect(e.message).toContain(`gateway "${s}" is not an IPv4 address`);
    expect(e.message).toContain('e.g. 10.1.0.1');
  });

  it('says IPv6 is not supported for IPv6 literals', () => {
    for (const s of ['::1', 'fe80::1', '2001:db8::2']) {
      expect(fails(() => parseIpv4(s, '--ip')).message).toBe(`--ip "${s}" is IPv6: bpfnet supports IPv4 only; give a dotted-quad IPv4 address such as 10.1.0.1`);
    }
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.1.0.0/16', '10.1.0.0/16', false],
    ['10.1.2.3/16', '10.1.0.0/16', true], // canonicalised (the caller decides whether host bits are allowed)
    ['192.168.1.77/24', '192.168.1.0/24', true],
    ['0.0.0.0/0', '0.0.0.0/0', false],
    ['8.8.8.8/32', '8.8.8.8/32', false],
    ['172.31.255.255/12', '172.16.0.0/12', true],
  ])('%s -> %s', (input, canon, hostBits) => {
    const c = parseCidr(input);
    expect(formatCidr(c)).toBe(canon);
    expect(canonicalCidr(input)).toBe(canon);
    expect(hasHostBits(c)).toBe(hostBits);
  });

  it.each([
    ['10.0.0.0', 'is not in CIDR notation', 'for a single address write 10.0.0.0/32'],
    ['10.0.0.0/33', 'prefix length "33" must be a number 0-32', ''],
    ['10.0.0.0/', 'prefix length "" must be a number 0-32', ''],
    ['10.0.0.0/08', 'prefix length "08"', ''],
    ['10.0.0.0/x', 'prefix length "x"', ''],
    ['10.0.0/8', '"10.0.0" is not an IPv4 address', ''],
    ['garbage', 'is not in CIDR notation', ''],
    ['fd00::/64', 'is an IPv6 prefix: bpfnet supports IPv4 only', ''],
  ])('refuses %j', (input, msg, hint) => {
    const e = fails(() => parseCidr(input));
    expect(e.message).toContain(msg);
    if (hint) expect(e.message).toContain(hint);
  });
});

describe('prefix arithmetic', () => {
  const c = parseCidr('10.1.0.0/16');

  it('mask, size, network, broadcast', () => {
    expect(maskOf(0)).toBe(0);
    expect(maskOf(8)).toBe(0xff000000);
    expect(maskOf(32)).toBe(0xffffffff);
    expect(cidrSize(c)).toBe(65536);
    expect(formatIpv4(networkAddress(c))).toBe('10.1.0.0');
    expect(formatIpv4(broadcastAddress(c))).toBe('10.1.255.255');
    expect(formatIpv4(broadcastAddress(parseCidr('0.0.0.0/0')))).toBe('255.255.255.255');
    expect(() => maskOf(33)).toThrow(BpfnetError);
  });

  it('nth address / host', () => {
    expect(formatIpv4(nthHost(c, 1))).toBe('10.1.0.1');
    expect(formatIpv4(nthHost(c, 65534))).toBe('10.1.255.254');
    expect(formatIpv4(nthAddress(c, 0))).toBe('10.1.0.0');
    expect(formatIpv4(nthHost(parseCidr('10.0.0.0/31'), 1))).toBe('10.0.0.0');
    expect(formatIpv4(nthHost(parseCidr('10.0.0.0/32'), 1))).toBe('10.0.0.0');
    expect(fails(() => nthHost(c, 65535)).message).toContain('has 65534 usable addresses');
    expect(fails(() => nthHost(c, 0)).message).toContain('host number 0 is outside 10.1.0.0/16');
    expect(fails(() => nthAddress(parseCidr('10.0.0.0/30'), 4)).message).toContain('offsets 0-3');
  });

  it.each([
    ['10.0.0.0/8', '10.255.1.1', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['0.0.0.0/0', '1.2.3.4', true],
    ['192.168.16.0/20', '192.168.31.255', true],
    ['192.168.16.0/20', '192.168.32.0', false],
  ])('%s contains %s: %s', (cidr, ip, want) => {
    expect(cidrContains(cidr, ip)).toBe(want);
  });

  it.each([
    ['10.0.0.0/8', '10.1.0.0/16', true],
    ['10.1.0.0/16', '10.0.0.0/8', true],
    ['172.17.0.0/16', '172.18.0.0/16', false],
    ['192.168.0.0/20', '192.168.15.0/24', true],
    ['192.168.0.0/20', '192.168.16.0/24', false],
    ['0.0.0.0/0', '1.2.3.4/32', true],
  ])('%s overlaps %s: %s', (a, b, want) => {
    expect(cidrOverlaps(a, b)).toBe(want);
    expect(cidrOverlaps(b, a)).toBe(want);
  });

  it('containsCidr is directional', () => {
    expect(containsCidr(parseCidr('10.0.0.0/8'), parseCidr('10.1.0.0/16'))).toBe(true);
    expect(containsCidr(parseCidr('10.1.0.0/16'), parseCidr('10.0.0.0/8'))).toBe(false);
  });

  it('subdivide', () => {
    expect(subdivide(parseCidr('192.168.0.0/16'), 20).map(formatCidr)).toEqual(Array.from({ length: 16 }, (_, i) => `192.168.${i * 16}.0/20`));
    expect(fails(() => subdivide(parseCidr('10.0.0.0/16'), 8)).message).toContain('pick a length between 16 and 32');
  });
});
