/**
 * The node's listening and bound sockets, for "port is already allocated"
 * checks at publish time: a published port whose host address overlaps a
 * socket already listening on the node would steal (or lose) that socket's
 * traffic, so publishing refuses it, as Docker does when its proxy or port
 * reservation cannot bind.
 *
 * Read from /proc/self/net/{tcp,tcp6,udp,udp6}, which describe the netns of
 * the reading process: the agent runs in its node's netns, so these are the
 * node's sockets. Counted: TCP sockets in LISTEN; UDP sockets with a local
 * port (any state: an unconnected server socket, or a connected one, holds
 * its port just the same for bind()). TCP sockets in other states (accepted
 * or outgoing connections) are not counted.
 *
 * Overlap (bind() semantics, like the kernel's port-in-use check):
 *   - same family: a wildcard on either side (0.0.0.0 / ::) or equal addresses;
 *   - IPv6 dual stack: a socket on `::` also receives IPv4 unless it set
 *     IPV6_V6ONLY, which /proc does not show. With net.ipv6.bindv6only=0 (the
 *     default) that is the normal case, so a `::` listener is counted as
 *     conflicting with every IPv4 host address (0.0.0.0 included) — the
 *     conservative reading: at worst a v6-only socket blocks an IPv4 publish;
 *   - a v4-mapped listener (::ffff:a.b.c.d) is the IPv4 listener a.b.c.d;
 *   - an IPv6 host address never conflicts with a plain IPv4 listener, and an
 *     IPv4 host address never with a specific (non-wildcard) IPv6 listener.
 */
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { invalidArgument } from '../util/errors.js';
import { run } from '../util/exec.js';
import { native } from '../netlink/native.js';

export type SockProto = 'tcp' | 'udp';

export interface BoundSocket {
  proto: SockProto;
  family: 4 | 6;
  /** Local address as printed: "0.0.0.0", "127.0.0.1", "::", "::1", "::ffff:10.0.0.1". */
  addr: string;
  port: number;
  /** Kernel socket state (TCP_LISTEN = 10; unconnected UDP = 7, connected = 1). */
  state: number;
  /** Socket inode (find the owner through /proc/PID/fd). */
  inode: number;
}

export const TCP_LISTEN = 0x0a;

/** "0100007F" (host-order u32s as /proc prints them; whole words of hex digits) -> bytes in network order. */
function hexWords(hex: string, little: boolean): number[] {
  const b = Buffer.from(hex, 'hex');
  return [...(little ? b.swap32() : b)];
}

function v4String(b: number[]): string {
  return b.join('.');
}

