/**
 * Docker-shaped views of the model: `network inspect`, `network ls` rows,
 * the container-like `inspect` of a sandbox, and the CLI's aligned tables.
 * Field names and order follow Docker's JSON (Go marshals map keys sorted,
 * so maps here are emitted with sorted keys too).
 */
import type { EndpointRecord, NetworkRecord, SandboxRecord } from './types.js';
import { shortId } from './ids.js';
import { parseExposed } from './portspec.js';

type Lookup<T> = ReadonlyMap<string, T> | Readonly<Record<string, T>>;

function get<T>(l: Lookup<T>, key: string): T | undefined {
  if (l instanceof Map) return l.get(key);
  const r = l as Readonly<Record<string, T>>;
  return Object.hasOwn(r, key) ? r[key] : undefined;
}

/** A copy of a record with keys in Go's (byte-wise) order. */
function sorted<T>(r: Readonly<Record<string, T>>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(r).sort(cmp)) out[k] = r[k] as T;
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface IpamConfigJson {
  Subnet: string;
  IPRange?: string;
  Gateway: string;
  AuxiliaryAddresses?: Record<string, string>;
}

export interface NetworkEndpointJson {
  Name: string;
  EndpointID: string;
  MacAddress: string;
  IPv4Address: string;
  IPv6Address: string;
}

