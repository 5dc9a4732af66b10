/**
 * The agent's model operations: networks, sandboxes, endpoints. Each change
 * is: validate everything (bad input changes nothing) → record the desired
 * state in one store transaction → plumb the kernel → program the dataplane.
 * A failure after the record undoes the plumbing and the record; a crash
 * (kill -9) after it leaves a record that reconcile() completes at start.
 */
import type { Addr } from '../netlink/objects.js';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { BpfnetError, invalidArgument } from '../util/errors.js';
import type { Store } from '../state/store.js';
import { needsFullApply, type Dataplane, type DesiredState } from '../dataplane/types.js';
import type { EndpointRecord, NetworkRecord, PortMapping, SandboxRecord, DriverName } from '../model/types.js';
import { resolveIpam, allocateAddress, choosePool } from '../model/ipam.js';
import { parsePortSpecs, allocatePorts, publishAll, takenBy, DEFAULT_EPHEMERAL, parseUnpublishSpec, type IsTaken } from '../model/portspec.js';
import { describeSocket, portConflicts, readBoundSocketsHere, NodeSocketCheck } from './listening.js';
import { newId, resolveRef, macFromIpv4, hostVethName, bridgeDeviceName, handOffPeerName } from '../model/ids.js';
import { validateName, validateDeviceName, validateHostname, parseBridgeOptions, validateDnsServer } from '../model/names.js';
import { desiredDataplaneState, sandboxPorts, type ModelDesiredState } from '../model/desired.js';
import { parseMac } from '../netlink/ipv4.js';
import type { AgentConfig } from './config.js';
import { Plumbing, epAlias, netAlias } from './plumbing.js';
import { writeSandboxFiles, removeSandboxFiles } from './files.js';
import type { Messages } from '../api/generated/types.js';
import { crashPoint } from '../util/crash.js';
import type { DnsRegistry, DnsServer } from '../dns/index.js';
import { upstreamNameservers } from '../model/sandboxfiles.js';

type Req<N extends keyof Messages> = Messages[N];

const now = (): string => new Date().toISOString();

/** The predefined networks, like Docker's bridge, host and none. */
const PREDEFINED = ['bridge', 'host', 'none'] as const;

export interface ChangeWarnings {
  warn(msg: string): void;
}

/** An address on a node device, as rtnetlink reports it. */
export type NodeAddr = Pick<Addr, 'address' | 'index' | 'scope'>;

export class ModelService {
  constructor(
    readonly cfg: AgentConfig,
    readonly store: Store,
    readonly plumbing: Plumbing,
    readonly dataplane: Dataplane,
    readonly log: Logger,
    readonly node: { uplinks: string[]; addrs: () => NodeAddr[]; routes: () => string[]; ephemeral: () => [number, number] },
    readonly dns?: { registry: DnsRegistry; server: DnsServer },
  ) {}

  // ---- embedded DNS ------------------------------------------------------------

  /** User-defined networks get names (Docker's default bridge has none). */
  private dnsNetworks(eps: EndpointRecord[]): { ep: EndpointRecord; net: NetworkRecord }[] {
    return eps
      .map((ep) => ({ ep, net: this.store.network(ep.networkId) }))
      .filter((x): x is { ep: EndpointRecord; net: NetworkRecord } => !!x.net && !x.net.predefined && (x.net.driver === 'bridge' || x.net.driver === 'routed'));
  }

  /**
   * Names in the registry and the resolver at 127.0.0.11 inside the sandbox,
   * as its endpoints now are; removed when it has no user-defined network.
   */
  async syncDns(sb: SandboxRecord, eps: EndpointRecord[] = this.store.endpoints({ sandboxId: sb.id })): Promise<void> {
    // An engine's sandbox (CNI, Docker) gets its DNS from the engine.
    if (!this.dns || sb.mode.kind !== 'bridge' || sb.externalNetns) return;
    const nets = this.dnsNetworks(eps);
    if (!nets.length) {
      await this.dropDns(sb.id);
      return;
    }
    this.dns.registry.setSandbox({
      sandboxId: sb.id,
      name: sb.name,
      hostname: sb.hostname,
      networks: nets.map(({ ep, net }) => ({ networkId: net.id, networkName: net.name, ip: ep.ipv4, aliases: ep.aliases })),
    });
    const internal = nets.every(({ net }) => net.internal);
    const upstreams = sb.dns.length ? upstreamNameservers('', sb.dns).map((u) => ({ addr: u.addr })) : undefined;
    await this.dns.server.attach(sb.id, sb.netnsPath, { internal, ...(upstreams ? { upstreams } : {}) });
  }

  /** Before the namespace goes: open sockets would keep it (and its veth) alive. */
  private async dropDns(sandboxId: string): Promise<void> {
    if (!this.dns) return;
    this.dns.registry.removeSandbox(sandboxId);
    await this.dns.server.detach(sandboxId);
  }

