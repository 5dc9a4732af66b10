/**
 * rtnetlink requests as bytes, from already resolved arguments (ifindexes,
 * fds). Pure: the Rtnl class resolves names, sets the sequence number and
 * sends them. Defaults follow iproute2 (`ip link/addr/route/neigh`, `tc`).
 */
import {
  AF_INET,
  AF_UNSPEC,
  ETH_P_ALL,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_LOCAL,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_EXT_MASK,
  IFLA_IFALIAS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  NDA_DST,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_ECHO,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  NTF_PROXY,
  NUD_PERMANENT,
  RT_SCOPES,
  RT_TABLE_LOCAL,
  RT_TABLE_MAIN,
  RT_TABLE_UNSPEC,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_TABLE,
  RTEXT_FILTER_SKIP_STATS,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELNEIGH,
  RTM_DELROUTE,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETNEIGH,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
  RTM_SETLINK,
  RTM_DELTFILTER,
  RTM_GETTFILTER,
  RTM_NEWQDISC,
  RTM_NEWTFILTER,
  RTN_TYPES,
  RTNH_F_ONLINK,
  RTPROT_BOOT,
  RTPROT_UNSPEC,
  TC_H_CLSACT,
  TCA_BPF_FD,
  TCA_BPF_FLAG_ACT_DIRECT,
  TCA_BPF_FLAGS,
  TCA_BPF_NAME,
  TCA_KIND,
  TCA_OPTIONS,
  VETH_INFO_PEER,
  type RouteScope,
  type RouteType,
} from './constants.js';
import { broadcastOf, parseMac, type Prefix } from './ipv4.js';
import {
  attrBytesOfString,
  attrNested,
  attrString,
  attrU32,
  attr,
  encodeIfAddrMsg,
  encodeIfInfoMsg,
  encodeMessage,
  encodeNdMsg,
  encodeRtMsg,
  encodeTcMsg,
} from './messages.js';
import { filterInfo, tcHandle } from './tc.js';

const ACKED = NLM_F_REQUEST | NLM_F_ACK;
const DUMP = NLM_F_REQUEST | NLM_F_DUMP;

/** A device by index, or by name (the kernel looks IFLA_IFNAME up when the index is 0). */
export type LinkTarget = { index: number } | { name: string };

/** Link attributes settable at creation and later. */
export interface LinkAttrs {
  mtu?: number;
  mac?: string;
  alias?: string;
  /** ifindex of the bridge; 0 releases the device from its master. */
  master?: number;
  /** An open fd of the netns to create or move the device in. */
  netnsFd?: number;
}

function linkAttrs(o: LinkAttrs): Buffer[] {
  const out: Buffer[] = [];
  if (o.mtu !== undefined) out.push(attrU32(IFLA_MTU, o.mtu));
  if (o.mac !== undefined) out.push(attr(IFLA_ADDRESS, parseMac(o.mac)));
  if (o.alias !== undefined) out.push(attrBytesOfString(IFLA_IFALIAS, o.alias));
  if (o.master !== undefined) out.push(attrU32(IFLA_MASTER, o.master));
  if (o.netnsFd !== undefined) out.push(attrU32(IFLA_NET_NS_FD, o.netnsFd));
  return out;
}

function upFlags(up: boolean | undefined): { flags: number; change: number } {
  return up === undefined ? { flags: 0, change: 0 } : { flags: up ? IFF_UP : 0, change: IFF_UP };
}

function target(t: LinkTarget): { index: number; attrs: Buffer[] } {
  return 'index' in t ? { index: t.index, attrs: [] } : { index: 0, attrs: [attrString(IFLA_IFNAME, t.name)] };
}

/** alias and netnsFd are left out: the kernel ignores them when it creates a device (the peer's netnsFd is honoured). */
export interface NewLinkSpec extends Omit<LinkAttrs, 'alias' | 'netnsFd'> {
  name: string;
  kind: string;
  up?: boolean;
  /** IFLA_INFO_DATA contents (kind-specific), already encoded. */
  data?: Buffer[];
}

/** RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL: fails with EEXIST when the name is taken. */
export function newLinkRequest(s: NewLinkSpec): Buffer {
  const info = [attrString(IFLA_INFO_KIND, s.kind)];
  if (s.data) info.push(attrNested(IFLA_INFO_DATA, s.data));
  return encodeMessage(
    { type: RTM_NEWLINK, flags: ACKED | NLM_F_CREATE | NLM_F_EXCL },
    encodeIfInfoMsg({ family: AF_UNSPEC, ...upFlags(s.up) }),
    attrString(IFLA_IFNAME, s.name),
    ...linkAttrs(s),
    attrNested(IFLA_LINKINFO, info),
  );
}

export interface VethPeerSpec {
  name: string;
  netnsFd?: number;
  mtu?: number;
  mac?: string;
}

/**
 * IFLA_INFO_DATA of a veth: VETH_INFO_PEER = the peer's ifinfomsg + its
 * attributes. The peer cannot be created up (it is opened before the other
 * end exists: ENOTCONN).
 */
export function vethData(peer: VethPeerSpec): Buffer[] {
  return [
    attrNested(VETH_INFO_PEER, [
      encodeIfInfoMsg({ family: AF_UNSPEC }),
      attrString(IFLA_IFNAME, peer.name),
      ...linkAttrs({ mtu: peer.mtu, mac: peer.mac, netnsFd: peer.netnsFd }),
    ]),
  ];
}

export interface SetLinkSpec extends LinkAttrs {
  /** New name. */
  name?: string;
  up?: boolean;
}

/** RTM_SETLINK; renaming needs the target by index. */
export function setLinkRequest(t: LinkTarget, s: SetLinkSpec): Buffer {
  const { index, attrs } = target(t);
  return encodeMessage(
    { type: RTM_SETLINK, flags: ACKED },
    encodeIfInfoMsg({ family: AF_UNSPEC, index, ...upFlags(s.up) }),
    ...attrs,
    ...(s.name !== undefined ? [attrString(IFLA_IFNAME, s.name)] : []),
    ...linkAttrs(s),
  );
}

export function deleteLinkRequest(t: LinkTarget): Buffer {
  const { index, attrs } = target(t);
  return encodeMessage({ type: RTM_DELLINK, flags: ACKED }, encodeIfInfoMsg({ family: AF_UNSPEC, index }), ...attrs);
}

/** One link (reply: RTM_NEWLINK, then the ack). Statistics are left out. */
export function getLinkRequest(t: LinkTarget): Buffer {
  const { index, attrs } = target(t);
  return encodeMessage(
    { type: RTM_GETLINK, flags: ACKED },
    encodeIfInfoMsg({ family: AF_UNSPEC, index }),
    ...attrs,
    attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS),
  );
}

export function dumpLinksRequest(): Buffer {
  return encodeMessage({ type: RTM_GETLINK, flags: DUMP }, encodeIfInfoMsg({ family: AF_UNSPEC }), attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS));
}

// ---------- addresses ----------

