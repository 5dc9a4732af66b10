/**
 * API handlers: requests in protobuf shape → ModelService → records out in
 * protobuf shape. The records mirror the messages, so conversion is small.
 */
import type { Messages, Network, Sandbox, Endpoint } from '../api/generated/types.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../model/types.js';
import type { Handlers } from './server.js';
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
  return { ...e };
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
  return { ...s, mode, ports: s.ports.map((p) => ({ ...p, proto: p.proto as 'tcp' | 'udp' })) } as SandboxRecord;
}

export function endpointRec(e: Endpoint): EndpointRecord {
  return { ...e };
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
  };
}

export function handlers(svc: ModelService, info: { started: string; uplinks: string[]; version: string }): Handlers {
  return {
    Info: () => ({
      version: info.version,
      dataplane: svc.dataplane.mode,
      pid: process.pid,
      stateDir: svc.cfg.stateDir,
      runDir: svc.cfg.runDir,
      bpffsRoot: svc.cfg.bpffsRoot,
      uplinks: info.uplinks,
      nodeAddresses: svc.node.addresses(),
      networks: svc.store.networks().length,
      sandboxes: svc.store.sandboxes().length,
      started: info.started,
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
    SandboxInspect: (req) => sandboxDetail(svc, svc.sandbox(req.ref)),
    SandboxRemove: async (req) => {
      const s = await svc.removeSandbox(req.ref, req.force);
      return { ids: [s.id], names: [s.name] };
    },
  };
}
