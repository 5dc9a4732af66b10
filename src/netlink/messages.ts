/**
 * Netlink framing without the kernel: nlmsghdr, attributes (TLVs, nested,
 * 4-byte aligned), the fixed rtnetlink headers (ifinfomsg, ifaddrmsg, rtmsg,
 * ndmsg, tcmsg) and NLMSG_ERROR with extended acks. Pure functions over Buffers;
 * headers are in host byte order, addresses in network order.
 */
import os from 'node:os';
import {
  IFADDRMSG_LEN,
  IFINFOMSG_LEN,
  NDMSG_LEN,
  NLA_F_NESTED,
  NLA_HDRLEN,
  NLA_TYPE_MASK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
  RTMSG_LEN,
  TCMSG_LEN,
} from './constants.js';

const LE = os.endianness() === 'LE';

export const align4 = (n: number): number => (n + 3) & ~3;

export function readU16(b: Buffer, off: number): number {
  return LE ? b.readUInt16LE(off) : b.readUInt16BE(off);
}
export function readU32(b: Buffer, off: number): number {
  return LE ? b.readUInt32LE(off) : b.readUInt32BE(off);
}
export function readI32(b: Buffer, off: number): number {
  return LE ? b.readInt32LE(off) : b.readInt32BE(off);
}
export function writeU16(b: Buffer, v: number, off: number): void {
  if (LE) b.writeUInt16LE(v, off);
  else b.writeUInt16BE(v, off);
}
export function writeU32(b: Buffer, v: number, off: number): void {
  if (LE) b.writeUInt32LE(v >>> 0, off);
  else b.writeUInt32BE(v >>> 0, off);
}
export function writeI32(b: Buffer, v: number, off: number): void {
  if (LE) b.writeInt32LE(v, off);
  else b.writeInt32BE(v, off);
}

// ---------- nlmsghdr ----------

