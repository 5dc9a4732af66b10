/**
 * Kernel plumbing of the model over rtnetlink: bridges (or the routed
 * driver's gateway device), sandbox namespaces, and endpoints (veth pairs,
 * addresses, routes). Every link bpfnet creates carries an alias marker
 * ("bpfnet:net:<id12>", "bpfnet:ep:<id12>") and every route its protocol
 * number, so reconcile removes only what is bpfnet's.
 * All operations are idempotent: reconcile calls them to repair.
 */
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { run } from '../util/exec.js';
import { join } from 'node:path';
import { Rtnl, createNetns, deleteNetns, sysctl, RT_TABLE_LOCAL, type Link, type RouteSpec } from '../netlink/index.js';
import { BpfnetError } from '../util/errors.js';
import { crashPoint } from '../util/crash.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../model/types.js';

/** rtm_protocol of every route bpfnet installs (0xb9: "b9f", our tc handle). */
export const RTPROT_BPFNET = 0xb9;
export const ALIAS_PREFIX = 'bpfnet:';

export const netAlias = (n: Pick<NetworkRecord, 'id'>): string => `${ALIAS_PREFIX}net:${n.id.slice(0, 12)}`;
export const epAlias = (e: Pick<EndpointRecord, 'id'>): string => `${ALIAS_PREFIX}ep:${e.id.slice(0, 12)}`;

/** The device a network's gateway address lives on (bridge driver only). */
export function gatewayDevice(n: NetworkRecord): string | undefined {
  return n.driver === 'bridge' ? n.bridgeName : undefined;
}

/**
 * The routed driver's gateway: a local route (type local, table local,
 * bpfnet's protocol) makes the address the node's own without a device, so
 * containers' ARP for it is answered on their host veth (proxy_arp is on
 * there too) and pings to it get replies. (No dummy device: not every kernel
 * has the module; this one does not.)
 */
function routedGatewayRoute(n: NetworkRecord): RouteSpec | undefined {
  if (n.driver !== 'routed' || !n.ipam) return undefined;
  return { dst: `${n.ipam.gateway}/32`, type: 'local', dev: 'lo', table: RT_TABLE_LOCAL, protocol: RTPROT_BPFNET };
}

function prefixOf(subnet: string): number {
  return Number(subnet.split('/')[1]);
}

export interface EndpointLinkInfo {
  hostIndex: number;
  peerIndex: number;
  present: boolean;
}

export class Plumbing {
  /** rtnetlink socket in the agent's (the node's) namespace. */
  private readonly rt: Rtnl;

  /** ifindex of host-side devices this process made or saw (saves a link dump per change). */
  private readonly ifindex = new Map<string, number>();

  /** A device's ifindex: cached, else one RTM_GETLINK. */
  indexOf(name: string): number | undefined {
    let i = this.ifindex.get(name);
    if (i === undefined) {
      i = this.rt.link(name)?.index;
      if (i !== undefined) this.ifindex.set(name, i);
    }
    return i;
  }

  /** The agent's own namespace, bind-mounted so `run --network host` can enter it. */
  readonly hostNetnsPath: string;

  constructor(readonly netnsDir: string) {
    this.rt = Rtnl.open();
    mkdirSync(netnsDir, { recursive: true, mode: 0o755 });
    this.hostNetnsPath = join(netnsDir, '..', 'hostns');
  }

  /** (Re)binds hostNetnsPath to the namespace the agent runs in now. */
  async bindHostNetns(): Promise<void> {
    const p = this.hostNetnsPath;
    await run('umount', [p]).catch(() => undefined);
    writeFileSync(p, '');
    await run('mount', ['--bind', '/proc/self/ns/net', p]);
  }

  close(): void {
    this.rt.close();
  }

  linkExists(name: string): boolean {
    return this.rt.link(name) !== undefined;
  }

  /** Refuse to adopt a device that exists and is not ours. */
  private ownedOrAbsent(name: string, alias: string): Link | undefined {
    const l = this.rt.link(name);
    if (l && l.alias !== alias) {
      throw new BpfnetError('E_CONFLICT', `device ${name} already exists and is not this network's (alias "${l.alias ?? ''}"); choose another name with -o com.docker.network.bridge.name=NAME`, { dev: name });
    }
    return l;
  }

