/**
 * API handlers: requests in protobuf shape → ModelService → records out in
 * protobuf shape. The records mirror the messages, so conversion is small.
 */
import type { Messages, Network, Sandbox, Endpoint, PublishedPort, Counter } from '../api/generated/types.js';
import type { EndpointRecord, NetworkRecord, PortMapping, SandboxRecord } from '../model/types.js';
import type { PortCounters } from '../dataplane/types.js';
import type { CallContext, Handlers } from './server.js';
import type { ModelService } from './service.js';
import { sandboxFilesDir } from './config.js';

export function networkMsg(n: NetworkRecord): Network {
  const { ipam, ...rest } = n;
  return { ...rest, ...(ipam ? { ipam } : {}) } as Network;
}

export function sandboxMsg(s: SandboxRecord): Sandbox {
  const mode =
    s.mode.kind === 'bridge'
      ? { kind: 'bridge', network: s.mode.network, sandboxId: '' }
      : s.mode.kind === 'container'
        ? { kind: 'container', network: '', sandboxId: s.mode.sandboxId }
        : { kind: s.mode.kind, network: '', sandboxId: '' };
  return { ...s, mode } as Sandbox;
}

export function endpointMsg(e: EndpointRecord): Endpoint {
  return { ...e, peerName: e.peerName ?? '' };
}

/** Inverse of the above, for the CLI (which renders Docker-shaped JSON from records). */
export function networkRec(n: Network): NetworkRecord {
  const { ipam, ...rest } = n;
  return { ...rest, ipam: ipam ? { ...ipam, auxAddresses: ipam.auxAddresses ?? {} } : null } as NetworkRecord;
}

export function sandboxRec(s: Sandbox): SandboxRecord {
  const m = s.mode;
  const mode: SandboxRecord['mode'] =
    m?.kind === 'bridge'
      ? { kind: 'bridge', network: m.network }
      : m?.kind === 'container'
        ? { kind: 'container', sandboxId: m.sandboxId }
        : { kind: (m?.kind ?? 'none') as 'host' | 'none' };
  const { externalNetns, ...rest } = s;
  return { ...rest, mode, ports: s.ports.map((p) => ({ ...p, proto: p.proto as 'tcp' | 'udp' })), ...(externalNetns ? { externalNetns: true } : {}) } as SandboxRecord;
}

export function endpointRec(e: Endpoint): EndpointRecord {
  const { peerName, ...rest } = e;
  return { ...rest, ...(peerName ? { peerName } : {}) };
}

// ---- counters ------------------------------------------------------------------

const portKey = (hostIp: string, proto: string, hostPort: number): string => `${hostIp}|${proto}|${hostPort}`;

/** Docker's order for one sandbox's ports: container port, proto, host IP, host port. */
function portOrder(a: PublishedPort, b: PublishedPort): number {
  return (
    (a.sandboxName < b.sandboxName ? -1 : a.sandboxName > b.sandboxName ? 1 : 0) ||
    (a.sandboxId < b.sandboxId ? -1 : a.sandboxId > b.sandboxId ? 1 : 0) ||
    a.containerPort - b.containerPort ||
    a.proto.localeCompare(b.proto) ||
    (a.hostIp < b.hostIp ? -1 : a.hostIp > b.hostIp ? 1 : 0) ||
    a.hostPort - b.hostPort
  );
}

/**
 * Every published port of the given sandboxes as the dataplane has it: the
 * backend (address, network) from the desired state, why a port is not
 * programmed, and packets/bytes when the dataplane counts them. A counter
 * read failure is a warning, never a failed call: the ports are still listed.
 */
