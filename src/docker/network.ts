/**
 * The remote network driver: Docker's calls onto bpfnet's API (the agent's
 * own socket), one at a time (the server serialises them).
 *
 *   CreateNetwork      → NetworkCreate docker-<id12> (label com.docker.network.id)
 *   CreateEndpoint     → remembered (address, MAC) in PluginState
 *   Join               → SandboxCreate docker-<eid12>, hand_off (the SandboxKey as a label):
 *                        Docker moves the peer (SrcName) in and configures it
 *   ProgramExternal... → PortPublish with the -p bindings (bpfnet's dataplane, no docker-proxy)
 *   Revoke...          → PortUnpublish;  Leave → SandboxRemove;  DeleteEndpoint/DeleteNetwork
 *
 * Every handler validates the whole request and looks everything up before
 * it changes anything. Errors are the protocol's `{"Err": "..."}`.
 */
import type { Logger } from 'pino';
import type { Messages } from '../api/generated/types.js';
import type { Method, Req, Res } from '../api/methods.js';
import { BpfnetError } from '../util/errors.js';
import { cidrContains } from '../model/ipv4.js';
import { LABEL, type EndpointRef } from './protocol.js';
import { joinResponse, macFor, networkCreate, portSpecs, sandboxName, unpublishSpecs } from './mapping.js';
import type { EndpointState, PluginState } from './state.js';
import { createEndpointRequest, createNetworkRequest, endpointRef, joinRequest, networkRef, parseBody, portBindings, programRequest } from './validate.js';

/** The agent API as the driver uses it (a Client, or a fake in unit tests). */
export interface AgentApi {
  call<M extends Method>(method: M, req: Partial<Req<M>>): Promise<Res<M>>;
}

export interface NetworkContext {
  api: AgentApi;
  state: PluginState;
  log?: Logger | undefined;
}

type Network = Messages['Network'];
type Sandbox = Messages['Sandbox'];
export type NetworkHandler = (body: string) => Promise<Record<string, unknown>>;

const M = (m: string) => `NetworkDriver.${m}`;
const short = (id: string) => id.slice(0, 12);

async function findNetwork(ctx: NetworkContext, method: string, dockerId: string): Promise<Network> {
  const n = (await ctx.api.call('NetworkList', {})).networks.find((x) => x.labels[LABEL.networkId] === dockerId);
  if (!n) throw new BpfnetError('E_NOT_FOUND', `${M(method)}: unknown network ${short(dockerId)}: bpfnet has no network for it (create it with docker network create -d <this plugin>)`, { networkId: dockerId });
  return n;
}

async function findSandbox(ctx: NetworkContext, endpointId: string): Promise<Sandbox | undefined> {
  return (await ctx.api.call('SandboxList', {})).sandboxes.find((s) => s.labels[LABEL.endpointId] === endpointId);
}

function endpoint(ctx: NetworkContext, method: string, ref: EndpointRef): EndpointState {
  const ep = ctx.state.endpoints[ref.EndpointID];
  if (!ep) throw new BpfnetError('E_NOT_FOUND', `${M(method)}: unknown endpoint ${short(ref.EndpointID)}: it was not created through CreateEndpoint (or was deleted)`, { endpointId: ref.EndpointID });
  if (ep.networkId !== ref.NetworkID) throw new BpfnetError('E_NOT_FOUND', `${M(method)}: endpoint ${short(ref.EndpointID)} belongs to network ${short(ep.networkId)}, not ${short(ref.NetworkID)}`);
  return ep;
}

/** An error from the agent, prefixed with the Docker method it failed. */
function from(method: string, e: unknown): unknown {
  if (e instanceof BpfnetError && !e.message.startsWith('NetworkDriver.')) return new BpfnetError(e.code, `${M(method)}: ${e.message}`, e.details);
  return e;
}

