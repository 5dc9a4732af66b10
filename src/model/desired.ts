/**
 * From the model (networks, sandboxes, endpoints) to what the dataplane must
 * program (DesiredState). Pure and deterministic: the same records always
 * give the same state, in the same order.
 */
import type { DataplaneEndpoint, DataplaneNetwork, DesiredState, PublishedPort } from '../dataplane/types.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from './types.js';

export interface NodeInfo {
  uplinks: string[];
  nodeAddresses: string[];
}

/** A published port that could not be programmed, and why. */
export interface SkippedPort {
  sandboxId: string;
  hostIp: string;
  hostPort: number;
  containerPort: number;
  proto: string;
  reason: string;
}

/** DesiredState plus what was left out (optional extra; the dataplane ignores it). */
export interface ModelDesiredState extends DesiredState {
  skipped?: SkippedPort[];
}

function ifNumber(ifName: string): number {
  const m = /([0-9]+)$/.exec(ifName);
  return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
}

function byAttachOrder(a: EndpointRecord, b: EndpointRecord): number {
  return ifNumber(a.ifName) - ifNumber(b.ifName) || (a.ifName < b.ifName ? -1 : a.ifName > b.ifName ? 1 : 0) || (a.created < b.created ? -1 : a.created > b.created ? 1 : 0);
}

/**
 * Stable non-zero 32-bit ids for the dataplane's network table: the first 8
 * hex digits of the network id; on the (unlikely) clash or a zero, the next
 * free value, handing out in id order so the result does not depend on the
 * input order.
 */
export function dataplaneNetworkIds(networkIds: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  const usedIds = new Set<number>();
  for (const id of [...new Set(networkIds)].sort()) {
    let n = Number.parseInt(id.slice(0, 8), 16);
    if (!Number.isFinite(n)) n = 1;
    n >>>= 0;
    while (n === 0 || usedIds.has(n)) n = (n + 1) >>> 0;
    usedIds.add(n);
    out.set(id, n);
  }
  return out;
}

/** A bridge/routed network with a subnet as the dataplanes see it. */
export function dataplaneNetwork(n: NetworkRecord, id: number): DataplaneNetwork {
  const out: DataplaneNetwork = {
    id,
    subnet: n.ipam?.subnet ?? '',
    gateway: n.ipam?.gateway ?? '',
    driver: n.driver === 'routed' ? 'routed' : 'bridge',
    internal: n.internal,
    icc: n.icc,
    masquerade: n.masquerade,
    gatewayMode: n.gatewayModeIpv4 ?? (n.driver === 'routed' ? 'routed' : 'nat'),
  };
  if (n.driver === 'bridge' && n.bridgeName) out.bridge = n.bridgeName;
  if (n.hostIpv4) out.snatIp = n.hostIpv4;
  return out;
}

/**
 * The endpoint a sandbox's published ports go to: its first (in attach order:
 * eth0, eth1, ...) with an address on a network that is not internal.
 */
export function publishTarget(sandboxEndpoints: readonly EndpointRecord[], netById: ReadonlyMap<string, NetworkRecord>): EndpointRecord | undefined {
  return sandboxEndpoints
    .filter((e) => e.ipv4 !== '')
    .sort(byAttachOrder)
    .find((e) => {
      const n = netById.get(e.networkId);
      return !!n && !n.internal;
    });
}

/**
 * One sandbox's part of the desired ports (see desiredDataplaneState), from
 * its own endpoints: publishing on one sandbox recomputes only that sandbox.
 * `mappings` defaults to all of its ports.
 */
export function sandboxPorts(
  sb: SandboxRecord,
  sandboxEndpoints: readonly EndpointRecord[],
  netById: ReadonlyMap<string, NetworkRecord>,
  mappings: readonly SandboxRecord['ports'][number][] = sb.ports,
): SandboxPorts {
  // Records are frozen (the store's), so a sandbox whose endpoints and their
  // networks did not change gives the very same (frozen) ports: the eBPF
  // dataplane then reuses their encoding, and a whole apply at 50k published
  // costs map lookups, not 50k re-encodings.
  if (mappings !== sb.ports || !Object.isFrozen(sb)) return computeSandboxPorts(sb, sandboxEndpoints, netById, mappings);
  const key = sandboxEndpoints.map((e) => `${e.id}/${e.ipv4}/${e.ifName}/${e.networkId}/${netById.get(e.networkId)?.internal ?? '-'}`).join(',');
  const hit = memo.get(sb);
  if (hit && hit.key === key) return hit.value;
  const value = computeSandboxPorts(sb, sandboxEndpoints, netById, mappings);
  memo.set(sb, { key, value });
  return value;
}

interface SandboxPorts {
  ports: PublishedPort[];
  skipped: SkippedPort[];
  target?: EndpointRecord;
}

const memo = new WeakMap<SandboxRecord, { key: string; value: SandboxPorts }>();