  /** Checks, before anything is created, that a network's device name is free. */
  checkNetworkDevice(n: NetworkRecord): void {
    const dev = gatewayDevice(n);
    if (dev) this.ownedOrAbsent(dev, netAlias(n));
  }

  /**
   * bridge: a Linux bridge holding the gateway address (Docker's docker0).
   * routed: a dummy device holding gateway/32; containers' ARP for it is
   * answered through proxy ARP on their host veth, and every container gets a
   * /32 route (Calico's L3 model, seed 000).
   */
  ensureNetwork(n: NetworkRecord): void {
    const gwRoute = routedGatewayRoute(n);
    if (gwRoute) {
      this.rt.addRoute({ ...gwRoute, replace: true });
      return;
    }
    const dev = gatewayDevice(n);
    if (!dev || !n.ipam) return;
    const alias = netAlias(n);
    if (!this.ownedOrAbsent(dev, alias)) this.rt.createBridge(dev, { mtu: n.mtu, alias, up: true });
    else this.rt.setLink(dev, { up: true, mtu: n.mtu });
    this.rt.addAddr(dev, `${n.ipam.gateway}/${prefixOf(n.ipam.subnet)}`, { replace: true });
  }

  removeNetwork(n: NetworkRecord): void {
    const gwRoute = routedGatewayRoute(n);
    if (gwRoute) this.rt.delRoute(gwRoute);
    const dev = gatewayDevice(n);
    if (!dev) return;
    const l = this.rt.link(dev);
    if (l && l.alias === netAlias(n)) this.rt.deleteLink(dev, { ifExists: true });
  }

  /** bpfnet's routes (by protocol) in the node's tables that nothing wants. */
  strayRoutes(nets: NetworkRecord[], eps: EndpointRecord[]): RouteSpec[] {
    const wanted = new Set<string>([
      ...nets.flatMap((n) => (n.driver === 'routed' && n.ipam ? [`${RT_TABLE_LOCAL} ${n.ipam.gateway}/32`] : [])),
      ...eps.map((e) => `254 ${e.ipv4}/32`),
    ]);
    return this.rt
      .routes({ table: 'all', protocol: RTPROT_BPFNET })
      .filter((r) => !wanted.has(`${r.table} ${r.dst}`))
      .map((r) => ({ dst: r.dst, table: r.table, protocol: RTPROT_BPFNET, ...(r.type === 'local' ? { type: 'local' as const } : {}), ...(r.oif ? { dev: r.oif } : {}) }));
  }

  deleteRoute(r: RouteSpec): void {
    this.rt.delRoute(r);
  }

  // ---- sandboxes ------------------------------------------------------------

  netnsPath(sandboxId: string): string {
    return join(this.netnsDir, sandboxId.slice(0, 12));
  }

  /** A namespace file is real when it is a mounted nsfs (a bare file is a crash leftover). */
  static netnsAlive(path: string): boolean {
    try {
      return statSync(path).dev !== statSync(join(path, '..')).dev;
    } catch {
      return false;
    }
  }

  ensureSandboxNetns(sb: SandboxRecord): void {
    if (!sb.netnsPath || sb.mode.kind === 'container' || sb.mode.kind === 'host') return;
    if (sb.externalNetns) {
      // The engine's namespace: never made here (it made it, with its own lo).
      if (!Plumbing.netnsAlive(sb.netnsPath)) throw new BpfnetError('E_NOT_FOUND', `the engine's network namespace ${sb.netnsPath} is gone`, { netnsPath: sb.netnsPath });
      return;
    }
    if (!Plumbing.netnsAlive(sb.netnsPath)) {
      if (existsSync(sb.netnsPath)) deleteNetns(sb.netnsPath);
      createNetns(sb.netnsPath);
    }
    const rt = Rtnl.open(sb.netnsPath);
    try {
      rt.setLink('lo', { up: true });
    } finally {
      rt.close();
    }
  }

