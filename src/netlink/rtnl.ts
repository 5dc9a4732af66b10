/**
 * An rtnetlink socket bound to one network namespace: links (bridge, veth,
 * dummy), IPv4 addresses, routes, proxy neighbours, and tc (the clsact qdisc
 * and cls_bpf direct-action filters, see tc.ts). Each operation is a
 * synchronous request/ack (~20 µs; one more when a device is given by name),
 * no process spawned.
 *
 *   const host = Rtnl.open(nodeNs);            // or Rtnl.open() for this netns
 *   const { index, peerIndex } = host.createVeth({ name: 'bn1a2b3c', peerName: 'eth0',
 *     peerNetnsPath: sandbox, master: 'br0', alias: 'bpfnet:1a2b3c', up: true });
 *   const sb = Rtnl.open(sandbox);
 *   sb.addAddr('eth0', '172.18.0.2/16'); sb.setLink('eth0', { up: true });  // peers start down
 *   sb.addRoute({ dst: 'default', gateway: '172.18.0.1' });
 *   sb.close(); host.close();
 *
 * Devices are named or given by ifindex (LinkRef). Errors are BpfnetErrors:
 * E_CONFLICT (EEXIST, EBUSY), E_NOT_FOUND (no such device, or nothing to
 * delete), E_NETLINK (anything else, errno in details), E_INVALID_ARGUMENT
 * (caught before sending).
 */
import { closeSync, openSync } from 'node:fs';
import { BpfnetError, invalidArgument } from '../util/errors.js';
import {
  IFNAME_MAX,
  NLM_F_DUMP_INTR,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  RT_SCOPES,
  RT_TABLE_MAIN,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
  RTM_NEWTFILTER,
  type RouteScope,
} from './constants.js';
import { netlinkError, systemError } from './errors.js';
import { parseCidr, parseIPv4 } from './ipv4.js';
import { parseAck, parseMessages, setSeq, type NlMessage } from './messages.js';
import { native } from './native.js';
import { decodeAddr, decodeLink, decodeNeigh, decodeRoute, type Addr, type Link, type Neigh, type Route } from './objects.js';
import {
  addrRequest,
  bpfFilterRequest,
  clsactRequest,
  deleteFilterRequest,
  dumpFiltersRequest,
  deleteLinkRequest,
  dumpAddrsRequest,
  dumpLinksRequest,
  dumpNeighRequest,
  dumpRoutesRequest,
  getLinkRequest,
  neighProxyRequest,
  newLinkRequest,
  routeRequest,
  setLinkRequest,
  vethData,
  type LinkTarget,
  type RouteSpecResolved,
} from './requests.js';
import { clsactParent, decodeBpfFilter, type BpfFilter, type TcDirection } from './tc.js';

/** A device by name or ifindex. */
export type LinkRef = string | number;

/**
 * For the tc methods: also an already looked-up device (e.g. from link()),
 * used by its index without another round trip and named in errors.
 */
export type DevRef = LinkRef | { index: number; name: string };

export interface LinkOptions {
  mtu?: number;
  mac?: string;
  /**
   * IFLA_IFALIAS: bpfnet's ownership mark, e.g. "bpfnet:<id>". The kernel
   * ignores it in a create request, so it is set right after (one more round trip).
   */
  alias?: string;
  up?: boolean;
}

export interface VethOptions extends LinkOptions {
  /** The host-side name. */
  name: string;
  /** The peer's name (e.g. eth0), in peerNetnsPath when given, else next to the host side. */
  peerName: string;
  /** Create the peer directly in this netns (a path: /run/netns/X, /proc/PID/ns/net). */
  peerNetnsPath?: string;
  /**
   * The peer is created down: the kernel cannot open one end of a veth before
   * the other exists (ENOTCONN), so bring it up from its netns afterwards.
   */
  peerMac?: string;
  /** Enslave the host side to this bridge. */
  master?: LinkRef;
}

export interface SetLinkOptions {
  up?: boolean;
  /** A bridge to enslave to; null releases the device. */
  master?: LinkRef | null;
  mtu?: number;
  mac?: string;
  /** "" clears it. */
  alias?: string;
  /** Rename. */
  name?: string;
  /** Move the device into this netns (it leaves this socket's view). */
  netnsPath?: string;
}

