/**
 * A small, dependency-free Ethernet/IPv4/TCP/UDP/ICMP packet builder and
 * parser for BPF unit tests and benchmarks. Pure functions on Buffers.
 *
 * Checksums are computed from scratch (never incrementally), so a packet a
 * BPF program rewrote can be compared byte for byte with one built here:
 * equality proves the program's incremental checksum updates are right.
 */
import { isIPv4 } from 'node:net';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export const ETH_HLEN = 14;
export const IPV4_HLEN = 20;
export const TCP_HLEN = 20;
export const UDP_HLEN = 8;
export const ICMP_ECHO_HLEN = 8;

const IP_MF = 0x2000;
const IP_DF = 0x4000;
const IP_OFFSET = 0x1fff;

export type ProtoName = 'tcp' | 'udp' | 'icmp';

export interface PacketSpec {
  srcMac?: string;
  dstMac?: string;
  /** EtherType; default 0x0800 (IPv4). Only the IPv4 layout is built, whatever this says. */
  ethType?: number;
  src: string;
  dst: string;
  proto: ProtoName | number;
  /** TCP/UDP source port; for ICMP echo, the identifier. Default 0. */
  sport?: number;
  /** TCP/UDP destination port; for ICMP echo, the sequence number. Default 0. */
  dport?: number;
  payload?: Buffer;
  /** Raw IPv4 options, a multiple of 4 bytes, at most 40. */
  ipOptions?: Buffer;
  /** Fragment offset in 8-byte units (the header field's value, 0..8191). */
  fragOffset?: number;
  moreFragments?: boolean;
  dontFragment?: boolean;
  /** Default 64. */
  ttl?: number;
  /** IPv4 identification; default 0. */
  id?: number;
  tos?: number;
  /** UDP only: send without a checksum (0). */
  udpChecksumZero?: boolean;
  /** Default SYN. */
  tcpFlags?: number;
  tcpSeq?: number;
  tcpAck?: number;
  /** Default 65535. */
  tcpWindow?: number;
  /** ICMP type; default 8 (echo request). */
  icmpType?: number;
  icmpCode?: number;
}

export interface ParsedPacket {
  dstMac: string;
  srcMac: string;
  ethType: number;
  src: string;
  dst: string;
  proto: number;
  ttl: number;
  id: number;
  tos: number;
  ipHeaderLength: number;
  ipOptions: Buffer;
  totalLength: number;
  fragOffset: number;
  moreFragments: boolean;
  dontFragment: boolean;
  ipChecksum: number;
  ipChecksumOk: boolean;
  /** TCP/UDP ports (ICMP echo: identifier / sequence); undefined for non-first fragments and other protocols. */
  sport: number | undefined;
  dport: number | undefined;
  tcpFlags: number | undefined;
  tcpSeq: number | undefined;
  tcpAck: number | undefined;
  tcpWindow: number | undefined;
  icmpType: number | undefined;
  icmpCode: number | undefined;
  /** The L4 checksum field as found (TCP, UDP or ICMP). */
  l4Checksum: number | undefined;
  /** UDP checksum field as found (0 = sent without checksum); undefined unless UDP. */
  udpChecksum: number | undefined;
  /**
   * TCP/UDP (pseudo-header) or ICMP checksum verified; true for UDP sent
   * without checksum; undefined when it cannot be verified (fragments, other protocols).
   */
  l4ChecksumOk: boolean | undefined;
  /** L4 payload (after the TCP/UDP/ICMP header), bounded by the IPv4 total length. */
  payload: Buffer;
  /** Bytes after the IPv4 datagram (Ethernet padding). */
  trailer: Buffer;
}

const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
const DEFAULT_DST_MAC = '02:00:00:00:00:02';

function fail(msg: string): never {
  throw new Error(`packet: ${msg}`);
}

export function protoNumber(p: ProtoName | number): number {
  if (p === 'tcp') return IPPROTO_TCP;
  if (p === 'udp') return IPPROTO_UDP;
  if (p === 'icmp') return IPPROTO_ICMP;
  if (!Number.isInteger(p) || p < 0 || p > 255) fail(`bad protocol ${String(p)}`);
  return p;
}

function checkInt(name: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) fail(`${name} must be an integer 0..${max}, got ${v}`);
  return v;
}

