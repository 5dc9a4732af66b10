/**
 * Masquerade with real packets: a container reaches "the internet" (the
 * client namespace, with 203.0.113.1 on its loopback) by TCP, UDP and ping;
 * the client sees the node's uplink address as the source, replies come back
 * through reverse SNAT (redirected into the container), state is in
 * bpfnet_snat and is garbage-collected once expired. The client blackholes
 * the container subnet, so an untranslated packet could never be answered.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE, Topology, UPLINK, type ContainerNs } from '../../src/lab/topology.js';
import { ECHO_SCRIPT, firewallRules, probe, waitReady } from '../../src/lab/lab.js';
import { EbpfDataplane } from '../../src/dataplane/ebpf/dataplane.js';
import type { DataplaneNetwork, DesiredState } from '../../src/dataplane/types.js';
import { detachTc, listTc } from '../../src/loader/tc.js';
import { readPerCpu, TypedMap } from '../../src/maps/map.js';
import { MetricId } from '../../src/maps/generated/abi.js';
import { NatGc } from '../../src/dataplane/ebpf/gc.js';
import type { Netns } from '../../src/lab/netns.js';

const INTERNET = '203.0.113.1';
const HOST_IPV4 = '198.18.0.3';
const ECHO_PORT = 7000;
const RECORD_PORT = 7001;

/** Prints "from ADDR:PORT MSG" per datagram (the source the "internet" sees). */
const RECORDER = `require('dgram').createSocket('udp4')
  .on('message', (m, r) => console.log('from ' + r.address + ':' + r.port + ' ' + m))
  .bind(${RECORD_PORT}, () => console.log('ready'));`;
const sendUdp = (msg: string) => `const s = require('dgram').createSocket('udp4');
  s.bind(0, () => s.send(${JSON.stringify(msg)}, ${RECORD_PORT}, '${INTERNET}', () => s.close()));`;

async function link(ns: Netns, dev: string): Promise<{ ifindex: number; address: string }> {
  const { stdout } = await ns.ip('-j', 'link', 'show', 'dev', dev);
  const [l] = JSON.parse(stdout) as { ifindex: number; address: string }[];
  return l!;
}

async function metric(mapDir: string, id: number): Promise<bigint> {
  return new Map(await readPerCpu(mapDir, 'bpfnet_metrics')).get(id)?.packets ?? 0n;
}