  // ---- lookups ---------------------------------------------------------------

  network(ref: string): NetworkRecord {
    return resolveRef(ref, this.store.networks(), 'network');
  }

  sandbox(ref: string): SandboxRecord {
    return resolveRef(ref, this.store.sandboxes(), 'sandbox');
  }

  // ---- dataplane -------------------------------------------------------------

  /** The node's IPv4 addresses, loopback excluded (gateways included: Docker's `--dst-type LOCAL`). */
  nodeAddresses(addrs: NodeAddr[] = this.node.addrs()): string[] {
    return addrs.map((a) => a.address).filter((a) => !a.startsWith('127.') && !a.includes(':'));
  }

  /** Published ports as the dataplane gets them, and those left out with why: the store alone, no kernel I/O. */
  desiredPorts(): Pick<ModelDesiredState, 'ports' | 'skipped'> {
    return desiredDataplaneState(this.store.networks(), this.store.sandboxes(), this.store.endpoints(), { uplinks: [], nodeAddresses: [] });
  }

  desired(): DesiredState {
    const addrs = this.node.addrs(); // one dump for both the node's and the uplinks' addresses
    const d = desiredDataplaneState(this.store.networks(), this.store.sandboxes(), this.store.endpoints(), {
      uplinks: this.node.uplinks,
      nodeAddresses: this.nodeAddresses(addrs),
    });
    // ifindexes let the dataplane skip devices it already attached to. An
    // engine's endpoint whose device is gone (its container died before the
    // engine told us) is left out until the engine removes it.
    const external = new Set(this.store.endpoints().filter((e) => this.store.sandbox(e.sandboxId)?.externalNetns).map((e) => e.hostIfName));
    d.endpoints = d.endpoints.flatMap((e) => {
      const i = this.plumbing.indexOf(e.hostDev);
      if (i === undefined) return external.has(e.hostDev) ? [] : [e];
      return [{ ...e, ifindex: i }];
    });
    d.uplinkIndex = Object.fromEntries(d.uplinks.flatMap((u) => {
      const i = this.plumbing.indexOf(u);
      return i === undefined ? [] : [[u, i]];
    }));
    // The masquerade source per uplink: its first (primary) global IPv4 address.
    d.uplinkAddress = Object.fromEntries(Object.entries(d.uplinkIndex).flatMap(([u, i]) => {
      const a = addrs.find((x) => x.index === i && x.scope === 'universe' && !x.address.includes(':'));
      return a ? [[u, a.address]] : [];
    }));
    return d;
  }

  async program(): Promise<void> {
    const r = await this.dataplane.apply(this.desired());
    for (const warning of r.warnings ?? []) this.log.warn(warning);
    this.log.debug({ report: r.ports, networks: r.networks, endpoints: r.endpoints }, 'dataplane programmed');
  }

  // ---- predefined networks ---------------------------------------------------

  /** bridge (own device, first free pool), host and none, on first start. */
  ensurePredefined(): void {
    const have = new Set(this.store.networks().map((n) => n.name));
    for (const name of PREDEFINED) {
      if (have.has(name)) continue;
      const base = {
        id: newId(),
        name,
        created: now(),
        internal: false,
        attachable: false,
        labels: {},
        options: {},
        mtu: 1500,
        icc: true,
        masquerade: true,
        hostBindingIpv4: '0.0.0.0',
        predefined: true,
      };
      let rec: NetworkRecord;
      if (name === 'bridge') {
        const subnet =
          this.cfg.defaultSubnet ??
          choosePool({ usedSubnets: this.store.networks().flatMap((n) => (n.ipam ? [n.ipam.subnet] : [])), hostRoutes: this.node.routes() });
        // A pool-chosen subnet is not "user configured": Docker refuses --ip there.
        const ipam = { ...resolveIpam({ subnet }, { usedSubnets: [], hostRoutes: [] }), userConfigured: !!this.cfg.defaultSubnet };
        rec = {
          ...base,
          driver: 'bridge',
          ipam,
          bridgeName: this.cfg.defaultBridge,
          options: {
            'com.docker.network.bridge.default_bridge': 'true',
            'com.docker.network.bridge.enable_icc': 'true',
            'com.docker.network.bridge.enable_ip_masquerade': 'true',
            'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
            'com.docker.network.bridge.name': this.cfg.defaultBridge,
            'com.docker.network.driver.mtu': '1500',
          },
        };
      } else {
        rec = { ...base, driver: name === 'host' ? 'host' : 'null', ipam: null };
      }
      this.store.tx(() => this.store.putNetwork(rec));
      this.log.info({ network: name, subnet: rec.ipam?.subnet, device: rec.bridgeName }, 'created predefined network');
    }
  }

