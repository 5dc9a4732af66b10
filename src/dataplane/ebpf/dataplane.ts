/**
 * The eBPF dataplane: tc programs on the uplinks (ingress: reverse SNAT, DNAT;
 * egress: masquerade) and on the host side of every endpoint, cgroup socket
 * hooks for node-local clients, optional XDP; all driven by maps under one
 * bpffs root. apply() is idempotent: loading reuses pinned versions,
 * attaching replaces in place, and map writes are the diff against what the
 * maps hold.
 */
import { loadObject, pruneVersions, removeRoot, mapsDir, type LoadedObject, type MapMigration } from '../../loader/load.js';
import { attachTc, detachTc } from '../../loader/tc.js';
import { attachUplinkXdp, detachUplinkXdp, uplinkXdp, XDP_PROGRAM } from './xdp.js';
import { bpfProgInfoById } from '../../netlink/bpf.js';
import { attachCgroup, Cgroup2MissingError, detachCgroup, sockCgroupProgs } from '../../loader/cgroup.js';
import { portEntries, portKey, validatePort } from '../../controller/ports.js';
import { noAppliedState, type ApplyReport, type Dataplane, type DataplaneEndpoint, type DataplaneNetwork, type DesiredState, type PortChange, type PortCounters } from '../types.js';
import type { AddrKey, AddrValue, ConfigValue, EndpointInfo, EndpointKey, IfaceKey, NetKey, NetValue, UplinkKey, UplinkValue } from '../../maps/generated/abi.js';
import { MapMirror, type SyncCounts } from './mirror.js';
import { maps as mapLayouts } from '../../maps/generated/abi.js';
import { readCounters, readPortCounters } from './counters.js';
import { netnsCookie } from '../../netlink/netns.js';
import { invalidArgument } from '../../util/errors.js';
import { formatIpv4, parseCidr } from '../../model/ipv4.js';
import { isIPv4 } from 'node:net';
import { existsSync } from 'node:fs';
import { dockerUserRules, removeDockerUser, syncDockerUser } from '../iptables/dockeruser.js';

export interface EbpfOptions {
  /** bpffs root for this agent's pins (default /sys/fs/bpf/bpfnet). */
  root: string;
  /** Network namespace of the node (path), or undefined for the current one. */
  netns?: string | undefined;
  mapSizes?: Record<string, number>;
  onMigrate?: (m: MapMigration) => void;
  /** Attach the socket hooks that give node-local clients access (default true). */
  nodeLocal?: boolean;
  /**
   * XDP DNAT of published ports on the uplinks before tc (--xdp). Off by
   * default: on this kernel's veth it measured no faster than tc alone
   * (README, "Measured"); it pays only on NICs with native XDP.
   */
  xdp?: 'auto' | 'native' | 'generic' | undefined;
  /** cgroup2 directory for the socket hooks (default: the cgroup2 root). */
  cgroupPath?: string;
  /** Masquerade source ports, inclusive (default 61000-65535: above Linux's default ephemeral range). */
  snatPorts?: [number, number];
}

export const DEFAULT_SNAT_PORTS: [number, number] = [61000, 65535];

export const PROGRAMS = {
  uplink: { object: 'uplink', prog: 'from_uplink' },
  uplinkEgress: { object: 'uplink', prog: 'to_uplink' },
  sock: { object: 'sock', prog: 'sock_connect4' },
  endpoint: { object: 'endpoint', prog: 'from_container' },
} as const;

export class EbpfDataplane implements Dataplane {
  readonly mode = 'ebpf' as const;
  /**
   * What this process attached: "dev@ifindex" -> pin. A device already
   * carrying the same program is skipped, so one endpoint change costs one
   * attach, not one per endpoint. Empty after a restart: the first apply
   * re-attaches everything (replace is atomic, so flows never notice).
   */
  private readonly attached = new Map<string, string>();
  constructor(readonly opts: EbpfOptions) {}

