/**
 * Container-side forwarding and policy with real packets between namespaces:
 * same-network delivery by redirect_peer (ICC on/off), anti-spoofing,
 * isolation between networks, internal networks, and published ports reached
 * from containers through the node (another container, another network, and
 * the container's own port: hairpin), TCP and UDP.
 *
 *   client ns  eth0 198.18.0.2 ---- up0 198.18.0.1                 (node ns)
 *   network A  br0 198.19.0.1/24: c0 .2, c1 .3 (servers :80 :53), c2 .4
 *   network B  br1 198.20.0.1/24: d0 .2
 *   network I  br2 198.22.0.1/24: i0 .2 (internal in some tests)
 *
 * The endpoint maps (bpfnet_endpoints, bpfnet_ifaces) come from DesiredState
 * (ip, mac, networkId, ifindex); they are also written here with TypedMap
 * after every apply (the same values), so the test does not depend on which
 * dataplane version programs them. No uplink address is given, so nothing is
 * masqueraded: the client routes back to the containers through the node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { BRIDGE, Topology, UPLINK } from '../../src/lab/topology.js';
import { Netns } from '../../src/lab/netns.js';
import { ECHO_SCRIPT, firewallRules, probe, waitReady } from '../../src/lab/lab.js';
import { EbpfDataplane } from '../../src/dataplane/ebpf/dataplane.js';
import type { DataplaneEndpoint, DataplaneNetwork, DesiredState } from '../../src/dataplane/types.js';
import { readPerCpu, TypedMap } from '../../src/maps/map.js';
import { MetricId } from '../../src/maps/generated/abi.js';

interface Ctr { name: string; ns: Netns; ip: string; hostDev: string; mac: string; ifindex: number; netId: number }

interface NetDef { id: number; subnet: string; gateway: string; bridge: string }
const NET_A: NetDef = { id: 1, subnet: BRIDGE.subnet, gateway: BRIDGE.gatewayIp, bridge: BRIDGE.dev };
const NET_B: NetDef = { id: 2, subnet: '198.20.0.0/24', gateway: '198.20.0.1', bridge: 'br1' };
const NET_I: NetDef = { id: 3, subnet: '198.22.0.0/24', gateway: '198.22.0.1', bridge: 'br2' };

function network(n: NetDef, o: Partial<DataplaneNetwork> = {}): DataplaneNetwork {
  return { id: n.id, subnet: n.subnet, gateway: n.gateway, bridge: n.bridge, driver: 'bridge', internal: false, icc: true, masquerade: true, gatewayMode: 'nat', ...o };
}

async function linkInfo(ns: Netns, dev: string): Promise<{ ifindex: number; address: string }> {
  const { stdout } = await ns.ip('-j', 'link', 'show', dev);
  const [l] = JSON.parse(stdout) as { ifindex: number; address: string }[];
  return l!;
}

/** true when one echo request gets its reply within 2 s. */
async function pings(ns: Netns, ip: string, extra: string[] = []): Promise<boolean> {
  try {
    await ns.exec('ping', ['-n', '-q', '-c', '1', '-W', '2', ...extra, ip], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

describe('container forwarding and policy through the eBPF dataplane', () => {
  let topo: Topology;
  let dp: EbpfDataplane;
  const extra: Netns[] = [];
  const ctrs: Record<string, Ctr> = {};
  let nets: DataplaneNetwork[];

  function state(): DesiredState {
    const c1 = ctrs.c1!;
    return {
      uplinks: [UPLINK.dev],
      // Only the uplink's address: the gateways count as node addresses by themselves.
      nodeAddresses: [UPLINK.nodeIp],
      endpoints: Object.values(ctrs).map((c): DataplaneEndpoint => ({ hostDev: c.hostDev, ifindex: c.ifindex, ip: c.ip, mac: c.mac, networkId: c.netId })),
      ports: [
        { hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: c1.ip, containerPort: 80 },
        { hostIp: '0.0.0.0', hostPort: 8053, proto: 'udp', containerIp: c1.ip, containerPort: 53 },
      ],
      networks: nets,
    };
  }

  async function program(): Promise<void> {
    await dp.apply(state());
    const eps = TypedMap.open(dp.mapDir, 'bpfnet_endpoints');
    const ifs = TypedMap.open(dp.mapDir, 'bpfnet_ifaces');
    try {
      for (const c of Object.values(ctrs)) {
        const info = { addr: c.ip, ifindex: c.ifindex, mac: c.mac, net_id: c.netId, flags: 0 };
        await eps.set({ addr: c.ip }, info);
        await ifs.set({ ifindex: c.ifindex }, info);
      }
    } finally {
      eps.close();
      ifs.close();
    }
  }

  async function metric(name: keyof typeof MetricId): Promise<bigint> {
    const m = new Map(await readPerCpu(dp.mapDir, 'bpfnet_metrics'));
    return m.get(MetricId[name])?.packets ?? 0n;
  }

  /** A container on a bridge of the node namespace. */
  async function addCtr(name: string, bridge: string, ip: string, gateway: string, netId: number): Promise<void> {
    const ns = await Netns.create(`bnf-${topo.id}-${name}`);
    extra.push(ns);
    const hostDev = `v${name}`;
    await topo.node.ip('link', 'add', hostDev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name);
    await topo.node.ip('link', 'set', hostDev, 'master', bridge);
    await topo.node.ip('link', 'set', hostDev, 'up');
    await ns.ip('addr', 'add', `${ip}/24`, 'dev', 'eth0');
    await ns.ip('link', 'set', 'eth0', 'up');
    await ns.ip('route', 'add', 'default', 'via', gateway);
    const inner = await linkInfo(ns, 'eth0');
    const outer = await linkInfo(topo.node, hostDev);
    ctrs[name] = { name, ns, ip, hostDev, mac: inner.address, ifindex: outer.ifindex, netId };
  }

  beforeAll(async () => {
    topo = await Topology.create({ prefix: 'bnf', containers: 3 });
    try {
      for (const [i, c] of topo.containers.entries()) {
        const inner = await linkInfo(c.ns, 'eth0');
        const outer = await linkInfo(topo.node, c.hostDev);
        ctrs[`c${i}`] = { name: `c${i}`, ns: c.ns, ip: c.ip, hostDev: c.hostDev, mac: inner.address, ifindex: outer.ifindex, netId: NET_A.id };
      }
      for (const n of [NET_B, NET_I]) {
        await topo.node.ip('link', 'add', n.bridge, 'type', 'bridge');
        await topo.node.ip('addr', 'add', `${n.gateway}/24`, 'dev', n.bridge);
        await topo.node.ip('link', 'set', n.bridge, 'up');
      }
      await addCtr('d0', NET_B.bridge, '198.20.0.2', NET_B.gateway, NET_B.id);
      await addCtr('i0', NET_I.bridge, '198.22.0.2', NET_I.gateway, NET_I.id);

      const c1 = ctrs.c1!;
      await Promise.all([
        waitReady(c1.ns.spawn(process.execPath, [ECHO_SCRIPT, '80', 'c1']), 'c1:80'),
        waitReady(c1.ns.spawn(process.execPath, [ECHO_SCRIPT, '53', 'c1']), 'c1:53'),
      ]);
      dp = new EbpfDataplane({ root: `/sys/fs/bpf/bpfnet-test-${randomBytes(4).toString('hex')}`, netns: topo.node.path, nodeLocal: false });
      nets = [network(NET_A), network(NET_B), network(NET_I)];
      await program();
    } catch (e) {
      await dp?.teardown(state()).catch(() => undefined);
      await Promise.all(extra.map((n) => n.destroy()));
      await topo?.destroy();
      throw e;
    }
  });

  afterAll(async () => {
    if (dp) await dp.teardown(state()).catch(() => undefined);
    await Promise.all(extra.map((n) => n.destroy()));
    await topo?.destroy();
  });

  describe('same network', () => {
    it('ping and TCP between two containers work with ICC on, delivered by redirect_peer', async () => {
      const before = await metric('METRIC_REDIRECT');
      expect(await pings(ctrs.c0!.ns, ctrs.c1!.ip)).toBe(true);
      expect(await probe(ctrs.c0!.ns, 'tcp', ctrs.c1!.ip, 80, 'direct')).toMatch(/^c1 tcp\/80 saw 198\.19\.0\.2:\d+: direct$/);
      expect(await probe(ctrs.c0!.ns, 'udp', ctrs.c1!.ip, 53, 'direct-udp')).toMatch(/^c1 udp\/53 saw 198\.19\.0\.2:\d+: direct-udp$/);
      // both directions of every exchange went through BPF
      expect(await metric('METRIC_REDIRECT') - before).toBeGreaterThanOrEqual(6n);
    });

    it('ICC off: ping and TCP between two containers fail and are counted; the gateway still answers; ICC on again works', async () => {
      nets = [network(NET_A, { icc: false }), network(NET_B), network(NET_I)];
      try {
        await program();
        const before = await metric('METRIC_DROP_ICC');
        expect(await pings(ctrs.c0!.ns, ctrs.c1!.ip)).toBe(false);
        await expect(probe(ctrs.c0!.ns, 'tcp', ctrs.c1!.ip, 80)).rejects.toThrow();
        expect(await metric('METRIC_DROP_ICC') - before).toBeGreaterThanOrEqual(2n);
        expect(await pings(ctrs.c0!.ns, NET_A.gateway)).toBe(true);
        // a published port is an explicit exposure: reachable through the node even with ICC off
        expect(await probe(ctrs.c0!.ns, 'tcp', UPLINK.nodeIp, 8080, 'via-node')).toMatch(/^c1 tcp\/80 saw 198\.19\.0\.2:\d+: via-node$/);
      } finally {
        nets = [network(NET_A), network(NET_B), network(NET_I)];
        await program();
      }
      expect(await pings(ctrs.c0!.ns, ctrs.c1!.ip)).toBe(true);
    });
  });

  describe('anti-spoofing', () => {
    it('a second address inside the container cannot be used as source: dropped and counted', async () => {
      const c0 = ctrs.c0!;
      await c0.ns.ip('addr', 'add', '198.19.0.50/24', 'dev', 'eth0');
      try {
        const before = await metric('METRIC_DROP_SPOOF');
        expect(await pings(c0.ns, ctrs.c1!.ip, ['-I', '198.19.0.50'])).toBe(false);
        expect(await pings(c0.ns, NET_A.gateway, ['-I', '198.19.0.50'])).toBe(false);
        expect(await metric('METRIC_DROP_SPOOF') - before).toBeGreaterThanOrEqual(2n);
      } finally {
        await c0.ns.ip('addr', 'del', '198.19.0.50/24', 'dev', 'eth0');
      }
      expect(await pings(c0.ns, ctrs.c1!.ip)).toBe(true);
    });

    it('a changed MAC inside the container is dropped and counted', async () => {
      const c2 = ctrs.c2!;
      await c2.ns.ip('link', 'set', 'eth0', 'address', '02:00:00:00:66:66');
      try {
        const before = await metric('METRIC_DROP_SPOOF');
        expect(await pings(c2.ns, ctrs.c1!.ip)).toBe(false);
        expect(await metric('METRIC_DROP_SPOOF') - before).toBeGreaterThanOrEqual(1n);
      } finally {
        await c2.ns.ip('link', 'set', 'eth0', 'address', c2.mac);
        await c2.ns.ip('route', 'replace', 'default', 'via', NET_A.gateway).catch(() => undefined);
      }
      expect(await pings(c2.ns, ctrs.c1!.ip)).toBe(true);
    });
  });

  describe('between networks', () => {
    it('isolation: another network\'s container is unreachable, counted', async () => {
      const before = await metric('METRIC_DROP_ISOLATION');
      expect(await pings(ctrs.d0!.ns, ctrs.c0!.ip)).toBe(false);
      await expect(probe(ctrs.d0!.ns, 'tcp', ctrs.c1!.ip, 80)).rejects.toThrow();
      expect(await metric('METRIC_DROP_ISOLATION') - before).toBeGreaterThanOrEqual(2n);
      expect(await pings(ctrs.d0!.ns, NET_B.gateway)).toBe(true);
    });

    it('internal: no way out of the subnet (client ns unreachable, counted), its gateway still reachable', async () => {
      const i0 = ctrs.i0!;
      // Gateway mode routed (no masquerade, outside may reach container IPs),
      // so the client's reply comes back by plain routing: the only thing that
      // changes between the two halves is the internal flag.
      const routed = { gatewayMode: 'routed', masquerade: false } as const;
      nets = [network(NET_A), network(NET_B), network(NET_I, routed)];
      await program();
      expect(await pings(i0.ns, UPLINK.clientIp), 'not internal yet: the client answers').toBe(true);
      nets = [network(NET_A), network(NET_B), network(NET_I, { ...routed, internal: true })];
      try {
        await program();
        const before = await metric('METRIC_DROP_INTERNAL');
        expect(await pings(i0.ns, UPLINK.clientIp)).toBe(false);
        expect(await pings(i0.ns, UPLINK.nodeIp)).toBe(false);
        await expect(probe(i0.ns, 'tcp', UPLINK.nodeIp, 8080)).rejects.toThrow();
        expect(await metric('METRIC_DROP_INTERNAL') - before).toBeGreaterThanOrEqual(3n);
        expect(await pings(i0.ns, NET_I.gateway)).toBe(true);
      } finally {
        nets = [network(NET_A), network(NET_B), network(NET_I)];
        await program();
      }
    });
  });

  describe('published ports reached from containers', () => {
    for (const proto of ['tcp', 'udp'] as const) {
      const port = proto === 'tcp' ? 8080 : 8053;
      const backendPort = proto === 'tcp' ? 80 : 53;

      it(`${proto}: another container of the same network through the node IP, its source preserved`, async () => {
        expect(await probe(ctrs.c0!.ns, proto, UPLINK.nodeIp, port, `${proto}-node`))
          .toMatch(new RegExp(`^c1 ${proto}/${backendPort} saw 198\\.19\\.0\\.2:\\d+: ${proto}-node$`));
      });

      it(`${proto}: through the network's gateway address`, async () => {
        expect(await probe(ctrs.c0!.ns, proto, NET_A.gateway, port, `${proto}-gw`))
          .toMatch(new RegExp(`^c1 ${proto}/${backendPort} saw 198\\.19\\.0\\.2:\\d+: ${proto}-gw$`));
      });

      it(`${proto}: a container on another network through the node IP (allowed: published)`, async () => {
        expect(await probe(ctrs.d0!.ns, proto, UPLINK.nodeIp, port, `${proto}-other`))
          .toMatch(new RegExp(`^c1 ${proto}/${backendPort} saw 198\\.20\\.0\\.2:\\d+: ${proto}-other$`));
      });

      it(`${proto}: hairpin, the container reaches its own published port and sees its gateway as the client`, async () => {
        const before = await metric('METRIC_HAIRPIN');
        expect(await probe(ctrs.c1!.ns, proto, UPLINK.nodeIp, port, `${proto}-self`))
          .toMatch(new RegExp(`^c1 ${proto}/${backendPort} saw 198\\.19\\.0\\.1:\\d+: ${proto}-self$`));
        expect(await metric('METRIC_HAIRPIN') - before).toBeGreaterThanOrEqual(1n);
      });
    }

    it('the external client still gets through, and the per-port counters add it all up', async () => {
      expect(await probe(topo.client, 'tcp', UPLINK.nodeIp, 8080, 'ext')).toMatch(/^c1 tcp\/80 saw 198\.18\.0\.2:\d+: ext$/);
      const stats = TypedMap.open(dp.mapDir, 'bpfnet_port_stats');
      try {
        const tcp = await stats.get({ addr: '0.0.0.0', port: 8080, proto: 6 });
        const udp = await stats.get({ addr: '0.0.0.0', port: 8053, proto: 17 });
        // at least the SYN and one data segment of each of the 5 TCP exchanges
        expect(tcp?.packets ?? 0n).toBeGreaterThanOrEqual(10n);
        expect(udp?.packets ?? 0n).toBeGreaterThanOrEqual(4n);
        expect(tcp!.bytes).toBeGreaterThan(tcp!.packets * 54n);
      } finally {
        stats.close();
      }
      expect(await metric('METRIC_REWRITE_FAIL')).toBe(0n);
    });

    it('no iptables or nft rule exists in the node namespace', async () => {
      expect(await firewallRules(topo.node)).toEqual({ iptablesRules: 0, nftRules: 0 });
    });
  });
});