async function publishedPorts(svc: ModelService, sandboxes: readonly SandboxRecord[], ctx?: CallContext): Promise<{ counted: boolean; ports: PublishedPort[] }> {
  const desired = svc.desiredPorts();
  const programmed = new Map(desired.ports.map((p) => [portKey(p.hostIp, p.proto, p.hostPort), p]));
  const skipped = new Map((desired.skipped ?? []).map((s) => [`${s.sandboxId}|${portKey(s.hostIp, s.proto, s.hostPort)}`, s.reason]));
  let counters: Map<string, PortCounters> | undefined;
  try {
    const rows = await svc.dataplane.portCounters?.();
    if (rows) counters = new Map(rows.map((c) => [portKey(c.hostIp, c.proto, c.hostPort), c]));
  } catch (e) {
    const msg = `per-port counters unavailable: ${(e as Error).message}`;
    svc.log.warn({ err: (e as Error).message }, 'reading per-port counters failed');
    ctx?.warn(msg);
  }
  const nets = new Map(svc.store.networks().map((n) => [n.id, n]));
  const ports: PublishedPort[] = [];
  for (const sb of sandboxes) {
    if (!sb.ports.length) continue;
    const eps = svc.store.endpoints({ sandboxId: sb.id });
    for (const m of sb.ports) {
      const key = portKey(m.hostIp, m.proto, m.hostPort);
      const p = programmed.get(key);
      const active = !!p && p.containerPort === m.containerPort && sb.mode.kind === 'bridge';
      const ep = active ? eps.find((e) => e.ipv4 === p.containerIp) : undefined;
      const net = ep ? nets.get(ep.networkId) : undefined;
      const c = active ? counters?.get(key) : undefined;
      ports.push({
        hostIp: m.hostIp,
        hostPort: m.hostPort,
        proto: m.proto,
        containerIp: active ? p.containerIp : '',
        containerPort: m.containerPort,
        sandboxId: sb.id,
        sandboxName: sb.name,
        networkId: ep?.networkId ?? '',
        networkName: net?.name ?? '',
        active,
        inactiveReason: active ? '' : (skipped.get(`${sb.id}|${key}`) ?? 'not programmed in the dataplane'),
        counted: active && !!counters,
        packets: Number(c?.packets ?? 0n),
        bytes: Number(c?.bytes ?? 0n),
      });
    }
  }
  return { counted: !!counters, ports: ports.sort(portOrder) };
}

/**
 * Ports just published or withdrawn, as messages, without reading the whole
 * desired state (publishing one more port stays O(1) at 50k published).
 */
function mappingMsgs(svc: ModelService, r: { sandbox: SandboxRecord; ports: PortMapping[]; backend?: { ip: string; networkId: string } }): PublishedPort[] {
  const net = r.backend ? svc.store.network(r.backend.networkId) : undefined;
  return r.ports.map((m) => ({
    hostIp: m.hostIp,
    hostPort: m.hostPort,
    proto: m.proto,
    containerIp: r.backend?.ip ?? '',
    containerPort: m.containerPort,
    sandboxId: r.sandbox.id,
    sandboxName: r.sandbox.name,
    networkId: r.backend?.networkId ?? '',
    networkName: net?.name ?? '',
    active: !!r.backend,
    inactiveReason: r.backend ? '' : 'not programmed in the dataplane',
    counted: false,
    packets: 0,
    bytes: 0,
  }));
}

/** Named counters as messages, or undefined when the dataplane keeps none. */
async function counterMsgs(svc: ModelService): Promise<Counter[] | undefined> {
  const c = await svc.dataplane.counters?.();
  return c ? Object.entries(c).map(([name, v]) => ({ name, packets: Number(v.packets), bytes: Number(v.bytes) })) : undefined;
}

function sandboxDetail(svc: ModelService, sb: SandboxRecord): Messages['SandboxDetail'] {
  const root = sb.mode.kind === 'container' ? (svc.store.sandbox(sb.mode.sandboxId) ?? sb) : sb;
  const eps = svc.store.endpoints({ sandboxId: root.id });
  const nets = eps.map((e) => svc.store.network(e.networkId)).filter((n): n is NetworkRecord => !!n);
  const links = eps.map((e) => {
    const l = svc.plumbing.endpointLink(root, e);
    return { endpointId: e.id, hostIfindex: l.hostIndex, peerIfindex: l.peerIndex, present: l.present };
  });
  const msg = sandboxMsg(sb);
  // Host mode runs in the agent's own namespace (in tests, not the caller's).
  if (sb.mode.kind === 'host') msg.netnsPath = svc.plumbing.hostNetnsPath;
  return {
    sandbox: msg,
    endpoints: eps.map(endpointMsg),
    networks: nets.map(networkMsg),
    links,
    filesDir: root.mode.kind === 'bridge' || root.mode.kind === 'none' ? sandboxFilesDir(svc.cfg, root.id) : '',
    published: [],
  };
}

