/** src/dns/message.ts: reading queries defensively, the server's own answers, UDP truncation. */
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import { answerResponse, encodableName, encodeFitting, fitRaw, parseQuery, RCODE, rcodeResponse, replyHeader, shuffle, withId } from '../../src/dns/message.js';

function query(name: string, type: 'A' | 'AAAA' | 'PTR' = 'A', edns?: number): Buffer {
  return dnsPacket.encode({
    id: 0x1234,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] } as Answer] : [],
  });
}

function manyA(n: number): Answer[] {
  return Array.from({ length: n }, (_, i) => ({ type: 'A', name: 'svc', class: 'IN', ttl: 600, data: `10.0.${i >> 8}.${i & 255}` }) as Answer);
}

describe('parseQuery', () => {
  it('reads a query: id, opcode, the question, the EDNS size', () => {
    const p = parseQuery(query('web', 'A', 4096));
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.query.id).toBe(0x1234);
    expect(p.query.opcode).toBe(0);
    expect(p.query.question).toMatchObject({ name: 'web', type: 'A', class: 'IN' });
    expect(p.query.ednsPayload).toBe(4096);
    const plain = parseQuery(query('web'));
    expect(plain.ok && plain.query.ednsPayload).toBeUndefined();
  });

  it('garbage: the id when it can be read, never a throw', () => {
    const g = parseQuery(Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0xff]));
    expect(g).toMatchObject({ ok: false, id: 0xabcd, isResponse: false });
    expect(parseQuery(Buffer.from([0x01]))).toMatchObject({ ok: false, id: undefined });
    expect(parseQuery(Buffer.alloc(0))).toMatchObject({ ok: false, id: undefined });
    // A question whose name runs off the end.
    const cut = query('example.com').subarray(0, 20);
    expect(parseQuery(cut)).toMatchObject({ ok: false, id: 0x1234 });
  });

  it('responses are not queries', () => {
    const resp = dnsPacket.encode({ id: 7, type: 'response', flags: 0, questions: [{ name: 'x', type: 'A', class: 'IN' }] });
    expect(parseQuery(resp)).toMatchObject({ ok: false, isResponse: true, id: 7 });
  });
});

describe('responses', () => {
  it('rcodeResponse: id, QR, RD copied, RA, rcode, the question', () => {
    const q = parseQuery(query('web'));
    if (!q.ok) throw new Error('parse');
    const d = dnsPacket.decode(rcodeResponse(q.query.id, q.query.flags, RCODE.SERVFAIL, q.query.question)) as dnsPacket.DecodedPacket & { rcode: string };
    expect(d).toMatchObject({ id: 0x1234, type: 'response', flag_rd: true, flag_ra: true, rcode: 'SERVFAIL' });
    expect(d.questions).toHaveLength(1);
    const f = dnsPacket.decode(rcodeResponse(9, 0, RCODE.FORMERR)) as dnsPacket.DecodedPacket & { rcode: string };
    expect(f).toMatchObject({ id: 9, rcode: 'FORMERR', questions: [] });
  });

  it('encodeFitting keeps what fits in the limit and sets TC', () => {
    const q = parseQuery(query('svc'));
    if (!q.ok) throw new Error('parse');
    const small = encodeFitting(answerResponse(q.query, manyA(3)), 512);
    expect(small.truncated).toBe(false);
    expect(dnsPacket.decode(small.buf).flag_tc).toBe(false);
    const big = encodeFitting(answerResponse(q.query, manyA(100)), 512);
    expect(big.truncated).toBe(true);
    expect(big.buf.length).toBeLessThanOrEqual(512);
    const d = dnsPacket.decode(big.buf);
    expect(d.flag_tc).toBe(true);
    expect(d.answers!.length).toBeGreaterThan(10);
    expect(d.answers!.length).toBeLessThan(100);
    // One more answer would not have fit.
    expect(dnsPacket.encodingLength({ ...answerResponse(q.query, manyA(d.answers!.length + 1)), flags: 0 })).toBeGreaterThan(512);
  });

  it('an EDNS client gets an OPT record and its larger limit', () => {
    const q = parseQuery(query('svc', 'A', 4096));
    if (!q.ok) throw new Error('parse');
    const r = encodeFitting(answerResponse(q.query, manyA(100)), q.query.ednsPayload!);
    expect(r.truncated).toBe(false);
    const d = dnsPacket.decode(r.buf);
    expect(d.answers).toHaveLength(100);
    expect(d.additionals?.map((a) => a.type)).toEqual(['OPT']);
  });

  it('fitRaw passes small upstream answers through unchanged and cuts big ones', () => {
    const q = parseQuery(query('svc'));
    if (!q.ok) throw new Error('parse');
    const raw = dnsPacket.encode(answerResponse(q.query, manyA(100)));
    const same = fitRaw(raw.subarray(0, 500), 512);
    expect(same.truncated).toBe(false);
    const cut = fitRaw(raw, 512);
    expect(cut.truncated).toBe(true);
    expect(replyHeader(cut.buf)).toMatchObject({ id: 0x1234, truncated: true, rcode: 0, isResponse: true });
    // Undecodable and too big: header only, TC set.
    const junk = Buffer.concat([raw.subarray(0, 12), Buffer.alloc(600, 0xff)]);
    const j = fitRaw(junk, 512);
    expect(j.truncated).toBe(true);
    expect(replyHeader(j.buf)).toMatchObject({ id: 0x1234, truncated: true });
  });

  it('withId copies', () => {
    const a = query('x');
    const b = withId(a, 0xbeef);
    expect(b.readUInt16BE(0)).toBe(0xbeef);
    expect(a.readUInt16BE(0)).toBe(0x1234);
  });

  it('encodableName checks label and name lengths', () => {
    expect(encodableName('web.front')).toBe(true);
    expect(encodableName(`${'a'.repeat(64)}.net`)).toBe(false);
    expect(encodableName('a..b')).toBe(false);
    expect(encodableName(`${'a.'.repeat(127)}a`)).toBe(false);
  });

  it('shuffle permutes', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(shuffle([1, 2, 3]).join(''));
    expect(seen.size).toBe(6);
  });
});
