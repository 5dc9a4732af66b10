/** An ADD result from the agent's view of the sandbox (SandboxDetail). */
import type { Messages } from '../api/generated/types.js';
import { CniError, CNI_ERR } from './errors.js';
import type { BpfnetNetConf, CniEnv, CniResult } from './types.js';
import { CURRENT_VERSION } from './version.js';

type SandboxDetail = Messages['SandboxDetail'];

/** The endpoint this attachment made, with its network; the agent always gives one for a bridge sandbox. */
export function attachmentEndpoint(d: SandboxDetail): { ep: Messages['Endpoint']; net: Messages['Network'] } {
  const ep = d.endpoints[0];
  const net = ep && d.networks.find((n) => n.id === ep.networkId);
  if (!ep || !net) throw new CniError(CNI_ERR.AGENT_FAILED, `the agent reported sandbox ${d.sandbox?.name ?? '?'} without an endpoint`);
  return { ep, net };
}

/**
 * interfaces: [host veth (in the agent's namespace), container interface];
 * ips: the container address with prefix, the network's gateway; routes: the
 * default route via the gateway (none on internal networks, nor when another
 * attachment in the namespace holds it); dns: the runtime's (dns
 * capability), else the config's.
 */
export function buildResult(d: SandboxDetail, env: Pick<CniEnv, 'netns'>, conf: Pick<BpfnetNetConf, 'dns' | 'runtimeConfig'>, opts: { defaultRoute?: boolean } = {}): CniResult {
  const { ep, net } = attachmentEndpoint(d);
  const gateway = net.ipam?.gateway;
  const r: CniResult = {
    cniVersion: CURRENT_VERSION,
    interfaces: [
      { name: ep.hostIfName, ...(net.mtu ? { mtu: net.mtu } : {}) },
      { name: ep.ifName, mac: ep.mac, ...(net.mtu ? { mtu: net.mtu } : {}), sandbox: env.netns },
    ],
    ips: [{ address: `${ep.ipv4}/${ep.prefixLen}`, ...(gateway ? { gateway } : {}), interface: 1 }],
    routes: gateway && !net.internal && opts.defaultRoute !== false ? [{ dst: '0.0.0.0/0', gw: gateway }] : [],
  };
  const dns = conf.runtimeConfig.dns ?? conf.dns;
  if (dns) r.dns = dns;
  return r;
}