  removeSandboxNetns(sb: Pick<SandboxRecord, 'netnsPath' | 'mode' | 'externalNetns'>): void {
    if (sb.mode.kind === 'container' || sb.mode.kind === 'host' || !sb.netnsPath || sb.externalNetns) return;
    deleteNetns(sb.netnsPath);
  }

  /** Namespace files under our dir that no sandbox wants. */
  strayNetns(wanted: Set<string>): string[] {
    let names: string[] = [];
    try {
      names = readdirSync(this.netnsDir);
    } catch {
      return [];
    }
    return names.map((n) => join(this.netnsDir, n)).filter((p) => !wanted.has(p));
  }

  deleteNetnsPath(path: string): void {
    deleteNetns(path);
  }

  // ---- endpoints ------------------------------------------------------------

  /**
   * The veth pair in one request (peer created directly in the sandbox as
   * ethN), then the container side: address, on-link gateway, up. The default
   * route is set separately (one per sandbox, see setDefaultRoute).
   */
  ensureEndpoint(n: NetworkRecord, sb: SandboxRecord, ep: EndpointRecord): EndpointLinkInfo {
    const alias = epAlias(ep);
    const existing = this.rt.link(ep.hostIfName);
    if (existing && existing.alias !== alias) {
      throw new BpfnetError('E_CONFLICT', `device ${ep.hostIfName} exists and is not endpoint ${ep.id.slice(0, 12)}'s`, { dev: ep.hostIfName });
    }
    if (ep.peerName) return this.ensureHandOffEndpoint(n, ep, existing);
    const rt = Rtnl.open(sb.netnsPath);
    try {
      let hostIndex: number;
      let peerIndex: number;
      const peer = existing ? rt.link(ep.ifName) : undefined;
      if (existing && peer && existing.peerIndex === peer.index) {
        hostIndex = existing.index;
        peerIndex = peer.index;
      } else {
        // Half-made (a crash mid-create) or missing: start this endpoint over.
        if (existing) this.rt.deleteLink(ep.hostIfName, { ifExists: true });
        if (rt.link(ep.ifName)) {
          // In an engine's namespace a device of that name without our host end is not ours (a veth goes in pairs).
          if (sb.externalNetns) throw new BpfnetError('E_CONFLICT', `device ${ep.ifName} already exists in ${sb.netnsPath}; choose another if_name`, { dev: ep.ifName, netnsPath: sb.netnsPath });
          rt.deleteLink(ep.ifName, { ifExists: true });
        }
        const r = this.rt.createVeth({
          name: ep.hostIfName,
          peerName: ep.ifName,
          peerNetnsPath: sb.netnsPath,
          mtu: n.mtu,
          peerMac: ep.mac,
          ...(n.driver === 'bridge' && n.bridgeName ? { master: n.bridgeName } : {}),
          alias,
          up: true,
        });
        hostIndex = r.index;
        peerIndex = r.peerIndex;
        crashPoint('endpoint-veth');
      }
      rt.addAddr(ep.ifName, `${ep.ipv4}/${ep.prefixLen}`, { replace: true });
      rt.setLink(ep.ifName, { up: true });
      if (n.driver === 'routed' && n.ipam) {
        // Container: gateway on-link; node: /32 back to the container, ARP by proxy.
        rt.addRoute({ dst: `${n.ipam.gateway}/32`, dev: ep.ifName, scope: 'link', protocol: RTPROT_BPFNET, replace: true });
        this.rt.addRoute({ dst: `${ep.ipv4}/32`, dev: ep.hostIfName, scope: 'link', protocol: RTPROT_BPFNET, replace: true });
        sysctl(undefined, `net.ipv4.conf.${ep.hostIfName}.proxy_arp`, '1');
        sysctl(undefined, `net.ipv4.conf.${ep.hostIfName}.forwarding`, '1');
      }
      this.ifindex.set(ep.hostIfName, hostIndex);
      return { hostIndex, peerIndex, present: true };
    } finally {
      rt.close();
    }
  }

