/**
 * Published ports -> map entries (the diff against the maps is src/dataplane/ebpf/mirror.ts).
 * Pure: no I/O, so every rule here is unit-tested without a kernel.
 */
import { isIPv4 } from 'node:net';
import type { PublishedPort } from '../dataplane/types.js';
import type { PortKey, PortValue } from '../maps/generated/abi.js';
import { invalidArgument } from '../util/errors.js';

export const IPPROTO = { tcp: 6, udp: 17 } as const;

export function validatePort(p: PublishedPort): void {
  const where = `published port ${p.hostIp}:${p.hostPort}/${p.proto}`;
  if (!isIPv4(p.hostIp)) throw invalidArgument(`${where}: host IP must be IPv4 (0.0.0.0 for all addresses), got "${p.hostIp}"`);
  if (!isIPv4(p.containerIp) || p.containerIp === '0.0.0.0') throw invalidArgument(`${where}: container IP must be a unicast IPv4 address, got "${p.containerIp}"`);
  for (const [n, v] of [['host port', p.hostPort], ['container port', p.containerPort]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 65535) throw invalidArgument(`${where}: ${n} must be 1-65535, got ${v}`);
  }
  if (!Object.hasOwn(IPPROTO, p.proto)) throw invalidArgument(`${where}: protocol must be tcp or udp, got "${p.proto}"`);
}

export function portKey(p: Pick<PublishedPort, 'hostIp' | 'hostPort' | 'proto'>): PortKey {
  return { addr: p.hostIp, port: p.hostPort, proto: IPPROTO[p.proto] };
}

/** Entries of frozen ports, validated once (the model hands out the same frozen ports while nothing changes). */
const entryOf = new WeakMap<PublishedPort, [PortKey, PortValue]>();

/** Desired bpfnet_ports entries; two mappings of one frontend is an error. */
export function portEntries(ports: readonly PublishedPort[]): [PortKey, PortValue][] {
  const seen = new Map<string, PublishedPort>();
  return ports.map((p) => {
    let e = entryOf.get(p);
    if (!e) {
      validatePort(p);
      e = [Object.freeze(portKey(p)), Object.freeze({ backend_addr: p.containerIp, backend_port: p.containerPort, flags: 0 })];
      if (Object.isFrozen(p)) entryOf.set(p, e);
    }
    const id = `${p.hostIp}:${p.hostPort}/${p.proto}`;
    const prev = seen.get(id);
    if (prev) throw invalidArgument(`${id} is published twice (to ${prev.containerIp}:${prev.containerPort} and ${p.containerIp}:${p.containerPort})`);
    seen.set(id, p);
    return e;
  });
}