export interface RouteSpec {
  /** 'default' or 'a.b.c.d/n' (a bare address is a /32). */
  dst: string;
  gateway?: string;
  dev?: LinkRef;
  /** Default: host for local, link for a unicast route without gateway, else universe. */
  scope?: RouteScope;
  /** RTPROT_*; default 3 (boot) like `ip route`. bpfnet's own routes use their own number, to find them again. */
  protocol?: number;
  onlink?: boolean;
  type?: 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'local';
  /** Default main (254), local (255) for type local. */
  table?: number;
  metric?: number;
  /** Preferred source address (RTA_PREFSRC). */
  src?: string;
}

export interface RouteFilter {
  /** Default main (254); 'all' for every table. */
  table?: number | 'all';
  protocol?: number;
  dev?: LinkRef;
}

export interface BpfFilterSpec {
  dev: DevRef;
  direction: TcDirection;
  /** 1..65535: lower runs first. */
  pref: number;
  /** 1..0xffffffff: the filter's identity within pref. */
  handle: number;
  /** An fd of a loaded sched_cls program (e.g. native bpfObjGet of its pin); the caller keeps and closes it. */
  progFd: number;
  /** TCA_BPF_NAME, shown by `tc filter show` (up to 255 bytes). */
  name?: string;
  /** Default true: the program's return value is the action (`direct-action`). */
  directAction?: boolean;
}

const IF_EXISTS = { ifExists: false };

export class Rtnl {
  private fd: number;
  private seq = 0;

  private constructor(
    fd: number,
    /** The netns this socket was opened in (undefined: the opener's). */
    readonly netnsPath: string | undefined,
  ) {
    this.fd = fd;
  }

  /** A socket in the netns at netnsPath (default: this process's). */
  static open(netnsPath?: string): Rtnl {
    try {
      return new Rtnl(native().socketOpen(netnsPath), netnsPath);
    } catch (e) {
      throw systemError(`open rtnetlink socket${netnsPath ? ` in netns ${netnsPath}` : ''}`, e, 'E_NETNS');
    }
  }

  /** Idempotent. */
  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    native().socketClose(fd);
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  // ---------- links ----------

  links(): Link[] {
    return this.dump(dumpLinksRequest(), 'list links')
      .filter((m) => m.type === RTM_NEWLINK)
      .map(decodeLink);
  }

  /** The device, or undefined when there is none by that name or index. */
  link(ref: LinkRef): Link | undefined {
    const t = this.target(ref);
    try {
      const m = this.exchange(getLinkRequest(t), `get link ${ref}`).find((x) => x.type === RTM_NEWLINK);
      return m ? decodeLink(m) : undefined;
    } catch (e) {
      if (e instanceof BpfnetError && e.code === 'E_NOT_FOUND') return undefined;
      throw e;
    }
  }

  createBridge(name: string, opts: LinkOptions = {}): Link {
    return this.createSimple('bridge', name, opts);
  }

  /** Needs the kernel's dummy driver (EOPNOTSUPP "Unknown device type" without it). */
  createDummy(name: string, opts: LinkOptions = {}): Link {
    return this.createSimple('dummy', name, opts);
  }

  /**
   * A veth pair in one request: the host side here, the peer (e.g. eth0)
   * created directly in peerNetnsPath. Returns the host side's ifindex and the
   * peer's ifindex in its own netns.
   */
  createVeth(o: VethOptions): { index: number; peerIndex: number } {
    const op = `create veth ${o.name}`;
    checkName(o.name, op);
    checkName(o.peerName, op);
    checkMtu(o.mtu, op);
    const master = o.master === undefined ? undefined : this.resolve(o.master, op);
    const nsFd = o.peerNetnsPath === undefined ? undefined : openNetns(o.peerNetnsPath, op);
    try {
      const peer = { name: o.peerName, netnsFd: nsFd, mtu: o.mtu, mac: o.peerMac };
      this.exchange(newLinkRequest({ name: o.name, kind: 'veth', up: o.up, mtu: o.mtu, mac: o.mac, master, data: vethData(peer) }), op);
    } finally {
      if (nsFd !== undefined) closeSync(nsFd);
    }
    const l = this.mustLink(o.name, op);
    if (l.peerIndex === undefined) throw new BpfnetError('E_NETLINK', `${op}: the kernel reported no peer index`, { op });
    this.setAliasAfterCreate(l, o.alias, op);
    return { index: l.index, peerIndex: l.peerIndex };
  }

