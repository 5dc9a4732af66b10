/**
 * What rtnetlink dumps describe, decoded into plain objects: links, IPv4
 * addresses, routes and neighbours. Pure (tested without the kernel).
 */
import {
  IF_OPER_STATES,
  IF_OPER_UNKNOWN,
  IF_OPER_UP,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_LABEL,
  IFA_LOCAL,
  IFF_LOWER_UP,
  IFF_UP,
  IFINFOMSG_LEN,
  IFADDRMSG_LEN,
  IFLA_ADDRESS,
  IFLA_IFALIAS,
  IFLA_IFNAME,
  IFLA_INFO_KIND,
  IFLA_LINK,
  IFLA_LINK_NETNSID,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_OPERSTATE,
  NDA_DST,
  NDA_LLADDR,
  NDMSG_LEN,
  NTF_PROXY,
  NTF_ROUTER,
  NUD_STATES,
  RT_SCOPES,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_TABLE,
  RTMSG_LEN,
  RTN_TYPES,
  RTNH_F_ONLINK,
  type RouteScope,
  type RouteType,
} from './constants.js';
import { formatIPv4, formatMac } from './ipv4.js';
import {
  attrI32Value,
  attrStringValue,
  attrU32Value,
  attrU8Value,
  decodeIfAddrMsg,
  decodeIfInfoMsg,
  decodeNdMsg,
  decodeRtMsg,
  parseAttrs,
  type NlMessage,
} from './messages.js';

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: 'veth', 'bridge', 'dummy', ...; undefined for physical devices and lo. */
  kind?: string;
  mtu: number;
  /** IFLA_ADDRESS as xx:xx:..; undefined for devices without one. */
  mac?: string;
  /** IFF_UP: administratively up. */
  up: boolean;
  /** Operationally up: operstate "up", or "unknown" with carrier (lo, dummy). */
  operUp: boolean;
  operState: string;
  /** IFF_* flags. */
  flags: number;
  /** ifindex of the bridge (or bond) this device is enslaved to. */
  master?: number;
  /** IFLA_IFALIAS; bpfnet marks its devices with "bpfnet:<id>". */
  alias?: string;
  /**
   * IFLA_LINK when it differs from index: for a veth the peer's ifindex, in the
   * peer's netns (`eth0@if12`).
   */
  peerIndex?: number;
  /** IFLA_LINK_NETNSID: the peer's netns as an id of this netns (when it is another one). */
  linkNetnsId?: number;
}

export interface Addr {
  index: number;
  /** The local address (IFA_LOCAL, else IFA_ADDRESS). */
  address: string;
  prefixLen: number;
  /** "address/prefixLen" */
  cidr: string;
  broadcast?: string;
  /** IFA_LABEL: the device name (or name:label). */
  label?: string;
  scope: RouteScope | `${number}`;
}

export interface Route {
  /** 'default' or 'a.b.c.d/n' */
  dst: string;
  table: number;
  protocol: number;
  scope: RouteScope | `${number}`;
  type: RouteType | `${number}`;
  gateway?: string;
  /** Output interface index (RTA_OIF) and its name when known. */
  oif?: number;
  dev?: string;
  prefsrc?: string;
  metric?: number;
  onlink: boolean;
}

export interface Neigh {
  index: number;
  dev?: string;
  ip: string;
  mac?: string;
  /** NUD state names joined by ',' ('reachable', 'permanent', 'none' for proxy entries). */
  state: string;
  /** A proxy entry (`ip neigh add proxy`): answered by this host, not a cache entry. */
  proxy: boolean;
  router: boolean;
}

function nameOf<K extends string>(table: Record<K, number>, v: number): K | `${number}` {
  for (const [k, n] of Object.entries(table) as [K, number][]) if (n === v) return k;
  return `${v}`;
}

export const scopeName = (v: number): RouteScope | `${number}` => nameOf(RT_SCOPES, v);
export const routeTypeName = (v: number): RouteType | `${number}` => nameOf(RTN_TYPES, v);

export function nudStateName(state: number): string {
  if (state === 0) return 'none';
  const names = (Object.entries(NUD_STATES) as [string, number][]).filter(([, bit]) => state & bit).map(([n]) => n);
  return names.length ? names.join(',') : `0x${state.toString(16)}`;
}

