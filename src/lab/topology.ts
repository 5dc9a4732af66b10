/**
 * The reusable test/bench/lab topology:
 *
 *   client ns            node ns                              container ns (xN)
 *   eth0 198.18.0.2 ---- up0 198.18.0.1 (uplink)
 *                        br0 198.19.0.1/24 -- vc<i> ======== eth0 198.19.0.<i+2>
 *
 * Every name is derived from a random id, so concurrent tests never collide;
 * interfaces are created inside the namespaces, so nothing touches the root
 * namespace, and deleting the namespaces removes everything.
 */
import { randomBytes } from 'node:crypto';
import { Netns } from './netns.js';

export interface TopologyOptions {
  /** Netns name prefix (default "bn"). */
  prefix?: string;
  containers?: number;
}

export interface ContainerNs {
  ns: Netns;
  ip: string;
  /** veth name on the node side (in the node ns). */
  hostDev: string;
}

export const UPLINK = { dev: 'up0', nodeIp: '198.18.0.1', clientIp: '198.18.0.2', prefix: 24 } as const;
export const BRIDGE = { dev: 'br0', gatewayIp: '198.19.0.1', subnet: '198.19.0.0/24', prefix: 24 } as const;

export class Topology {
  private constructor(
    readonly id: string,
    readonly client: Netns,
    readonly node: Netns,
    readonly containers: ContainerNs[],
  ) {}

  static async create(opts: TopologyOptions = {}): Promise<Topology> {
    const id = randomBytes(3).toString('hex');
    const base = `${opts.prefix ?? 'bn'}-${id}`;
    const created: Netns[] = [];
    try {
      const client = await Netns.create(`${base}-cli`);
      created.push(client);
      const node = await Netns.create(`${base}-node`);
      created.push(node);

      await node.ip('link', 'add', UPLINK.dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client.name);
      await node.ip('addr', 'add', `${UPLINK.nodeIp}/${UPLINK.prefix}`, 'dev', UPLINK.dev);
      await node.ip('link', 'set', UPLINK.dev, 'up');
      await client.ip('addr', 'add', `${UPLINK.clientIp}/${UPLINK.prefix}`, 'dev', 'eth0');
      await client.ip('link', 'set', 'eth0', 'up');
      await client.ip('route', 'add', 'default', 'via', UPLINK.nodeIp);

      await node.sysctl('net.ipv4.ip_forward', '1');
      await node.ip('link', 'add', BRIDGE.dev, 'type', 'bridge');
      await node.ip('addr', 'add', `${BRIDGE.gatewayIp}/${BRIDGE.prefix}`, 'dev', BRIDGE.dev);
      await node.ip('link', 'set', BRIDGE.dev, 'up');

      const containers: ContainerNs[] = [];
      for (let i = 0; i < (opts.containers ?? 1); i++) {
        const ns = await Netns.create(`${base}-c${i}`);
        created.push(ns);
        const hostDev = `vc${i}`;
        const ip = `198.19.0.${i + 2}`;
        await node.ip('link', 'add', hostDev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name);
        await node.ip('link', 'set', hostDev, 'master', BRIDGE.dev);
        await node.ip('link', 'set', hostDev, 'up');
        await ns.ip('addr', 'add', `${ip}/${BRIDGE.prefix}`, 'dev', 'eth0');
        await ns.ip('link', 'set', 'eth0', 'up');
        await ns.ip('route', 'add', 'default', 'via', BRIDGE.gatewayIp);
        containers.push({ ns, ip, hostDev });
      }
      return new Topology(id, client, node, containers);
    } catch (e) {
      await Promise.all(created.map((n) => n.destroy()));
      throw e;
    }
  }

  get namespaces(): Netns[] {
    return [this.client, this.node, ...this.containers.map((c) => c.ns)];
  }

  async destroy(): Promise<void> {
    await Promise.all(this.namespaces.map((n) => n.destroy()));
  }
}