describe('masquerade through the eBPF dataplane', () => {
  let topo: Topology;
  let c: ContainerNs;
  let dp: EbpfDataplane;
  let state: DesiredState;
  let recorder: ChildProcess;
  const seen: string[] = [];
  const network: DataplaneNetwork = {
    id: 1, subnet: BRIDGE.subnet, gateway: BRIDGE.gatewayIp, bridge: BRIDGE.dev, driver: 'bridge',
    internal: false, icc: true, masquerade: true, gatewayMode: 'nat',
  };

  /** The dataplane programs bpfnet_nets/uplinks/endpoints and attaches to_uplink at the uplink's egress. */
  async function program(net: DataplaneNetwork): Promise<void> {
    await dp.apply({ ...state, networks: [net] });
  }

  async function snatRows() {
    const m = TypedMap.open(dp.mapDir, 'bpfnet_snat');
    try {
      return await m.toArray();
    } finally {
      m.close();
    }
  }

  /** Send one datagram from the container; resolves with the line the recorder printed for it. */
  async function recordFromContainer(tag: string): Promise<string> {
    await c.ns.exec(process.execPath, ['-e', sendUdp(tag)], { timeout: 10_000 });
    for (let i = 0; i < 300; i++) {
      const line = seen.find((l) => l.endsWith(` ${tag}`));
      if (line) return line;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`the client never received ${tag}`);
  }

  beforeAll(async () => {
    topo = await Topology.create({ prefix: 'bnm', containers: 1 });
    c = topo.containers[0]!;
    await topo.client.ip('addr', 'add', `${INTERNET}/32`, 'dev', 'lo');
    await topo.client.ip('route', 'add', 'blackhole', BRIDGE.subnet);
    // Unconnected UDP servers answer from the address routing picks: make that the "internet" one.
    await topo.client.ip('route', 'replace', `198.18.0.0/${UPLINK.prefix}`, 'dev', 'eth0', 'src', INTERNET);
    await topo.node.ip('route', 'add', '203.0.113.0/24', 'via', UPLINK.clientIp);
    await topo.node.ip('addr', 'add', `${HOST_IPV4}/${UPLINK.prefix}`, 'dev', UPLINK.dev);

    recorder = topo.client.spawn(process.execPath, ['-e', RECORDER]);
    recorder.stdout?.on('data', (d: Buffer) => seen.push(...d.toString().split('\n').filter((l) => l.startsWith('from '))));
    await Promise.all([
      waitReady(topo.client.spawn(process.execPath, [ECHO_SCRIPT, String(ECHO_PORT), 'internet']), 'internet echo'),
      waitReady(recorder, 'recorder'),
    ]);

    const up = await link(topo.node, UPLINK.dev);
    const host = await link(topo.node, c.hostDev);
    const eth = await link(c.ns, 'eth0');
    dp = new EbpfDataplane({ root: `/sys/fs/bpf/bpfnet-test-${randomBytes(4).toString('hex')}`, netns: topo.node.path, nodeLocal: false });
    state = {
      uplinks: [UPLINK.dev],
      uplinkIndex: { [UPLINK.dev]: up.ifindex },
      uplinkAddress: { [UPLINK.dev]: UPLINK.nodeIp },
      nodeAddresses: [UPLINK.nodeIp, HOST_IPV4],
      endpoints: [{ hostDev: c.hostDev, ifindex: host.ifindex, ip: c.ip, mac: eth.address, networkId: network.id }],
      ports: [],
      networks: [network],
    };
    await program(network);
  });

  afterAll(async () => {
    if (topo) await detachTc({ netns: topo.node.path, dev: UPLINK.dev, direction: 'egress' }).catch(() => undefined);
    await dp?.teardown(state).catch(() => undefined);
    await topo?.destroy();
  });

  it('to_uplink is attached at the uplink\'s tc egress', async () => {
    const egress = await listTc({ netns: topo.node.path, dev: UPLINK.dev, direction: 'egress' });
    expect(egress.map((a) => a.progName)).toEqual(['to_uplink']);
  });

  it('TCP: the internet sees the node\'s address, the reply reaches the container, state recorded', async () => {
    const reply = await probe(c.ns, 'tcp', INTERNET, ECHO_PORT, 'tcp-out');
    const m = /^internet tcp\/7000 saw ([\d.]+):(\d+): tcp-out$/.exec(reply);
    expect(m?.[1], reply).toBe(UPLINK.nodeIp);
    const natPort = Number(m![2]);
    const rows = await snatRows();
    const out = rows.find(([k]) => k.dir === 1 && k.proto === 6 && k.saddr === c.ip && k.daddr === INTERNET && k.dport === ECHO_PORT);
    expect(out?.[1]).toMatchObject({ addr: UPLINK.nodeIp, port: natPort });
    expect(out![1].state & 0x2, 'REPLY seen').toBe(0x2);
    const back = rows.find(([k]) => k.dir === 2 && k.proto === 6 && k.saddr === INTERNET && k.sport === ECHO_PORT && k.dport === natPort);
    expect(back?.[1]).toMatchObject({ addr: c.ip, port: out![0].sport });
  });

  it('UDP: translated out and back', async () => {
    const reply = await probe(c.ns, 'udp', INTERNET, ECHO_PORT, 'udp-out');
    expect(reply).toMatch(new RegExp(`^internet udp/7000 saw ${UPLINK.nodeIp.replace(/\./g, '\\.')}:\\d+: udp-out$`));
    expect((await snatRows()).some(([k]) => k.proto === 17 && k.dir === 1 && k.saddr === c.ip)).toBe(true);
  });

  it('ping: the echo id is translated and the reply comes back', async () => {
    await c.ns.exec('ping', ['-c', '2', '-i', '0.2', '-W', '3', INTERNET], { timeout: 15_000 });
    const rows = await snatRows();
    const echo = rows.find(([k]) => k.proto === 1 && k.dir === 1 && k.saddr === c.ip && k.daddr === INTERNET);
    expect(echo?.[1].addr).toBe(UPLINK.nodeIp);
    expect(echo![1].state & 0x2, 'REPLY seen').toBe(0x2);
  });

  it('a one-way datagram arrives from the node\'s address', async () => {
    expect(await recordFromContainer('masq-on')).toMatch(new RegExp(`^from ${UPLINK.nodeIp.replace(/\./g, '\\.')}:\\d+ masq-on$`));
  });

  it('counts translations; replies were redirected into the container; no drops', async () => {
    expect(await metric(dp.mapDir, MetricId.METRIC_SNAT)).toBeGreaterThan(0n);
    expect(await metric(dp.mapDir, MetricId.METRIC_RSNAT)).toBeGreaterThan(0n);
    expect(await metric(dp.mapDir, MetricId.METRIC_REDIRECT)).toBeGreaterThan(0n);
    for (const id of [MetricId.METRIC_DROP_SNAT_NO_PORT, MetricId.METRIC_DROP_SNAT_STATE, MetricId.METRIC_REWRITE_FAIL]) {
      expect(await metric(dp.mapDir, id)).toBe(0n);
    }
  });

  it('GC keeps live flows and removes them once expired (fake clock)', async () => {
    const before = await snatRows();
    expect(before.length).toBeGreaterThanOrEqual(8);
    const now = await new NatGc({ mapDir: dp.mapDir }).runOnce();
    expect(now.deleted.snat).toBe(0);
    const later = await new NatGc({ mapDir: dp.mapDir, clock: () => process.hrtime.bigint() + 7n * 3600n * 1_000_000_000n }).runOnce();
    expect(later.deleted.snat).toBe(before.length);
    expect(await snatRows()).toEqual([]);
    // and new flows simply set themselves up again
    expect(await probe(c.ns, 'tcp', INTERNET, ECHO_PORT, 'after-gc')).toMatch(/saw 198\.18\.0\.1:\d+: after-gc$/);
  });

  it('com.docker.network.host_ipv4: new flows leave from that address', async () => {
    await program({ ...network, snatIp: HOST_IPV4 });
    try {
      expect(await probe(c.ns, 'tcp', INTERNET, ECHO_PORT, 'hostip')).toMatch(/^internet tcp\/7000 saw 198\.18\.0\.3:\d+: hostip$/);
      expect(await recordFromContainer('hostip-udp')).toMatch(/^from 198\.18\.0\.3:\d+ hostip-udp$/);
    } finally {
      await program(network);
    }
  });

  it('enable_ip_masquerade=false: the container\'s own address goes out; replies to it are not let in (gateway mode nat)', async () => {
    await program({ ...network, masquerade: false });
    await topo.client.ip('route', 'del', 'blackhole', BRIDGE.subnet);
    try {
      expect(await recordFromContainer('masq-off')).toMatch(new RegExp(`^from ${c.ip.replace(/\./g, '\\.')}:\\d+ masq-off$`));
      const drops = await metric(dp.mapDir, MetricId.METRIC_DROP_DIRECT);
      await expect(probe(c.ns, 'udp', INTERNET, ECHO_PORT, 'no-reply')).rejects.toThrow();
      expect(await metric(dp.mapDir, MetricId.METRIC_DROP_DIRECT)).toBeGreaterThan(drops);
    } finally {
      await topo.client.ip('route', 'add', 'blackhole', BRIDGE.subnet);
      await program(network);
    }
    expect(await recordFromContainer('masq-back-on')).toMatch(/^from 198\.18\.0\.1:\d+ masq-back-on$/);
  });

  it('no iptables or nft rule in the node namespace', async () => {
    expect(await firewallRules(topo.node)).toEqual({ iptablesRules: 0, nftRules: 0 });
  });
});
