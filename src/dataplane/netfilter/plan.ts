/**
 * DesiredState -> what the netfilter dataplanes (iptables, nftables) program,
 * validated and pre-digested, shared by both renderers. Pure: no I/O.
 *
 * A network's traffic is recognised by its bridge device, or for the routed
 * driver (no bridge, one /32 veth per container) by its subnet: the routed
 * endpoints are anti-spoofed per veth and spoofed subnet sources are dropped
 * on the uplinks, so the source address is as trustworthy as a device.
 */
import { isIPv4 } from 'node:net';
import { validatePort } from '../../controller/ports.js';
import { invalidArgument } from '../../util/errors.js';
import type { DataplaneEndpoint, DataplaneNetwork, DesiredState, PublishedPort } from '../types.js';

/** A network as one side of a match: its bridge, or its subnet (routed driver). */
export type NetSel = { kind: 'dev'; dev: string } | { kind: 'subnet'; cidr: string };

export interface NetPlan {
  net: DataplaneNetwork;
  sel: NetSel;
  /** Endpoints attached to this network. */
  endpoints: DataplaneEndpoint[];
  /** internal, or gateway mode isolated: nothing in or out of the subnet. */
  internal: boolean;
  /** gateway mode isolated: not even the node talks to it. */
  isolated: boolean;
  /** Source NAT for traffic leaving the network: masquerade, SNAT to an address, or none. */
  snat: { kind: 'masquerade' } | { kind: 'snat'; to: string } | null;
  /** gateway mode nat: packets from elsewhere to a container address are dropped in raw. */
  protectDirect: boolean;
  /** routed, nat-unprotected: anything not from another bpfnet network may reach the containers. */
  allowDirect: boolean;
}

export interface Plan {
  nets: NetPlan[];
  /** Exact frontends first (they win over the wildcard), each group sorted. */
  ports: PublishedPort[];
  uplinks: string[];
  /** Endpoints with an address: anti-spoofing, hairpin. `sel` is their network's, when they name one. */
  endpoints: (DataplaneEndpoint & { ip: string; sel?: NetSel })[];
  /** Bridge ports (host veths on a bridge network): need hairpin mode for NAT loopback. */
  bridgePorts: string[];
  /** Devices where node-local clients reach containers from 127.0.0.1 (route_localnet). */
  localnetDevs: string[];
}

/** Linux interface names as iptables and nft take them literally: no wildcards, no quoting needed. */
const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function validIfname(name: string, what: string): string {
  if (typeof name !== 'string' || !IFNAME.test(name)) throw invalidArgument(`${what} must be a Linux interface name (1-15 of A-Z a-z 0-9 _ . : @ -), got ${JSON.stringify(name)}`);
  return name;
}

function validIp(ip: string, what: string): string {
  if (!isIPv4(ip)) throw invalidArgument(`${what} must be an IPv4 address, got ${JSON.stringify(ip)}`);
  return ip;
}

function validCidr(cidr: string, what: string): string {
  const [addr, len, extra] = String(cidr).split('/');
  const n = Number(len);
  if (extra !== undefined || !addr || !isIPv4(addr) || len === '' || !Number.isInteger(n) || n < 0 || n > 32) {
    throw invalidArgument(`${what} must be a.b.c.d/n, got ${JSON.stringify(cidr)}`);
  }
  return cidr;
}

const frontend = (p: PublishedPort) => `${p.hostIp}:${p.hostPort}/${p.proto}`;

/** A validated dotted quad as a number (no allocation: this runs for every port of every apply). */
function ipNum(ip: string): number {
  if (ip === '0.0.0.0') return 0;
  let n = 0;
  let octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + octet;
      octet = 0;
    } else octet = octet * 10 + (c - 48);
  }
  return n * 256 + octet;
}

/**
 * (host IP, proto, host port) as one number, ordered by address, then proto,
 * then port: identity and sort key of a frontend (< 2^49, exact in a double).
 */
export const frontendKey = (p: Pick<PublishedPort, 'hostIp' | 'proto' | 'hostPort'>): number => (ipNum(p.hostIp) * 2 + (p.proto === 'udp' ? 1 : 0)) * 65536 + p.hostPort;