  // ---- networks ----------------------------------------------------------------

  async createNetwork(req: Req<'NetworkCreateRequest'>): Promise<NetworkRecord> {
    validateName(req.name, 'network');
    const driver = (req.driver || 'bridge') as DriverName;
    if (driver === 'host' || driver === 'null') {
      throw invalidArgument(`only one instance of "${driver}" network is allowed; it exists already as "${driver === 'null' ? 'none' : 'host'}"`);
    }
    if (driver !== 'bridge' && driver !== 'routed') {
      throw invalidArgument(`unknown driver "${req.driver}"; bpfnet networks use -d bridge (default) or -d routed`);
    }
    const existing = this.store.networks();
    if (existing.some((n) => n.name === req.name)) throw new BpfnetError('E_CONFLICT', `network with name ${req.name} already exists`, { name: req.name });
    const opts = parseBridgeOptions(req.options ?? {});
    const id = newId();
    const ipam = resolveIpam(
      { ...(req.subnet ? { subnet: req.subnet } : {}), ...(req.gateway ? { gateway: req.gateway } : {}), ...(req.ipRange ? { ipRange: req.ipRange } : {}), auxAddresses: req.auxAddresses ?? {} },
      {
        driver,
        usedSubnets: existing.flatMap((n) => (n.ipam ? [{ subnet: n.ipam.subnet, network: n.name }] : [])),
        hostRoutes: this.node.routes().filter((r) => !existing.some((n) => n.ipam && n.ipam.subnet === r)),
      },
    );
    const bridgeName = driver === 'bridge' ? (opts.bridgeName ?? bridgeDeviceName(id)) : undefined;
    if (bridgeName) {
      validateDeviceName(bridgeName, 'com.docker.network.bridge.name');
      const taken = existing.find((n) => n.bridgeName === bridgeName);
      if (taken) throw new BpfnetError('E_CONFLICT', `bridge device ${bridgeName} is already used by network "${taken.name}"; pick another com.docker.network.bridge.name`);
    }
    const rec: NetworkRecord = {
      id,
      name: req.name,
      driver,
      created: now(),
      internal: req.internal,
      attachable: req.attachable,
      labels: req.labels ?? {},
      options: req.options ?? {},
      ipam,
      ...(bridgeName ? { bridgeName } : {}),
      mtu: opts.mtu ?? 1500,
      icc: opts.icc,
      masquerade: opts.masquerade,
      hostBindingIpv4: opts.hostBindingIpv4,
      ...(opts.hostIpv4 ? { hostIpv4: opts.hostIpv4 } : {}),
      ...(opts.gatewayModeIpv4 !== 'nat' ? { gatewayModeIpv4: opts.gatewayModeIpv4 } : {}),
      predefined: false,
    };
    this.plumbing.checkNetworkDevice(rec);
    this.store.tx(() => this.store.putNetwork(rec));
    crashPoint('network-recorded');
    try {
      this.plumbing.ensureNetwork(rec);
      await this.program();
    } catch (e) {
      this.undo('network create', () => this.plumbing.removeNetwork(rec));
      this.store.tx(() => this.store.deleteNetwork(rec.id));
      throw e;
    }
    this.log.info({ network: rec.name, id: rec.id.slice(0, 12), driver, subnet: ipam.subnet, device: bridgeName }, 'network created');
    return rec;
  }

  async removeNetwork(ref: string): Promise<NetworkRecord> {
    const n = this.network(ref);
    if (n.predefined) throw new BpfnetError('E_CONFLICT', `${n.name} is a pre-defined network and cannot be removed`);
    const eps = this.store.endpoints({ networkId: n.id });
    if (eps.length) {
      const names = eps.map((e) => `${this.store.sandbox(e.sandboxId)?.name ?? e.sandboxId.slice(0, 12)} (${e.ifName})`);
      throw new BpfnetError('E_CONFLICT', `error while removing network: network ${n.name} id ${n.id} has active endpoints: ${names.join(', ')}; disconnect them or remove those sandboxes first`, {
        endpoints: names,
      });
    }
    this.store.tx(() => this.store.deleteNetwork(n.id));
    this.plumbing.removeNetwork(n);
    await this.program();
    this.log.info({ network: n.name, id: n.id.slice(0, 12) }, 'network removed');
    return n;
  }

  async pruneNetworks(): Promise<NetworkRecord[]> {
    const removed: NetworkRecord[] = [];
    for (const n of this.store.networks()) {
      if (n.predefined || this.store.endpoints({ networkId: n.id }).length) continue;
      removed.push(await this.removeNetwork(n.id));
    }
    return removed;
  }

  // ---- sandboxes -------------------------------------------------------------