export function networkHandlers(ctx: NetworkContext): Record<string, NetworkHandler> {
  const wrap =
    (method: string, fn: (body: string) => Promise<Record<string, unknown>>): NetworkHandler =>
    (body) =>
      fn(body).catch((e: unknown) => {
        throw from(method, e);
      });
  return {
    GetCapabilities: async () => ({ Scope: 'local', ConnectivityScope: 'local' }),
    // Swarm's global-scope calls; bpfnet is a local-scope driver (GetCapabilities says so).
    AllocateNetwork: async () => {
      throw new BpfnetError('E_INVALID_ARGUMENT', `${M('AllocateNetwork')}: not supported: bpfnet is a local-scope driver (no swarm networks)`);
    },
    FreeNetwork: async () => {
      throw new BpfnetError('E_INVALID_ARGUMENT', `${M('FreeNetwork')}: not supported: bpfnet is a local-scope driver (no swarm networks)`);
    },
    DiscoverNew: async (body) => (parseBody(M('DiscoverNew'), body), {}),
    DiscoverDelete: async (body) => (parseBody(M('DiscoverDelete'), body), {}),

    CreateNetwork: wrap('CreateNetwork', async (body) => {
      const req = createNetworkRequest(parseBody(M('CreateNetwork'), body));
      const create = networkCreate(req);
      const have = (await ctx.api.call('NetworkList', {})).networks.find((x) => x.labels[LABEL.networkId] === req.NetworkID);
      if (have) {
        // Docker re-creating what exists (e.g. after its own restart): same subnet is a no-op.
        if (have.ipam?.subnet === create.subnet) return {};
        throw new BpfnetError('E_CONFLICT', `${M('CreateNetwork')}: network ${short(req.NetworkID)} exists already in bpfnet as ${have.name} with subnet ${have.ipam?.subnet ?? '(none)'}`);
      }
      const n = await ctx.api.call('NetworkCreate', create);
      ctx.log?.info({ docker: short(req.NetworkID), network: n.name, subnet: n.ipam?.subnet, bridge: n.bridgeName }, 'docker: network created');
      return {};
    }),

    DeleteNetwork: wrap('DeleteNetwork', async (body) => {
      const { NetworkID } = networkRef(M('DeleteNetwork'), parseBody(M('DeleteNetwork'), body));
      const n = await findNetwork(ctx, 'DeleteNetwork', NetworkID);
      await ctx.api.call('NetworkRemove', { ref: n.id });
      const stale = Object.entries(ctx.state.endpoints).filter(([, e]) => e.networkId === NetworkID);
      if (stale.length) ctx.state.update((d) => stale.forEach(([id]) => delete d.endpoints[id]));
      ctx.log?.info({ docker: short(NetworkID), network: n.name }, 'docker: network removed');
      return {};
    }),

    CreateEndpoint: wrap('CreateEndpoint', async (body) => {
      const req = createEndpointRequest(parseBody(M('CreateEndpoint'), body));
      const n = await findNetwork(ctx, 'CreateEndpoint', req.NetworkID);
      if (ctx.state.endpoints[req.EndpointID]) throw new BpfnetError('E_CONFLICT', `${M('CreateEndpoint')}: endpoint ${short(req.EndpointID)} exists already`);
      const ip = req.Interface.Address.split('/')[0]!;
      const subnet = n.ipam?.subnet ?? '';
      if (!subnet || !cidrContains(subnet, ip)) throw new BpfnetError('E_INVALID_ARGUMENT', `${M('CreateEndpoint')}: Interface.Address ${req.Interface.Address} is outside the network's subnet ${subnet || '(none)'}`);
      const inUse = (await ctx.api.call('NetworkInspect', { ref: n.id })).endpoints.some((e) => e.ipv4 === ip) || Object.values(ctx.state.endpoints).some((e) => e.networkId === req.NetworkID && e.address.split('/')[0] === ip);
      if (inUse) throw new BpfnetError('E_CONFLICT', `${M('CreateEndpoint')}: address ${ip} is already in use on network ${short(req.NetworkID)}`);
      const mac = req.Interface.MacAddress || macFor(req.Interface.Address);
      ctx.state.update((d) => {
        d.endpoints[req.EndpointID] = { networkId: req.NetworkID, address: req.Interface.Address, mac };
      });
      // Only what Docker did not give: it refuses a driver that changes an address or MAC it set.
      return req.Interface.MacAddress ? {} : { Interface: { MacAddress: mac } };
    }),

    EndpointOperInfo: wrap('EndpointOperInfo', async (body) => {
      endpoint(ctx, 'EndpointOperInfo', endpointRef(M('EndpointOperInfo'), parseBody(M('EndpointOperInfo'), body)));
      return { Value: {} };
    }),

    DeleteEndpoint: wrap('DeleteEndpoint', async (body) => {
      const ref = endpointRef(M('DeleteEndpoint'), parseBody(M('DeleteEndpoint'), body));
      endpoint(ctx, 'DeleteEndpoint', ref);
      // Normally gone with Leave; left over when Leave failed.
      const sb = await findSandbox(ctx, ref.EndpointID);
      if (sb) await ctx.api.call('SandboxRemove', { ref: sb.id, force: true });
      ctx.state.update((d) => {
        delete d.endpoints[ref.EndpointID];
      });
      return {};
    }),

    Join: wrap('Join', async (body) => {
      const req = joinRequest(parseBody(M('Join'), body));
      const ep = endpoint(ctx, 'Join', req);
      const n = await findNetwork(ctx, 'Join', req.NetworkID);
      if (await findSandbox(ctx, req.EndpointID)) throw new BpfnetError('E_CONFLICT', `${M('Join')}: endpoint ${short(req.EndpointID)} has joined a sandbox already; Leave first`);
      // No netns_path: at Join the SandboxKey does not exist yet (libnetwork mounts the
      // container's namespace there later, from runc's prestart hook, and only then moves
      // SrcName in); the device is handed off in the node namespace, the key kept as a label.
      const d = await ctx.api.call('SandboxCreate', {
        name: sandboxName(req.EndpointID),
        network: n.id,
        ipv4: ep.address.split('/')[0]!,
        mac: ep.mac,
        handOff: true,
        labels: { [LABEL.networkId]: req.NetworkID, [LABEL.endpointId]: req.EndpointID, [LABEL.sandboxKey]: req.SandboxKey },
      });
      const peer = d.endpoints[0]?.peerName;
      if (!peer) {
        await ctx.api.call('SandboxRemove', { ref: d.sandbox!.id, force: true }).catch(() => undefined);
        throw new BpfnetError('E_STATE', `${M('Join')}: the agent did not hand off a device for endpoint ${short(req.EndpointID)} (its hand_off support is missing?)`);
      }
      ctx.log?.info({ docker: short(req.EndpointID), sandbox: d.sandbox?.name, peer, ip: ep.address }, 'docker: endpoint joined');
      return { ...joinResponse(peer, n) };
    }),

    Leave: wrap('Leave', async (body) => {
      const ref = endpointRef(M('Leave'), parseBody(M('Leave'), body));
      endpoint(ctx, 'Leave', ref);
      const sb = await findSandbox(ctx, ref.EndpointID);
      if (!sb) throw new BpfnetError('E_NOT_FOUND', `${M('Leave')}: endpoint ${short(ref.EndpointID)} has not joined a sandbox`);
      await ctx.api.call('SandboxRemove', { ref: sb.id, force: true });
      return {};
    }),

    ProgramExternalConnectivity: wrap('ProgramExternalConnectivity', async (body) => {
      const m = M('ProgramExternalConnectivity');
      const req = programRequest(parseBody(m, body));
      const { specs, skipped } = portSpecs(m, portBindings(m, req.Options));
      endpoint(ctx, 'ProgramExternalConnectivity', req);
      const sb = await findSandbox(ctx, req.EndpointID);
      if (!sb) throw new BpfnetError('E_NOT_FOUND', `${m}: endpoint ${short(req.EndpointID)} has not joined a sandbox`);
      if (skipped.length) ctx.log?.warn({ docker: short(req.EndpointID), skipped }, 'docker: IPv6 port bindings left out (bpfnet forwards IPv4)');
      // Programmed again (Docker moves the gateway endpoint): the new set replaces the old.
      const old = [...sb.ports];
      if (old.length) await ctx.api.call('PortUnpublish', { sandbox: sb.id, ports: unpublishSpecs(old) });
      if (specs.length) {
        try {
          await ctx.api.call('PortPublish', { sandbox: sb.id, publish: specs });
        } catch (e) {
          // Put the old set back, so a refused publish changes nothing.
          if (old.length) await ctx.api.call('PortPublish', { sandbox: sb.id, publish: old.map((p) => `${p.hostIp}:${p.hostPort}:${p.containerPort}/${p.proto}`) }).catch(() => undefined);
          throw e;
        }
      }
      return {};
    }),

    RevokeExternalConnectivity: wrap('RevokeExternalConnectivity', async (body) => {
      const ref = endpointRef(M('RevokeExternalConnectivity'), parseBody(M('RevokeExternalConnectivity'), body));
      endpoint(ctx, 'RevokeExternalConnectivity', ref);
      const sb = await findSandbox(ctx, ref.EndpointID);
      if (sb?.ports.length) await ctx.api.call('PortUnpublish', { sandbox: sb.id, ports: unpublishSpecs(sb.ports) });
      return {};
    }),
  };
}