export interface NlHeader {
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

export interface NlMessage extends NlHeader {
  /** Everything after the 16-byte header, up to nlmsg_len. */
  payload: Buffer;
}

/** One message: header + the parts (each already 4-byte aligned, e.g. a struct and attributes). */
export function encodeMessage(h: Pick<NlHeader, 'type' | 'flags'> & Partial<NlHeader>, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const out = Buffer.alloc(NLMSG_HDRLEN + body.length);
  writeU32(out, out.length, 0);
  writeU16(out, h.type, 4);
  writeU16(out, h.flags, 6);
  writeU32(out, h.seq ?? 0, 8);
  writeU32(out, h.pid ?? 0, 12);
  body.copy(out, NLMSG_HDRLEN);
  return out;
}

/** Sets the sequence number of an encoded message in place. */
export function setSeq(msg: Buffer, seq: number): void {
  writeU32(msg, seq, 8);
}

export function decodeHeader(b: Buffer, off = 0): NlHeader & { len: number } {
  return { len: readU32(b, off), type: readU16(b, off + 4), flags: readU16(b, off + 6), seq: readU32(b, off + 8), pid: readU32(b, off + 12) };
}

/** Splits a datagram (or concatenated datagrams) into messages; stops at a truncated one. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const h = decodeHeader(buf, off);
    if (h.len < NLMSG_HDRLEN || off + h.len > buf.length) break;
    out.push({ type: h.type, flags: h.flags, seq: h.seq, pid: h.pid, payload: buf.subarray(off + NLMSG_HDRLEN, off + h.len) });
    off += align4(h.len);
  }
  return out;
}

// ---------- attributes ----------

/** One attribute, padded to 4 bytes. */
export function attr(type: number, data: Buffer): Buffer {
  const len = NLA_HDRLEN + data.length;
  const out = Buffer.alloc(align4(len));
  writeU16(out, len, 0);
  writeU16(out, type, 2);
  data.copy(out, NLA_HDRLEN);
  return out;
}

export function attrU8(type: number, v: number): Buffer {
  return attr(type, Buffer.from([v & 0xff]));
}
export function attrU16(type: number, v: number): Buffer {
  const b = Buffer.alloc(2);
  writeU16(b, v, 0);
  return attr(type, b);
}
export function attrU32(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  writeU32(b, v, 0);
  return attr(type, b);
}
/** NUL-terminated string (IFLA_IFNAME, IFLA_INFO_KIND). */
export function attrString(type: number, s: string): Buffer {
  return attr(type, Buffer.from(`${s}\0`, 'utf8'));
}
/** String without the NUL (IFLA_IFALIAS: an empty one clears it). */
export function attrBytesOfString(type: number, s: string): Buffer {
  return attr(type, Buffer.from(s, 'utf8'));
}
/** A nested attribute holding already encoded parts (`flag` sets NLA_F_NESTED). */
export function attrNested(type: number, parts: Buffer[], flag = false): Buffer {
  return attr(flag ? type | NLA_F_NESTED : type, Buffer.concat(parts));
}

export interface RawAttr {
  /** Without the NLA_F_NESTED / NLA_F_NET_BYTEORDER bits. */
  type: number;
  nested: boolean;
  value: Buffer;
}

/** All attributes in order (duplicates kept); stops at a malformed one. */
export function parseAttrList(buf: Buffer, offset = 0): RawAttr[] {
  const out: RawAttr[] = [];
  let off = offset;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = readU16(buf, off);
    const rawType = readU16(buf, off + 2);
    if (len < NLA_HDRLEN || off + len > buf.length) break;
    out.push({ type: rawType & NLA_TYPE_MASK, nested: (rawType & NLA_F_NESTED) !== 0, value: buf.subarray(off + NLA_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

/** Attributes by type (the last one wins). */
export function parseAttrs(buf: Buffer, offset = 0): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (const a of parseAttrList(buf, offset)) m.set(a.type, a.value);
  return m;
}

export function attrStringValue(v: Buffer | undefined): string | undefined {
  if (!v) return undefined;
  const nul = v.indexOf(0);
  return v.toString('utf8', 0, nul < 0 ? v.length : nul);
}
export function attrU32Value(v: Buffer | undefined): number | undefined {
  return v && v.length >= 4 ? readU32(v, 0) : undefined;
}
export function attrI32Value(v: Buffer | undefined): number | undefined {
  return v && v.length >= 4 ? readI32(v, 0) : undefined;
}
export function attrU8Value(v: Buffer | undefined): number | undefined {
  return v && v.length >= 1 ? v[0] : undefined;
}

// ---------- fixed headers ----------

export interface IfInfoMsg {
  family: number;
  /** ARPHRD_* */
  type: number;
  index: number;
  flags: number;
  change: number;
}

export function encodeIfInfoMsg(m: Partial<IfInfoMsg> = {}): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b[0] = m.family ?? 0;
  writeU16(b, m.type ?? 0, 2);
  writeI32(b, m.index ?? 0, 4);
  writeU32(b, m.flags ?? 0, 8);
  writeU32(b, m.change ?? 0, 12);
  return b;
}

export function decodeIfInfoMsg(b: Buffer): IfInfoMsg {
  need(b, IFINFOMSG_LEN, 'ifinfomsg');
  return { family: b[0]!, type: readU16(b, 2), index: readI32(b, 4), flags: readU32(b, 8), change: readU32(b, 12) };
}

export interface IfAddrMsg {
  family: number;
  prefixLen: number;
  flags: number;
  scope: number;
  index: number;
}

export function encodeIfAddrMsg(m: Partial<IfAddrMsg> = {}): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b[0] = m.family ?? 0;
  b[1] = m.prefixLen ?? 0;
  b[2] = m.flags ?? 0;
  b[3] = m.scope ?? 0;
  writeU32(b, m.index ?? 0, 4);
  return b;
}

export function decodeIfAddrMsg(b: Buffer): IfAddrMsg {
  need(b, IFADDRMSG_LEN, 'ifaddrmsg');
  return { family: b[0]!, prefixLen: b[1]!, flags: b[2]!, scope: b[3]!, index: readU32(b, 4) };
}

export interface RtMsg {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}

export function encodeRtMsg(m: Partial<RtMsg> = {}): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b[0] = m.family ?? 0;
  b[1] = m.dstLen ?? 0;
  b[2] = m.srcLen ?? 0;
  b[3] = m.tos ?? 0;
  b[4] = m.table ?? 0;
  b[5] = m.protocol ?? 0;
  b[6] = m.scope ?? 0;
  b[7] = m.type ?? 0;
  writeU32(b, m.flags ?? 0, 8);
  return b;
}

export function decodeRtMsg(b: Buffer): RtMsg {
  need(b, RTMSG_LEN, 'rtmsg');
  return {
    family: b[0]!,
    dstLen: b[1]!,
    srcLen: b[2]!,
    tos: b[3]!,
    table: b[4]!,
    protocol: b[5]!,
    scope: b[6]!,
    type: b[7]!,
    flags: readU32(b, 8),
  };
}

export interface NdMsg {
  family: number;
  index: number;
  /** NUD_* */
  state: number;
  /** NTF_* */
  flags: number;
  type: number;
}

export function encodeNdMsg(m: Partial<NdMsg> = {}): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b[0] = m.family ?? 0;
  writeI32(b, m.index ?? 0, 4);
  writeU16(b, m.state ?? 0, 8);
  b[10] = m.flags ?? 0;
  b[11] = m.type ?? 0;
  return b;
}

