/**
 * The nftables dataplane against the shared behaviour suite, plus what only
 * nftables has (O(change) port updates as map elements) and switching
 * iptables <-> nftables.
 */
import { describe, expect, it } from 'vitest';
import { run } from '../../src/util/exec.js';
import { probe } from '../../src/lab/lab.js';
import { UPLINK } from '../../src/lab/topology.js';
import { NftablesDataplane } from '../../src/dataplane/nftables/dataplane.js';
import { IptablesDataplane } from '../../src/dataplane/iptables/dataplane.js';
import { removeOtherModes } from '../../src/dataplane/select.js';
import { fallbackSuite, blocked, expectServed, saw, iptablesDump, nftDump, ownEnv } from './fallback-suite.js';
import { allDevices, baseState } from './fallback-env.js';

fallbackSuite({
  mode: 'nftables',
  prefix: 'bfn',
  make: (netns, rewrite) => new NftablesDataplane({ netns, ...(rewrite ? { rewrite } : {}) }),
  dump: nftDump,
  async externalFlush(ns) {
    await run('nft', ['flush', 'ruleset'], { netns: ns.path });
  },
  // The kernel refuses the transaction at its end: the table exists by then.
  breakIt: (text) => `${text}create table ip bpfnet\n`,
  extra(ctx) {
    it('a port change is element adds and deletes on the maps, not a table rewrite', async () => {
      const dp = ctx.dp() as NftablesDataplane;
      const state = ctx.state();
      const more = { ...state, ports: [...state.ports, { hostIp: UPLINK.nodeIp, hostPort: 8383, proto: 'udp' as const, containerIp: ctx.env().c0.ip, containerPort: 53 }] };
      expect((await dp.apply(more)).ports).toEqual({ added: 1, updated: 0, removed: 0 });
      expect(dp.lastKind).toBe('ports');
      expect(await probe(ctx.env().topo.client, 'udp', UPLINK.nodeIp, 8383, 'x')).toMatch(saw('c0', 53, UPLINK.clientIp));
      const moved = { ...state, ports: state.ports.map((p) => (p.hostPort === 8080 ? { ...p, containerIp: ctx.env().c1.ip, containerPort: 90 } : p)) };
      expect((await dp.apply(moved)).ports).toEqual({ added: 1, updated: 0, removed: 2 });
      expect(dp.lastKind).toBe('ports');
      expect(await probe(ctx.env().topo.client, 'tcp', UPLINK.nodeIp, 8080, 'x')).toMatch(saw('c1', 90, UPLINK.clientIp));
      await dp.apply(state);
      expect(dp.lastKind).toBe('ports');
      await dp.apply(state);
      expect(dp.lastKind).toBe('none');
      await expectServed(ctx.env());
    });
  },
});

describe('switching iptables <-> nftables', () => {
  /** No eBPF here: a bpffs root that never exists. */
  const root = '/sys/fs/bpf/bpfnet-test-none';
  const world = ownEnv('bfw', (env) => removeOtherModes('ebpf', { netns: env?.topo.node.path, root, devices: [] }));

  it('iptables -> nftables: our chains go, the nft table serves the same ports', async () => {
    const env = world();
    const node = env.topo.node;
    const state = baseState(env);
    await new IptablesDataplane({ netns: node.path }).apply(state);
    await expectServed(env);
    const removed = await removeOtherModes('nftables', { netns: node.path, root, devices: allDevices(env) });
    expect(removed.iptables).toEqual({ removed: true, keptUserChain: false });
    expect(removed.nftables).toBeUndefined();
    expect(await iptablesDump(node)).toBe('');
    await blocked(env.topo.client, 'tcp', UPLINK.nodeIp, 8080);
    await new NftablesDataplane({ netns: node.path }).apply(state);
    await expectServed(env);
    expect(await probe(node, 'tcp', '127.0.0.1', 7070, 'x')).toMatch(saw('c0', 80, '198.19.0.1'));
  });

  it('nftables -> iptables: the tables go, iptables serves the same ports', async () => {
    const env = world();
    const node = env.topo.node;
    const removed = await removeOtherModes('iptables', { netns: node.path, root, devices: allDevices(env) });
    expect(removed.nftables).toEqual({ removed: true });
    expect(await nftDump(node)).toBe('');
    await blocked(env.topo.client, 'tcp', UPLINK.nodeIp, 8080);
    await new IptablesDataplane({ netns: node.path }).apply(baseState(env));
    await expectServed(env);
    await removeOtherModes('nftables', { netns: node.path, root, devices: allDevices(env) });
    expect(await iptablesDump(node)).toBe('');
  });
});

