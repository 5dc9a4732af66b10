/**
 * IPv4 addresses and CIDR prefixes as unsigned 32-bit numbers. Pure.
 *
 * Addresses are parsed strictly (four decimal octets, no leading zeros, like
 * Go's netip that Docker uses), so "010.1.1.1" is refused rather than read as
 * octal by one tool and decimal by another.
 */
import { BpfnetError } from '../util/errors.js';

/** A parsed prefix. `network` is canonical; `address` is what was written. */
export interface Cidr {
  /** Network address (host bits cleared), u32. */
  network: number;
  /** 0..32 */
  prefix: number;
  /** The address as written before the slash (may have host bits set), u32. */
  address: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

function bad(message: string, details: Record<string, unknown> = {}): BpfnetError {
  return new BpfnetError('E_INVALID_ARGUMENT', message, details);
}

/** The u32 value of a dotted quad, or undefined when it is not one. */
export function tryParseIpv4(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return v >>> 0;
}

export function isIpv4(s: string): boolean {
  return tryParseIpv4(s) !== undefined;
}

/** True for anything with a colon that is not obviously garbage: an IPv6 literal (brackets allowed). */
export function looksLikeIpv6(s: string): boolean {
  const t = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  return /^[0-9a-fA-F:.]+(%[^\s]+)?$/.test(t) && t.includes(':') && (t.match(/:/g)?.length ?? 0) >= 2;
}

/** Parse a dotted quad; `what` names the thing in the error ("gateway", "--ip"). */
export function parseIpv4(s: string, what = 'IPv4 address'): number {
  const v = tryParseIpv4(s);
  if (v !== undefined) return v;
  if (looksLikeIpv6(s)) {
    throw bad(`${what} "${s}" is IPv6: bpfnet supports IPv4 only; give a dotted-quad IPv4 address such as 10.1.0.1`, { value: s });
  }
  throw bad(`${what} "${s}" is not an IPv4 address; expected four decimal octets 0-255 without leading zeros, e.g. 10.1.0.1`, { value: s });
}

export function formatIpv4(v: number): string {
  const u = v >>> 0;
  return `${u >>> 24}.${(u >>> 16) & 255}.${(u >>> 8) & 255}.${u & 255}`;
}

/** Netmask of a prefix length as u32 (0 -> 0, 32 -> 0xffffffff). */
export function maskOf(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw bad(`prefix length ${prefix} is out of range; use 0-32`);
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parse "a.b.c.d/n". Host bits are allowed here and cleared in `network`
 * (use hasHostBits to tell); callers that must refuse them do so with their
 * own wording.
 */
export function parseCidr(s: string, what = 'subnet'): Cidr {
  const slash = s.indexOf('/');
  if (slash < 0) {
    const hint = isIpv4(s) ? ` (for a single address write ${s}/32)` : '';
    throw bad(`${what} "${s}" is not in CIDR notation; expected address/prefix-length such as 10.1.0.0/16${hint}`, { value: s });
  }
  const addrPart = s.slice(0, slash);
  const lenPart = s.slice(slash + 1);
  const address = tryParseIpv4(addrPart);
  if (address === undefined) {
    if (looksLikeIpv6(addrPart)) {
      throw bad(`${what} "${s}" is an IPv6 prefix: bpfnet supports IPv4 only; give an IPv4 prefix such as 10.1.0.0/16`, { value: s });
    }
    throw bad(`${what} "${s}" is not valid CIDR: "${addrPart}" is not an IPv4 address; expected e.g. 10.1.0.0/16`, { value: s });
  }
  if (!/^(0|[1-9][0-9]?)$/.test(lenPart) || Number(lenPart) > 32) {
    throw bad(`${what} "${s}" is not valid CIDR: prefix length "${lenPart}" must be a number 0-32, e.g. 10.1.0.0/16`, { value: s });
  }
  const prefix = Number(lenPart);
  return { network: (address & maskOf(prefix)) >>> 0, prefix, address };
}

export function formatCidr(c: Pick<Cidr, 'network' | 'prefix'>): string {
  return `${formatIpv4(c.network)}/${c.prefix}`;
}

/** "10.1.2.3/16" -> "10.1.0.0/16". */
export function canonicalCidr(s: string, what = 'subnet'): string {
  return formatCidr(parseCidr(s, what));
}

export function hasHostBits(c: Cidr): boolean {
  return c.address !== c.network;
}

/** Number of addresses in the prefix (2^(32-n)). */
export function cidrSize(c: Pick<Cidr, 'prefix'>): number {
  return 2 ** (32 - c.prefix);
}

export function networkAddress(c: Pick<Cidr, 'network' | 'prefix'>): number {
  return c.network >>> 0;
}

export function broadcastAddress(c: Pick<Cidr, 'network' | 'prefix'>): number {
  return (c.network + cidrSize(c) - 1) >>> 0;
}

/** Address at offset n from the network address (1 = first host). Throws when outside. */
export function nthAddress(c: Pick<Cidr, 'network' | 'prefix'>, n: number): number {
  if (!Number.isInteger(n) || n < 0 || n >= cidrSize(c)) {
    throw bad(`offset ${n} is outside ${formatCidr(c)}, which has ${cidrSize(c)} addresses (offsets 0-${cidrSize(c) - 1})`);
  }
  return (c.network + n) >>> 0;
}

/**
 * The nth usable host (1-based). For /31 and /32 every address is usable
 * (RFC 3021); otherwise network and broadcast are skipped.
 */
export function nthHost(c: Pick<Cidr, 'network' | 'prefix'>, n: number): number {
  const size = cidrSize(c);
  const usable = c.prefix >= 31 ? size : size - 2;
  if (!Number.isInteger(n) || n < 1 || n > usable) {
    throw bad(`host number ${n} is outside ${formatCidr(c)}, which has ${usable} usable addresses (1-${usable})`);
  }
  return (c.network + (c.prefix >= 31 ? n - 1 : n)) >>> 0;
}

export function containsAddr(c: Pick<Cidr, 'network' | 'prefix'>, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === c.network;
}

/** outer contains every address of inner. */
export function containsCidr(outer: Pick<Cidr, 'network' | 'prefix'>, inner: Pick<Cidr, 'network' | 'prefix'>): boolean {
  return inner.prefix >= outer.prefix && containsAddr(outer, inner.network);
}

export function overlaps(a: Pick<Cidr, 'network' | 'prefix'>, b: Pick<Cidr, 'network' | 'prefix'>): boolean {
  return containsCidr(a, b) || containsCidr(b, a);
}

/** String conveniences. */
export function cidrContains(cidr: string, ip: string): boolean {
  return containsAddr(parseCidr(cidr), parseIpv4(ip));
}

export function cidrOverlaps(a: string, b: string): boolean {
  return overlaps(parseCidr(a), parseCidr(b));
}

/** Split `c` into consecutive prefixes of length `prefix` (>= c.prefix). */
export function subdivide(c: Pick<Cidr, 'network' | 'prefix'>, prefix: number): Cidr[] {
  if (prefix < c.prefix || prefix > 32) throw bad(`cannot cut ${formatCidr(c)} into /${prefix}s; pick a length between ${c.prefix} and 32`);
  const step = 2 ** (32 - prefix);
  const out: Cidr[] = [];
  for (let i = 0; i < cidrSize(c) / step; i++) {
    const network = (c.network + i * step) >>> 0;
    out.push({ network, prefix, address: network });
  }
  return out;
}

export function isLoopback(ip: number): boolean {
  return ip >>> 24 === 127;
}