/** 16 bytes -> RFC 5952 text (v4-mapped as ::ffff:a.b.c.d). */
export function formatIPv6(b: readonly number[]): string {
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `::ffff:${v4String(b.slice(12) as number[])}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  // Longest run (>= 2) of zero words becomes "::".
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

/** IPv6 text -> 16 bytes (embedded IPv4 tails accepted; zone ids refused). */
export function parseIPv6(s: string): number[] {
  if (!isIPv6(s)) throw invalidArgument(`not an IPv6 address: ${s}`);
  let text = s;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const split = text.split('::');
  const head = split[0] ? split[0].split(':') : [];
  const tail = split.length > 1 && split[1] ? split[1].split(':') : [];
  const words = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail].map((w) => parseInt(w, 16));
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

/**
 * Parses one /proc/net/{tcp,tcp6,udp,udp6} table. TCP: LISTEN sockets only;
 * UDP: every socket with a local port. `little`: the kernel's byte order
 * (the reader's own, /proc being local).
 */
export function parseProcNet(text: string, proto: SockProto, family: 4 | 6, little = endianness() === 'LE'): BoundSocket[] {
  const out: BoundSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^\d+:$/.test(f[0]!)) continue;
    const [addrHex, portHex] = f[1]!.split(':') as [string, string | undefined];
    const state = parseInt(f[3]!, 16);
    const port = parseInt(portHex ?? '', 16);
    if (!Number.isFinite(port) || !Number.isFinite(state)) continue;
    if (proto === 'tcp' && state !== TCP_LISTEN) continue;
    if (port === 0) continue;
    if (addrHex.length !== (family === 4 ? 8 : 32) || !/^[0-9A-Fa-f]+$/.test(addrHex)) continue;
    const bytes = hexWords(addrHex, little);
    out.push({ proto, family, addr: family === 4 ? v4String(bytes) : formatIPv6(bytes), port, state, inode: Number(f[9]) });
  }
  return out;
}

const TABLES: readonly [string, SockProto, 4 | 6][] = [['tcp', 'tcp', 4], ['tcp6', 'tcp', 6], ['udp', 'udp', 4], ['udp6', 'udp', 6]];

export interface ReadSocketsOptions {
  /** Read these tables (default /proc/self/net: the caller's netns). */
  procNetDir?: string;
  /**
   * Or those of the netns at this path (/run/netns/NAME), through one
   * `nsenter --net=PATH` process: for a caller that is not in the node's
   * netns itself (an agent inside it needs neither option).
   */
  netns?: string;
}

/** The listening/bound sockets of a netns (default: the caller's, i.e. the node's for the agent). */
export async function readBoundSockets(opts: ReadSocketsOptions = {}): Promise<BoundSocket[]> {
  const out: BoundSocket[] = [];
  if (opts.netns) {
    const script = TABLES.map(([f]) => `echo '@@${f}'; cat /proc/self/net/${f} 2>/dev/null`).join('; ');
    const { stdout } = await run('sh', ['-c', script], { netns: opts.netns });
    for (const part of stdout.split(/^@@/m).slice(1)) {
      const nl = part.indexOf('\n');
      const name = nl < 0 ? part : part.slice(0, nl);
      const t = TABLES.find(([f]) => f === name);
      if (t && nl >= 0) out.push(...parseProcNet(part.slice(nl + 1), t[1], t[2]));
    }
    return out;
  }
  return readBoundSocketsHere(opts.procNetDir);
}

/** readBoundSockets for the caller's own netns (or a copy of its tables in dir), synchronously. */
export function readBoundSocketsHere(dir = '/proc/self/net'): BoundSocket[] {
  const out: BoundSocket[] = [];
  for (const [file, proto, family] of TABLES) {
    let text: string;
    try {
      text = readFileSync(join(dir, file), 'utf8');
    } catch (e) {
      // No IPv6 in this kernel/netns: no v6 sockets either.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && family === 6) continue;
      throw e;
    }
    out.push(...parseProcNet(text, proto, family));
  }
  return out;
}

const EADDRINUSE = 98;

/**
 * Which host ports the node's sockets hold, as a bind would find them, for
 * one publish call in the caller's (the node's) netns. While few ports are
 * asked, each is a bind probe (one bind+close, O(1)); past maxProbes (a
 * range, an ephemeral choice) the tables are read once and answer the rest:
 * reading /proc/net/tcp walks the whole TCP hash, ~1.5 ms even when empty.
 */
export class NodeSocketCheck {
  private probes = 0;
  private snapshot: BoundSocket[] | undefined;

  constructor(
    private readonly probe: (proto: SockProto, hostIp: string, port: number) => number = (proto, hostIp, port) => native().bindProbe(proto, hostIp, port),
    private readonly read: () => BoundSocket[] = () => readBoundSocketsHere(),
    private readonly maxProbes = 32,
  ) {}

  /** The tables, read at most once per check. */
  sockets(): BoundSocket[] {
    this.snapshot ??= this.read();
    return this.snapshot;
  }

  taken(hostIp: string, proto: SockProto, port: number): boolean {
    if (this.snapshot || this.probes >= this.maxProbes) return portConflicts(this.sockets(), hostIp, port, proto).length > 0;
    this.probes++;
    return this.probe(proto, hostIp, port) === EADDRINUSE;
  }
}

interface Norm {
  family: 4 | 6;
  /** IPv4 "a.b.c.d" or IPv6 canonical text; wildcard flagged. */
  addr: string;
  any: boolean;
}

/** A host address ("" = all) or a socket's address, with v4-mapped folded into IPv4. */
function normalize(addr: string, dualStackWildcard: boolean): Norm & { dual: boolean } {
  if (addr === '' || addr === '0.0.0.0') return { family: 4, addr: '0.0.0.0', any: true, dual: false };
  if (isIPv4(addr)) return { family: 4, addr, any: false, dual: false };
  const b = parseIPv6(addr);
  const text = formatIPv6(b);
  if (text.startsWith('::ffff:') && text.includes('.')) {
    const v4 = text.slice(7);
    return { family: 4, addr: v4, any: v4 === '0.0.0.0', dual: false };
  }
  const any = text === '::';
  return { family: 6, addr: text, any, dual: any && dualStackWildcard };
}

/**
 * The sockets that a port published on hostIp ("" or "0.0.0.0" = every
 * address; IPv4 or IPv6) would collide with (see the header for the rules).
 */
export function portConflicts(sockets: readonly BoundSocket[], hostIp: string, port: number, proto: SockProto): BoundSocket[] {
  if (hostIp !== '' && !isIPv4(hostIp) && !isIPv6(hostIp)) throw invalidArgument(`not an IP address: ${hostIp}`);
  const h = normalize(hostIp, false);
  return sockets.filter((s) => {
    if (s.proto !== proto || s.port !== port) return false;
    const l = normalize(s.addr, true);
    if (l.dual) return true; // `::` without IPV6_V6ONLY takes every address of both families
    if (l.family !== h.family) return false;
    return l.any || h.any || l.addr === h.addr;
  });
}

/** Is hostIp:port/proto taken by a socket listening (TCP) or bound (UDP) in the caller's netns (or opts')? */
export async function isPortInUse(hostIp: string, port: number, proto: SockProto, opts: ReadSocketsOptions = {}): Promise<boolean> {
  return portConflicts(await readBoundSockets(opts), hostIp, port, proto).length > 0;
}

/** "tcp 0.0.0.0:8080", "udp [::]:53" for error messages. */
export function describeSocket(s: BoundSocket): string {
  return `${s.proto} ${s.family === 6 ? `[${s.addr}]` : s.addr}:${s.port}`;
}