export function decodeLink(m: NlMessage): Link {
  const ifi = decodeIfInfoMsg(m.payload);
  const a = parseAttrs(m.payload, IFINFOMSG_LEN);
  const info = a.get(IFLA_LINKINFO);
  const kind = info ? attrStringValue(parseAttrs(info).get(IFLA_INFO_KIND)) : undefined;
  const oper = attrU8Value(a.get(IFLA_OPERSTATE)) ?? IF_OPER_UNKNOWN;
  const macRaw = a.get(IFLA_ADDRESS);
  const link: Link = {
    index: ifi.index,
    name: attrStringValue(a.get(IFLA_IFNAME)) ?? '',
    mtu: attrU32Value(a.get(IFLA_MTU)) ?? 0,
    up: (ifi.flags & IFF_UP) !== 0,
    operUp: oper === IF_OPER_UP || (oper === IF_OPER_UNKNOWN && (ifi.flags & IFF_LOWER_UP) !== 0),
    operState: IF_OPER_STATES[oper] ?? String(oper),
    flags: ifi.flags,
  };
  if (kind) link.kind = kind;
  if (macRaw && macRaw.length > 0) link.mac = formatMac(macRaw);
  const master = attrU32Value(a.get(IFLA_MASTER));
  if (master) link.master = master;
  const alias = attrStringValue(a.get(IFLA_IFALIAS));
  if (alias) link.alias = alias;
  const peer = attrU32Value(a.get(IFLA_LINK));
  if (peer && peer !== ifi.index) link.peerIndex = peer;
  const nsid = attrI32Value(a.get(IFLA_LINK_NETNSID));
  if (nsid !== undefined && nsid >= 0) link.linkNetnsId = nsid;
  return link;
}

export function decodeAddr(m: NlMessage): Addr {
  const ifa = decodeIfAddrMsg(m.payload);
  const a = parseAttrs(m.payload, IFADDRMSG_LEN);
  const raw = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
  const address = raw && raw.length >= 4 ? formatIPv4(raw) : '';
  const out: Addr = { index: ifa.index, address, prefixLen: ifa.prefixLen, cidr: `${address}/${ifa.prefixLen}`, scope: scopeName(ifa.scope) };
  const brd = a.get(IFA_BROADCAST);
  if (brd && brd.length >= 4) out.broadcast = formatIPv4(brd);
  const label = attrStringValue(a.get(IFA_LABEL));
  if (label) out.label = label;
  return out;
}

export function decodeRoute(m: NlMessage): Route {
  const rt = decodeRtMsg(m.payload);
  const a = parseAttrs(m.payload, RTMSG_LEN);
  const dstRaw = a.get(RTA_DST);
  const dst = rt.dstLen === 0 ? 'default' : `${dstRaw && dstRaw.length >= 4 ? formatIPv4(dstRaw) : '0.0.0.0'}/${rt.dstLen}`;
  const out: Route = {
    dst,
    table: attrU32Value(a.get(RTA_TABLE)) ?? rt.table,
    protocol: rt.protocol,
    scope: scopeName(rt.scope),
    type: routeTypeName(rt.type),
    onlink: (rt.flags & RTNH_F_ONLINK) !== 0,
  };
  const gw = a.get(RTA_GATEWAY);
  if (gw && gw.length >= 4) out.gateway = formatIPv4(gw);
  const oif = attrU32Value(a.get(RTA_OIF));
  if (oif !== undefined) out.oif = oif;
  const src = a.get(RTA_PREFSRC);
  if (src && src.length >= 4) out.prefsrc = formatIPv4(src);
  const metric = attrU32Value(a.get(RTA_PRIORITY));
  if (metric !== undefined) out.metric = metric;
  return out;
}

export function decodeNeigh(m: NlMessage): Neigh {
  const nd = decodeNdMsg(m.payload);
  const a = parseAttrs(m.payload, NDMSG_LEN);
  const dst = a.get(NDA_DST);
  const out: Neigh = {
    index: nd.index,
    ip: dst && dst.length >= 4 ? formatIPv4(dst) : '',
    state: nudStateName(nd.state),
    proxy: (nd.flags & NTF_PROXY) !== 0,
    router: (nd.flags & NTF_ROUTER) !== 0,
  };
  const ll = a.get(NDA_LLADDR);
  if (ll && ll.length > 0) out.mac = formatMac(ll);
  return out;
}
