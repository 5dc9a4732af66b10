/**
 * The one interface every dataplane (ebpf, iptables, nftables) implements.
 * The controller computes DesiredState purely (src/model/desired.ts); a
 * dataplane makes the kernel of the node's namespace match it, idempotently:
 * apply() twice with the same state changes nothing the second time, and a
 * failed apply leaves the previous state in place (never half-applied).
 */
export type Protocol = 'tcp' | 'udp';

export type DataplaneMode = 'ebpf' | 'iptables' | 'nftables';

export interface PublishedPort {
  /** '0.0.0.0' = every node address (and loopback, for node-local clients). */
  hostIp: string;
  hostPort: number;
  proto: Protocol;
  containerIp: string;
  containerPort: number;
}

/** Docker's com.docker.network.bridge.gateway_mode_ipv4. */
export type GatewayMode = 'nat' | 'nat-unprotected' | 'routed' | 'isolated';

export interface DataplaneNetwork {
  /** Non-zero u32 id shared by every subnet of one network. */
  id: number;
  /** "a.b.c.d/n" */
  subnet: string;
  /** Gateway address on the node (the bridge's address; routed: a local route). */
  gateway: string;
  /** Linux device of a bridge network (bpfnet0, bn-<id12>); undefined for routed. */
  bridge?: string | undefined;
  driver: 'bridge' | 'routed';
  /** --internal: nothing in or out of the subnet. */
  internal: boolean;
  /** enable_icc: containers of this network may talk to each other directly. */
  icc: boolean;
  /** enable_ip_masquerade: outbound traffic leaving through an uplink is SNATed. */
  masquerade: boolean;
  /** com.docker.network.host_ipv4: SNAT to this address instead of the uplink's. */
  snatIp?: string | undefined;
  /**
   * nat: masquerade out, no direct access to container IPs from outside;
   * nat-unprotected: masquerade, direct access allowed; routed: no NAT, direct
   * access allowed; isolated: like internal, and no access from the node.
   */
  gatewayMode: GatewayMode;
}

export interface DataplaneEndpoint {
  /** Host side of the veth pair. */
  hostDev: string;
  /** Its ifindex when known (a recreated device gets a new one). */
  ifindex?: number | undefined;
  /** The container's address and MAC on this endpoint (anti-spoofing, delivery). */
  ip?: string | undefined;
  mac?: string | undefined;
  /** DataplaneNetwork.id of its network. */
  networkId?: number | undefined;
}

export interface DesiredState {
  /** Devices traffic from outside arrives on and leaves by (the node's uplinks). */
  uplinks: string[];
  /** ifindex of each uplink when known. */
  uplinkIndex?: Record<string, number>;
  /** Primary IPv4 address of each uplink: the masquerade source leaving through it. */
  uplinkAddress?: Record<string, string>;
  /**
   * The node's own IPv4 addresses, loopback excluded (wildcard frontends match
   * only these, as Docker's `--dst-type LOCAL`).
   */
  nodeAddresses: string[];
  /** Host-side devices of container endpoints. */
  endpoints: DataplaneEndpoint[];
  ports: PublishedPort[];
  /** Container networks: isolation, ICC, internal, masquerade, gateway mode. */
  networks?: DataplaneNetwork[];
}

export interface ApplyReport {
  attached: { dev: string; hook: string; prog: string; progId: number }[];
  ports: { added: number; updated: number; removed: number };
  addresses: { added: number; removed: number };
  networks?: { added: number; removed: number };
  endpoints?: { added: number; removed: number };
  /** Things the mode could not do here (logged by the agent). */
  warnings?: string[];
}

/** Counters of one published port since it was published (where the mode can count). */
export interface PortCounters {
  hostIp: string;
  hostPort: number;
  proto: Protocol;
  packets: bigint;
  bytes: bigint;
}

import { BpfnetError } from '../util/errors.js';

/** applyPorts before any apply: nothing to change ports in; the caller applies the whole state instead. */
export function noAppliedState(mode: DataplaneMode): BpfnetError {
  return new BpfnetError('E_STATE', `the ${mode} dataplane has no applied state to change ports in yet; apply the whole state first`, { needsFullApply: true });
}

export function needsFullApply(e: unknown): boolean {
  return e instanceof BpfnetError && (e.details as { needsFullApply?: boolean } | undefined)?.needsFullApply === true;
}

/** Published ports to add and withdraw, relative to the last apply. */
export interface PortChange {
  add: PublishedPort[];
  remove: Pick<PublishedPort, 'hostIp' | 'hostPort' | 'proto'>[];
}

const frontendId = (p: Pick<PublishedPort, 'hostIp' | 'hostPort' | 'proto'>): string => `${p.hostIp}|${p.proto}|${p.hostPort}`;

/** The ports after a change, in desiredDataplaneState's order: applyPorts(c) must equal apply(state with these ports). */
export function withPortChange(ports: readonly PublishedPort[], c: PortChange): PublishedPort[] {
  const gone = new Set([...c.remove, ...c.add].map(frontendId));
  return [...ports.filter((p) => !gone.has(frontendId(p))), ...c.add].sort(
    (a, b) => (a.hostIp < b.hostIp ? -1 : a.hostIp > b.hostIp ? 1 : 0) || a.proto.localeCompare(b.proto) || a.hostPort - b.hostPort,
  );
}

export interface Dataplane {
  readonly mode: DataplaneMode;
  apply(state: DesiredState): Promise<ApplyReport>;
  /**
   * Only published ports changed since the last apply: the same result as
   * apply() with the ports changed, in O(change) where the mode can. Throws
   * (changing nothing) when it has no last apply to build on; the caller then
   * applies the whole state.
   */
  applyPorts?(change: PortChange): Promise<ApplyReport>;
  /** Remove everything this dataplane installed (and nothing else). */
  teardown(state: DesiredState): Promise<void>;
  /** Per-published-port counters, when the mode keeps them. */
  portCounters?(): Promise<PortCounters[]>;
  /** Named drop/translation counters (name -> packets, bytes), when kept. */
  counters?(): Promise<Record<string, { packets: bigint; bytes: bigint }>>;
  /** Rule-based modes: re-apply when someone else changed our rules (serialized with apply). */
  reconcile?(): Promise<{ reapplied: boolean }>;
  /** Stop background work (garbage collection, watchers). */
  close?(): Promise<void>;
}