  setLink(ref: LinkRef, o: SetLinkOptions): void {
    const op = `set link ${ref}`;
    checkMtu(o.mtu, op);
    if (o.name !== undefined) checkName(o.name, op);
    // The kernel finds a device by name only when the request does not rename it.
    const t: LinkTarget = o.name !== undefined && typeof ref === 'string' ? { index: this.resolve(ref, op) } : this.target(ref);
    const master = o.master === undefined ? undefined : o.master === null ? 0 : this.resolve(o.master, op);
    const nsFd = o.netnsPath === undefined ? undefined : openNetns(o.netnsPath, op);
    try {
      this.exchange(setLinkRequest(t, { up: o.up, master, mtu: o.mtu, mac: o.mac, alias: o.alias, name: o.name, netnsFd: nsFd }), op);
    } finally {
      if (nsFd !== undefined) closeSync(nsFd);
    }
  }

  /** Deletes the device (a veth takes its peer along). Returns false when it was not there and ifExists is set. */
  deleteLink(ref: LinkRef, opts = IF_EXISTS): boolean {
    const op = `delete link ${ref}`;
    return this.deleting(opts.ifExists, () => this.exchange(deleteLinkRequest(this.target(ref)), op));
  }

  // ---------- addresses ----------

  /** IPv4 addresses, of one device when given. */
  addrs(dev?: LinkRef): Addr[] {
    const index = dev === undefined ? undefined : this.resolve(dev, `list addresses of ${dev}`);
    return this.dump(dumpAddrsRequest(), 'list addresses')
      .filter((m) => m.type === RTM_NEWADDR)
      .map(decodeAddr)
      .filter((a) => index === undefined || a.index === index);
  }

  /** "10.0.0.2/24" on dev; E_CONFLICT when it is there already (unless replace). */
  addAddr(dev: LinkRef, cidr: string, opts: { replace?: boolean } = {}): void {
    const op = `add address ${cidr} dev ${dev}`;
    const p = parseCidr(cidr, 'address');
    this.exchange(addrRequest('add', this.resolve(dev, op), p, opts), op);
  }

  delAddr(dev: LinkRef, cidr: string, opts = IF_EXISTS): boolean {
    const op = `delete address ${cidr} dev ${dev}`;
    const p = parseCidr(cidr, 'address');
    const index = this.resolve(dev, op);
    return this.deleting(opts.ifExists, () => this.exchange(addrRequest('del', index, p), op, ['EADDRNOTAVAIL']));
  }

  // ---------- routes ----------

  /** IPv4 routes of the main table (or the one asked for), optionally of one protocol or device. */
  routes(filter: RouteFilter = {}): Route[] {
    const table = filter.table ?? RT_TABLE_MAIN;
    const oif = filter.dev === undefined ? undefined : this.resolve(filter.dev, `list routes of ${filter.dev}`);
    const routes = this.dump(dumpRoutesRequest(), 'list routes')
      .filter((m) => m.type === RTM_NEWROUTE)
      .map(decodeRoute)
      .filter((r) => (table === 'all' || r.table === table) && (filter.protocol === undefined || r.protocol === filter.protocol))
      .filter((r) => oif === undefined || r.oif === oif);
    this.nameDevices(routes, (r) => r.oif);
    return routes;
  }

  addRoute(spec: RouteSpec & { replace?: boolean }): void {
    const op = `add route ${describeRoute(spec)}`;
    this.exchange(routeRequest('add', this.resolveRoute(spec, op), { replace: spec.replace }), op);
  }

  /** Deletes the route matching what is given (unset fields match anything). */
  delRoute(spec: RouteSpec, opts = IF_EXISTS): boolean {
    const op = `delete route ${describeRoute(spec)}`;
    const r = this.resolveRoute(spec, op);
    return this.deleting(opts.ifExists, () => this.exchange(routeRequest('del', r), op, ['ESRCH']));
  }

  // ---------- neighbours ----------

  /** The IPv4 neighbour cache and the proxy entries (proxy: true), of one device when given. */
  neighbours(dev?: LinkRef): Neigh[] {
    const index = dev === undefined ? undefined : this.resolve(dev, `list neighbours of ${dev}`);
    const all = [...this.dump(dumpNeighRequest(false), 'list neighbours'), ...this.dump(dumpNeighRequest(true), 'list proxy neighbours')]
      .filter((m) => m.type === RTM_NEWNEIGH)
      .map(decodeNeigh)
      .filter((n) => index === undefined || n.index === index);
    this.nameDevices(all, (n) => n.index);
    return all;
  }