export function decodeNdMsg(b: Buffer): NdMsg {
  need(b, NDMSG_LEN, 'ndmsg');
  return { family: b[0]!, index: readI32(b, 4), state: readU16(b, 8), flags: b[10]!, type: b[11]! };
}

export interface TcMsg {
  family: number;
  index: number;
  /** Qdisc or filter handle. */
  handle: number;
  parent: number;
  /** Filters: TC_H_MAKE(pref << 16, protocol in network order). */
  info: number;
}

export function encodeTcMsg(m: Partial<TcMsg> = {}): Buffer {
  const b = Buffer.alloc(TCMSG_LEN);
  b[0] = m.family ?? 0;
  writeI32(b, m.index ?? 0, 4);
  writeU32(b, m.handle ?? 0, 8);
  writeU32(b, m.parent ?? 0, 12);
  writeU32(b, m.info ?? 0, 16);
  return b;
}

export function decodeTcMsg(b: Buffer): TcMsg {
  need(b, TCMSG_LEN, 'tcmsg');
  return { family: b[0]!, index: readI32(b, 4), handle: readU32(b, 8), parent: readU32(b, 12), info: readU32(b, 16) };
}

function need(b: Buffer, len: number, what: string): void {
  if (b.length < len) throw new RangeError(`truncated ${what}: ${b.length} of ${len} bytes`);
}

// ---------- errors and acks ----------

export interface NlAck {
  /** Positive errno; 0 for a plain ack. */
  errno: number;
  /** The kernel's extended-ack text (NLMSGERR_ATTR_MSG), when it gave one. */
  message?: string;
  /** Byte offset of the offending attribute in the request (NLMSGERR_ATTR_OFFS). */
  offset?: number;
  /** Header of the request this answers. */
  request?: NlHeader;
}

/** NLMSG_ERROR (ack or error) and NLMSG_DONE (which carries a dump's errno). */
export function parseAck(m: NlMessage): NlAck {
  if (m.payload.length < 4) return { errno: 0 };
  const errno = -readI32(m.payload, 0) || 0;
  const ack: NlAck = { errno };
  let tlvAt: number;
  if (m.type === NLMSG_ERROR) {
    if (m.payload.length < 4 + NLMSG_HDRLEN) return ack;
    const h = decodeHeader(m.payload, 4);
    ack.request = { type: h.type, flags: h.flags, seq: h.seq, pid: h.pid };
    tlvAt = m.flags & NLM_F_CAPPED ? 4 + NLMSG_HDRLEN : 4 + align4(h.len);
  } else if (m.type === NLMSG_DONE) {
    tlvAt = 4;
  } else {
    return ack;
  }
  if (m.flags & NLM_F_ACK_TLVS) {
    const tlvs = parseAttrs(m.payload, tlvAt);
    const msg = attrStringValue(tlvs.get(NLMSGERR_ATTR_MSG));
    if (msg) ack.message = msg;
    const offs = attrU32Value(tlvs.get(NLMSGERR_ATTR_OFFS));
    if (offs !== undefined) ack.offset = offs;
  }
  return ack;
}

/** Encodes an NLMSG_ERROR as the kernel would (for tests). */
export function encodeAck(req: NlHeader & { len?: number }, errno: number, ext: { message?: string; offset?: number } = {}): Buffer {
  const body = Buffer.alloc(4 + NLMSG_HDRLEN);
  writeI32(body, -errno, 0);
  writeU32(body, req.len ?? NLMSG_HDRLEN, 4);
  writeU16(body, req.type, 8);
  writeU16(body, req.flags, 10);
  writeU32(body, req.seq, 12);
  writeU32(body, req.pid, 16);
  const tlvs: Buffer[] = [];
  if (ext.message !== undefined) tlvs.push(attrString(NLMSGERR_ATTR_MSG, ext.message));
  if (ext.offset !== undefined) tlvs.push(attrU32(NLMSGERR_ATTR_OFFS, ext.offset));
  const flags = NLM_F_CAPPED | (tlvs.length ? NLM_F_ACK_TLVS : 0);
  return encodeMessage({ type: NLMSG_ERROR, flags, seq: req.seq, pid: req.pid }, body, ...tlvs);
}
