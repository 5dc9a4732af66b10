/**
 * XDP acceleration of published ports, with real packets: client ns -> node
 * ns (xdp_uplink on the uplink veth, native mode, plus the tc programs
 * EbpfDataplane.apply() attaches) -> container. TCP and UDP through a
 * published port, the client's source address preserved, replies back through
 * the unchanged container-side reverse NAT; detaching XDP leaves tc doing the
 * same job.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EbpfDataplane } from '../../src/dataplane/ebpf/dataplane.js';
import { attachUplinkXdp, detachUplinkXdp, uplinkXdp } from '../../src/dataplane/ebpf/xdp.js';
import type { DesiredState } from '../../src/dataplane/types.js';
import { ECHO_SCRIPT, probe, waitReady } from '../../src/lab/lab.js';
import { BRIDGE, Topology, UPLINK } from '../../src/lab/topology.js';
import { listTc } from '../../src/loader/tc.js';
import { removeRoot } from '../../src/loader/load.js';
import { MetricId } from '../../src/maps/generated/abi.js';
import { readPerCpu, TypedMap } from '../../src/maps/map.js';
import { BPF_SRC_DIR } from '../../src/util/paths.js';

const CLIENT_RE = UPLINK.clientIp.replace(/\./g, '\\.');

/** Does tc's direct-access check in uplink.c already consult dnat_flow_known()? */
const uplinkKnowsXdp = readFileSync(join(BPF_SRC_DIR, 'uplink.c'), 'utf8').includes('dnat_flow_known');