  /**
   * Docker's remote driver: both ends in the node namespace, the container end
   * (peerName) unconfigured and down, for Docker to move, rename and address
   * after Join. Once the pair exists it is left alone: the peer may be in the
   * container already.
   */
  private ensureHandOffEndpoint(n: NetworkRecord, ep: EndpointRecord, existing: Link | undefined): EndpointLinkInfo {
    let hostIndex = existing?.index;
    let peerIndex = existing?.peerIndex ?? 0;
    if (!existing) {
      if (this.rt.link(ep.peerName!)) this.rt.deleteLink(ep.peerName!, { ifExists: true });
      const r = this.rt.createVeth({
        name: ep.hostIfName,
        peerName: ep.peerName!,
        mtu: n.mtu,
        peerMac: ep.mac,
        ...(n.driver === 'bridge' && n.bridgeName ? { master: n.bridgeName } : {}),
        alias: epAlias(ep),
        up: true,
      });
      hostIndex = r.index;
      peerIndex = r.peerIndex;
    }
    if (n.driver === 'routed' && n.ipam) {
      this.rt.addRoute({ dst: `${ep.ipv4}/32`, dev: ep.hostIfName, scope: 'link', protocol: RTPROT_BPFNET, replace: true });
      sysctl(undefined, `net.ipv4.conf.${ep.hostIfName}.proxy_arp`, '1');
      sysctl(undefined, `net.ipv4.conf.${ep.hostIfName}.forwarding`, '1');
    }
    this.ifindex.set(ep.hostIfName, hostIndex!);
    return { hostIndex: hostIndex!, peerIndex, present: true };
  }

  /** Removing the host side removes the pair (and the node's /32 route with it). */
  removeEndpoint(ep: Pick<EndpointRecord, 'id' | 'hostIfName'>): void {
    this.ifindex.delete(ep.hostIfName);
    const l = this.rt.link(ep.hostIfName);
    if (l && l.alias === epAlias(ep)) this.rt.deleteLink(ep.hostIfName, { ifExists: true });
  }

  endpointLink(sb: SandboxRecord, ep: EndpointRecord): EndpointLinkInfo {
    const host = this.rt.link(ep.hostIfName);
    // Handed off: the engine named the container end; the pair is whole while the host end has a peer.
    if (ep.peerName) return { hostIndex: host?.index ?? 0, peerIndex: host?.peerIndex ?? 0, present: !!host && !!host.peerIndex };
    let peerIndex = 0;
    if (sb.netnsPath && Plumbing.netnsAlive(sb.netnsPath)) {
      const rt = Rtnl.open(sb.netnsPath);
      try {
        peerIndex = rt.link(ep.ifName)?.index ?? 0;
      } finally {
        rt.close();
      }
    }
    return { hostIndex: host?.index ?? 0, peerIndex, present: !!host && peerIndex !== 0 && host.peerIndex === peerIndex };
  }

  /** One default route per sandbox, via the chosen endpoint's gateway (or none). */
  setDefaultRoute(sb: SandboxRecord, via: { gateway: string; ifName: string } | undefined): void {
    const rt = Rtnl.open(sb.netnsPath);
    try {
      if (sb.externalNetns) {
        // An engine's namespace may hold other attachments (podman --network a,b; a second
        // CNI_IFNAME): never take over or delete their default route. Ours goes with our veth.
        const other = rt.routes({}).some((r) => r.dst === 'default' && (!via || r.dev !== via.ifName));
        if (via && !other) rt.addRoute({ dst: 'default', gateway: via.gateway, dev: via.ifName, protocol: RTPROT_BPFNET, replace: true });
        return;
      }
      if (via) rt.addRoute({ dst: 'default', gateway: via.gateway, dev: via.ifName, protocol: RTPROT_BPFNET, replace: true });
      else {
        for (const r of rt.routes({})) if (r.dst === 'default') rt.delRoute({ dst: 'default' });
      }
    } finally {
      rt.close();
    }
  }

  /** bpfnet-marked links that no network or endpoint wants. */
  strayLinks(wantedAliases: Set<string>): Link[] {
    return this.rt.links().filter((l) => l.alias?.startsWith(ALIAS_PREFIX) && !wantedAliases.has(l.alias));
  }

  deleteLink(name: string): void {
    this.ifindex.delete(name);
    this.rt.deleteLink(name, { ifExists: true });
  }
}
