/**
 * The ipRanges capability: the runtime narrows where this attachment's
 * address comes from. bpfnet's networks have one IPAM config shared by every
 * sandbox, so a per-attachment range becomes a static address: the plugin
 * picks free candidates inside the range (as the agent reports addresses in
 * use) and asks for the first; the agent still checks it, and a race with
 * another ADD (E_CONFLICT) moves on to the next candidate.
 */
import { broadcastAddress, containsAddr, containsCidr, formatIpv4, parseCidr, parseIpv4 } from '../model/ipv4.js';
import { CniError, CNI_ERR } from './errors.js';
import type { CniIpRange } from './types.js';

export interface NetIpam {
  subnet: string;
  gateway: string;
  auxAddresses?: Record<string, string>;
}

const bad = (msg: string): CniError => new CniError(CNI_ERR.INVALID_NETCONF, msg);

/** Validates the ranges against the network; throws code 7 for one that cannot apply. */
export function checkRanges(ranges: CniIpRange[], ipam: NetIpam, network: string): void {
  const net = parseCidr(ipam.subnet);
  for (const r of ranges) {
    const c = parseCidr(r.subnet);
    if (!containsCidr(net, c)) throw bad(`runtimeConfig.ipRanges subnet ${r.subnet} is not inside network "${network}"'s subnet ${ipam.subnet}`);
    for (const k of ['rangeStart', 'rangeEnd'] as const) {
      const a = r[k];
      if (a && !containsAddr(c, parseIpv4(a))) throw bad(`runtimeConfig.ipRanges ${k} ${a} is outside its subnet ${r.subnet}`);
    }
    if (r.rangeStart && r.rangeEnd && parseIpv4(r.rangeStart) > parseIpv4(r.rangeEnd)) {
      throw bad(`runtimeConfig.ipRanges rangeStart ${r.rangeStart} is above rangeEnd ${r.rangeEnd}`);
    }
    if (r.gateway && r.gateway !== ipam.gateway) {
      throw bad(`runtimeConfig.ipRanges gateway ${r.gateway} differs from network "${network}"'s gateway ${ipam.gateway}: bpfnet networks have one gateway`);
    }
  }
}

/** Up to `limit` free addresses inside the ranges, in order. */
export function candidateAddresses(ranges: CniIpRange[], ipam: NetIpam, inUse: ReadonlySet<string>, limit = 16): string[] {
  const net = parseCidr(ipam.subnet);
  const reserved = new Set<string>([formatIpv4(net.network), formatIpv4(broadcastAddress(net)), ipam.gateway, ...Object.values(ipam.auxAddresses ?? {})]);
  const out: string[] = [];
  for (const r of ranges) {
    const c = parseCidr(r.subnet);
    // host-local's defaults: the range's first and last host address.
    const start = r.rangeStart ? parseIpv4(r.rangeStart) : c.network + 1;
    const end = r.rangeEnd ? parseIpv4(r.rangeEnd) : broadcastAddress(c) - 1;
    for (let a = start; a <= end && out.length < limit; a++) {
      const s = formatIpv4(a);
      if (!reserved.has(s) && !inUse.has(s) && !out.includes(s)) out.push(s);
    }
    if (out.length >= limit) break;
  }
  return out;
}

export function exhausted(ranges: CniIpRange[], network: string): CniError {
  const desc = ranges.map((r) => `${r.subnet}${r.rangeStart || r.rangeEnd ? ` [${r.rangeStart ?? ''}-${r.rangeEnd ?? ''}]` : ''}`).join(', ');
  return new CniError(CNI_ERR.EXHAUSTED, `no free address left in runtimeConfig.ipRanges ${desc} on network "${network}"`);
}