describe('XDP DNAT on the uplink (real packets)', () => {
  let topo: Topology | undefined;
  let dp: EbpfDataplane | undefined;
  let state: DesiredState;
  const root = `/sys/fs/bpf/bpfnet-test-xdp-${randomBytes(4).toString('hex')}`;

  const metrics = async () => new Map(await readPerCpu(dp!.mapDir, 'bpfnet_metrics'));
  const metric = (m: Map<number, { packets: bigint }>, id: number) => m.get(id)?.packets ?? 0n;

  beforeAll(async () => {
    topo = await Topology.create({ prefix: 'bnx', containers: 1 });
    const c0 = topo.containers[0]!;
    const link = async (ns: { ip: (...a: string[]) => Promise<{ stdout: string }> }, dev: string) =>
      (JSON.parse((await ns.ip('-j', 'link', 'show', dev)).stdout) as { ifindex: number; address: string }[])[0]!;
    const host = await link(topo.node, c0.hostDev);
    const ctr = await link(c0.ns, 'eth0');
    const up = await link(topo.node, UPLINK.dev);
    dp = new EbpfDataplane({ root, netns: topo.node.path, nodeLocal: false });
    state = {
      uplinks: [UPLINK.dev],
      uplinkIndex: { [UPLINK.dev]: up.ifindex },
      uplinkAddress: { [UPLINK.dev]: UPLINK.nodeIp },
      nodeAddresses: [UPLINK.nodeIp, BRIDGE.gatewayIp],
      endpoints: [{ hostDev: c0.hostDev, ifindex: host.ifindex, ip: c0.ip, mac: ctr.address, networkId: 1 }],
      ports: [
        { hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: c0.ip, containerPort: 80 },
        { hostIp: '0.0.0.0', hostPort: 8053, proto: 'udp', containerIp: c0.ip, containerPort: 53 },
        { hostIp: UPLINK.nodeIp, hostPort: 9090, proto: 'tcp', containerIp: c0.ip, containerPort: 80 },
      ],
    };
    await Promise.all([
      waitReady(c0.ns.spawn(process.execPath, [ECHO_SCRIPT, '80', 'c0']), 'c0:80'),
      waitReady(c0.ns.spawn(process.execPath, [ECHO_SCRIPT, '53', 'c0']), 'c0:53'),
    ]);
    await dp.apply(state);
    await attachUplinkXdp({ root, netns: topo.node.path, dev: UPLINK.dev, mode: 'native' });
  });

  afterAll(async () => {
    if (topo) await detachUplinkXdp({ netns: topo.node.path, dev: UPLINK.dev }).catch(() => undefined);
    if (dp) await dp.teardown(state).catch(() => undefined);
    await topo?.destroy();
    await removeRoot(root);
  });

  it('XDP is attached in native (driver) mode and the tc programs stay attached', async () => {
    const a = await uplinkXdp({ netns: topo!.node.path, dev: UPLINK.dev });
    expect(a?.mode).toBe('driver');
    expect(await listTc({ netns: topo!.node.path, dev: UPLINK.dev, direction: 'ingress' })).toHaveLength(1);
  });

  it('attaching again replaces in place (one program, same version)', async () => {
    const before = await uplinkXdp({ netns: topo!.node.path, dev: UPLINK.dev });
    const again = await attachUplinkXdp({ root, netns: topo!.node.path, dev: UPLINK.dev, mode: 'native' });
    expect(again.object.reused).toBe(true);
    expect(again.progId).toBe(before!.progId);
  });

  it('TCP to a wildcard frontend reaches the container with the client address preserved', async () => {
    const m0 = await metrics();
    const reply = await probe(topo!.client, 'tcp', UPLINK.nodeIp, 8080, 'xdp-tcp');
    expect(reply).toMatch(new RegExp(`^c0 tcp/80 saw ${CLIENT_RE}:\\d+: xdp-tcp$`));
    const m1 = await metrics();
    expect(metric(m1, MetricId.METRIC_DNAT) - metric(m0, MetricId.METRIC_DNAT)).toBeGreaterThanOrEqual(3n); // SYN, ACK, data at least
    expect(metric(m1, MetricId.METRIC_RNAT) - metric(m0, MetricId.METRIC_RNAT)).toBeGreaterThan(0n);
    expect(metric(m1, MetricId.METRIC_REWRITE_FAIL)).toBe(0n);
  });

  it('UDP to a wildcard frontend: reply comes back from node:8053', async () => {
    // The probe only accepts a reply on its connected 4-tuple.
    expect(await probe(topo!.client, 'udp', UPLINK.nodeIp, 8053, 'xdp-udp')).toMatch(new RegExp(`^c0 udp/53 saw ${CLIENT_RE}:\\d+: xdp-udp$`));
  });

  it('TCP to an exact (host IP) frontend', async () => {
    expect(await probe(topo!.client, 'tcp', UPLINK.nodeIp, 9090, 'exact')).toMatch(new RegExp(`^c0 tcp/80 saw ${CLIENT_RE}:\\d+: exact$`));
  });

  it('an unpublished port is not translated', async () => {
    await expect(probe(topo!.client, 'tcp', UPLINK.nodeIp, 8081)).rejects.toThrow(/ECONNREFUSED|no tcp reply/);
  });

  it('many connections in a row (no stale state between flows)', async () => {
    for (let i = 0; i < 15; i++) expect(await probe(topo!.client, 'tcp', UPLINK.nodeIp, 8080, `n${i}`)).toContain(`: n${i}`);
  });

  it('records the same reply state and per-port counters as tc', async () => {
    const ct = TypedMap.open(dp!.mapDir, 'bpfnet_nat_ct');
    const stats = TypedMap.open(dp!.mapDir, 'bpfnet_port_stats');
    try {
      const rows = await ct.toArray();
      expect(rows.some(([k, v]) => k.daddr === UPLINK.clientIp && k.saddr === topo!.containers[0]!.ip && v.orig_addr === UPLINK.nodeIp && v.orig_port === 8053 && k.proto === 17 && v.flags === 0)).toBe(true);
      const s = await stats.toArray();
      const web = s.find(([k]) => k.addr === '0.0.0.0' && k.port === 8080 && k.proto === 6);
      expect(web?.[1].packets ?? 0n).toBeGreaterThan(0n);
    } finally {
      ct.close();
      stats.close();
    }
  });

  // With a gateway-mode "nat" network, tc's "no direct access to container
  // IPs" check sees XDP's already-translated packets. Until uplink.c asks
  // dnat_flow_known(), it drops them - which also proves XDP translated
  // before tc. Once it asks, they must get through.
  it(uplinkKnowsXdp
    ? 'gateway mode nat: XDP-translated packets pass tc\'s direct-access check (dnat_flow_known)'
    : 'gateway mode nat: without dnat_flow_known in uplink.c, tc drops XDP-translated packets as direct access', async () => {
    const withNet: DesiredState = {
      ...state,
      networks: [{ id: 1, subnet: BRIDGE.subnet, gateway: BRIDGE.gatewayIp, bridge: BRIDGE.dev, driver: 'bridge', internal: false, icc: true, masquerade: true, gatewayMode: 'nat' }],
    };
    await dp!.apply(withNet);
    try {
      const m0 = await metrics();
      if (uplinkKnowsXdp) {
        expect(await probe(topo!.client, 'tcp', UPLINK.nodeIp, 8080, 'nat-mode')).toContain(': nat-mode');
        expect(await probe(topo!.client, 'udp', UPLINK.nodeIp, 8053, 'nat-mode-udp')).toContain(': nat-mode-udp');
        const m1 = await metrics();
        expect(metric(m1, MetricId.METRIC_DROP_DIRECT) - metric(m0, MetricId.METRIC_DROP_DIRECT)).toBe(0n);
      } else {
        await expect(probe(topo!.client, 'tcp', UPLINK.nodeIp, 8080, 'nat-mode')).rejects.toThrow();
        const m1 = await metrics();
        expect(metric(m1, MetricId.METRIC_DROP_DIRECT) - metric(m0, MetricId.METRIC_DROP_DIRECT)).toBeGreaterThan(0n);
      }
      // Direct access from outside to the container's address stays refused either way.
      const d0 = await metrics();
      await expect(probe(topo!.client, 'tcp', topo!.containers[0]!.ip, 80, 'direct')).rejects.toThrow();
      const d1 = await metrics();
      expect(metric(d1, MetricId.METRIC_DROP_DIRECT) - metric(d0, MetricId.METRIC_DROP_DIRECT)).toBeGreaterThan(0n);
    } finally {
      await dp!.apply(state);
    }
  });

  it('detaching XDP leaves tc doing the DNAT: same replies', async () => {
    expect(await detachUplinkXdp({ netns: topo!.node.path, dev: UPLINK.dev })).toBe(true);
    expect(await uplinkXdp({ netns: topo!.node.path, dev: UPLINK.dev })).toBeUndefined();
    expect(await probe(topo!.client, 'tcp', UPLINK.nodeIp, 8080, 'tc-only')).toMatch(new RegExp(`^c0 tcp/80 saw ${CLIENT_RE}:\\d+: tc-only$`));
    expect(await probe(topo!.client, 'udp', UPLINK.nodeIp, 8053, 'tc-only')).toContain(': tc-only');
    expect(await detachUplinkXdp({ netns: topo!.node.path, dev: UPLINK.dev })).toBe(false);
  });

  it('generic (skb) mode works too', async () => {
    await attachUplinkXdp({ root, netns: topo!.node.path, dev: UPLINK.dev, mode: 'generic' });
    try {
      expect((await uplinkXdp({ netns: topo!.node.path, dev: UPLINK.dev }))?.mode).toBe('generic');
      expect(await probe(topo!.client, 'tcp', UPLINK.nodeIp, 8080, 'generic')).toContain(': generic');
      expect(await probe(topo!.client, 'udp', UPLINK.nodeIp, 8053, 'generic-udp')).toContain(': generic-udp');
    } finally {
      await detachUplinkXdp({ netns: topo!.node.path, dev: UPLINK.dev });
    }
  });

  it('a missing device is an error on attach and nothing on detach', async () => {
    await expect(attachUplinkXdp({ root, netns: topo!.node.path, dev: 'nosuchdev0' })).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    expect(await detachUplinkXdp({ netns: topo!.node.path, dev: 'nosuchdev0' })).toBe(false);
  });
});
