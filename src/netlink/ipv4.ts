/** IPv4 addresses, prefixes and MAC addresses as netlink carries them (network order bytes). */
import { invalidArgument } from '../util/errors.js';

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIPv4(s: string, what = 'IPv4 address'): Buffer {
  const parts = typeof s === 'string' ? s.split('.') : [];
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) {
    throw invalidArgument(`invalid ${what} ${JSON.stringify(s)}: expected a.b.c.d`, { value: s });
  }
  return Buffer.from(parts.map(Number));
}

export function formatIPv4(b: Buffer, offset = 0): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

export interface Prefix {
  /** The address as written (host bits kept: "10.0.0.2/24" is an interface address). */
  ip: string;
  bytes: Buffer;
  prefixLen: number;
}

/** "a.b.c.d/n"; a bare address is a /32. */
export function parseCidr(s: string, what = 'IPv4 prefix'): Prefix {
  if (typeof s !== 'string') throw invalidArgument(`invalid ${what} ${String(s)}: expected a.b.c.d/n`, { value: s });
  const slash = s.indexOf('/');
  const ip = slash < 0 ? s : s.slice(0, slash);
  const len = slash < 0 ? '32' : s.slice(slash + 1);
  if (!/^(3[0-2]|[12]?\d)$/.test(len)) {
    throw invalidArgument(`invalid ${what} ${JSON.stringify(s)}: prefix length must be 0..32`, { value: s });
  }
  return { ip, bytes: parseIPv4(ip, what), prefixLen: Number(len) };
}

/** The directed broadcast address of a prefix (host bits all ones). */
export function broadcastOf(bytes: Buffer, prefixLen: number): Buffer {
  // (x >>> 32 is x >>> 0 in JavaScript)
  const host = prefixLen >= 32 ? 0 : 0xffffffff >>> prefixLen;
  const out = Buffer.alloc(4);
  out.writeUInt32BE((bytes.readUInt32BE(0) | host) >>> 0, 0);
  return out;
}

export function parseMac(s: string): Buffer {
  if (typeof s !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s)) {
    throw invalidArgument(`invalid MAC address ${JSON.stringify(s)}: expected xx:xx:xx:xx:xx:xx`, { value: s });
  }
  return Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
}

export function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
