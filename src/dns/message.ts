/**
 * DNS messages for the embedded server, on top of dns-packet: reading a
 * query defensively, building the server's own answers (A, PTR, NODATA,
 * rcodes), fitting a response into a UDP payload (TC=1) and swapping
 * message ids for forwarding.
 */
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import { normalizeName } from './registry.js';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

/** Without EDNS a UDP answer is at most 512 bytes (RFC 1035). */
export const UDP_MIN_PAYLOAD = 512;
/** What the server advertises in its own OPT record (the DNS flag day 2020 size). */
export const SERVER_UDP_PAYLOAD = 1232;

const QR = 0x8000;
const OPCODE_MASK = 0x7800;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;
const CD = 0x0010;

export interface ParsedQuery {
  id: number;
  /** The raw header flags of the query. */
  flags: number;
  /** 0 = QUERY. */
  opcode: number;
  packet: DecodedPacket;
  /** The single question (undefined when the query had none or several). */
  question: Question | undefined;
  /** The client's EDNS UDP payload size, when it sent an OPT record. */
  ednsPayload: number | undefined;
}

export type QueryParse =
  | { ok: true; query: ParsedQuery }
  /** Not a query we can read. id: when at least the id could be read (answer FORMERR); isResponse: QR set (never answer). */
  | { ok: false; id: number | undefined; flags: number | undefined; isResponse: boolean; error: string };

/** Reads a query message; never throws. */
export function parseQuery(buf: Buffer): QueryParse {
  const id = buf.length >= 2 ? buf.readUInt16BE(0) : undefined;
  const flags = buf.length >= 4 ? buf.readUInt16BE(2) : undefined;
  const isResponse = flags !== undefined && (flags & QR) !== 0;
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(buf);
    // dns-packet tolerates trailing bytes; so does everyone else.
  } catch (e) {
    return { ok: false, id, flags, isResponse, error: e instanceof Error ? e.message : String(e) };
  }
  if (id === undefined || flags === undefined) return { ok: false, id, flags, isResponse, error: 'short header' };
  if (isResponse) return { ok: false, id, flags, isResponse, error: 'a response, not a query' };
  const questions = packet.questions ?? [];
  const opt = (packet.additionals ?? []).find((a) => a.type === 'OPT');
  const ednsPayload = opt && opt.type === 'OPT' ? Math.max(UDP_MIN_PAYLOAD, opt.udpPayloadSize) : undefined;
  return {
    ok: true,
    query: {
      id,
      flags,
      opcode: (flags & OPCODE_MASK) >> 11,
      packet,
      question: questions.length === 1 ? questions[0] : undefined,
      ednsPayload,
    },
  };
}

/** Header flags of a reply to a query with these flags: QR, opcode, RD and CD copied, RA set, and the rcode. */
function replyFlags(queryFlags: number, rcode: number): number {
  return (queryFlags & (OPCODE_MASK | RD | CD)) | RA | (rcode & 0xf);
}

/**
 * A response without records (rcode only) for a message whose id could be
 * read: FORMERR for garbage, SERVFAIL, NOTIMP, ... The question is echoed
 * when there is exactly one.
 */
export function rcodeResponse(id: number, queryFlags: number, rcode: Rcode, question?: Question): Buffer {
  return dnsPacket.encode({ id, type: 'response', flags: replyFlags(queryFlags, rcode), questions: question ? [question] : [] });
}

/** An answer (NOERROR) to q with these records; OPT added when the query had EDNS. */
export function answerResponse(q: ParsedQuery, answers: Answer[]): Packet {
  const question = q.question;
  return {
    id: q.id,
    type: 'response',
    flags: replyFlags(q.flags, RCODE.NOERROR),
    questions: question ? [question] : [],
    answers,
    additionals: q.ednsPayload !== undefined ? [optRecord()] : [],
  };
}

function optRecord(): Answer {
  return { type: 'OPT', name: '.', udpPayloadSize: SERVER_UDP_PAYLOAD, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] } as Answer;
}

