/** src/dns/registry.ts: the embedded DNS server's name table, as Docker's libnetwork resolves names. */
import { describe, expect, it } from 'vitest';
import { DnsRegistry, dnsNames, normalizeName, reverseToIpv4, shortId, type DnsSandbox } from '../../src/dns/registry.js';

const ID_A = 'a'.repeat(4) + '0123456789abcdef'.repeat(3) + 'b'.repeat(12);
const ID_B = 'b'.repeat(64);
const ID_C = 'c'.repeat(64);
const ID_D = 'd'.repeat(64);

const NET1 = { networkId: 'n1'.padEnd(64, '1'), networkName: 'front' };
const NET2 = { networkId: 'n2'.padEnd(64, '2'), networkName: 'back' };
const NET3 = { networkId: 'n3'.padEnd(64, '3'), networkName: 'other.net' };

/** web (front+back), db (back), lonely (other.net), cache (front). */
function table(): DnsRegistry {
  const r = new DnsRegistry();
  r.setSandbox({
    sandboxId: ID_A,
    name: 'web',
    networks: [
      { ...NET1, ip: '10.1.0.2', aliases: ['www', 'Frontend'] },
      { ...NET2, ip: '10.2.0.2', aliases: [] },
    ],
  });
  r.setSandbox({ sandboxId: ID_B, name: 'db', hostname: 'database', networks: [{ ...NET2, ip: '10.2.0.3', aliases: ['sql'] }] });
  r.setSandbox({ sandboxId: ID_C, name: 'lonely', networks: [{ ...NET3, ip: '10.3.0.2', aliases: [] }] });
  r.setSandbox({ sandboxId: ID_D, name: 'cache', networks: [{ ...NET1, ip: '10.1.0.9', aliases: ['www'] }] });
  return r;
}

describe('helpers', () => {
  it('shortId is the first 12 hex digits of a 64-hex id', () => {
    expect(shortId(ID_A)).toBe(ID_A.slice(0, 12));
    expect(shortId('ABCDEF'.repeat(10) + 'ABCD')).toBe('abcdefabcdef');
    expect(shortId('not-an-id')).toBe('not-an-id');
  });

  it('normalizeName lowercases and drops the root dot', () => {
    expect(normalizeName('Web.Front.')).toBe('web.front');
    expect(normalizeName('.')).toBe('');
  });

  it('reverseToIpv4 reads in-addr.arpa names and nothing else', () => {
    expect(reverseToIpv4('2.0.1.10.in-addr.arpa.')).toBe('10.1.0.2');
    expect(reverseToIpv4('2.0.1.10.IN-ADDR.ARPA')).toBe('10.1.0.2');
    expect(reverseToIpv4('0.1.10.in-addr.arpa.')).toBeUndefined();
    expect(reverseToIpv4('256.0.1.10.in-addr.arpa.')).toBeUndefined();
    expect(reverseToIpv4('02.0.1.10.in-addr.arpa.')).toBeUndefined();
    expect(reverseToIpv4('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.')).toBeUndefined();
    expect(reverseToIpv4('example.com.')).toBeUndefined();
  });

  it("dnsNames: Docker's order (name, aliases, short id, hostname), deduplicated case-insensitively", () => {
    expect(dnsNames({ sandboxId: ID_B, name: 'db', hostname: 'DB' }, { aliases: ['sql', 'db', 'SQL'] })).toEqual(['db', 'sql', ID_B.slice(0, 12)]);
    expect(dnsNames({ sandboxId: ID_B, name: 'db', hostname: 'h' }, { aliases: [] })).toEqual(['db', ID_B.slice(0, 12), 'h']);
  });
});