  get mapDir(): string {
    return mapsDir(this.opts.root);
  }

  /**
   * Every map's size, explicitly: the defaults from the ABI with the
   * configured overrides on top, so a restart without --map-size returns a
   * map to its default size, and other loaders of this root never resize.
   */
  get mapSizes(): Record<string, number> {
    return { ...Object.fromEntries(Object.values(mapLayouts).map((m) => [m.name, m.maxEntries])), ...this.opts.mapSizes };
  }

  /** Objects loaded by this process: their sources do not change under a running agent. */
  private readonly loaded = new Map<string, LoadedObject>();
  private pruned = false;

  /** progType null: from the section names (cgroup programs). */
  private async load(name: string, progType: 'classifier' | null = 'classifier'): Promise<LoadedObject> {
    let o = this.loaded.get(name);
    if (!o) {
      o = await loadObject(name, {
        root: this.opts.root,
        ...(progType ? { progType } : {}),
        mapSizes: this.mapSizes,
        ...(this.opts.onMigrate ? { onMigrate: this.opts.onMigrate } : {}),
      });
      this.loaded.set(name, o);
    }
    return o;
  }

  /**
   * Load the objects (creating or migrating the maps) before anything else
   * under this root loads: a map migration drops every pinned program
   * version, which must not happen under another loader's feet.
   */
  async prepare(): Promise<void> {
    await this.load(PROGRAMS.uplink.object);
    await this.load(PROGRAMS.endpoint.object);
  }

  async apply(state: DesiredState): Promise<ApplyReport> {
    // Validate and encode everything before touching the kernel: bad input changes nothing.
    const desiredPorts = portEntries(state.ports);
    for (const a of state.nodeAddresses) if (!isIPv4(a)) throw invalidArgument(`node address must be IPv4, got "${a}"`);
    const desiredAddrs: [AddrKey, AddrValue][] = state.nodeAddresses.map((a) => [{ addr: a }, { flags: 0 }]);
    const desiredNets = netEntries(state.networks ?? []);
    const eps = endpointEntries(state.endpoints);
    const desiredUplinks = uplinkEntries(state);
    const config: [number, ConfigValue][] = [[0, this.configValue()]];

    const uplink = await this.load(PROGRAMS.uplink.object);
    const endpoint = await this.load(PROGRAMS.endpoint.object);

    // Maps first, so a program never runs against a half-programmed table;
    // every map is encoded and checked before any is written.
    const m = this.mirror();
    const sync = {
      config: await m.prepare('bpfnet_config', config),
      ports: await m.prepare('bpfnet_ports', desiredPorts),
      addrs: await m.prepare('bpfnet_addrs', desiredAddrs),
      nets: await m.prepare('bpfnet_nets', desiredNets),
      uplinks: await m.prepare('bpfnet_uplinks', desiredUplinks),
      endpoints: await m.prepare('bpfnet_endpoints', eps.byAddr),
      ifaces: await m.prepare('bpfnet_ifaces', eps.byIf),
    };
    for (const p of Object.values(sync)) await m.commit(p);
    // Counters of unpublished ports go with them.
    await m.deleteKeys('bpfnet_port_stats', sync.ports.remove);
    const { ports: pd, addrs: ad, nets: nd, endpoints: ed } = Object.fromEntries(Object.entries(sync).map(([k, p]) => [k, p.counts])) as Record<keyof typeof sync, SyncCounts>;
    const report: ApplyReport = {
      attached: [],
      ports: { added: pd.added, updated: pd.updated, removed: pd.removed },
      addresses: { added: ad.added, removed: ad.removed },
      networks: { added: nd.added, removed: nd.removed },
      endpoints: { added: ed.added, removed: ed.removed },
    };

    const target = (dev: string, ifindex: number | undefined, obj: LoadedObject, prog: string, direction: 'ingress' | 'egress') => ({ dev, ifindex, pin: obj.progs[prog], prog, direction });
    const targets = [
      ...state.uplinks.flatMap((dev) => [
        target(dev, state.uplinkIndex?.[dev], uplink, PROGRAMS.uplink.prog, 'ingress'),
        target(dev, state.uplinkIndex?.[dev], uplink, PROGRAMS.uplinkEgress.prog, 'egress'),
      ]),
      ...state.endpoints.map((e) => target(e.hostDev, e.ifindex, endpoint, PROGRAMS.endpoint.prog, 'ingress')),
    ];
    const keep = new Set<string>();
    for (const t of targets) {
      if (!t.pin) throw invalidArgument(`compiled objects lack program ${t.prog}`);
      const key = `${t.dev}@${t.ifindex ?? '?'}/${t.direction}`;
      keep.add(key);
      if (t.ifindex !== undefined && this.attached.get(key) === t.pin) continue;
      const a = await attachTc({ netns: this.opts.netns, dev: t.dev, direction: t.direction, pin: t.pin });
      this.attached.set(key, t.pin);
      report.attached.push({ dev: t.dev, hook: `tc/${t.direction}`, prog: a.progName, progId: a.progId });
    }
    for (const k of [...this.attached.keys()]) if (!keep.has(k)) this.attached.delete(k);
    await this.attachSocketHooks(report);
    await this.syncXdp(state, report);
    await this.syncDockerUser(state, report);
    // Older versions are no longer attached anywhere we manage: unpin them
    // (once per process: versions only change when the agent is upgraded).
    if (!this.pruned) {
      for (const o of this.loaded.values()) await pruneVersions(this.opts.root, o.name, o.hash);
      this.pruned = true;
    }
    return report;
  }

