/**
 * IP address management like Docker's default IPAM driver: the default
 * pools, validating --subnet/--gateway/--ip-range/--aux-address, and handing
 * out endpoint addresses. Pure: every input (networks in use, the node's
 * routes, addresses in use) is passed in.
 */
import { BpfnetError } from '../util/errors.js';
import type { DriverName, IpamConfig } from './types.js';
import {
  broadcastAddress,
  type Cidr,
  cidrSize,
  containsAddr,
  containsCidr,
  formatCidr,
  formatIpv4,
  hasHostBits,
  maskOf,
  overlaps,
  parseCidr,
  parseIpv4,
  subdivide,
  tryParseIpv4,
} from './ipv4.js';

/**
 * Docker's default local address pools, in the order Docker tries them:
 * 172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/16 cut into /20s
 * (31 networks in all).
 */
export const DEFAULT_POOLS: readonly string[] = Object.freeze([
  ...Array.from({ length: 15 }, (_, i) => `172.${17 + i}.0.0/16`),
  ...subdivide(parseCidr('192.168.0.0/16'), 20).map(formatCidr),
]);

/** A subnet already used by a network; a bare string or with the network's name (for messages). */
export type UsedSubnet = string | { subnet: string; network?: string };

export interface PoolContext {
  /** Subnets of the existing networks. */
  usedSubnets: UsedSubnet[];
  /**
   * Destinations of the routes on the node ("10.0.0.0/8", "192.168.1.7" for a
   * host route, "default"/"0.0.0.0/0" ignored).
   */
  hostRoutes: string[];
  /** Candidate pools, in order (default: DEFAULT_POOLS). */
  pools?: readonly string[];
}

interface Taken {
  cidr: Cidr;
  what: string;
}

function used(list: UsedSubnet[]): Taken[] {
  return list.map((u) => {
    const cidr = parseCidr(typeof u === 'string' ? u : u.subnet, 'subnet in use');
    const name = typeof u === 'string' ? undefined : u.network;
    return { cidr, what: `subnet ${formatCidr(cidr)} of ${name ? `network "${name}"` : 'an existing network'}` };
  });
}

function routes(list: string[]): Taken[] {
  const out: Taken[] = [];
  for (const r of list) {
    const t = r.trim();
    if (t === 'default') continue;
    const cidr = t.includes('/') ? parseCidr(t, 'host route') : { network: parseIpv4(t, 'host route'), prefix: 32, address: parseIpv4(t) };
    if (cidr.prefix === 0) continue; // a default route overlaps everything; Docker ignores it
    out.push({ cidr, what: `route ${formatCidr(cidr)} on this node` });
  }
  return out;
}

function firstFree(pools: readonly string[], taken: Taken[]): string | undefined {
  for (const p of pools) {
    const c = parseCidr(p, 'address pool');
    if (!taken.some((t) => overlaps(t.cidr, c))) return formatCidr(c);
  }
  return undefined;
}

/** A free /16 in 10.0.0.0/8 to suggest in messages, if any. */
function suggestion(taken: Taken[]): string | undefined {
  return firstFree(subdivide(parseCidr('10.0.0.0/8'), 16).map(formatCidr), taken);
}

/**
 * The first default pool that overlaps neither an existing network's subnet
 * nor a route on the node. E_EXHAUSTED when none is left.
 */
export function choosePool(ctx: PoolContext): string {
  const taken = [...used(ctx.usedSubnets), ...routes(ctx.hostRoutes)];
  const pool = firstFree(ctx.pools ?? DEFAULT_POOLS, taken);
  if (pool) return pool;
  const eg = suggestion(taken);
  throw new BpfnetError(
    'E_EXHAUSTED',
    `could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network; pass --subnet${eg ? ` with a free range, e.g. --subnet ${eg}` : ''} (or remove unused networks)`,
    { pools: [...(ctx.pools ?? DEFAULT_POOLS)], suggestion: eg },
  );
}

export interface IpamRequest {
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  auxAddresses?: Record<string, string>;
}

export interface IpamContext extends PoolContext {
  /** Driver of the network (default bridge): /31 and /32 are refused for bridge. */
  driver?: DriverName;
  /**
   * Docker 25+ refuses a --subnet/--ip-range with host bits set ("invalid
   * subnet 10.1.2.3/16: it should be 10.1.0.0/16"); older Docker silently
   * canonicalised. true = canonicalise like older Docker.
   */
  acceptHostBits?: boolean;
}

function invalid(message: string, details: Record<string, unknown> = {}): BpfnetError {
  return new BpfnetError('E_INVALID_ARGUMENT', message, details);
}

/** The /24 (or the prefix itself when longer) containing an address, for suggestions. */
function subnetAround(ip: number): string {
  return formatCidr({ network: (ip & maskOf(24)) >>> 0, prefix: 24 });
}