describe('DnsRegistry.lookupA', () => {
  it('answers names, aliases, short ids and the hostname on shared networks', () => {
    const r = table();
    expect(r.lookupA(ID_B, 'web')).toEqual(['10.2.0.2']); // db shares only "back" with web
    expect(r.lookupA(ID_D, 'web')).toEqual(['10.1.0.2']); // cache shares only "front"
    expect(r.lookupA(ID_D, 'frontend')).toEqual(['10.1.0.2']);
    expect(r.lookupA(ID_A, 'sql')).toEqual(['10.2.0.3']);
    expect(r.lookupA(ID_A, ID_B.slice(0, 12))).toEqual(['10.2.0.3']);
    expect(r.lookupA(ID_A, 'database')).toEqual(['10.2.0.3']);
    expect(r.lookupA(ID_A, 'web')).toEqual(['10.1.0.2']); // itself: its first network wins
  });

  it('is case-insensitive and ignores the trailing dot', () => {
    const r = table();
    expect(r.lookupA(ID_B, 'WEB.')).toEqual(['10.2.0.2']);
    expect(r.lookupA(ID_D, 'FrontEnd')).toEqual(['10.1.0.2']);
  });

  it('does not answer names on networks the asker is not on', () => {
    const r = table();
    expect(r.lookupA(ID_A, 'lonely')).toEqual([]);
    expect(r.lookupA(ID_C, 'web')).toEqual([]);
    expect(r.lookupA(ID_D, 'db')).toEqual([]); // db is only on "back"
    expect(r.lookupA(ID_D, 'sql')).toEqual([]);
    expect(r.lookupA('unknown', 'web')).toEqual([]);
    expect(r.lookupA(ID_A, '')).toEqual([]);
    expect(r.lookupA(ID_A, '.')).toEqual([]);
  });

  it('a name several sandboxes share answers all their addresses, on the first network that has it', () => {
    const r = table();
    expect(r.lookupA(ID_A, 'www').sort()).toEqual(['10.1.0.2', '10.1.0.9']);
    expect(r.lookupA(ID_D, 'www.')).toHaveLength(2);
  });

  it('the first of the asker\'s networks that knows a name answers; networks are not merged', () => {
    const r = new DnsRegistry();
    r.setSandbox({ sandboxId: ID_A, name: 'asker', networks: [{ ...NET1, ip: '10.1.0.2', aliases: [] }, { ...NET2, ip: '10.2.0.2', aliases: [] }] });
    r.setSandbox({ sandboxId: ID_B, name: 'x', networks: [{ ...NET2, ip: '10.2.0.3', aliases: ['svc'] }] });
    r.setSandbox({ sandboxId: ID_C, name: 'y', networks: [{ ...NET1, ip: '10.1.0.3', aliases: ['svc'] }] });
    expect(r.lookupA(ID_A, 'svc')).toEqual(['10.1.0.3']);
    r.setSandbox({ sandboxId: ID_A, name: 'asker', networks: [{ ...NET2, ip: '10.2.0.2', aliases: [] }, { ...NET1, ip: '10.1.0.2', aliases: [] }] });
    expect(r.lookupA(ID_A, 'svc')).toEqual(['10.2.0.3']);
  });

  it('resolves "<name>.<network>" on that network only (Docker\'s container.network form), also with dotted network names', () => {
    const r = table();
    expect(r.lookupA(ID_A, 'db.back')).toEqual(['10.2.0.3']);
    expect(r.lookupA(ID_A, 'web.front')).toEqual(['10.1.0.2']);
    expect(r.lookupA(ID_A, 'web.back.')).toEqual(['10.2.0.2']);
    expect(r.lookupA(ID_A, 'db.front')).toEqual([]); // db is not on front
    expect(r.lookupA(ID_A, 'db.nosuchnet')).toEqual([]);
    expect(r.lookupA(ID_B, 'web.front')).toEqual([]); // the asker is not on front
    const s = table();
    s.setSandbox({ sandboxId: 'e'.repeat(64), name: 'peer', networks: [{ ...NET3, ip: '10.3.0.5', aliases: [] }] });
    expect(s.lookupA(ID_C, 'peer.other.net')).toEqual(['10.3.0.5']);
    expect(s.lookupA(ID_C, 'PEER.Other.Net.')).toEqual(['10.3.0.5']);
  });

  it('a whole dotted alias wins over the name.network split', () => {
    const r = new DnsRegistry();
    r.setSandbox({ sandboxId: ID_A, name: 'a', networks: [{ ...NET1, ip: '10.1.0.2', aliases: ['db.front'] }] });
    r.setSandbox({ sandboxId: ID_B, name: 'db', networks: [{ ...NET1, ip: '10.1.0.3', aliases: [] }] });
    expect(r.lookupA(ID_B, 'db.front')).toEqual(['10.1.0.2']);
  });

  it('setSandbox replaces and removeSandbox forgets (names, aliases, addresses)', () => {
    const r = table();
    r.setSandbox({ sandboxId: ID_B, name: 'db2', networks: [{ ...NET1, ip: '10.1.0.7', aliases: [] }] });
    expect(r.lookupA(ID_A, 'db')).toEqual([]);
    expect(r.lookupA(ID_A, 'sql')).toEqual([]);
    expect(r.lookupA(ID_A, 'db2')).toEqual(['10.1.0.7']);
    expect(r.lookupPtr(ID_A, '10.2.0.3')).toBeUndefined();
    expect(r.removeSandbox(ID_D)).toBe(true);
    expect(r.removeSandbox(ID_D)).toBe(false);
    expect(r.lookupA(ID_A, 'www')).toEqual(['10.1.0.2']);
    expect(r.lookupA(ID_D, 'web')).toEqual([]);
    expect(r.has(ID_D)).toBe(false);
    expect(r.size).toBe(3);
    expect(r.networksOf(ID_A)).toEqual([NET1.networkId, NET2.networkId]);
  });

  it('keeps its own copy of the input', () => {
    const r = new DnsRegistry();
    const sb: DnsSandbox = { sandboxId: ID_A, name: 'a', networks: [{ ...NET1, ip: '10.1.0.2', aliases: ['x'] }] };
    r.setSandbox(sb);
    (sb.networks[0]!.aliases as string[]).push('y');
    r.setSandbox({ sandboxId: ID_B, name: 'b', networks: [{ ...NET1, ip: '10.1.0.3', aliases: [] }] });
    expect(r.lookupA(ID_B, 'y')).toEqual([]);
    r.removeSandbox(ID_A);
    expect(r.lookupA(ID_B, 'x')).toEqual([]);
  });
});

describe('DnsRegistry.lookupPtr', () => {
  it('answers "<name>.<network>" for addresses on shared networks', () => {
    const r = table();
    expect(r.lookupPtr(ID_B, '10.2.0.2')).toBe('web.back');
    expect(r.lookupPtr(ID_D, '10.1.0.2')).toBe('web.front');
    expect(r.lookupPtr(ID_A, '10.2.0.3')).toBe('db.back');
    expect(r.lookupPtr(ID_C, '10.3.0.2')).toBe('lonely.other.net');
  });

  it('not for addresses on other networks or unknown ones', () => {
    const r = table();
    expect(r.lookupPtr(ID_D, '10.2.0.3')).toBeUndefined();
    expect(r.lookupPtr(ID_A, '10.3.0.2')).toBeUndefined();
    expect(r.lookupPtr(ID_A, '192.0.2.1')).toBeUndefined();
    expect(r.lookupPtr('unknown', '10.1.0.2')).toBeUndefined();
  });
});