  /** One map patch: no state rebuilt, no program touched (frontends are looked up per packet). */
  async applyPorts(change: PortChange): Promise<ApplyReport> {
    if (!this.mirrorState) throw noAppliedState(this.mode);
    const add = portEntries(change.add);
    for (const p of change.remove) validatePort({ ...p, containerIp: '0.0.0.1', containerPort: 1 });
    const m = this.mirror();
    const r = await m.patch('bpfnet_ports', add, change.remove.map(portKey));
    await m.deleteKeys('bpfnet_port_stats', r.removedKeys);
    return { attached: [], ports: { added: r.added, updated: r.updated, removed: r.removed }, addresses: { added: 0, removed: 0 } };
  }

  /**
   * Node-local access (localhost and node IPs) without a proxy: the cgroup
   * connect/sendmsg/recvmsg/getpeername hooks, on the cgroup2 root through
   * links pinned under our root, so a restart updates them in place and
   * removing the root detaches them. They act only in the node's netns
   * (bpfnet_config's cookie). Once per process: attachCgroup is idempotent.
   */
  private socketHooks: 'attached' | 'unavailable' | undefined;
  private async attachSocketHooks(report: ApplyReport): Promise<void> {
    if (this.opts.nodeLocal === false || this.socketHooks === 'attached') return;
    try {
      const sock = await this.load(PROGRAMS.sock.object, null);
      const links = await attachCgroup({ root: this.opts.root, progs: sockCgroupProgs(sock.progs), ...(this.opts.cgroupPath ? { cgroupPath: this.opts.cgroupPath } : {}) });
      for (const l of links) if (l.action !== 'unchanged') report.attached.push({ dev: `cgroup:${l.cgroupId}`, hook: `cgroup/${String(l.attachType)}`, prog: l.name, progId: l.progId });
      this.socketHooks = 'attached';
    } catch (e) {
      if (!(e instanceof Cgroup2MissingError)) throw e;
      if (this.socketHooks === undefined) (report.warnings ??= []).push(`node-local access to published ports is off: ${e.message}`);
      this.socketHooks = 'unavailable';
    }
  }