/** RTM_NEWADDR/RTM_DELADDR for an IPv4 interface address (broadcast derived like `brd +` up to /30). */
export function addrRequest(cmd: 'add' | 'del', index: number, p: Prefix, opts: { replace?: boolean } = {}): Buffer {
  const attrs = [attr(IFA_LOCAL, p.bytes), attr(IFA_ADDRESS, p.bytes)];
  if (cmd === 'add' && p.prefixLen <= 30) attrs.push(attr(IFA_BROADCAST, broadcastOf(p.bytes, p.prefixLen)));
  const scope = p.bytes[0] === 127 ? RT_SCOPES.host : RT_SCOPES.universe;
  const flags = cmd === 'del' ? ACKED : ACKED | NLM_F_CREATE | (opts.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  return encodeMessage(
    { type: cmd === 'add' ? RTM_NEWADDR : RTM_DELADDR, flags },
    encodeIfAddrMsg({ family: AF_INET, prefixLen: p.prefixLen, scope, index }),
    ...attrs,
  );
}

export function dumpAddrsRequest(): Buffer {
  return encodeMessage({ type: RTM_GETADDR, flags: DUMP }, encodeIfAddrMsg({ family: AF_INET }));
}

// ---------- routes ----------

export interface RouteSpecResolved {
  dst: Prefix | 'default';
  gateway?: Buffer;
  oif?: number;
  scope?: RouteScope;
  protocol?: number;
  type?: RouteType;
  table?: number;
  onlink?: boolean;
  metric?: number;
  prefsrc?: Buffer;
}

/**
 * RTM_NEWROUTE/RTM_DELROUTE. Adding: protocol boot, type unicast, table main
 * (local for type local), scope host for local, link for a unicast route
 * without gateway, else universe. Deleting matches only on what is given
 * (scope "nowhere" and protocol/type 0 are the kernel's wildcards).
 */
export function routeRequest(cmd: 'add' | 'del', r: RouteSpecResolved, opts: { replace?: boolean } = {}): Buffer {
  const dstLen = r.dst === 'default' ? 0 : r.dst.prefixLen;
  const del = cmd === 'del';
  const type = r.type ?? (del ? undefined : 'unicast');
  const table = r.table ?? (type === 'local' ? RT_TABLE_LOCAL : RT_TABLE_MAIN);
  let scope: number;
  if (r.scope !== undefined) scope = RT_SCOPES[r.scope];
  else if (del) scope = RT_SCOPES.nowhere;
  else if (type === 'local') scope = RT_SCOPES.host;
  else if (type === 'unicast' && !r.gateway && r.oif !== undefined) scope = RT_SCOPES.link;
  else scope = RT_SCOPES.universe;

  const attrs: Buffer[] = [];
  if (r.dst !== 'default' && dstLen > 0) attrs.push(attr(RTA_DST, r.dst.bytes));
  if (r.gateway) attrs.push(attr(RTA_GATEWAY, r.gateway));
  if (r.oif !== undefined) attrs.push(attrU32(RTA_OIF, r.oif));
  if (r.metric !== undefined) attrs.push(attrU32(RTA_PRIORITY, r.metric));
  if (r.prefsrc) attrs.push(attr(RTA_PREFSRC, r.prefsrc));
  if (table > 255) attrs.push(attrU32(RTA_TABLE, table));

  const flags = del ? ACKED : ACKED | NLM_F_CREATE | (opts.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  return encodeMessage(
    { type: del ? RTM_DELROUTE : RTM_NEWROUTE, flags },
    encodeRtMsg({
      family: AF_INET,
      dstLen,
      table: table > 255 ? RT_TABLE_UNSPEC : table,
      protocol: r.protocol ?? (del ? RTPROT_UNSPEC : RTPROT_BOOT),
      scope,
      type: type === undefined ? RTN_TYPES.unspec : RTN_TYPES[type],
      flags: r.onlink ? RTNH_F_ONLINK : 0,
    }),
    ...attrs,
  );
}

export function dumpRoutesRequest(): Buffer {
  return encodeMessage({ type: RTM_GETROUTE, flags: DUMP }, encodeRtMsg({ family: AF_INET }));
}

// ---------- neighbours ----------

/** A proxy neighbour (`ip neigh add|del proxy IP dev DEV`): the host answers ARP for IP on DEV. */
export function neighProxyRequest(cmd: 'add' | 'del', index: number, ip: Buffer): Buffer {
  return encodeMessage(
    { type: cmd === 'add' ? RTM_NEWNEIGH : RTM_DELNEIGH, flags: cmd === 'add' ? ACKED | NLM_F_CREATE | NLM_F_EXCL : ACKED },
    encodeNdMsg({ family: AF_INET, index, state: NUD_PERMANENT, flags: NTF_PROXY }),
    attr(NDA_DST, ip),
  );
}

/** The neighbour cache, or (proxy) the proxy entries: the kernel keeps them apart. */
export function dumpNeighRequest(proxy: boolean): Buffer {
  return encodeMessage({ type: RTM_GETNEIGH, flags: DUMP }, encodeNdMsg({ family: AF_INET, flags: proxy ? NTF_PROXY : 0 }));
}

// ---------- traffic control ----------

/**
 * RTM_NEWQDISC clsact (parent TC_H_CLSACT, handle ffff:0) with NLM_F_CREATE
 * only: creates it, or acks an existing clsact without touching it or its
 * filters. (Another qdisc there, e.g. `ingress`, is EINVAL "Invalid qdisc
 * name", as with `tc qdisc replace`.)
 */
export function clsactRequest(index: number): Buffer {
  return encodeMessage(
    { type: RTM_NEWQDISC, flags: ACKED | NLM_F_CREATE },
    encodeTcMsg({ family: AF_UNSPEC, index, parent: TC_H_CLSACT, handle: tcHandle(TC_H_CLSACT, 0) }),
    attrString(TCA_KIND, 'clsact'),
  );
}

export interface BpfFilterRequestSpec {
  index: number;
  /** tcm_parent, e.g. clsactParent('ingress'). */
  parent: number;
  /** 1..0xffff */
  pref: number;
  /** 1..0xffffffff */
  handle: number;
  /** An fd of a loaded sched_cls program; the kernel takes its own reference. */
  progFd: number;
  /** TCA_BPF_NAME (shown by `tc filter show`). */
  name?: string;
  /** ETH_P_*, host order; default ETH_P_ALL. */
  protocol?: number;
  /** Default true (TCA_BPF_FLAG_ACT_DIRECT). */
  directAction?: boolean;
  /** NLM_F_ECHO: the kernel answers with the filter as installed. */
  echo?: boolean;
}

/**
 * RTM_NEWTFILTER "bpf" with NLM_F_CREATE|NLM_F_REPLACE: installs the filter
 * in the (pref, handle) slot, or swaps the program of the one there
 * atomically, like `tc filter replace ... bpf direct-action`.
 */
export function bpfFilterRequest(s: BpfFilterRequestSpec): Buffer {
  const opts = [attrU32(TCA_BPF_FD, s.progFd)];
  if (s.name !== undefined) opts.push(attrString(TCA_BPF_NAME, s.name));
  if (s.directAction ?? true) opts.push(attrU32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT));
  return encodeMessage(
    { type: RTM_NEWTFILTER, flags: ACKED | NLM_F_CREATE | NLM_F_REPLACE | (s.echo ? NLM_F_ECHO : 0) },
    encodeTcMsg({ family: AF_UNSPEC, index: s.index, parent: s.parent, handle: s.handle, info: filterInfo(s.pref, s.protocol ?? ETH_P_ALL) }),
    attrString(TCA_KIND, 'bpf'),
    attrNested(TCA_OPTIONS, opts),
  );
}

/**
 * RTM_DELTFILTER of the one filter in (pref, handle), any protocol, only if
 * it is of this kind (else EINVAL). pref must not be 0: that would flush the
 * whole hook.
 */
export function deleteFilterRequest(s: { index: number; parent: number; pref: number; handle: number; kind: string }): Buffer {
  if (!(Number.isInteger(s.pref) && s.pref >= 1 && s.pref <= 0xffff)) throw new RangeError(`filter pref must be 1..65535, not ${s.pref}`);
  return encodeMessage(
    { type: RTM_DELTFILTER, flags: ACKED },
    encodeTcMsg({ family: AF_UNSPEC, index: s.index, parent: s.parent, handle: s.handle, info: filterInfo(s.pref, 0) }),
    attrString(TCA_KIND, s.kind),
  );
}

/** The filters of one hook (every chain), like `tc filter show dev D ingress`. */
export function dumpFiltersRequest(index: number, parent: number): Buffer {
  return encodeMessage({ type: RTM_GETTFILTER, flags: DUMP }, encodeTcMsg({ family: AF_UNSPEC, index, parent }));
}