/** Validate everything and derive the plan; throws E_INVALID_ARGUMENT before anything is touched. */
export function planState(state: DesiredState): Plan {
  const uplinks = state.uplinks.map((d) => validIfname(d, 'uplink'));
  for (const a of state.nodeAddresses) validIp(a, 'node address');

  const seen = new Map<number, PublishedPort>();
  const keyed: [number, PublishedPort][] = [];
  for (const p of state.ports) {
    validatePort(p);
    const k = frontendKey(p);
    const prev = seen.get(k);
    if (prev) throw invalidArgument(`${frontend(p)} is published twice (to ${prev.containerIp}:${prev.containerPort} and ${p.containerIp}:${p.containerPort})`);
    seen.set(k, p);
    keyed.push([k, p]);
  }
  // Exact frontends first (they win over the wildcard, which sorts first by address 0).
  keyed.sort((a, b) => a[0] - b[0]);
  const wildcard = keyed.filter(([, p]) => p.hostIp === '0.0.0.0').map(([, p]) => p);
  const ports = [...keyed.filter(([, p]) => p.hostIp !== '0.0.0.0').map(([, p]) => p), ...wildcard];

  const sels = new Map<number, NetSel>();
  const networks = state.networks ?? [];
  for (const n of networks) {
    if (!Number.isInteger(n.id) || n.id <= 0 || n.id > 0xffffffff) throw invalidArgument(`network id must be a non-zero u32, got ${n.id}`);
    if (sels.has(n.id)) throw invalidArgument(`network id ${n.id} appears twice`);
    validCidr(n.subnet, `network ${n.id} subnet`);
    if (n.gateway) validIp(n.gateway, `network ${n.id} gateway`);
    if (n.snatIp !== undefined) validIp(n.snatIp, `network ${n.id} host_ipv4`);
    if (n.driver === 'bridge') {
      if (!n.bridge) throw invalidArgument(`bridge network ${n.id} has no bridge device`);
      validIfname(n.bridge, `network ${n.id} bridge`);
    }
    if (!['nat', 'nat-unprotected', 'routed', 'isolated'].includes(n.gatewayMode)) {
      throw invalidArgument(`network ${n.id}: gateway mode must be nat, nat-unprotected, routed or isolated, got ${JSON.stringify(n.gatewayMode)}`);
    }
    sels.set(n.id, n.driver === 'bridge' && n.bridge ? { kind: 'dev', dev: n.bridge } : { kind: 'subnet', cidr: n.subnet });
  }

  const endpoints: Plan['endpoints'] = [];
  for (const e of state.endpoints) {
    validIfname(e.hostDev, 'endpoint device');
    if (e.ip !== undefined) validIp(e.ip, `endpoint ${e.hostDev} address`);
    if (e.mac !== undefined && !MAC.test(e.mac.toLowerCase())) throw invalidArgument(`endpoint ${e.hostDev} MAC must be xx:xx:xx:xx:xx:xx, got ${JSON.stringify(e.mac)}`);
    const sel = e.networkId !== undefined ? sels.get(e.networkId) : undefined;
    if (e.networkId !== undefined && !sel) throw invalidArgument(`endpoint ${e.hostDev} refers to unknown network ${e.networkId}`);
    if (e.ip !== undefined) endpoints.push({ ...e, ip: e.ip, ...(e.mac ? { mac: e.mac.toLowerCase() } : {}), ...(sel ? { sel } : {}) });
  }

  const nets: NetPlan[] = networks.map((net) => {
    const isolated = net.gatewayMode === 'isolated';
    const internal = net.internal || isolated;
    const routedMode = net.gatewayMode === 'routed';
    return {
      net,
      sel: sels.get(net.id)!,
      endpoints: state.endpoints.filter((e) => e.networkId === net.id),
      internal,
      isolated,
      snat: internal || routedMode || !net.masquerade ? null : net.snatIp ? { kind: 'snat', to: net.snatIp } : { kind: 'masquerade' },
      protectDirect: !internal && net.gatewayMode === 'nat',
      allowDirect: !internal && (routedMode || net.gatewayMode === 'nat-unprotected'),
    };
  });

  const bridgePorts = state.endpoints.filter((e) => e.networkId !== undefined && sels.get(e.networkId)?.kind === 'dev').map((e) => e.hostDev);
  const localnetDevs = nets
    .filter((n) => !n.internal)
    .flatMap((n) => (n.sel.kind === 'dev' ? [n.sel.dev] : n.endpoints.map((e) => e.hostDev)));
  return { nets, ports, uplinks, endpoints, bridgePorts: [...new Set(bridgePorts)].sort(), localnetDevs: [...new Set(localnetDevs)].sort() };
}

/** The plan without its ports: when this is unchanged, a port change is only a port change. */
export function planShape(p: Plan): string {
  return JSON.stringify({ ...p, ports: undefined });
}