export function macToBuf(mac: string): Buffer {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) fail(`bad MAC address ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function bufToMac(buf: Buffer, off = 0): string {
  return [...buf.subarray(off, off + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function ipToBuf(ip: string): Buffer {
  if (!isIPv4(ip)) fail(`bad IPv4 address ${ip}`);
  return Buffer.from(ip.split('.').map(Number));
}

export function bufToIp(buf: Buffer, off = 0): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

/** Unfolded ones'-complement sum of 16-bit big-endian words (odd tail padded with zero). */
export function onesSum(buf: Buffer, initial = 0): number {
  let sum = initial;
  const even = buf.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (buf.length & 1) sum += buf[buf.length - 1]! << 8;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** RFC 1071 Internet checksum of buf (the value to store in a zeroed checksum field). */
export function internetChecksum(buf: Buffer, initial = 0): number {
  return ~fold(onesSum(buf, initial)) & 0xffff;
}

/** Unfolded sum of the IPv4 pseudo-header for TCP/UDP. */
export function pseudoHeaderSum(src: Buffer, dst: Buffer, proto: number, l4Length: number): number {
  return onesSum(src) + onesSum(dst) + proto + l4Length;
}

/** Byte offsets of the IPv4 header and (no options) of the L4 header in a frame. */
export const L3 = ETH_HLEN;
export const L4 = ETH_HLEN + IPV4_HLEN;

/** A copy of frame buf with f applied, its IPv4 checksum recomputed unless fixCsum is false. */
export function editFrame(buf: Buffer, f: (b: Buffer) => void, fixCsum = true): Buffer {
  const b = Buffer.from(buf);
  f(b);
  return fixCsum ? fixIpChecksum(b) : b;
}

/** Recompute (in place) the IPv4 header checksum of an Ethernet frame; returns buf. */
export function fixIpChecksum(buf: Buffer): Buffer {
  const ihl = (buf[ETH_HLEN]! & 0x0f) * 4;
  buf.writeUInt16BE(0, ETH_HLEN + 10);
  buf.writeUInt16BE(internetChecksum(buf.subarray(ETH_HLEN, ETH_HLEN + ihl)), ETH_HLEN + 10);
  return buf;
}

export function buildPacket(spec: PacketSpec): Buffer {
  const proto = protoNumber(spec.proto);
  const payload = spec.payload ?? Buffer.alloc(0);
  const options = spec.ipOptions ?? Buffer.alloc(0);
  if (options.length % 4 !== 0 || options.length > 40) fail(`ipOptions must be a multiple of 4 bytes, at most 40; got ${options.length}`);
  const sport = checkInt('sport', spec.sport ?? 0, 0xffff);
  const dport = checkInt('dport', spec.dport ?? 0, 0xffff);
  const fragOffset = checkInt('fragOffset', spec.fragOffset ?? 0, IP_OFFSET);
  const ttl = checkInt('ttl', spec.ttl ?? 64, 0xff);
  const id = checkInt('id', spec.id ?? 0, 0xffff);
  const tos = checkInt('tos', spec.tos ?? 0, 0xff);
  const ethType = checkInt('ethType', spec.ethType ?? ETH_P_IP, 0xffff);
  const src = ipToBuf(spec.src);
  const dst = ipToBuf(spec.dst);

  // L4 header + payload.
  let l4: Buffer;
  if (proto === IPPROTO_TCP) {
    l4 = Buffer.alloc(TCP_HLEN + payload.length);
    l4.writeUInt16BE(sport, 0);
    l4.writeUInt16BE(dport, 2);
    l4.writeUInt32BE(checkInt('tcpSeq', spec.tcpSeq ?? 0, 0xffffffff), 4);
    l4.writeUInt32BE(checkInt('tcpAck', spec.tcpAck ?? 0, 0xffffffff), 8);
    l4[12] = (TCP_HLEN / 4) << 4;
    l4[13] = checkInt('tcpFlags', spec.tcpFlags ?? TCP_SYN, 0xff);
    l4.writeUInt16BE(checkInt('tcpWindow', spec.tcpWindow ?? 65535, 0xffff), 14);
    payload.copy(l4, TCP_HLEN);
    l4.writeUInt16BE(internetChecksum(l4, pseudoHeaderSum(src, dst, proto, l4.length)), 16);
  } else if (proto === IPPROTO_UDP) {
    l4 = Buffer.alloc(UDP_HLEN + payload.length);
    if (l4.length > 0xffff) fail('UDP datagram too long');
    l4.writeUInt16BE(sport, 0);
    l4.writeUInt16BE(dport, 2);
    l4.writeUInt16BE(l4.length, 4);
    payload.copy(l4, UDP_HLEN);
    if (!spec.udpChecksumZero) {
      const c = internetChecksum(l4, pseudoHeaderSum(src, dst, proto, l4.length));
      l4.writeUInt16BE(c === 0 ? 0xffff : c, 6); // RFC 768: computed zero is sent as all ones
    }
  } else if (proto === IPPROTO_ICMP) {
    l4 = Buffer.alloc(ICMP_ECHO_HLEN + payload.length);
    l4[0] = checkInt('icmpType', spec.icmpType ?? 8, 0xff);
    l4[1] = checkInt('icmpCode', spec.icmpCode ?? 0, 0xff);
    l4.writeUInt16BE(sport, 4);
    l4.writeUInt16BE(dport, 6);
    payload.copy(l4, ICMP_ECHO_HLEN);
    l4.writeUInt16BE(internetChecksum(l4), 2);
  } else {
    l4 = Buffer.from(payload);
  }

  // IPv4 header.
  const ihl = IPV4_HLEN + options.length;
  const totLen = ihl + l4.length;
  if (totLen > 0xffff) fail(`IPv4 datagram too long (${totLen} bytes)`);
  const ip = Buffer.alloc(ihl);
  ip[0] = 0x40 | (ihl / 4);
  ip[1] = tos;
  ip.writeUInt16BE(totLen, 2);
  ip.writeUInt16BE(id, 4);
  ip.writeUInt16BE((spec.moreFragments ? IP_MF : 0) | (spec.dontFragment ? IP_DF : 0) | fragOffset, 6);
  ip[8] = ttl;
  ip[9] = proto;
  src.copy(ip, 12);
  dst.copy(ip, 16);
  options.copy(ip, IPV4_HLEN);
  ip.writeUInt16BE(internetChecksum(ip), 10);

  const eth = Buffer.alloc(ETH_HLEN);
  macToBuf(spec.dstMac ?? DEFAULT_DST_MAC).copy(eth, 0);
  macToBuf(spec.srcMac ?? DEFAULT_SRC_MAC).copy(eth, 6);
  eth.writeUInt16BE(ethType, 12);

  return Buffer.concat([eth, ip, l4]);
}

/** An Ethernet frame with an arbitrary EtherType and body (ARP, IPv6, garbage). */
export function buildFrame(opts: { srcMac?: string; dstMac?: string; ethType: number; body: Buffer }): Buffer {
  const eth = Buffer.alloc(ETH_HLEN);
  macToBuf(opts.dstMac ?? DEFAULT_DST_MAC).copy(eth, 0);
  macToBuf(opts.srcMac ?? DEFAULT_SRC_MAC).copy(eth, 6);
  eth.writeUInt16BE(checkInt('ethType', opts.ethType, 0xffff), 12);
  return Buffer.concat([eth, opts.body]);
}

/**
 * Parse an Ethernet + IPv4 frame. Throws on anything that is not a complete
 * IPv4 datagram with a complete L4 header (tests build those on purpose and
 * compare bytes instead of parsing them).
 */
export function parsePacket(buf: Buffer): ParsedPacket {
  if (buf.length < ETH_HLEN) fail(`frame of ${buf.length} bytes is shorter than an Ethernet header`);
  const ethType = buf.readUInt16BE(12);
  if (ethType !== ETH_P_IP) fail(`EtherType 0x${ethType.toString(16).padStart(4, '0')} is not IPv4`);
  if (buf.length < ETH_HLEN + IPV4_HLEN) fail(`truncated IPv4 header (${buf.length - ETH_HLEN} bytes)`);
  const l3 = ETH_HLEN;
  const version = buf[l3]! >> 4;
  const ihl = (buf[l3]! & 0x0f) * 4;
  if (version !== 4) fail(`IP version ${version}`);
  if (ihl < IPV4_HLEN) fail(`IPv4 header length ${ihl} < 20`);
  const totalLength = buf.readUInt16BE(l3 + 2);
  if (totalLength < ihl) fail(`IPv4 total length ${totalLength} < header length ${ihl}`);
  if (l3 + totalLength > buf.length) fail(`IPv4 total length ${totalLength} exceeds the ${buf.length - l3} bytes present`);
  const ipHdr = buf.subarray(l3, l3 + ihl);
  const frag = buf.readUInt16BE(l3 + 6);
  const proto = buf[l3 + 9]!;
  const srcB = buf.subarray(l3 + 12, l3 + 16);
  const dstB = buf.subarray(l3 + 16, l3 + 20);
  const fragOffset = frag & IP_OFFSET;
  const moreFragments = (frag & IP_MF) !== 0;
  const l4 = buf.subarray(l3 + ihl, l3 + totalLength);

  const out: ParsedPacket = {
    dstMac: bufToMac(buf, 0),
    srcMac: bufToMac(buf, 6),
    ethType,
    src: bufToIp(srcB),
    dst: bufToIp(dstB),
    proto,
    ttl: buf[l3 + 8]!,
    id: buf.readUInt16BE(l3 + 4),
    tos: buf[l3 + 1]!,
    ipHeaderLength: ihl,
    ipOptions: Buffer.from(ipHdr.subarray(IPV4_HLEN)),
    totalLength,
    fragOffset,
    moreFragments,
    dontFragment: (frag & IP_DF) !== 0,
    ipChecksum: buf.readUInt16BE(l3 + 10),
    ipChecksumOk: fold(onesSum(ipHdr)) === 0xffff,
    sport: undefined,
    dport: undefined,
    tcpFlags: undefined,
    tcpSeq: undefined,
    tcpAck: undefined,
    tcpWindow: undefined,
    icmpType: undefined,
    icmpCode: undefined,
    l4Checksum: undefined,
    udpChecksum: undefined,
    l4ChecksumOk: undefined,
    payload: Buffer.from(l4),
    trailer: Buffer.from(buf.subarray(l3 + totalLength)),
  };
  const isFragment = moreFragments || fragOffset !== 0;
  if (fragOffset !== 0) return out; // no L4 header in this fragment

  const pseudo = pseudoHeaderSum(srcB, dstB, proto, l4.length);
  if (proto === IPPROTO_TCP) {
    if (l4.length < TCP_HLEN) fail(`truncated TCP header (${l4.length} bytes)`);
    const doff = (l4[12]! >> 4) * 4;
    if (doff < TCP_HLEN || doff > l4.length) fail(`bad TCP data offset ${doff}`);
    out.sport = l4.readUInt16BE(0);
    out.dport = l4.readUInt16BE(2);
    out.tcpSeq = l4.readUInt32BE(4);
    out.tcpAck = l4.readUInt32BE(8);
    out.tcpFlags = l4[13]!;
    out.tcpWindow = l4.readUInt16BE(14);
    out.l4Checksum = l4.readUInt16BE(16);
    out.l4ChecksumOk = isFragment ? undefined : fold(onesSum(l4, pseudo)) === 0xffff;
    out.payload = Buffer.from(l4.subarray(doff));
  } else if (proto === IPPROTO_UDP) {
    if (l4.length < UDP_HLEN) fail(`truncated UDP header (${l4.length} bytes)`);
    out.sport = l4.readUInt16BE(0);
    out.dport = l4.readUInt16BE(2);
    out.udpChecksum = out.l4Checksum = l4.readUInt16BE(6);
    out.l4ChecksumOk = out.udpChecksum === 0 ? true : isFragment ? undefined : fold(onesSum(l4, pseudo)) === 0xffff;
    out.payload = Buffer.from(l4.subarray(UDP_HLEN));
  } else if (proto === IPPROTO_ICMP) {
    if (l4.length < ICMP_ECHO_HLEN) fail(`truncated ICMP header (${l4.length} bytes)`);
    out.icmpType = l4[0]!;
    out.icmpCode = l4[1]!;
    out.sport = l4.readUInt16BE(4);
    out.dport = l4.readUInt16BE(6);
    out.l4Checksum = l4.readUInt16BE(2);
    out.l4ChecksumOk = isFragment ? undefined : fold(onesSum(l4)) === 0xffff;
    out.payload = Buffer.from(l4.subarray(ICMP_ECHO_HLEN));
  }
  return out;
}

/**
 * True when the IPv4 header checksum and the L4 checksum (where it can be
 * verified: not for fragments or unknown protocols) are correct.
 */
export function verifyChecksums(buf: Buffer): boolean {
  const p = parsePacket(buf);
  return p.ipChecksumOk && p.l4ChecksumOk !== false;
}
