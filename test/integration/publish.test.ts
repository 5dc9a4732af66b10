/**
 * The first real packet path: a TCP and a UDP port published on the node reach
 * a server in the container namespace through BPF DNAT, replies come back
 * through reverse translation, the server sees the client's own address, and
 * the node's firewall holds no rule at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Topology, UPLINK } from '../../src/lab/topology.js';
import { ECHO_SCRIPT, firewallRules, probe, waitReady } from '../../src/lab/lab.js';
import { EbpfDataplane } from '../../src/dataplane/ebpf/dataplane.js';
import type { DesiredState } from '../../src/dataplane/types.js';
import { listTc } from '../../src/loader/tc.js';
import { readPerCpu, TypedMap } from '../../src/maps/map.js';
import { MetricId } from '../../src/maps/generated/abi.js';

describe('published ports through the eBPF dataplane', () => {
  let topo: Topology;
  let dp: EbpfDataplane;
  let state: DesiredState;

  beforeAll(async () => {
    topo = await Topology.create({ prefix: 'bnt', containers: 2 });
    dp = new EbpfDataplane({ root: `/sys/fs/bpf/bpfnet-test-${randomBytes(4).toString('hex')}`, netns: topo.node.path });
    const [c0, c1] = topo.containers;
    state = {
      uplinks: [UPLINK.dev],
      nodeAddresses: [UPLINK.nodeIp],
      endpoints: topo.containers.map((c) => ({ hostDev: c.hostDev })),
      ports: [
        { hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: c0!.ip, containerPort: 80 },
        { hostIp: '0.0.0.0', hostPort: 8053, proto: 'udp', containerIp: c0!.ip, containerPort: 53 },
        { hostIp: UPLINK.nodeIp, hostPort: 9090, proto: 'tcp', containerIp: c1!.ip, containerPort: 90 },
      ],
    };
    await Promise.all([
      waitReady(c0!.ns.spawn(process.execPath, [ECHO_SCRIPT, '80', 'c0']), 'c0:80'),
      waitReady(c0!.ns.spawn(process.execPath, [ECHO_SCRIPT, '53', 'c0']), 'c0:53'),
      waitReady(c1!.ns.spawn(process.execPath, [ECHO_SCRIPT, '90', 'c1']), 'c1:90'),
    ]);
    await dp.apply(state);
  });

  afterAll(async () => {
    await dp?.teardown(state).catch(() => undefined);
    await topo?.destroy();
  });

  it('TCP from the client to node:8080 reaches container 0 with the client address preserved', async () => {
    const reply = await probe(topo.client, 'tcp', UPLINK.nodeIp, 8080, 'tcp-hello');
    expect(reply).toMatch(new RegExp(`^c0 tcp/80 saw ${UPLINK.clientIp.replace(/\./g, '\\.')}:\\d+: tcp-hello$`));
  });

  it('UDP from the client to node:8053 reaches container 0 and the reply comes from node:8053', async () => {
    const reply = await probe(topo.client, 'udp', UPLINK.nodeIp, 8053, 'udp-hello');
    // The probe only accepts a reply on its connected 4-tuple (node:8053), so a reply
    // that escaped reverse translation would time out instead.
    expect(reply).toMatch(new RegExp(`^c0 udp/53 saw ${UPLINK.clientIp.replace(/\./g, '\\.')}:\\d+: udp-hello$`));
  });

  it('a port published on one node address routes to its own container', async () => {
    expect(await probe(topo.client, 'tcp', UPLINK.nodeIp, 9090, 'x')).toMatch(/^c1 tcp\/90 saw 198\.18\.0\.2:/);
  });

  it('a port that is not published is not translated', async () => {
    await expect(probe(topo.client, 'tcp', UPLINK.nodeIp, 8081)).rejects.toThrow(/ECONNREFUSED|no tcp reply/);
  });

  it('many connections in a row all get through (no stale state between flows)', async () => {
    for (let i = 0; i < 20; i++) expect(await probe(topo.client, 'tcp', UPLINK.nodeIp, 8080, `n${i}`)).toContain(`: n${i}`);
  });

  it('counts translations and records reply state', async () => {
    const metrics = new Map(await readPerCpu(dp.mapDir, 'bpfnet_metrics'));
    expect(metrics.get(MetricId.METRIC_DNAT)!.packets).toBeGreaterThan(0n);
    expect(metrics.get(MetricId.METRIC_RNAT)!.packets).toBeGreaterThan(0n);
    expect(metrics.get(MetricId.METRIC_REWRITE_FAIL)!.packets).toBe(0n);
    const ct = TypedMap.open(dp.mapDir, 'bpfnet_nat_ct');
    try {
      const rows = await ct.toArray();
      expect(rows.some(([k, v]) => k.daddr === UPLINK.clientIp && v.orig_port === 8053 && k.proto === 17)).toBe(true);
    } finally {
      ct.close();
    }
  });

  it('apply is idempotent: a second apply changes nothing and leaves one filter per device', async () => {
    const report = await dp.apply(state);
    expect(report.ports).toEqual({ added: 0, updated: 0, removed: 0 });
    for (const dev of [UPLINK.dev, ...topo.containers.map((c) => c.hostDev)]) {
      expect(await listTc({ netns: topo.node.path, dev, direction: 'ingress' })).toHaveLength(1);
    }
    expect(await probe(topo.client, 'tcp', UPLINK.nodeIp, 8080)).toContain('c0 tcp/80');
  });

  it('unpublishing a port stops its translation and leaves the others working', async () => {
    const fewer = { ...state, ports: state.ports.filter((p) => p.hostPort !== 9090) };
    expect((await dp.apply(fewer)).ports).toEqual({ added: 0, updated: 0, removed: 1 });
    await expect(probe(topo.client, 'tcp', UPLINK.nodeIp, 9090)).rejects.toThrow();
    expect(await probe(topo.client, 'tcp', UPLINK.nodeIp, 8080)).toContain('c0 tcp/80');
    await dp.apply(state);
  });

  it('bad input is refused before anything changes', async () => {
    const bad = { ...state, ports: [...state.ports, { ...state.ports[0]!, containerIp: 'not-an-ip' }] };
    await expect(dp.apply(bad)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    const ports = TypedMap.open(dp.mapDir, 'bpfnet_ports');
    try {
      expect(await ports.toArray()).toHaveLength(state.ports.length);
    } finally {
      ports.close();
    }
  });

  it('no iptables or nft rule exists in the node namespace', async () => {
    expect(await firewallRules(topo.node)).toEqual({ iptablesRules: 0, nftRules: 0 });
    const save = await topo.node.exec('iptables-save').catch(() => ({ stdout: '' }));
    expect(save.stdout).not.toMatch(/bpfnet|DNAT/);
  });
});