function checkAddressInSubnet(s: Cidr, value: string, what: string, flag: string): number {
  const ip = parseIpv4(value, what);
  const first = formatIpv4(s.network + 1);
  if (!containsAddr(s, ip)) {
    throw invalid(`${what} ${value} is outside subnet ${formatCidr(s)}; pick an address inside it, e.g. ${first}`, { [flag]: value, subnet: formatCidr(s) });
  }
  if (s.prefix < 31 && ip === s.network) {
    throw invalid(`${what} ${value} is the network address of subnet ${formatCidr(s)}; pick a host address inside it, e.g. ${first}`, { [flag]: value });
  }
  if (s.prefix < 31 && ip === broadcastAddress(s)) {
    throw invalid(`${what} ${value} is the broadcast address of subnet ${formatCidr(s)}; pick a host address inside it, e.g. ${first}`, { [flag]: value });
  }
  return ip;
}

/**
 * Validate a network's IPAM request and fill in the defaults (pool, gateway
 * = first host address). Mirrors Docker's checks and wording where it has
 * them (docker/cli consolidateIpam, moby ValidateIPAM, libnetwork's pool
 * overlap check).
 */
export function resolveIpam(req: IpamRequest, ctx: IpamContext): IpamConfig {
  const driver = ctx.driver ?? 'bridge';
  const aux = req.auxAddresses ?? {};
  const auxNames = Object.keys(aux);

  if (req.subnet === undefined || req.subnet === '') {
    if (req.gateway) {
      const ip = parseIpv4(req.gateway, 'gateway');
      throw invalid(`gateway ${req.gateway} was given without a subnet: every --gateway or --ip-range needs a corresponding --subnet containing it; add one, e.g. --subnet ${subnetAround(ip)}`, { gateway: req.gateway });
    }
    if (req.ipRange) {
      const r = parseCidr(req.ipRange, 'ip-range');
      throw invalid(`ip-range ${req.ipRange} was given without a subnet: every --gateway or --ip-range needs a corresponding --subnet containing it; add one, e.g. --subnet ${formatCidr(r)}`, { ipRange: req.ipRange });
    }
    const first = auxNames[0];
    if (first !== undefined) {
      const v = aux[first] ?? '';
      const ip = tryParseIpv4(v);
      throw invalid(`no matching subnet for aux-address ${first}=${v}: auxiliary addresses need a --subnet containing them; add one${ip !== undefined ? `, e.g. --subnet ${subnetAround(ip)}` : ''}`, { auxAddress: first });
    }
    const subnet = choosePool(ctx);
    const c = parseCidr(subnet);
    return { subnet, gateway: formatIpv4(c.network + 1), auxAddresses: {}, userConfigured: false };
  }

  // --subnet
  const s = parseCidr(req.subnet, 'subnet');
  const canonical = formatCidr(s);
  if (hasHostBits(s) && !ctx.acceptHostBits) {
    throw invalid(`invalid subnet ${req.subnet}: it has host bits set; it should be ${canonical}`, { subnet: req.subnet, canonical });
  }
  if (driver === 'bridge' && s.prefix > 30) {
    throw invalid(`subnet ${canonical} is too small for a bridge network: /${s.prefix} leaves no room for network, gateway, a container and broadcast addresses; use /30 or shorter, e.g. ${formatCidr({ network: (s.network & maskOf(24)) >>> 0, prefix: 24 })}`, { subnet: canonical });
  }
  const taken = used(ctx.usedSubnets);
  const clash = taken.find((t) => overlaps(t.cidr, s));
  if (clash) {
    const eg = firstFree(ctx.pools ?? DEFAULT_POOLS, [...taken, ...routes(ctx.hostRoutes)]) ?? suggestion([...taken, ...routes(ctx.hostRoutes)]);
    throw new BpfnetError('E_CONFLICT', `subnet ${canonical} overlaps ${clash.what}; pick a subnet that overlaps no existing network${eg ? `, e.g. --subnet ${eg}` : ''}`, {
      subnet: canonical,
      conflictsWith: formatCidr(clash.cidr),
    });
  }

  // --ip-range
  let ipRange: string | undefined;
  if (req.ipRange !== undefined && req.ipRange !== '') {
    const r = parseCidr(req.ipRange, 'ip-range');
    const rc = formatCidr(r);
    if (hasHostBits(r) && !ctx.acceptHostBits) {
      throw invalid(`invalid ip-range ${req.ipRange}: it has host bits set; it should be ${rc}`, { ipRange: req.ipRange, canonical: rc });
    }
    if (!containsCidr(s, r)) {
      const why = r.prefix < s.prefix ? 'is bigger than' : 'is not inside';
      throw invalid(`ip-range ${rc} ${why} its subnet ${canonical}; pick a range inside the subnet, e.g. ${formatCidr({ network: s.network, prefix: Math.min(32, Math.max(s.prefix, 24)) })}`, { ipRange: rc, subnet: canonical });
    }
    ipRange = rc;
  }

  // --gateway
  let gateway: string;
  if (req.gateway !== undefined && req.gateway !== '') {
    gateway = formatIpv4(checkAddressInSubnet(s, req.gateway, 'gateway', 'gateway'));
  } else {
    gateway = formatIpv4(s.prefix >= 31 ? s.network : s.network + 1);
  }

  // --aux-address
  const auxAddresses: Record<string, string> = {};
  const byAddr = new Map<string, string>();
  for (const name of auxNames) {
    const v = aux[name] ?? '';
    if (name.trim() === '') throw invalid(`aux-address "=${v}" has no name; write it as NAME=ADDRESS, e.g. --aux-address router=${formatIpv4(s.network + 2)}`);
    const ip = formatIpv4(checkAddressInSubnet(s, v, `aux-address ${name}`, 'auxAddress'));
    if (ip === gateway) {
      throw invalid(`aux-address ${name}=${v} is the gateway address of subnet ${canonical}; reserve a different address, or drop it (the gateway is reserved anyway)`, { auxAddress: name });
    }
    const prev = byAddr.get(ip);
    if (prev !== undefined) {
      throw invalid(`aux-address ${name}=${v} duplicates aux-address ${prev}=${v}; give each auxiliary name its own address`, { auxAddress: name });
    }
    byAddr.set(ip, name);
    auxAddresses[name] = ip;
  }

  const out: IpamConfig = { subnet: canonical, gateway, auxAddresses, userConfigured: true };
  if (ipRange !== undefined) out.ipRange = ipRange;
  return out;
}

