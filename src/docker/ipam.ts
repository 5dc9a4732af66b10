/**
 * The remote IPAM driver (`docker network create --ipam-driver bpfnet`):
 * pools chosen from Docker's default pools the way bpfnet chooses them for
 * its own networks (skipping bpfnet's networks, the other pools and the
 * node's routes), overlaps refused, addresses handed out first-free.
 * State lives in PluginState (persisted). Errors are IPAM's own
 * `{"Error": "..."}`.
 */
import { readFileSync } from 'node:fs';
import { BpfnetError } from '../util/errors.js';
import { broadcastAddress, canonicalCidr, containsAddr, containsCidr, formatIpv4, networkAddress, nthHost, overlaps, parseCidr, parseIpv4 } from '../model/ipv4.js';
import { choosePool } from '../model/ipam.js';
import { GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE, OPT } from './protocol.js';
import type { PluginState, PoolState } from './state.js';
import { bad, parseBody, poolRef, releaseAddressRequest, requestAddressRequest, requestPoolRequest } from './validate.js';

const M = (m: string) => `IpamDriver.${m}`;

export const poolId = (space: string, pool: string, subPool?: string) => `${space}/${pool}${subPool ? `/${subPool}` : ''}`;

/** Destinations of the node's IPv4 routes (/proc/net/route of the agent's netns), default excluded. */
export function nodeRoutes(text = readFileSync('/proc/net/route', 'utf8')): string[] {
  const le = (hex: string) => {
    const n = parseInt(hex, 16);
    return formatIpv4((((n & 0xff) << 24) | (((n >> 8) & 0xff) << 16) | (((n >> 16) & 0xff) << 8) | ((n >>> 24) & 0xff)) >>> 0);
  };
  const out: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const mask = parseInt(f[7]!, 16);
    if (mask === 0) continue;
    const prefix = mask.toString(2).split('').filter((b) => b === '1').length;
    out.push(canonicalCidr(`${le(f[1]!)}/${prefix}`));
  }
  return out;
}

/** Another subnet in use: by a pool of ours, or by a bpfnet network not made from one. */
export interface InUse {
  subnet: string;
  what: string;
}

/** The pool for a RequestPool, checked against what is in use. Pure. */
export function pickPool(req: { Pool: string; SubPool: string }, inUse: InUse[], routes: string[]): { pool: string; subPool?: string } {
  const m = M('RequestPool');
  if (req.SubPool && !req.Pool) throw bad(m, 'SubPool (--ip-range) needs Pool (--subnet)');
  if (!req.Pool) {
    const pool = choosePool({ usedSubnets: inUse.map((u) => u.subnet), hostRoutes: routes });
    return { pool };
  }
  let pool: string;
  let sub: string | undefined;
  try {
    pool = canonicalCidr(req.Pool, 'Pool');
    sub = req.SubPool ? canonicalCidr(req.SubPool, 'SubPool') : undefined;
  } catch (e) {
    throw bad(m, (e as Error).message);
  }
  if (sub && !containsCidr(parseCidr(pool), parseCidr(sub))) throw bad(m, `SubPool ${sub} (--ip-range) is not inside Pool ${pool} (--subnet)`);
  const hit = inUse.find((u) => overlaps(parseCidr(u.subnet), parseCidr(pool)));
  if (hit) throw new BpfnetError('E_CONFLICT', `${m}: Pool ${pool} overlaps with ${hit.what}; choose another --subnet`);
  return { pool, ...(sub ? { subPool: sub } : {}) };
}

/** The address for a RequestAddress. Pure: returns the address (no prefix). */
export function pickAddress(p: PoolState, requested: string, gateway: boolean): string {
  const m = M('RequestAddress');
  const pool = parseCidr(p.pool);
  const taken = new Set(p.addresses);
  const reserved = (ip: number) => pool.prefix < 31 && (ip === networkAddress(pool) || ip === broadcastAddress(pool));
  if (requested) {
    const ip = parseIpv4(requested.split('/')[0]!);
    if (!containsAddr(pool, ip)) throw bad(m, `Address ${requested} is outside pool ${p.pool}`);
    if (reserved(ip)) throw bad(m, `Address ${requested} is the network or broadcast address of ${p.pool}`);
    const s = formatIpv4(ip);
    if (taken.has(s)) throw new BpfnetError('E_CONFLICT', `${m}: Address ${s} is already in use in pool ${p.pool}`);
    return s;
  }
  // The gateway is the pool's first host (as Docker's default IPAM); endpoints come from the range.
  const range = gateway || !p.subPool ? pool : parseCidr(p.subPool);
  const usable = range.prefix >= 31 ? 2 ** (32 - range.prefix) : 2 ** (32 - range.prefix) - 2;
  for (let n = 1; n <= usable; n++) {
    const ip = nthHost(range, n);
    if (reserved(ip)) continue;
    const s = formatIpv4(ip);
    if (!taken.has(s)) return s;
  }
  throw new BpfnetError('E_EXHAUSTED', `${m}: no available IPv4 addresses left in ${p.subPool ?? p.pool}`);
}