function computeSandboxPorts(
  sb: SandboxRecord,
  sandboxEndpoints: readonly EndpointRecord[],
  netById: ReadonlyMap<string, NetworkRecord>,
  mappings: readonly SandboxRecord['ports'][number][],
): SandboxPorts {
  const ports: PublishedPort[] = [];
  const skipped: SkippedPort[] = [];
  const skip = (m: SandboxRecord['ports'][number], reason: string) =>
    skipped.push({ sandboxId: sb.id, hostIp: m.hostIp, hostPort: m.hostPort, containerPort: m.containerPort, proto: m.proto, reason });
  if (mappings.length === 0) return { ports, skipped };
  if (sb.mode.kind === 'host' || sb.mode.kind === 'none') {
    for (const m of mappings) skip(m, `${sb.mode.kind} networking publishes no ports`);
    return { ports, skipped };
  }
  if (sb.mode.kind === 'container') {
    for (const m of mappings) skip(m, `the sandbox shares sandbox ${sb.mode.sandboxId}'s network; publish on that one`);
    return { ports, skipped };
  }
  const target = publishTarget(sandboxEndpoints, netById);
  for (const m of mappings) {
    if (!target) skip(m, 'the sandbox has no endpoint on a non-internal network');
    else if (m.proto !== 'tcp' && m.proto !== 'udp') skip(m, `${m.proto} is not translated by bpfnet's dataplanes (tcp and udp only)`);
    else ports.push(Object.freeze({ hostIp: m.hostIp, hostPort: m.hostPort, proto: m.proto, containerIp: target.ipv4, containerPort: m.containerPort }));
  }
  return { ports, skipped, ...(target ? { target } : {}) };
}

/**
 * The dataplane's desired state:
 * - endpoints: every endpoint's host-side veth (sorted);
 * - ports: each sandbox's published tcp/udp ports, to the address of its
 *   first endpoint (in attach order: eth0, eth1, ...) on a network that is
 *   not internal. Host- and none-mode sandboxes publish nothing (Docker
 *   ignores -p there); container-mode ones publish through the sandbox they
 *   join, so their own ports are skipped; a sandbox only on internal networks
 *   publishes nothing (Docker does not publish on internal networks).
 * - networks: each bridge/routed network with a subnet, for isolation.
 */
export function desiredDataplaneState(
  networks: readonly NetworkRecord[],
  sandboxes: readonly SandboxRecord[],
  endpoints: readonly EndpointRecord[],
  node: NodeInfo,
): ModelDesiredState {
  const netById = new Map(networks.map((n) => [n.id, n]));
  const skipped: SkippedPort[] = [];
  const ports: PublishedPort[] = [];

  const epsBySandbox = new Map<string, EndpointRecord[]>();
  for (const e of endpoints) {
    const l = epsBySandbox.get(e.sandboxId);
    if (l) l.push(e);
    else epsBySandbox.set(e.sandboxId, [e]);
  }
  for (const sb of [...sandboxes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const r = sandboxPorts(sb, epsBySandbox.get(sb.id) ?? [], netById);
    for (const p of r.ports) ports.push(p);
    for (const k of r.skipped) skipped.push(k);
  }
  ports.sort((a, b) => (a.hostIp < b.hostIp ? -1 : a.hostIp > b.hostIp ? 1 : 0) || a.proto.localeCompare(b.proto) || a.hostPort - b.hostPort);

  const withSubnet = networks.filter((n) => (n.driver === 'bridge' || n.driver === 'routed') && n.ipam !== null);
  const ids = dataplaneNetworkIds(withSubnet.map((n) => n.id));
  const dpNetworks: DataplaneNetwork[] = withSubnet
    .map((n) => dataplaneNetwork(n, ids.get(n.id) ?? 0))
    .sort((a, b) => a.id - b.id);

  // One entry per host device (sorted); address, MAC and network when known.
  const byDev = new Map<string, DataplaneEndpoint>();
  for (const e of endpoints) {
    if (e.hostIfName === '' || byDev.has(e.hostIfName)) continue;
    const ep: DataplaneEndpoint = { hostDev: e.hostIfName };
    const netId = ids.get(e.networkId);
    if (e.ipv4 !== '') ep.ip = e.ipv4;
    if (e.mac !== '') ep.mac = e.mac;
    if (netId !== undefined) ep.networkId = netId;
    byDev.set(e.hostIfName, ep);
  }
  const dpEndpoints = [...byDev.values()].sort((a, b) => (a.hostDev < b.hostDev ? -1 : a.hostDev > b.hostDev ? 1 : 0));

  const state: ModelDesiredState = {
    uplinks: [...node.uplinks],
    nodeAddresses: [...node.nodeAddresses],
    endpoints: dpEndpoints,
    ports,
    networks: dpNetworks,
  };
  if (skipped.length > 0) state.skipped = skipped;
  return state;
}