/** Addresses never handed to endpoints: network, broadcast, gateway, aux addresses. */
export function reservedAddresses(ipam: IpamConfig): Map<string, string> {
  const s = parseCidr(ipam.subnet);
  const out = new Map<string, string>();
  if (s.prefix < 31) {
    out.set(formatIpv4(s.network), 'the network address');
    out.set(formatIpv4(broadcastAddress(s)), 'the broadcast address');
  }
  out.set(ipam.gateway, 'the gateway');
  for (const [name, addr] of Object.entries(ipam.auxAddresses)) out.set(addr, `auxiliary address "${name}"`);
  return out;
}

export interface AllocateOptions {
  /** Network name for messages. */
  network?: string;
}

function firstFreeIn(range: Cidr, reserved: Map<string, string>, inUse: Set<string>): string | undefined {
  const size = cidrSize(range);
  for (let i = 0; i < size; i++) {
    const a = formatIpv4(range.network + i);
    if (!reserved.has(a) && !inUse.has(a)) return a;
  }
  return undefined;
}

/**
 * An address for a new endpoint. Without `requested`: the first free address
 * (inside ipRange when set). With `requested` (a static --ip): it must be in
 * the subnet (Docker does not require it to be inside --ip-range), not
 * reserved and not in use.
 */
export function allocateAddress(ipam: IpamConfig, inUse: Set<string>, requested?: string, opts: AllocateOptions = {}): string {
  const s = parseCidr(ipam.subnet);
  const range = ipam.ipRange ? parseCidr(ipam.ipRange) : s;
  const reserved = reservedAddresses(ipam);
  const on = opts.network ? ` on network "${opts.network}"` : '';
  const free = () => firstFreeIn(range, reserved, inUse);

  if (requested !== undefined && requested !== '') {
    if (ipam.userConfigured === false) {
      throw invalid(`a static address (${requested}) can only be given on networks with a user-configured subnet${on}; create the network with --subnet, or omit --ip to get one from ${ipam.subnet}`, { requested });
    }
    const ip = formatIpv4(parseIpv4(requested, 'requested address'));
    const eg = free();
    const hint = eg ? `, e.g. ${eg}` : '';
    if (!containsAddr(s, parseIpv4(ip))) {
      throw invalid(`address ${ip} is outside subnet ${ipam.subnet}${on}; pick an address inside it${hint}`, { requested: ip, subnet: ipam.subnet });
    }
    const why = reserved.get(ip);
    if (why !== undefined) {
      const net = why === 'the network address' || why === 'the broadcast address';
      throw new BpfnetError(net ? 'E_INVALID_ARGUMENT' : 'E_CONFLICT', `address ${ip} is reserved as ${why} of ${ipam.subnet}${on}; pick a free address${hint}`, { requested: ip, reserved: why });
    }
    if (inUse.has(ip)) {
      throw new BpfnetError('E_CONFLICT', `address ${ip} is already in use${on || ' on this network'}; pick a free address${hint}, or omit --ip to get one`, { requested: ip });
    }
    return ip;
  }

  const a = free();
  if (a !== undefined) return a;
  const where = ipam.ipRange ? `ip-range ${ipam.ipRange} of subnet ${ipam.subnet}` : `subnet ${ipam.subnet}`;
  throw new BpfnetError(
    'E_EXHAUSTED',
    `no free address left in ${where}${on} (${inUse.size} in use, ${reserved.size} reserved); disconnect an endpoint, or use a network with a larger --subnet${ipam.ipRange ? '/--ip-range' : ''}`,
    { subnet: ipam.subnet, ipRange: ipam.ipRange },
  );
}

/** The set without `ip` (the address becomes free for the next allocation). */
export function releaseAddress(inUse: Set<string>, ip: string): Set<string> {
  const out = new Set(inUse);
  out.delete(ip);
  return out;
}

/** Prefix length of the network's subnet (what endpoints configure). */
export function subnetPrefixLen(ipam: IpamConfig): number {
  return parseCidr(ipam.subnet).prefix;
}