  /**
   * Containers' outbound packets cross the stack's FORWARD hook, where a
   * dockerd's policy DROP would drop them: accepts in DOCKER-USER (see
   * iptables/dockeruser.ts). Only when the networks change, so a sandbox
   * create spawns no iptables.
   */
  private dockerUser: string | undefined;
  private async syncDockerUser(state: DesiredState, report: ApplyReport): Promise<void> {
    const want = dockerUserRules(state.networks ?? []);
    if (want.join('\n') === this.dockerUser) return;
    try {
      await syncDockerUser(this.opts.netns, want);
      this.dockerUser = want.join('\n');
    } catch (e) {
      (report.warnings ??= []).push(`could not add bpfnet's accepts to Docker's DOCKER-USER chain: ${(e as Error).message}`);
    }
  }

  /** Uplinks carrying our XDP program (by "dev@ifindex"), so each is attached once. */
  private readonly xdpOn = new Set<string>();
  private async syncXdp(state: DesiredState, report: ApplyReport): Promise<void> {
    for (const dev of state.uplinks) {
      const key = `${dev}@${state.uplinkIndex?.[dev] ?? '?'}`;
      if (this.opts.xdp) {
        if (this.xdpOn.has(key)) continue;
        const a = await attachUplinkXdp({ root: this.opts.root, netns: this.opts.netns, dev, mode: this.opts.xdp, mapSizes: this.mapSizes });
        this.xdpOn.add(key);
        report.attached.push({ dev, hook: `xdp/${a.mode}`, prog: XDP_PROGRAM.prog, progId: a.progId });
      } else if (!this.xdpChecked.has(key)) {
        // Started without --xdp after a run with it: take ours off.
        this.xdpChecked.add(key);
        await this.detachOurXdp(dev);
      }
    }
  }
  private readonly xdpChecked = new Set<string>();

  /** Detach the uplink's XDP program if it is ours (known by our program's name, cut to 15 bytes). */
  private async detachOurXdp(dev: string): Promise<void> {
    const cur = await uplinkXdp({ netns: this.opts.netns, dev }).catch(() => undefined);
    if (!cur) return;
    let ours = false;
    try {
      ours = bpfProgInfoById(cur.progId).name === XDP_PROGRAM.prog.slice(0, 15);
    } catch {
      return; // gone meanwhile
    }
    if (ours) await detachUplinkXdp({ netns: this.opts.netns, dev });
  }

  private mirrorState: MapMirror | undefined;
  private mirror(): MapMirror {
    this.mirrorState ??= new MapMirror(this.mapDir);
    return this.mirrorState;
  }

  private cookie: bigint | undefined;
  /** The node's netns cookie (cgroup hooks act only there) and the masquerade port range. */
  private configValue(): ConfigValue {
    this.cookie ??= netnsCookie(this.opts.netns);
    const [min, max] = this.opts.snatPorts ?? DEFAULT_SNAT_PORTS;
    return { netns_cookie: this.cookie, snat_port_min: min, snat_port_max: max, flags: 0 };
  }

  portCounters(): Promise<PortCounters[]> {
    return readPortCounters(this.mapDir);
  }

  counters(): Promise<Record<string, { packets: bigint; bytes: bigint }>> {
    return readCounters(this.mapDir);
  }

  async teardown(state: DesiredState): Promise<void> {
    const detach = (dev: string, direction: 'ingress' | 'egress') => detachTc({ netns: this.opts.netns, dev, direction }).catch(() => undefined);
    for (const e of state.endpoints) await detach(e.hostDev, 'ingress');
    for (const dev of state.uplinks) {
      await detach(dev, 'ingress');
      await detach(dev, 'egress');
      await this.detachOurXdp(dev).catch(() => undefined);
    }
    this.xdpOn.clear();
    await detachCgroup(this.opts.root).catch(() => undefined);
    this.socketHooks = undefined;
    this.attached.clear();
    this.loaded.clear();
    this.mirrorState = undefined;
    // Only when this mode was here (its root exists): nftables mode keeps the same accepts across its restarts.
    if (this.dockerUser !== undefined || existsSync(this.opts.root)) await removeDockerUser(this.opts.netns).catch(() => undefined);
    this.dockerUser = undefined;
    await removeRoot(this.opts.root);
  }
}