  /** Answer ARP for ip on dev (needs forwarding on dev and a route to ip via another device). Idempotent. */
  addNeighProxy(dev: LinkRef, ip: string): void {
    const op = `add proxy neighbour ${ip} dev ${dev}`;
    const addr = parseIPv4(ip);
    this.exchange(neighProxyRequest('add', this.resolve(dev, op), addr), op);
  }

  delNeighProxy(dev: LinkRef, ip: string, opts = IF_EXISTS): boolean {
    const op = `delete proxy neighbour ${ip} dev ${dev}`;
    const addr = parseIPv4(ip);
    const index = this.resolve(dev, op);
    return this.deleting(opts.ifExists, () => this.exchange(neighProxyRequest('del', index, addr), op, ['ENOENT']));
  }

  // ---------- tc: clsact + cls_bpf ----------

  /**
   * The clsact qdisc on dev (`tc qdisc add dev D clsact`): created when
   * missing, an existing one (and its filters) left as it is. Another root of
   * the ingress hook (the `ingress` qdisc) is an error.
   */
  ensureClsact(dev: DevRef): void {
    const op = `add clsact qdisc dev ${devName(dev)}`;
    try {
      this.exchange(clsactRequest(this.resolveDev(dev, op)), op);
    } catch (e) {
      if (e instanceof BpfnetError && e.code === 'E_CONFLICT' && e.details.errnoName === 'EEXIST') return;
      throw e;
    }
  }

  /**
   * A direct-action cls_bpf filter in (pref, handle) of dev's clsact hook
   * (which must exist: ensureClsact), replacing the program of a filter there
   * atomically: `tc filter replace dev D ingress pref P handle H bpf
   * direct-action`. Returns the filter as the kernel installed it.
   */
  attachBpfFilter(s: BpfFilterSpec): BpfFilter {
    const op = `attach bpf filter dev ${devName(s.dev)} ${s.direction} pref ${s.pref} handle 0x${hex(s.handle)}`;
    checkSlot(s.pref, s.handle, op);
    checkDirection(s.direction, op);
    if (!(Number.isInteger(s.progFd) && s.progFd >= 0)) throw invalidArgument(`${op}: invalid program fd ${s.progFd}`);
    if (s.name !== undefined && Buffer.byteLength(s.name) > 255) throw invalidArgument(`${op}: name longer than 255 bytes`);
    const index = this.resolveDev(s.dev, op);
    const parent = clsactParent(s.direction);
    const req = bpfFilterRequest({ index, parent, pref: s.pref, handle: s.handle, progFd: s.progFd, name: s.name, directAction: s.directAction, echo: true });
    const echoed = this.exchange(req, op)
      .filter((m) => m.type === RTM_NEWTFILTER)
      .map(decodeBpfFilter)
      .find((f) => f !== undefined && f.pref === s.pref && f.handle === s.handle);
    if (echoed) return echoed;
    // A kernel that does not echo: read it back.
    const listed = this.listBpfFilters({ index, name: devName(s.dev) }, s.direction).find((f) => f.pref === s.pref && f.handle === s.handle);
    if (!listed) throw new BpfnetError('E_NETLINK', `${op}: acknowledged, but the filter is not listed`, { op });
    return listed;
  }

  /** The cls_bpf filters on dev's clsact hook (none without clsact), in the kernel's order. */
  listBpfFilters(dev: DevRef, direction: TcDirection): BpfFilter[] {
    const op = `list bpf filters dev ${devName(dev)} ${direction}`;
    checkDirection(direction, op);
    const index = this.resolveDev(dev, op);
    const out: BpfFilter[] = [];
    for (const m of this.dump(dumpFiltersRequest(index, clsactParent(direction)), op)) {
      if (m.type !== RTM_NEWTFILTER) continue;
      const f = decodeBpfFilter(m);
      if (f) out.push(f);
    }
    return out;
  }

  /**
   * Deletes the cls_bpf filter in (pref, handle) of dev's clsact hook. Returns
   * false when there is none (no such filter, a filter of another kind there,
   * no clsact, or no such device).
   */
  detachBpfFilter(dev: DevRef, direction: TcDirection, pref: number, handle: number): boolean {
    const op = `detach bpf filter dev ${devName(dev)} ${direction} pref ${pref} handle 0x${hex(handle)}`;
    checkSlot(pref, handle, op);
    checkDirection(direction, op);
    let index: number;
    try {
      index = this.resolveDev(dev, op);
    } catch (e) {
      if (e instanceof BpfnetError && e.code === 'E_NOT_FOUND') return false;
      throw e;
    }
    const parent = clsactParent(direction);
    try {
      this.exchange(deleteFilterRequest({ index, parent, pref, handle, kind: 'bpf' }), op, ['ENOENT']);
      return true;
    } catch (e) {
      if (!(e instanceof BpfnetError)) throw e;
      if (e.code === 'E_NOT_FOUND') return false;
      // EINVAL is also "no clsact" and "another kind in that slot": nothing of ours to delete then.
      if (e.details.errnoName === 'EINVAL' && !this.listBpfFilters({ index, name: devName(dev) }, direction).some((f) => f.pref === pref && f.handle === handle)) return false;
      throw e;
    }
  }

