/**
 * The namespace world the fallback dataplane tests share (no test of its own):
 *
 *   client ns  eth0 198.18.0.2 ---- up0 198.18.0.1   node ns
 *                                   br0 198.19.0.1/24 -- vc0 = c0 198.19.0.2 (echo :80 :53)
 *                                                     -- vc1 = c1 198.19.0.3 (echo :90)
 *                                   br1 198.20.0.1/24 -- vx0 = c2 198.20.0.2 (echo :80)
 *
 * The client runs an echo server on :7000 (to see masquerade), and has
 * routes to both container subnets through the node (to try direct access).
 */
import { Netns } from '../../src/lab/netns.js';
import { Topology, UPLINK, BRIDGE, type ContainerNs } from '../../src/lab/topology.js';
import { ECHO_SCRIPT, waitReady } from '../../src/lab/lab.js';
import type { DataplaneNetwork, DesiredState, PublishedPort } from '../../src/dataplane/types.js';

export const NET2 = { dev: 'br1', gatewayIp: '198.20.0.1', subnet: '198.20.0.0/24', ip: '198.20.0.2', hostDev: 'vx0' } as const;

export interface FallbackEnv {
  topo: Topology;
  c0: ContainerNs;
  c1: ContainerNs;
  c2: ContainerNs;
  macs: Record<string, string>;
  destroy(): Promise<void>;
}

async function macOf(ns: Netns, dev: string): Promise<string> {
  const { stdout } = await ns.ip('-j', 'link', 'show', dev);
  return (JSON.parse(stdout) as { address: string }[])[0]!.address;
}

export async function createEnv(prefix: string): Promise<FallbackEnv> {
  const topo = await Topology.create({ prefix, containers: 2 });
  let extra: Netns | undefined;
  try {
    const node = topo.node;
    extra = await Netns.create(`${prefix}-${topo.id}-x0`);
    await node.ip('link', 'add', NET2.dev, 'type', 'bridge');
    await node.ip('addr', 'add', `${NET2.gatewayIp}/24`, 'dev', NET2.dev);
    await node.ip('link', 'set', NET2.dev, 'up');
    await node.ip('link', 'add', NET2.hostDev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', extra.name);
    await node.ip('link', 'set', NET2.hostDev, 'master', NET2.dev);
    await node.ip('link', 'set', NET2.hostDev, 'up');
    await extra.ip('addr', 'add', `${NET2.ip}/24`, 'dev', 'eth0');
    await extra.ip('link', 'set', 'eth0', 'up');
    await extra.ip('route', 'add', 'default', 'via', NET2.gatewayIp);
    await topo.client.ip('route', 'add', BRIDGE.subnet, 'via', UPLINK.nodeIp);
    await topo.client.ip('route', 'add', NET2.subnet, 'via', UPLINK.nodeIp);

    const [c0, c1] = topo.containers as [ContainerNs, ContainerNs];
    const c2: ContainerNs = { ns: extra, ip: NET2.ip, hostDev: NET2.hostDev };
    await Promise.all([
      waitReady(c0.ns.spawn(process.execPath, [ECHO_SCRIPT, '80', 'c0']), 'c0:80'),
      waitReady(c0.ns.spawn(process.execPath, [ECHO_SCRIPT, '53', 'c0']), 'c0:53'),
      waitReady(c1.ns.spawn(process.execPath, [ECHO_SCRIPT, '90', 'c1']), 'c1:90'),
      waitReady(c2.ns.spawn(process.execPath, [ECHO_SCRIPT, '80', 'c2']), 'c2:80'),
      waitReady(topo.client.spawn(process.execPath, [ECHO_SCRIPT, '7000', 'client']), 'client:7000'),
    ]);
    const macs: Record<string, string> = {};
    for (const c of [c0, c1, c2]) macs[c.hostDev] = await macOf(c.ns, 'eth0');
    const ex = extra;
    return { topo, c0, c1, c2, macs, destroy: async () => Promise.all([topo.destroy(), ex.destroy()]).then(() => undefined) };
  } catch (e) {
    await Promise.all([topo.destroy(), extra?.destroy()]);
    throw e;
  }
}

function network1(over: Partial<DataplaneNetwork> = {}): DataplaneNetwork {
  return { id: 1, subnet: BRIDGE.subnet, gateway: BRIDGE.gatewayIp, bridge: BRIDGE.dev, driver: 'bridge', internal: false, icc: true, masquerade: true, gatewayMode: 'nat', ...over };
}

function network2(over: Partial<DataplaneNetwork> = {}): DataplaneNetwork {
  return { id: 2, subnet: NET2.subnet, gateway: NET2.gatewayIp, bridge: NET2.dev, driver: 'bridge', internal: false, icc: true, masquerade: true, gatewayMode: 'nat', ...over };
}

function basePorts(env: FallbackEnv): PublishedPort[] {
  return [
    { hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: env.c0.ip, containerPort: 80 },
    { hostIp: '0.0.0.0', hostPort: 8053, proto: 'udp', containerIp: env.c0.ip, containerPort: 53 },
    { hostIp: UPLINK.nodeIp, hostPort: 9090, proto: 'tcp', containerIp: env.c1.ip, containerPort: 90 },
    { hostIp: '127.0.0.1', hostPort: 7070, proto: 'tcp', containerIp: env.c0.ip, containerPort: 80 },
  ];
}

export function baseState(env: FallbackEnv, over: { net1?: Partial<DataplaneNetwork>; net2?: Partial<DataplaneNetwork>; ports?: PublishedPort[] } = {}): DesiredState {
  return {
    uplinks: [UPLINK.dev],
    nodeAddresses: [UPLINK.nodeIp],
    endpoints: [
      { hostDev: env.c0.hostDev, ip: env.c0.ip, mac: env.macs[env.c0.hostDev], networkId: 1 },
      { hostDev: env.c1.hostDev, ip: env.c1.ip, mac: env.macs[env.c1.hostDev], networkId: 1 },
      { hostDev: env.c2.hostDev, ip: env.c2.ip, mac: env.macs[env.c2.hostDev], networkId: 2 },
    ],
    ports: over.ports ?? basePorts(env),
    networks: [network1(over.net1), network2(over.net2)],
  };
}

/** All devices a mode may have touched: for removeOtherModes. */
export function allDevices(env: FallbackEnv): string[] {
  return [UPLINK.dev, BRIDGE.dev, NET2.dev, env.c0.hostDev, env.c1.hostDev, env.c2.hostDev];
}