export interface IpamContext {
  state: PluginState;
  /** Subnets of bpfnet's networks (from the agent), with names for messages. */
  networks(): Promise<{ subnet: string; name: string }[]>;
  routes?(): string[];
}

function pool(ctx: IpamContext, method: string, id: string): PoolState {
  const p = ctx.state.pools[id];
  if (!p) throw new BpfnetError('E_NOT_FOUND', `${M(method)}: unknown PoolID ${JSON.stringify(id)}: no such pool was requested from bpfnet (or it was released)`);
  return p;
}

export type IpamHandler = (body: string) => Promise<Record<string, unknown>>;

export function ipamHandlers(ctx: IpamContext): Record<string, IpamHandler> {
  return {
    GetCapabilities: async () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    GetDefaultAddressSpaces: async () => ({ LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE }),
    RequestPool: async (body) => {
      const req = requestPoolRequest(parseBody(M('RequestPool'), body));
      if (req.V6) throw bad(M('RequestPool'), 'IPv6 pools are not supported: bpfnet networks are IPv4 only; create the network without --ipv6');
      const space = req.AddressSpace || LOCAL_ADDRESS_SPACE;
      if (space !== LOCAL_ADDRESS_SPACE && space !== GLOBAL_ADDRESS_SPACE) throw bad(M('RequestPool'), `unknown AddressSpace ${JSON.stringify(space)}; bpfnet has ${LOCAL_ADDRESS_SPACE} and ${GLOBAL_ADDRESS_SPACE}`);
      const pools = Object.entries(ctx.state.pools);
      const own = new Set(pools.map(([, p]) => p.pool));
      const inUse: InUse[] = [
        ...pools.map(([id, p]) => ({ subnet: p.pool, what: `pool ${p.pool} (PoolID ${id}) already handed out by bpfnet's IPAM` })),
        ...(await ctx.networks()).filter((n) => !own.has(n.subnet)).map((n) => ({ subnet: n.subnet, what: `subnet ${n.subnet} of bpfnet network "${n.name}"` })),
      ];
      let picked: { pool: string; subPool?: string };
      try {
        picked = pickPool(req, inUse, req.Pool ? [] : (ctx.routes?.() ?? nodeRoutes()));
      } catch (e) {
        if (e instanceof BpfnetError && !e.message.startsWith('IpamDriver.')) throw new BpfnetError(e.code, `${M('RequestPool')}: ${e.message}`, e.details);
        throw e;
      }
      const id = poolId(space, picked.pool, picked.subPool);
      ctx.state.update((d) => {
        d.pools[id] = { addressSpace: space, pool: picked.pool, ...(picked.subPool ? { subPool: picked.subPool } : {}), addresses: [] };
      });
      return { PoolID: id, Pool: picked.pool, Data: {} };
    },
    ReleasePool: async (body) => {
      const { PoolID } = poolRef(M('ReleasePool'), parseBody(M('ReleasePool'), body));
      pool(ctx, 'ReleasePool', PoolID);
      ctx.state.update((d) => {
        delete d.pools[PoolID];
      });
      return {};
    },
    RequestAddress: async (body) => {
      const req = requestAddressRequest(parseBody(M('RequestAddress'), body));
      const p = pool(ctx, 'RequestAddress', req.PoolID);
      const ip = pickAddress(p, req.Address, req.Options[OPT.requestAddressType] === OPT.gateway);
      ctx.state.update((d) => {
        d.pools[req.PoolID]!.addresses.push(ip);
      });
      return { Address: `${ip}/${parseCidr(p.pool).prefix}`, Data: {} };
    },
    ReleaseAddress: async (body) => {
      const req = releaseAddressRequest(parseBody(M('ReleaseAddress'), body));
      const p = pool(ctx, 'ReleaseAddress', req.PoolID);
      const ip = formatIpv4(parseIpv4(req.Address.split('/')[0]!));
      if (!p.addresses.includes(ip)) throw new BpfnetError('E_NOT_FOUND', `${M('ReleaseAddress')}: ${ip} is not allocated in pool ${p.pool}`);
      ctx.state.update((d) => {
        const q = d.pools[req.PoolID]!;
        q.addresses = q.addresses.filter((a) => a !== ip);
      });
      return {};
    },
  };
}