/** true when every label of name fits a DNS label (1..63 bytes) and the whole name 253. */
export function encodableName(name: string): boolean {
  const n = name.replace(/\.$/, '');
  if (n === '' || Buffer.byteLength(n) > 253) return false;
  return n.split('.').every((l) => l.length > 0 && Buffer.byteLength(l) <= 63);
}

/**
 * Encodes a response to fit limit bytes: answers (then authority and
 * non-OPT additional records) are dropped from the end until it fits, and
 * TC is set when anything was dropped (like miekg/dns Msg.Truncate, which
 * Docker uses).
 */
export function encodeFitting(p: Packet, limit: number): { buf: Buffer; truncated: boolean } {
  const full = dnsPacket.encode(p);
  if (full.length <= limit) return { buf: full, truncated: false };
  const opt = (p.additionals ?? []).filter((a) => a.type === 'OPT');
  const base: Packet = { ...p, flags: (p.flags ?? 0) | TC, answers: [], authorities: [], additionals: opt };
  const answers = p.answers ?? [];
  // The largest prefix of the answers that fits (binary search on the count).
  let lo = 0;
  let hi = answers.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (dnsPacket.encodingLength({ ...base, answers: answers.slice(0, mid) }) <= limit) lo = mid;
    else hi = mid - 1;
  }
  let buf = dnsPacket.encode({ ...base, answers: answers.slice(0, lo) });
  if (buf.length > limit) buf = dnsPacket.encode({ ...base, additionals: [] });
  return { buf, truncated: true };
}

/**
 * Fits an upstream's response (raw bytes) into a UDP payload: unchanged
 * when it fits; else re-encoded with records dropped and TC set; when it
 * cannot be decoded, its header and question alone with TC set.
 */
export function fitRaw(resp: Buffer, limit: number): { buf: Buffer; truncated: boolean } {
  if (resp.length <= limit) return { buf: resp, truncated: false };
  try {
    return encodeFitting(dnsPacket.decode(resp), limit);
  } catch {
    const flags = resp.readUInt16BE(2) | TC;
    return { buf: dnsPacket.encode({ id: resp.readUInt16BE(0), type: 'response', flags: flags & 0x7fff, questions: [] }), truncated: true };
  }
}

/** A copy of a message with another id. */
export function withId(buf: Buffer, id: number): Buffer {
  const out = Buffer.from(buf);
  out.writeUInt16BE(id & 0xffff, 0);
  return out;
}

/** What the forwarder needs from an upstream's reply header. */
export interface ReplyHeader {
  id: number;
  isResponse: boolean;
  truncated: boolean;
  rcode: number;
}

export function replyHeader(buf: Buffer): ReplyHeader | undefined {
  if (buf.length < 12) return undefined;
  const flags = buf.readUInt16BE(2);
  return { id: buf.readUInt16BE(0), isResponse: (flags & QR) !== 0, truncated: (flags & TC) !== 0, rcode: flags & 0xf };
}

/** The question of a message, for matching replies to queries (undefined when it cannot be read). */
export function firstQuestion(buf: Buffer): Question | undefined {
  try {
    const p = dnsPacket.decode(buf);
    return p.questions?.length === 1 ? p.questions[0] : undefined;
  } catch {
    return undefined;
  }
}

export function sameQuestion(a: Question, b: Question): boolean {
  return a.type === b.type && a.class === b.class && normalizeName(a.name) === normalizeName(b.name);
}

/** A message with DNS-over-TCP's 2-byte length prefix. */
export function tcpFrame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

/** The complete length-prefixed messages at the start of buf (views into it), and the bytes after them. */
export function splitTcpFrames(buf: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let rest = buf;
  while (rest.length >= 2) {
    const n = rest.readUInt16BE(0);
    if (rest.length < 2 + n) break;
    messages.push(rest.subarray(2, 2 + n));
    rest = rest.subarray(2 + n);
  }
  return { messages, rest };
}

/** Fisher-Yates, in place; returns the array. */
export function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    const t = a[i] as T;
    a[i] = a[j] as T;
    a[j] = t;
  }
  return a;
}