  // ---------- internals ----------

  private createSimple(kind: string, name: string, o: LinkOptions): Link {
    const op = `create ${kind} ${name}`;
    checkName(name, op);
    checkMtu(o.mtu, op);
    this.exchange(newLinkRequest({ name, kind, up: o.up, mtu: o.mtu, mac: o.mac }), op);
    const l = this.mustLink(name, op);
    this.setAliasAfterCreate(l, o.alias, op);
    return l;
  }

  /** The kernel ignores IFLA_IFALIAS when it creates a device: set it right after. */
  private setAliasAfterCreate(l: Link, alias: string | undefined, op: string): void {
    if (!alias) return;
    this.exchange(setLinkRequest({ index: l.index }, { alias }), `${op}: set alias ${alias}`);
    l.alias = alias;
  }

  private mustLink(name: string, op: string): Link {
    const l = this.link(name);
    if (!l) throw new BpfnetError('E_NETLINK', `${op}: created, but no device ${name} is there any more`, { op });
    return l;
  }

  private target(ref: LinkRef): LinkTarget {
    if (typeof ref === 'number') {
      if (!Number.isInteger(ref) || ref <= 0) throw invalidArgument(`invalid ifindex ${ref}`, { value: ref });
      return { index: ref };
    }
    checkName(ref, 'device');
    return { name: ref };
  }

  /** ifindex of a device; E_NOT_FOUND naming the device and the operation. */
  private resolve(ref: LinkRef, op: string): number {
    const t = this.target(ref);
    if ('index' in t) return t.index;
    const l = this.link(t.name);
    if (!l) {
      throw new BpfnetError('E_NOT_FOUND', `${op}: no such device ${t.name} (ENODEV)`, { op, dev: t.name, errno: 19, errnoName: 'ENODEV' });
    }
    return l.index;
  }

  private resolveDev(dev: DevRef, op: string): number {
    if (typeof dev === 'object') {
      if (!Number.isInteger(dev.index) || dev.index <= 0) throw invalidArgument(`${op}: invalid ifindex ${dev.index}`, { value: dev.index });
      return dev.index;
    }
    return this.resolve(dev, op);
  }

  private resolveRoute(s: RouteSpec, op: string): RouteSpecResolved {
    if (s.scope !== undefined && !(s.scope in RT_SCOPES)) throw invalidArgument(`${op}: unknown scope ${s.scope}`);
    if (s.type !== undefined && !['unicast', 'blackhole', 'unreachable', 'prohibit', 'local'].includes(s.type)) {
      throw invalidArgument(`${op}: unknown route type ${s.type}`);
    }
    if (s.protocol !== undefined && !(Number.isInteger(s.protocol) && s.protocol >= 0 && s.protocol <= 255)) {
      throw invalidArgument(`${op}: protocol must be 0..255`);
    }
    const r: RouteSpecResolved = { dst: s.dst === 'default' ? 'default' : parseCidr(s.dst, 'route destination') };
    if (s.gateway !== undefined) r.gateway = parseIPv4(s.gateway, 'gateway');
    if (s.dev !== undefined) r.oif = this.resolve(s.dev, op);
    if (s.scope !== undefined) r.scope = s.scope;
    if (s.protocol !== undefined) r.protocol = s.protocol;
    if (s.type !== undefined) r.type = s.type;
    if (s.table !== undefined) r.table = s.table;
    if (s.onlink) r.onlink = true;
    if (s.metric !== undefined) r.metric = s.metric;
    if (s.src !== undefined) r.prefsrc = parseIPv4(s.src, 'source address');
    return r;
  }

  private nameDevices<T extends { dev?: string }>(items: T[], index: (x: T) => number | undefined): void {
    if (!items.some((x) => index(x) !== undefined)) return;
    const names = new Map(this.links().map((l) => [l.index, l.name]));
    for (const x of items) {
      const i = index(x);
      const name = i === undefined ? undefined : names.get(i);
      if (name !== undefined) x.dev = name;
    }
  }