  /** Sockets of the node's netns (the agent's own) holding host ports, for one publish call. */
  private nodeSockets(): NodeSocketCheck {
    return new NodeSocketCheck(undefined, () => {
      try {
        return readBoundSocketsHere();
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'could not read the node\'s sockets; publishing checks mappings and bind probes only');
        return [];
      }
    });
  }

  private ephemeral(): [number, number] {
    try {
      return this.node.ephemeral();
    } catch {
      return DEFAULT_EPHEMERAL;
    }
  }

  async createSandbox(req: Req<'SandboxCreateRequest'>, w: ChangeWarnings): Promise<SandboxRecord> {
    const id = newId();
    const name = req.name || `sb-${id.slice(0, 12)}`;
    validateName(name, 'sandbox');
    if (this.store.sandboxes().some((s) => s.name === name)) {
      throw new BpfnetError('E_CONFLICT', `the sandbox name "/${name}" is already in use; remove that sandbox or choose another --name`, { name });
    }
    for (const d of req.dns) validateDnsServer(d);
    if (req.hostname) validateHostname(req.hostname);
    const target = req.network || 'bridge';
    let mode: SandboxRecord['mode'];
    let net: NetworkRecord | undefined;
    let joined: SandboxRecord | undefined;
    if (target.startsWith('container:')) {
      const ref = target.slice('container:'.length);
      if (!ref) throw invalidArgument('--network container: needs a sandbox name or id, e.g. --network container:web');
      if (req.publish.length || req.publishAll) throw invalidArgument('conflicting options: port publishing and the container type network mode');
      if (req.dns.length) throw invalidArgument('conflicting options: dns and the network mode');
      if (req.hostname) throw invalidArgument('conflicting options: hostname and the network mode');
      joined = this.sandbox(ref);
      // Joining a joiner joins its root, as Docker does.
      while (joined.mode.kind === 'container') joined = this.sandbox(joined.mode.sandboxId);
      mode = { kind: 'container', sandboxId: joined.id };
    } else {
      net = this.network(target);
      if (net.driver === 'host') mode = { kind: 'host' };
      else if (net.driver === 'null') mode = { kind: 'none' };
      else mode = { kind: 'bridge', network: net.id };
    }
    if (mode.kind !== 'bridge' && (req.ipv4 || req.aliases.length)) {
      throw invalidArgument(`--ip and --alias need a bridge or routed network, not network mode "${target}"`);
    }
    const engine = this.engineOptions(req, mode.kind, target);

    // Ports: parse every spec before anything else; allocate against the store.
    let ports: PortMapping[] = [];
    if (mode.kind === 'host' && (req.publish.length || req.publishAll)) {
      w.warn('Published ports are discarded when using host network mode');
    } else if (mode.kind === 'bridge' && net) {
      const requests = parsePortSpecs(req.publish);
      // A host port is taken by another mapping or by a socket on the node
      // (a listening TCP socket, a bound UDP one), as a bind would find it.
      const sockets = this.nodeSockets();
      const ctx = { defaultHostIp: net.hostBindingIpv4, ephemeral: this.ephemeral(), isTaken: this.isTaken(sockets) };
      try {
        ports = allocatePorts(requests, ctx);
        if (req.publishAll) ports = [...ports, ...publishAll(req.expose, { ...ctx, isTaken: this.isTaken(sockets, ports) }, ports)];
      } catch (e) {
        throw withSocketHint(e, sockets);
      }
    } else if (mode.kind === 'none' && (req.publish.length || req.publishAll)) {
      w.warn('Published ports are discarded when using network mode none');
    }

    const sb: SandboxRecord = {
      id,
      name,
      created: now(),
      mode,
      hostname: req.hostname || (joined ? joined.hostname : id.slice(0, 12)),
      dns: req.dns,
      netnsPath: mode.kind === 'host' ? '' : joined ? joined.netnsPath : engine ? engine.netnsPath : this.plumbing.netnsPath(id),
      ports,
      exposed: req.expose,
      labels: req.labels ?? {},
      ...(engine ? { externalNetns: true as const } : {}),
    };
    let ep: EndpointRecord | undefined;
    const t0 = performance.now();
    this.store.tx(() => {
      this.store.putSandbox(sb);
      if (mode.kind === 'bridge' && net) ep = this.newEndpoint(net, sb, req.ipv4, req.aliases, engine);
    });
    crashPoint('sandbox-recorded');
    const t1 = performance.now();
    let t2 = t1;
    try {
      this.plumbSandbox(sb);
      crashPoint('sandbox-plumbed');
      await this.syncDns(sb);
      t2 = performance.now();
      await this.program();
    } catch (e) {
      await this.dropDns(sb.id).catch(() => undefined);
      this.undo('sandbox create', () => {
        if (ep) this.plumbing.removeEndpoint(ep);
        this.plumbing.removeSandboxNetns(sb);
        removeSandboxFiles(this.cfg, sb.id);
      });
      this.store.tx(() => {
        if (ep) this.store.deleteEndpoint(ep.id);
        this.store.deleteSandbox(sb.id);
      });
      throw e;
    }
    const ms = { record: +(t1 - t0).toFixed(2), plumb: +(t2 - t1).toFixed(2), dataplane: +(performance.now() - t2).toFixed(2) };
    this.log.info({ sandbox: sb.name, id: sb.id.slice(0, 12), mode: mode.kind, ip: ep?.ipv4, ports: ports.length, ms }, 'sandbox created');
    return sb;
  }

  /** Allocates address, names and MAC; must run inside a store transaction. */
  private newEndpoint(net: NetworkRecord, sb: SandboxRecord, ipv4: string | undefined, aliases: string[], engine?: EngineOptions): EndpointRecord {
    if (!net.ipam) throw invalidArgument(`network ${net.name} has no addresses to give`);
    const ip = allocateAddress(net.ipam, this.store.usedAddresses(net.id), ipv4 || undefined, { network: net.name });
    const mine = this.store.endpoints({ sandboxId: sb.id });
    const used = new Set(mine.map((e) => e.ifName));
    let i = 0;
    while (used.has(`eth${i}`)) i++;
    const id = newId();
    const ep: EndpointRecord = {
      id,
      networkId: net.id,
      sandboxId: sb.id,
      ifName: engine?.ifName ?? `eth${i}`,
      hostIfName: hostVethName(id),
      ...(engine?.handOff ? { peerName: handOffPeerName(id) } : {}),
      mac: engine?.mac ?? macFromIpv4(ip),
      ipv4: ip,
      prefixLen: net.driver === 'routed' ? 32 : Number(net.ipam.subnet.split('/')[1]),
      aliases,
      created: now(),
    };
    this.store.putEndpoint(ep);
    return ep;
  }

  /** Everything kernel-side for one sandbox; idempotent (reconcile reuses it). */
  plumbSandbox(sb: SandboxRecord): void {
    this.plumbing.ensureSandboxNetns(sb);
    const eps = this.store.endpoints({ sandboxId: sb.id });
    for (const ep of eps) {
      const net = this.store.network(ep.networkId);
      if (!net) throw new BpfnetError('E_STATE', `endpoint ${ep.id} refers to missing network ${ep.networkId}`);
      this.plumbing.ensureEndpoint(net, sb, ep);
    }
    // Hand-off endpoints are configured inside by the engine (Docker: from Join's Gateway).
    if ((sb.mode.kind === 'bridge' || sb.mode.kind === 'none') && !eps.some((e) => e.peerName)) this.syncDefaultRoute(sb, eps);
    this.writeFiles(sb, eps);
  }

  /** Docker: the default route goes via the first-connected network that has a gateway (internal ones do not). */
  private syncDefaultRoute(sb: SandboxRecord, eps: EndpointRecord[]): void {
    if (sb.mode.kind === 'none' && eps.length === 0) return;
    const gw = eps
      .map((e) => ({ e, n: this.store.network(e.networkId) }))
      .find(({ n }) => n && n.ipam && !n.internal);
    this.plumbing.setDefaultRoute(sb, gw && gw.n?.ipam ? { gateway: gw.n.ipam.gateway, ifName: gw.e.ifName } : undefined);
  }

  private hostResolvConf(): string {
    try {
      return readFileSync(this.cfg.resolvConf, 'utf8');
    } catch {
      return '';
    }
  }

  writeFiles(sb: SandboxRecord, eps: EndpointRecord[] = this.store.endpoints({ sandboxId: sb.id })): void {
    if (sb.mode.kind === 'host' || sb.mode.kind === 'container' || sb.externalNetns) return;
    const nets = eps.map((e) => this.store.network(e.networkId)).filter((n): n is NetworkRecord => !!n);
    writeSandboxFiles(this.cfg, sb, eps, nets, this.hostResolvConf());
  }

  async removeSandbox(ref: string, force: boolean): Promise<SandboxRecord> {
    const sb = this.sandbox(ref);
    const joiners = this.store.sandboxes().filter((s) => s.mode.kind === 'container' && s.mode.sandboxId === sb.id);
    if (joiners.length && !force) {
      throw new BpfnetError('E_CONFLICT', `sandbox ${sb.name} shares its network namespace with ${joiners.map((j) => j.name).join(', ')}; remove them first or pass --force`);
    }
    await this.forgetSandbox(sb);
    await this.program();
    this.log.info({ sandbox: sb.name, id: sb.id.slice(0, 12) }, 'sandbox removed');
    return sb;
  }

  /** Records, DNS, devices, namespace (ours only) and files of one sandbox; the caller programs the dataplane. */
  private async forgetSandbox(sb: SandboxRecord): Promise<void> {
    const eps = this.store.endpoints({ sandboxId: sb.id });
    this.store.tx(() => {
      for (const e of eps) this.store.deleteEndpoint(e.id);
      this.store.deleteSandbox(sb.id);
    });
    await this.dropDns(sb.id);
    for (const e of eps) this.plumbing.removeEndpoint(e);
    this.plumbing.removeSandboxNetns(sb);
    removeSandboxFiles(this.cfg, sb.id);
  }

  // ---- container engines (CNI, Docker's remote driver) ---------------------------

  /** The engine fields of a SandboxCreate, checked; undefined for bpfnet's own sandboxes. */
  private engineOptions(req: Req<'SandboxCreateRequest'>, mode: SandboxRecord['mode']['kind'], target: string): EngineOptions | undefined {
    const given = req.netnsPath !== undefined || req.ifName !== undefined || req.mac !== undefined || req.handOff;
    if (!given) return undefined;
    if (mode !== 'bridge') throw invalidArgument(`netns_path, if_name, mac and hand_off need a bridge or routed network, not network mode "${target}"`);
    const netnsPath = req.netnsPath ?? '';
    if (!req.handOff) {
      if (!netnsPath) throw invalidArgument('if_name and mac need netns_path: the engine\'s network namespace to plumb into (or hand_off to leave the device to the engine)');
      if (!Plumbing.netnsAlive(netnsPath)) throw new BpfnetError('E_NOT_FOUND', `netns_path ${netnsPath} is not a network namespace (a mounted nsfs file such as /run/netns/NAME or /proc/PID/ns/net)`, { netnsPath });
    }
    if (req.ifName !== undefined) validateDeviceName(req.ifName, 'if_name');
    if (req.mac !== undefined) {
      const b = parseMac(req.mac);
      if (b[0]! & 1 || b.every((x) => x === 0)) throw invalidArgument(`mac ${req.mac} is not a unicast address; use one like 02:42:ac:11:00:02`);
    }
    return {
      netnsPath,
      handOff: req.handOff,
      ...(req.ifName !== undefined ? { ifName: req.ifName } : {}),
      ...(req.mac !== undefined ? { mac: req.mac.toLowerCase() } : {}),
    };
  }

  /** An engine's sandbox still has its namespace (or, handed off, its host device). */
  private engineSandboxAlive(sb: SandboxRecord): boolean {
    const eps = this.store.endpoints({ sandboxId: sb.id });
    if (eps.some((e) => e.peerName)) return eps.every((e) => this.plumbing.linkExists(e.hostIfName));
    return Plumbing.netnsAlive(sb.netnsPath);
  }

  // ---- publishing on an existing sandbox -------------------------------------------

  /** A host binding is taken by a published port or a node socket (and by `also`, chosen in the same call). */
  private isTaken(sockets: NodeSocketCheck, also: PortMapping[] = []): IsTaken {
    const mine = takenBy(also);
    return (hostIp, proto, port) => this.store.portTaken(hostIp, proto, port) || mine(hostIp, proto, port) || sockets.taken(hostIp, proto, port);
  }

  /**
   * Publish more ports on a sandbox (-p grammar). O(change): the store's
   * port index answers conflicts, only this sandbox's ports are derived, and
   * the dataplane gets the change alone (applyPorts), so one more port with
   * 50k published costs one map write in eBPF mode.
   */
  async publishPorts(ref: string, specs: string[], w: ChangeWarnings): Promise<PublishResult> {
    const sb = this.sandbox(ref);
    if (!specs.length) throw invalidArgument('nothing to publish: give at least one -p spec, e.g. 8080:80/tcp');
    const requests = parsePortSpecs(specs);
    if (sb.mode.kind === 'container') throw invalidArgument(`sandbox ${sb.name} shares the network of sandbox ${sb.mode.sandboxId.slice(0, 12)}; publish on that one`);
    if (sb.mode.kind !== 'bridge') throw invalidArgument(`sandbox ${sb.name} uses network mode ${sb.mode.kind}, where Docker publishes no ports`);
    const net = this.store.network(sb.mode.network);
    if (!net) throw new BpfnetError('E_STATE', `sandbox ${sb.name} refers to missing network ${sb.mode.network}`);
    const sockets = this.nodeSockets();
    let ports: PortMapping[];
    try {
      ports = allocatePorts(requests, { defaultHostIp: net.hostBindingIpv4, ephemeral: this.ephemeral(), isTaken: this.isTaken(sockets) });
    } catch (e) {
      throw withSocketHint(e, sockets);
    }
    this.store.tx(() => this.store.addPorts(sb.id, ports));
    try {
      const r = await this.programPorts(sb, ports, []);
      if (!r.backend) w.warn(`published, but not programmed: ${r.reason ?? 'the sandbox has no endpoint on a non-internal network'}`);
      this.log.info({ sandbox: sb.name, ports: ports.length }, 'ports published');
      return { sandbox: this.store.sandbox(sb.id) ?? sb, ports, ...(r.backend ? { backend: r.backend } : {}) };
    } catch (e) {
      this.store.tx(() => this.store.removePorts(sb.id, ports));
      throw e;
    }
  }

  /** Withdraw published ports of a sandbox: HOSTPORT[-END][/PROTO] or HOSTIP:HOSTPORT[-END][/PROTO]. */
  async unpublishPorts(ref: string, specs: string[]): Promise<PublishResult> {
    const sb = this.sandbox(ref);
    if (!specs.length) throw invalidArgument('nothing to unpublish: give at least one port, e.g. 8080/tcp or 127.0.0.1:8080/udp');
    const wanted = specs.map(parseUnpublishSpec);
    const gone: PortMapping[] = [];
    for (const u of wanted) {
      const hit = sb.ports.filter((m) => m.proto === u.proto && m.hostPort >= u.start && m.hostPort <= u.end && (u.hostIp === undefined || m.hostIp === u.hostIp));
      if (!hit.length) throw new BpfnetError('E_NOT_FOUND', `sandbox ${sb.name} has no published port ${u.spec}; \`bpfnet port ${sb.name}\` lists its ports`, { spec: u.spec });
      for (const m of hit) if (!gone.includes(m)) gone.push(m);
    }
    this.store.tx(() => this.store.removePorts(sb.id, gone));
    try {
      const r = await this.programPorts(sb, [], gone);
      this.log.info({ sandbox: sb.name, ports: gone.length }, 'ports unpublished');
      return { sandbox: this.store.sandbox(sb.id) ?? sb, ports: gone, ...(r.backend ? { backend: r.backend } : {}) };
    } catch (e) {
      this.store.tx(() => this.store.addPorts(sb.id, gone));
      throw e;
    }
  }

  /** This sandbox's change to the dataplane's ports: applyPorts where the mode has it, else the whole state. */
  private async programPorts(sb: SandboxRecord, add: PortMapping[], remove: PortMapping[]): Promise<{ backend?: { ip: string; networkId: string }; reason?: string }> {
    const netById = new Map(this.store.networks().map((n) => [n.id, n]));
    const eps = this.store.endpoints({ sandboxId: sb.id });
    const added = sandboxPorts(sb, eps, netById, add);
    const removed = sandboxPorts(sb, eps, netById, remove);
    const backend = added.target ?? removed.target;
    const out = { ...(backend ? { backend: { ip: backend.ipv4, networkId: backend.networkId } } : {}), ...(added.skipped[0] ? { reason: added.skipped[0].reason } : {}) };
    if (!added.ports.length && !removed.ports.length) return out;
    if (this.dataplane.applyPorts) {
      try {
        await this.dataplane.applyPorts({ add: added.ports, remove: removed.ports });
        return out;
      } catch (e) {
        if (!needsFullApply(e)) throw e;
      }
    }
    await this.program();
    return out;
  }

  // ---- connect / disconnect ----------------------------------------------------

  async connect(req: Req<'NetworkConnectRequest'>): Promise<EndpointRecord> {
    const net = this.network(req.network);
    const sb = this.sandbox(req.sandbox);
    if (sb.mode.kind === 'host' || sb.mode.kind === 'container' || sb.mode.kind === 'none') {
      throw new BpfnetError('E_CONFLICT', `sandbox ${sb.name} uses network mode ${sb.mode.kind}: it cannot be connected to other networks (Docker refuses the same)`);
    }
    if (net.driver === 'host' || net.driver === 'null') {
      throw new BpfnetError('E_CONFLICT', `sandbox cannot be connected to network "${net.name}" (driver ${net.driver}): it already has a network namespace`);
    }
    if (this.store.endpoints({ sandboxId: sb.id }).some((e) => e.networkId === net.id)) {
      throw new BpfnetError('E_CONFLICT', `endpoint with name ${sb.name} already exists in network ${net.name}`);
    }
    let ep!: EndpointRecord;
    this.store.tx(() => {
      ep = this.newEndpoint(net, sb, req.ipv4 || undefined, req.aliases);
    });
    try {
      this.plumbSandbox(sb);
      await this.syncDns(sb);
      await this.program();
    } catch (e) {
      this.undo('network connect', () => this.plumbing.removeEndpoint(ep));
      this.store.tx(() => this.store.deleteEndpoint(ep.id));
      await this.syncDns(sb).catch(() => undefined);
      throw e;
    }
    this.log.info({ network: net.name, sandbox: sb.name, ip: ep.ipv4, ifName: ep.ifName }, 'connected');
    return ep;
  }

  async disconnect(req: Req<'NetworkDisconnectRequest'>): Promise<void> {
    const net = this.network(req.network);
    const sb = this.sandbox(req.sandbox);
    const ep = this.store.endpoints({ sandboxId: sb.id }).find((e) => e.networkId === net.id);
    if (!ep) throw new BpfnetError('E_NOT_FOUND', `sandbox ${sb.name} is not connected to network ${net.name}`);
    this.store.tx(() => this.store.deleteEndpoint(ep.id));
    this.plumbing.removeEndpoint(ep);
    const rest = this.store.endpoints({ sandboxId: sb.id });
    this.syncDefaultRoute(sb, rest);
    this.writeFiles(sb, rest);
    await this.syncDns(sb, rest);
    await this.program();
    this.log.info({ network: net.name, sandbox: sb.name }, 'disconnected');
  }

  // ---- reconcile ---------------------------------------------------------------

  /**
   * Make the kernel match the store: create what is desired and missing,
   * repair what is half-made, remove what carries bpfnet's marker and is not
   * desired. Runs at every start (after a crash, a reboot or a clean stop).
   */
  async reconcile(): Promise<{ created: number; removed: number }> {
    let removed = 0;
    const nets = this.store.networks();
    const sandboxes = this.store.sandboxes();
    const eps = this.store.endpoints();
    const wantedAliases = new Set<string>([...nets.map(netAlias), ...eps.map(epAlias)]);
    for (const l of this.plumbing.strayLinks(wantedAliases)) {
      this.log.info({ dev: l.name, alias: l.alias }, 'reconcile: removing stray link');
      this.plumbing.deleteLink(l.name);
      removed++;
    }
    const wantedNs = new Set(sandboxes.filter((s) => s.mode.kind === 'bridge' || s.mode.kind === 'none').map((s) => s.netnsPath));
    for (const p of this.plumbing.strayNetns(wantedNs)) {
      this.log.info({ netns: p }, 'reconcile: removing stray namespace');
      this.plumbing.deleteNetnsPath(p);
      removed++;
    }
    for (const r of this.plumbing.strayRoutes(nets, eps)) {
      this.log.info({ route: r.dst, table: r.table }, 'reconcile: removing stray route');
      this.plumbing.deleteRoute(r);
      removed++;
    }
    for (const n of nets) this.plumbing.ensureNetwork(n);
    let created = 0;
    for (const sb of sandboxes) {
      if (sb.mode.kind === 'container') {
        const root = this.store.sandbox(sb.mode.sandboxId);
        if (!root) {
          this.log.warn({ sandbox: sb.name }, 'reconcile: the sandbox it joined is gone; removing it');
          this.store.tx(() => this.store.deleteSandbox(sb.id));
          removed++;
        }
        continue;
      }
      if (sb.externalNetns && !this.engineSandboxAlive(sb)) {
        // The engine's container went while we were down; its DEL/Leave will find nothing to do.
        this.log.warn({ sandbox: sb.name, netns: sb.netnsPath }, 'reconcile: the engine\'s namespace or device is gone; removing the sandbox');
        await this.forgetSandbox(sb);
        removed++;
        continue;
      }
      const before = Plumbing.netnsAlive(sb.netnsPath);
      this.plumbSandbox(sb);
      await this.syncDns(sb);
      if (!before && sb.netnsPath) created++;
    }
    await this.program();
    return { created, removed };
  }

  private undo(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log.error({ err: (e as Error).message, what }, 'rollback step failed; reconcile will finish it at the next start');
    }
  }
}

interface EngineOptions {
  /** '' for a hand-off endpoint whose namespace the engine did not say. */
  netnsPath: string;
  handOff: boolean;
  ifName?: string;
  mac?: string;
}

export interface PublishResult {
  sandbox: SandboxRecord;
  ports: PortMapping[];
  /** Where the ports go, when they are programmed. */
  backend?: { ip: string; networkId: string };
}

/** A host port refused because a node socket holds it says which socket. */
function withSocketHint(e: unknown, sockets: NodeSocketCheck): unknown {
  if (!(e instanceof BpfnetError) || e.code !== 'E_CONFLICT') return e;
  const d = e.details as { hostIp?: string; hostPort?: number; proto?: string } | undefined;
  if (!d?.hostIp || !d.hostPort || (d.proto !== 'tcp' && d.proto !== 'udp')) return e;
  const held = portConflicts(sockets.sockets(), d.hostIp, d.hostPort, d.proto);
  if (held.length === 0) return e;
  return new BpfnetError('E_CONFLICT', `${e.message}: a process on the node holds it (${held.map(describeSocket).join(', ')})`, e.details);
}