export function handlers(svc: ModelService, info: { started: string; uplinks: string[]; version: string }): Handlers {
  return {
    Info: async () => ({
      version: info.version,
      dataplane: svc.dataplane.mode,
      pid: process.pid,
      stateDir: svc.cfg.stateDir,
      runDir: svc.cfg.runDir,
      bpffsRoot: svc.cfg.bpffsRoot,
      uplinks: info.uplinks,
      nodeAddresses: svc.nodeAddresses(),
      networks: svc.store.networks().length,
      sandboxes: svc.store.sandboxes().length,
      started: info.started,
      // Cheap (one map read); info never fails because counters cannot be read.
      counters: (await counterMsgs(svc).catch((e: Error) => {
        svc.log.warn({ err: e.message }, 'reading dataplane counters failed');
        return undefined;
      })) ?? [],
    }),
    NetworkCreate: async (req) => networkMsg(await svc.createNetwork(req)),
    NetworkList: () => ({ networks: svc.store.networks().map(networkMsg) }),
    NetworkInspect: (req) => {
      const n = svc.network(req.ref);
      const eps = svc.store.endpoints({ networkId: n.id });
      const sbs = [...new Set(eps.map((e) => e.sandboxId))].map((id) => svc.store.sandbox(id)).filter((s): s is SandboxRecord => !!s);
      return { network: networkMsg(n), endpoints: eps.map(endpointMsg), sandboxes: sbs.map(sandboxMsg) };
    },
    NetworkRemove: async (req) => {
      const n = await svc.removeNetwork(req.ref);
      return { ids: [n.id], names: [n.name] };
    },
    NetworkPrune: async () => {
      const r = await svc.pruneNetworks();
      return { ids: r.map((n) => n.id), names: r.map((n) => n.name) };
    },
    NetworkConnect: async (req) => endpointMsg(await svc.connect(req)),
    NetworkDisconnect: async (req) => {
      await svc.disconnect(req);
      return {};
    },
    SandboxCreate: async (req, ctx) => sandboxDetail(svc, await svc.createSandbox(req, ctx)),
    SandboxList: () => ({ sandboxes: svc.store.sandboxes().map(sandboxMsg) }),
    SandboxInspect: async (req, ctx) => {
      const sb = svc.sandbox(req.ref);
      const d = sandboxDetail(svc, sb);
      d.published = (await publishedPorts(svc, [sb], ctx)).ports;
      return d;
    },
    SandboxRemove: async (req) => {
      const s = await svc.removeSandbox(req.ref, req.force);
      return { ids: [s.id], names: [s.name] };
    },
    PortPublish: async (req, ctx) => ({ dataplane: svc.dataplane.mode, counted: false, ports: mappingMsgs(svc, await svc.publishPorts(req.sandbox, req.publish, ctx)) }),
    PortUnpublish: async (req) => ({ dataplane: svc.dataplane.mode, counted: false, ports: mappingMsgs(svc, await svc.unpublishPorts(req.sandbox, req.ports)) }),
    PortList: async (req, ctx) => {
      const sbs = req.sandbox ? [svc.sandbox(req.sandbox)] : svc.store.sandboxes();
      const r = await publishedPorts(svc, sbs, ctx);
      return { dataplane: svc.dataplane.mode, counted: r.counted, ports: r.ports };
    },
    Counters: async () => {
      const c = await counterMsgs(svc);
      return { dataplane: svc.dataplane.mode, available: !!c, counters: c ?? [] };
    },
  };
}
