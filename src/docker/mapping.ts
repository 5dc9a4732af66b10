/**
 * Docker's requests onto bpfnet's model, pure: a Docker network is a bpfnet
 * bridge network named docker-<NetworkID[0:12]>, a Docker endpoint (once
 * joined) a bpfnet sandbox named docker-<EndpointID[0:12]>; the full ids
 * ride along as labels, so bpfnet's own records are the mapping.
 */
import type { Messages } from '../api/generated/types.js';
import { macFromIpv4 } from '../model/ids.js';
import { bad } from './validate.js';
import { LABEL, OPT, type CreateNetworkRequest, type JoinResponse, type PortBinding } from './protocol.js';

export const networkName = (dockerNetworkId: string) => `docker-${dockerNetworkId.slice(0, 12)}`;
export const sandboxName = (dockerEndpointId: string) => `docker-${dockerEndpointId.slice(0, 12)}`;

const stripPrefix = (cidr: string) => cidr.split('/')[0]!;

/** Go's strconv.ParseBool, for Docker options that arrive as strings or JSON booleans. */
function truthy(method: string, key: string, v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === '') return false;
  if (v === true) return true;
  if (typeof v === 'string' && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
  if (typeof v === 'string' && ['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false;
  throw bad(method, `Options["${key}"] must be true or false, got ${JSON.stringify(v)}`);
}

/** -o options (Options["com.docker.network.generic"]) as bpfnet's string map. */
export function genericOptions(options: Record<string, unknown>): Record<string, string> {
  const g = options[OPT.generic];
  if (g === undefined || g === null) return {};
  if (typeof g !== 'object' || Array.isArray(g)) throw bad('NetworkDriver.CreateNetwork', `Options["${OPT.generic}"] must be a JSON object of -o options`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(g as Record<string, unknown>)) {
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else throw bad('NetworkDriver.CreateNetwork', `-o ${k}: the value must be a string, got ${JSON.stringify(v)}`);
  }
  return out;
}

/** CreateNetwork → bpfnet's NetworkCreate (bridge driver, Docker's subnet and gateway, -o options, --internal). */
export function networkCreate(req: CreateNetworkRequest): Messages['NetworkCreateRequest'] {
  const m = 'NetworkDriver.CreateNetwork';
  if (truthy(m, OPT.enableIpv6, req.Options[OPT.enableIpv6]) || req.IPv6Data.length) throw bad(m, 'IPv6 is not supported: bpfnet networks are IPv4 only; create the network without --ipv6');
  if (req.IPv4Data.length === 0) throw bad(m, 'IPv4Data is empty: bpfnet needs the network\'s IPv4 pool');
  if (req.IPv4Data.length > 1) throw bad(m, `a bpfnet network has one IPv4 subnet, got ${req.IPv4Data.length} (${req.IPv4Data.map((d) => d.Pool).join(', ')}); pass --subnet once`);
  const d = req.IPv4Data[0]!;
  const aux = Object.fromEntries(Object.entries(d.AuxAddresses ?? {}).map(([k, v]) => [k, stripPrefix(v)]));
  return {
    name: networkName(req.NetworkID),
    driver: 'bridge',
    subnet: d.Pool,
    ...(d.Gateway ? { gateway: stripPrefix(d.Gateway) } : {}),
    auxAddresses: aux,
    internal: truthy(m, OPT.internal, req.Options[OPT.internal]),
    attachable: true,
    labels: { [LABEL.networkId]: req.NetworkID },
    options: genericOptions(req.Options),
  };
}

const PROTO: Record<number, string> = { 6: 'tcp', 17: 'udp' };

/**
 * Port bindings → -p specs ([hostIP:][hostPort[-end]]:containerPort/proto).
 * bpfnet forwards IPv4 only: bindings to an IPv6 host address are left out
 * (returned in `skipped`); SCTP is refused.
 */
export function portSpecs(method: string, bindings: PortBinding[]): { specs: string[]; skipped: string[] } {
  const specs: string[] = [];
  const skipped: string[] = [];
  for (const b of bindings) {
    const proto = PROTO[b.Proto];
    if (!proto) throw bad(method, `port ${b.Port}: protocol ${b.Proto === 132 ? 'sctp' : b.Proto} is not supported by bpfnet (tcp and udp are)`);
    if (b.HostIP.includes(':')) {
      skipped.push(`[${b.HostIP}]:${b.HostPort || ''}:${b.Port}/${proto}`);
      continue;
    }
    if (b.HostPortEnd && b.HostPort && b.HostPortEnd < b.HostPort) throw bad(method, `port ${b.Port}: HostPortEnd ${b.HostPortEnd} is below HostPort ${b.HostPort}`);
    const host = b.HostPort === 0 ? '' : b.HostPortEnd > b.HostPort ? `${b.HostPort}-${b.HostPortEnd}` : `${b.HostPort}`;
    const ip = b.HostIP && b.HostIP !== '0.0.0.0' ? b.HostIP : '';
    specs.push(ip ? `${ip}:${host}:${b.Port}/${proto}` : host ? `${host}:${b.Port}/${proto}` : `${b.Port}/${proto}`);
  }
  return { specs, skipped };
}

/** A sandbox's published ports as PortUnpublish specs (hostIP:port/proto: exactly those). */
export function unpublishSpecs(ports: readonly { hostIp: string; hostPort: number; proto: string }[]): string[] {
  return [...new Set(ports.map((p) => `${p.hostIp}:${p.hostPort}/${p.proto}`))];
}

/** The MAC Docker gets when it did not choose one: bpfnet's (and Docker ≤ 27's) 02:42 + the IPv4 address. */
export function macFor(address: string): string {
  return macFromIpv4(stripPrefix(address));
}

/**
 * Join's answer: Docker moves SrcName into the sandbox, renames it eth<N> and
 * sets the address, MAC and default route itself. Internal networks get no
 * gateway (as Docker's bridge driver), and need none from Docker either.
 */
export function joinResponse(peerName: string, net: { internal: boolean; ipam?: { gateway: string } | null }): JoinResponse {
  if (net.internal || !net.ipam) return { InterfaceName: { SrcName: peerName, DstPrefix: 'eth' }, DisableGatewayService: true };
  return { InterfaceName: { SrcName: peerName, DstPrefix: 'eth' }, Gateway: net.ipam.gateway };
}
