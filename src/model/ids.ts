/**
 * Identifiers: Docker-style 64-hex ids, short ids, resolving a user's
 * reference (id, name or id prefix), MAC addresses and bpfnet's device names.
 */
import { randomBytes } from 'node:crypto';
import { BpfnetError } from '../util/errors.js';
import { parseIpv4 } from './ipv4.js';

export const ID_LENGTH = 64;
export const SHORT_ID_LENGTH = 12;

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * A new random id: 64 lowercase hex characters (32 random bytes). Like
 * Docker's stringid.GenerateRandomID, ids whose 12-character short form is
 * all digits are skipped so a short id is never mistaken for a number.
 * `random` is injectable for tests.
 */
export function newId(random: (n: number) => Uint8Array = (n) => randomBytes(n)): string {
  for (let i = 0; i < 100; i++) {
    const id = Buffer.from(random(32)).toString('hex');
    if (!HEX64.test(id)) throw new BpfnetError('E_INVALID_ARGUMENT', `random source returned ${id.length / 2} bytes; 32 are needed for an id`);
    if (!/^[0-9]+$/.test(id.slice(0, SHORT_ID_LENGTH))) return id;
  }
  throw new BpfnetError('E_INVALID_ARGUMENT', 'random source keeps returning ids whose short form is all digits; it is not random');
}

export function isFullId(s: string): boolean {
  return HEX64.test(s);
}

/** First 12 characters, as docker ps / network ls show. */
export function shortId(id: string): string {
  return id.slice(0, SHORT_ID_LENGTH);
}

export interface Named {
  id: string;
  name: string;
}

/**
 * Find an item by exact id, then exact name, then unique id prefix (Docker's
 * order). Ambiguous prefix: E_CONFLICT listing the candidates; nothing:
 * E_NOT_FOUND.
 */
export function resolveRef<T extends Named>(ref: string, items: readonly T[], kind = 'network'): T {
  if (ref === '') throw new BpfnetError('E_INVALID_ARGUMENT', `no ${kind} given; pass a ${kind} name, ID or ID prefix`);
  const byId = items.find((i) => i.id === ref);
  if (byId) return byId;
  const byName = items.find((i) => i.name === ref);
  if (byName) return byName;
  const prefix = /^[0-9a-f]+$/.test(ref) ? items.filter((i) => i.id.startsWith(ref)) : [];
  const only = prefix[0];
  if (prefix.length === 1 && only) return only;
  if (prefix.length > 1) {
    const list = prefix.map((i) => `${shortId(i.id)} (${i.name})`).join(', ');
    throw new BpfnetError('E_CONFLICT', `${kind} ID prefix "${ref}" is ambiguous: it matches ${prefix.length} ${kind}s: ${list}; give more characters of the ID or use the name`, {
      ref,
      candidates: prefix.map((i) => ({ id: i.id, name: i.name })),
    });
  }
  throw new BpfnetError('E_NOT_FOUND', `no such ${kind}: ${ref} (no ${kind} has that name, ID or ID prefix); run "bpfnet ${kind} ls" to see the existing ones`, { ref });
}

/**
 * MAC for an endpoint: Docker's scheme up to Docker 27, 02:42 followed by
 * the four IPv4 bytes (172.17.0.2 -> 02:42:ac:11:00:02). Locally
 * administered, unicast, unique per address on a network, and predictable
 * from the IP, which makes neighbour tables easy to read. (Docker 28+ uses a
 * random locally administered MAC instead.)
 */
export function macFromIpv4(ip: string): string {
  const v = parseIpv4(ip, 'endpoint address');
  const bytes = [0x02, 0x42, v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Prefix of the host-side veth of every bpfnet endpoint. */
export const VETH_PREFIX = 'bpv';
/** Prefix of the bridge devices bpfnet creates for its networks. */
export const BRIDGE_PREFIX = 'bn-';

function hexOf(id: string, n: number, what: string): string {
  const h = id.slice(0, n);
  if (!new RegExp(`^[0-9a-f]{${n}}`).test(id)) {
    throw new BpfnetError('E_INVALID_ARGUMENT', `${what} "${id}" does not start with ${n} lowercase hex characters; pass the full 64-hex id`, { id });
  }
  return h;
}

/** Host-side veth name: "bpv" + the first 8 hex of the endpoint id (11 characters). */
export function hostVethName(endpointId: string): string {
  return VETH_PREFIX + hexOf(endpointId, 8, 'endpoint id');
}

/** Hand-off endpoints: the container end's name in the node namespace until the engine moves it. */
export const PEER_PREFIX = 'bpp';
export function handOffPeerName(endpointId: string): string {
  return PEER_PREFIX + hexOf(endpointId, 8, 'endpoint id');
}

/** Bridge device name: "bn-" + the first 12 hex of the network id (15 characters, the kernel's maximum). */
export function bridgeDeviceName(networkId: string): string {
  return BRIDGE_PREFIX + hexOf(networkId, 12, 'network id');
}