export interface NetworkInspectJson {
  Name: string;
  Id: string;
  Created: string;
  Scope: 'local';
  Driver: string;
  EnableIPv4: boolean;
  EnableIPv6: boolean;
  IPAM: { Driver: 'default'; Options: Record<string, string>; Config: IpamConfigJson[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, NetworkEndpointJson>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** `docker network inspect` of one network (one element of the array Docker prints). */
export function networkInspect(net: NetworkRecord, endpoints: readonly EndpointRecord[], sandboxesById: Lookup<Pick<SandboxRecord, 'id' | 'name'>>): NetworkInspectJson {
  const config: IpamConfigJson[] = [];
  if (net.ipam) {
    const c: IpamConfigJson = { Subnet: net.ipam.subnet, Gateway: net.ipam.gateway };
    if (net.ipam.ipRange) c.IPRange = net.ipam.ipRange;
    if (Object.keys(net.ipam.auxAddresses).length > 0) c.AuxiliaryAddresses = sorted(net.ipam.auxAddresses);
    // Docker's order: Subnet, IPRange, Gateway, AuxiliaryAddresses
    config.push({ Subnet: c.Subnet, ...(c.IPRange ? { IPRange: c.IPRange } : {}), Gateway: c.Gateway, ...(c.AuxiliaryAddresses ? { AuxiliaryAddresses: c.AuxiliaryAddresses } : {}) });
  }
  const containers: Record<string, NetworkEndpointJson> = {};
  for (const ep of endpoints) {
    if (ep.networkId !== net.id) continue;
    const sb = get(sandboxesById, ep.sandboxId);
    containers[sb ? sb.id : `ep-${ep.id}`] = {
      Name: sb?.name ?? '',
      EndpointID: ep.id,
      MacAddress: ep.mac,
      IPv4Address: ep.ipv4 ? `${ep.ipv4}/${ep.prefixLen}` : '',
      IPv6Address: '',
    };
  }
  return {
    Name: net.name,
    Id: net.id,
    Created: net.created,
    Scope: 'local',
    Driver: net.driver,
    EnableIPv4: true,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: {}, Config: config },
    Internal: net.internal,
    Attachable: net.attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: sorted(containers),
    Options: sorted(net.options),
    Labels: sorted(net.labels),
  };
}

export const NETWORK_LS_HEADERS: readonly string[] = ['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'];

/** One `docker network ls` row; keys as in `docker network ls --format json`. */
export interface NetworkSummaryRow {
  /** Short id (12 hex). */
  ID: string;
  Name: string;
  Driver: string;
  Scope: 'local';
}

/** The `network ls` row of one network (usable as `nets.map(networkSummary)`). */
export function networkSummary(net: Pick<NetworkRecord, 'id' | 'name' | 'driver'>): NetworkSummaryRow {
  return { ID: shortId(net.id), Name: net.name, Driver: net.driver, Scope: 'local' };
}

/** The whole `network ls` table, sorted by name like the docker CLI. */
export function formatNetworkLs(nets: readonly Pick<NetworkRecord, 'id' | 'name' | 'driver'>[]): string {
  const rows = [...nets].sort((a, b) => cmp(a.name, b.name)).map(networkSummary);
  return formatTable(NETWORK_LS_HEADERS, rows.map((r) => [r.ID, r.Name, r.Driver, r.Scope]));
}

export interface EndpointLinkInfo {
  /** ifindex of the host-side veth (what the container sees as eth0@ifN). */
  hostIfIndex: number;
  /** ifindex of the container-side interface (what the host side shows as bpvX@ifN). */
  peerIfIndex: number;
}

export interface EndpointSettingsJson {
  IPAMConfig: null;
  Links: null;
  Aliases: string[] | null;
  MacAddress: string;
  DriverOpts: null;
  GwPriority: number;
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  DNSNames: string[] | null;
}

export interface PortBindingJson {
  HostIp: string;
  HostPort: string;
}

export interface NetworkSettingsJson {
  Bridge: string;
  SandboxID: string;
  SandboxKey: string;
  Ports: Record<string, PortBindingJson[] | null>;
  HairpinMode: boolean;
  LinkLocalIPv6Address: string;
  LinkLocalIPv6PrefixLen: number;
  SecondaryIPAddresses: null;
  SecondaryIPv6Addresses: null;
  EndpointID: string;
  Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  MacAddress: string;
  Networks: Record<string, EndpointSettingsJson>;
}

export interface BpfnetEndpointJson {
  EndpointID: string;
  NetworkID: string;
  /** Network name ("" if the network is unknown). */
  Network: string;
  IfName: string;
  HostIfName: string;
  MacAddress: string;
  IPv4Address: string;
  IfIndex: number | null;
  HostIfIndex: number | null;
  /** How `ip link` shows the pair on each side: "eth0@if1220", "bpv1a2b3c4d@if2". */
  Pairing: { Container: string; Host: string } | null;
}

export interface SandboxInspectJson {
  Id: string;
  Name: string;
  Created: string;
  Config: { Hostname: string; ExposedPorts: Record<string, Record<string, never>> };
  HostConfig: { NetworkMode: string; Dns: string[]; PortBindings: Record<string, PortBindingJson[]> };
  NetworkSettings: NetworkSettingsJson;
  /** bpfnet's own: the veth pairs of this sandbox. */
  Endpoints: BpfnetEndpointJson[];
}

function networkMode(sb: SandboxRecord): string {
  switch (sb.mode.kind) {
    case 'bridge':
      return sb.mode.network;
    case 'host':
      return 'host';
    case 'none':
      return 'none';
    case 'container':
      return `container:${sb.mode.sandboxId}`;
  }
}

function ifOrder(a: EndpointRecord, b: EndpointRecord): number {
  const n = (s: string) => {
    const m = /([0-9]+)$/.exec(s);
    return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
  };
  return n(a.ifName) - n(b.ifName) || cmp(a.ifName, b.ifName) || cmp(a.created, b.created);
}

function isDefaultBridge(n: NetworkRecord | undefined): boolean {
  return !!n && n.predefined && n.driver === 'bridge';
}

/**
 * A sandbox shaped like `docker inspect <container>` (the network parts),
 * plus bpfnet's Endpoints list with the host veth names and ifindexes.
 */
export function sandboxInspect(
  sb: SandboxRecord,
  endpoints: readonly EndpointRecord[],
  networksById: Lookup<NetworkRecord>,
  extra: Lookup<EndpointLinkInfo> = {},
): SandboxInspectJson {
  const mine = endpoints.filter((e) => e.sandboxId === sb.id).sort(ifOrder);
  const publishes = sb.mode.kind !== 'host' && sb.mode.kind !== 'none';

  const ports: Record<string, PortBindingJson[] | null> = {};
  const bindings: Record<string, PortBindingJson[]> = {};
  if (publishes) {
    for (const m of sb.ports) {
      const key = `${m.containerPort}/${m.proto}`;
      const b = { HostIp: m.hostIp, HostPort: String(m.hostPort) };
      (ports[key] ??= [])?.push(b);
      (bindings[key] ??= []).push(b);
    }
  }
  const exposedPorts: Record<string, Record<string, never>> = {};
  for (const spec of sb.exposed) {
    for (const e of parseExposed(spec)) {
      const key = `${e.containerPort}/${e.proto}`;
      exposedPorts[key] = {};
      if (publishes && !(key in ports)) ports[key] = null;
    }
  }
  for (const key of Object.keys(bindings)) exposedPorts[key] = {};

  const networks: Record<string, EndpointSettingsJson> = {};
  let legacy: { ep: EndpointRecord; net: NetworkRecord } | undefined;
  const eps: BpfnetEndpointJson[] = [];
  for (const ep of mine) {
    const net = get(networksById, ep.networkId);
    const name = net?.name ?? ep.networkId;
    const userDefined = !!net && !net.predefined;
    if (net && isDefaultBridge(net) && !legacy) legacy = { ep, net };
    const dnsNames = userDefined ? [...new Set([sb.name, ...ep.aliases, shortId(sb.id), sb.hostname].filter((s) => s !== ''))] : null;
    networks[name] = {
      IPAMConfig: null,
      Links: null,
      Aliases: userDefined && ep.aliases.length > 0 ? [...ep.aliases] : null,
      MacAddress: ep.mac,
      DriverOpts: null,
      GwPriority: 0,
      NetworkID: ep.networkId,
      EndpointID: ep.id,
      Gateway: net?.ipam?.gateway ?? '',
      IPAddress: ep.ipv4,
      IPPrefixLen: ep.prefixLen,
      IPv6Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      DNSNames: dnsNames,
    };
    const link = get(extra, ep.id);
    eps.push({
      EndpointID: ep.id,
      NetworkID: ep.networkId,
      Network: net?.name ?? '',
      IfName: ep.ifName,
      HostIfName: ep.hostIfName,
      MacAddress: ep.mac,
      IPv4Address: ep.ipv4 ? `${ep.ipv4}/${ep.prefixLen}` : '',
      IfIndex: link?.peerIfIndex ?? null,
      HostIfIndex: link?.hostIfIndex ?? null,
      Pairing: link ? { Container: `${ep.ifName}@if${link.hostIfIndex}`, Host: `${ep.hostIfName}@if${link.peerIfIndex}` } : null,
    });
  }

  return {
    Id: sb.id,
    Name: `/${sb.name}`,
    Created: sb.created,
    Config: { Hostname: sb.hostname, ExposedPorts: sorted(exposedPorts) },
    HostConfig: { NetworkMode: networkMode(sb), Dns: [...sb.dns], PortBindings: sorted(bindings) },
    NetworkSettings: {
      Bridge: '',
      SandboxID: sb.id,
      SandboxKey: sb.netnsPath,
      Ports: sorted(ports),
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      // Docker fills these deprecated top-level fields from the default bridge endpoint only.
      EndpointID: legacy?.ep.id ?? '',
      Gateway: legacy?.net.ipam?.gateway ?? '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: legacy?.ep.ipv4 ?? '',
      IPPrefixLen: legacy?.ep.prefixLen ?? 0,
      IPv6Gateway: '',
      MacAddress: legacy?.ep.mac ?? '',
      Networks: sorted(networks),
    },
    Endpoints: eps,
  };
}

function width(s: string): number {
  return [...s].length;
}

/**
 * An aligned table like the docker CLI prints (Go tabwriter with minwidth
 * 10, padding 3): every column but the last is padded to max(10, widest
 * cell + 3); the last is not padded. Each line ends with "\n".
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers, ...rows];
  const cols = Math.max(...all.map((r) => r.length));
  const widths: number[] = [];
  for (let c = 0; c < cols - 1; c++) widths.push(Math.max(10, ...all.map((r) => width(r[c] ?? '') + 3)));
  return all
    .map((r) => {
      let line = '';
      for (let c = 0; c < cols; c++) {
        const cell = r[c] ?? '';
        const w = widths[c];
        line += w === undefined ? cell : cell + ' '.repeat(w - width(cell));
      }
      return `${line.trimEnd()}\n`;
    })
    .join('');
}