  private deleting(ifExists: boolean | undefined, fn: () => unknown): boolean {
    try {
      fn();
      return true;
    } catch (e) {
      if (ifExists && e instanceof BpfnetError && e.code === 'E_NOT_FOUND') return false;
      throw e;
    }
  }

  /** Sends one request; returns the reply messages, throwing on an error ack. */
  private exchange(msg: Buffer, op: string, notFound: readonly string[] = []): NlMessage[] {
    return this.roundTrip(msg, op, notFound).messages;
  }

  /** A dump, repeated (up to 5 times) when the kernel says it changed in between (NLM_F_DUMP_INTR). */
  private dump(msg: Buffer, op: string): NlMessage[] {
    for (let attempt = 1; ; attempt++) {
      const r = this.roundTrip(msg, op, []);
      if (!r.interrupted || attempt >= 5) return r.messages;
    }
  }

  private roundTrip(msg: Buffer, op: string, notFound: readonly string[]): { messages: NlMessage[]; interrupted: boolean } {
    if (this.fd < 0) throw new BpfnetError('E_INVALID_ARGUMENT', `${op}: the rtnetlink socket is closed`, { op });
    this.seq = (this.seq + 1) >>> 0 || 1;
    setSeq(msg, this.seq);
    let raw: Buffer;
    try {
      raw = native().request(this.fd, msg);
    } catch (e) {
      throw systemError(op, e, 'E_NETLINK');
    }
    const messages: NlMessage[] = [];
    let interrupted = false;
    for (const m of parseMessages(raw)) {
      if (m.flags & NLM_F_DUMP_INTR) interrupted = true;
      if (m.type === NLMSG_ERROR || m.type === NLMSG_DONE) {
        const ack = parseAck(m);
        if (ack.errno) throw netlinkError(op, ack.errno, ack.message, notFound);
      } else if (m.type !== NLMSG_NOOP) {
        messages.push(m);
      }
    }
    return { messages, interrupted };
  }
}

/** Like the kernel's dev_valid_name(). */
export function checkName(name: string, op: string): void {
  if (
    typeof name !== 'string' ||
    name === '' ||
    name === '.' ||
    name === '..' ||
    Buffer.byteLength(name) > IFNAME_MAX ||
    /[/:\s]/.test(name)
  ) {
    throw invalidArgument(`${op}: invalid interface name ${JSON.stringify(name)} (1-${IFNAME_MAX} bytes, no '/', ':' or spaces)`, { name });
  }
}

function checkMtu(mtu: number | undefined, op: string): void {
  if (mtu !== undefined && !(Number.isInteger(mtu) && mtu > 0 && mtu <= 0xffffffff)) throw invalidArgument(`${op}: invalid MTU ${mtu}`, { mtu });
}

function devName(dev: DevRef): string {
  return typeof dev === 'object' ? dev.name : String(dev);
}

function hex(n: number): string {
  return typeof n === 'number' && Number.isFinite(n) ? n.toString(16) : String(n);
}

function checkSlot(pref: number, handle: number, op: string): void {
  if (!(Number.isInteger(pref) && pref >= 1 && pref <= 0xffff)) throw invalidArgument(`${op}: pref must be 1..65535`, { pref });
  if (!(Number.isInteger(handle) && handle >= 1 && handle <= 0xffffffff)) throw invalidArgument(`${op}: handle must be 1..0xffffffff`, { handle });
}

function checkDirection(d: string, op: string): void {
  if (d !== 'ingress' && d !== 'egress') throw invalidArgument(`${op}: direction must be ingress or egress`, { direction: d });
}

function openNetns(path: string, op: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw systemError(`${op} (netns)`, e, 'E_NETNS');
  }
}

/** `ip route` style: "default via 10.0.0.1 dev eth0", "blackhole 10.9.0.0/16". */
export function describeRoute(s: RouteSpec): string {
  const parts = [s.type && s.type !== 'unicast' ? `${s.type} ${s.dst}` : s.dst];
  if (s.gateway) parts.push(`via ${s.gateway}`);
  if (s.dev !== undefined) parts.push(`dev ${s.dev}`);
  if (s.table !== undefined) parts.push(`table ${s.table}`);
  if (s.protocol !== undefined) parts.push(`proto ${s.protocol}`);
  return parts.join(' ');
}