/** NET_F_* in bpf/lib/maps.h. */
export const NET_F_INTERNAL = 0x1;
export const NET_F_NO_ICC = 0x2;
export const NET_F_NO_MASQ = 0x4;
export const NET_F_DIRECT = 0x8;

export function netEntries(networks: DataplaneNetwork[]): [NetKey, NetValue][] {
  return networks.map((n) => {
    const c = parseCidr(n.subnet, 'network subnet');
    const [addr, prefixlen] = [formatIpv4(c.network), c.prefix];
    if (!Number.isInteger(n.id) || n.id <= 0 || n.id > 0xffffffff) throw invalidArgument(`network id must be a non-zero u32, got ${n.id}`);
    for (const [what, a] of [['gateway', n.gateway], ['SNAT address', n.snatIp]] as const) {
      if (a !== undefined && a !== '' && !isIPv4(a)) throw invalidArgument(`network ${n.subnet} ${what} must be IPv4, got "${a}"`);
    }
    const mode = n.gatewayMode;
    const flags =
      (n.internal || mode === 'isolated' ? NET_F_INTERNAL : 0) |
      (n.icc ? 0 : NET_F_NO_ICC) |
      (!n.masquerade || mode === 'routed' ? NET_F_NO_MASQ : 0) |
      (mode === 'routed' || mode === 'nat-unprotected' ? NET_F_DIRECT : 0);
    // isolated: no gateway at all, so the node is not reachable from the network either.
    const gateway = mode === 'isolated' || !n.gateway ? '0.0.0.0' : n.gateway;
    return [{ prefixlen, addr }, { net_id: n.id, flags, gateway, snat_addr: n.snatIp || '0.0.0.0' }];
  });
}

/** bpfnet_endpoints (by address) and bpfnet_ifaces (by host ifindex) from the endpoints that are fully known. */
export function endpointEntries(endpoints: DataplaneEndpoint[]): { byAddr: [EndpointKey, EndpointInfo][]; byIf: [IfaceKey, EndpointInfo][] } {
  const byAddr: [EndpointKey, EndpointInfo][] = [];
  const byIf: [IfaceKey, EndpointInfo][] = [];
  const seen = new Map<string, string>();
  for (const e of endpoints) {
    // Half-known endpoints (being created, or from a caller that only attaches) get no entries: no redirect, no spoofing check yet.
    if (e.ip === undefined || e.mac === undefined || e.ifindex === undefined) continue;
    if (!isIPv4(e.ip)) throw invalidArgument(`endpoint ${e.hostDev}: address must be IPv4, got "${e.ip}"`);
    const prev = seen.get(e.ip);
    if (prev !== undefined) throw invalidArgument(`endpoints ${prev} and ${e.hostDev} both have address ${e.ip}`);
    seen.set(e.ip, e.hostDev);
    const info: EndpointInfo = { addr: e.ip, ifindex: e.ifindex, mac: e.mac, net_id: e.networkId ?? 0, flags: 0 };
    byAddr.push([{ addr: e.ip }, info]);
    byIf.push([{ ifindex: e.ifindex }, info]);
  }
  return { byAddr, byIf };
}

/** bpfnet_uplinks: each uplink's masquerade source address, by ifindex. */
export function uplinkEntries(state: DesiredState): [UplinkKey, UplinkValue][] {
  const out: [UplinkKey, UplinkValue][] = [];
  for (const dev of state.uplinks) {
    const ifindex = state.uplinkIndex?.[dev];
    const addr = state.uplinkAddress?.[dev];
    if (ifindex === undefined || addr === undefined) continue;
    if (!isIPv4(addr)) throw invalidArgument(`uplink ${dev}: address must be IPv4, got "${addr}"`);
    out.push([{ ifindex }, { snat_addr: addr, flags: 0 }]);
  }
  return out;
}
