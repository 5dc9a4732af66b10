/**
 * The iptables dataplane against the shared behaviour suite, plus what only
 * iptables has (the BPFNET-USER hook chain) and switching eBPF <-> iptables.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { run } from '../../src/util/exec.js';
import { UPLINK } from '../../src/lab/topology.js';
import type { Netns } from '../../src/lab/netns.js';
import { IptablesDataplane } from '../../src/dataplane/iptables/dataplane.js';
import { EbpfDataplane } from '../../src/dataplane/ebpf/dataplane.js';
import { removeOtherModes } from '../../src/dataplane/select.js';
import { listTc } from '../../src/loader/tc.js';
import { existsSync } from 'node:fs';
import { fallbackSuite, blocked, expectServed, iptablesDump, ownEnv } from './fallback-suite.js';
import { allDevices, baseState } from './fallback-env.js';

const iptables = (ns: Netns, ...args: string[]) => run('iptables', args, { netns: ns.path });

fallbackSuite({
  mode: 'iptables',
  prefix: 'bfi',
  make: (netns, rewrite) => new IptablesDataplane({ netns, ...(rewrite ? { rewrite } : {}) }),
  dump: iptablesDump,
  async externalFlush(ns) {
    for (const t of ['raw', 'nat', 'filter']) await iptables(ns, '-t', t, '-F');
  },
  // A line iptables refuses in the last table: raw and nat are committed by then.
  breakIt: (text) => text.replace(/COMMIT\n$/, '-A BPFNET-FORWARD -m bpfnet-no-such-match -j DROP\nCOMMIT\n'),
  extra(ctx) {
    it('BPFNET-USER runs first in FORWARD, and bpfnet never flushes it', async () => {
      const node = ctx.env().topo.node;
      const fwd = (await iptables(node, '-S', 'FORWARD')).stdout.split('\n').filter((l) => l.startsWith('-A'));
      expect(fwd[0]).toBe('-A FORWARD -j BPFNET-USER');
      expect(fwd[1]).toBe('-A FORWARD -j BPFNET-FORWARD');
      await iptables(node, '-A', 'BPFNET-USER', '-d', ctx.env().c0.ip, '-p', 'tcp', '--dport', '80', '-j', 'DROP');
      try {
        await blocked(ctx.env().topo.client, 'tcp', UPLINK.nodeIp, 8080);
        await ctx.dp().apply(ctx.state());
        expect((await iptables(node, '-S', 'BPFNET-USER')).stdout).toContain('-j DROP');
        await blocked(ctx.env().topo.client, 'tcp', UPLINK.nodeIp, 8080);
      } finally {
        await iptables(node, '-D', 'BPFNET-USER', '-d', ctx.env().c0.ip, '-p', 'tcp', '--dport', '80', '-j', 'DROP');
      }
      await expectServed(ctx.env());
    });

    it('jumps are inserted once, and put back when deleted', async () => {
      const node = ctx.env().topo.node;
      await iptables(node, '-t', 'nat', '-D', 'POSTROUTING', '-j', 'BPFNET-POSTROUTING');
      expect((await ctx.dp().verify()).drift).toContain('jump nat/POSTROUTING -> BPFNET-POSTROUTING missing');
      await ctx.dp().apply(ctx.state());
      await ctx.dp().apply(ctx.state());
      const save = (await run('iptables-save', [], { netns: node.path })).stdout;
      for (const j of ['-A POSTROUTING -j BPFNET-POSTROUTING', '-A FORWARD -j BPFNET-FORWARD', '-A PREROUTING -j BPFNET-RAW']) {
        expect(save.split('\n').filter((l) => l === j)).toHaveLength(1);
      }
    });
  },
});

describe('switching eBPF <-> iptables', () => {
  const root = `/sys/fs/bpf/bpfnet-test-${randomBytes(4).toString('hex')}`;
  const world = ownEnv('bfs', (env) => removeOtherModes('nftables', { netns: env?.topo.node.path, root, devices: env ? allDevices(env) : [] }));

  it('eBPF -> iptables removes filters and pins, then iptables serves the same ports', async () => {
    const env = world();
    const state = baseState(env);
    const ebpf = new EbpfDataplane({ root, netns: env.topo.node.path });
    await ebpf.apply(state);
    await expectServed(env);

    const removed = await removeOtherModes('iptables', { netns: env.topo.node.path, root, devices: allDevices(env) });
    expect(removed.ebpf?.detached).toContain(`${UPLINK.dev}/ingress`);
    for (const dev of allDevices(env)) expect(await listTc({ netns: env.topo.node.path, dev, direction: 'ingress' })).toEqual([]);
    expect(existsSync(root)).toBe(false);
    await blocked(env.topo.client, 'tcp', UPLINK.nodeIp, 8080);

    await new IptablesDataplane({ netns: env.topo.node.path }).apply(state);
    await expectServed(env);
  });

  it('iptables -> eBPF removes our chains and jumps, keeps a non-empty BPFNET-USER, and eBPF serves the ports', async () => {
    const env = world();
    const node = env.topo.node;
    await iptables(node, '-A', 'BPFNET-USER', '-s', '203.0.113.7', '-j', 'DROP');
    const removed = await removeOtherModes('ebpf', { netns: node.path, root, devices: allDevices(env) });
    expect(removed.iptables).toEqual({ removed: true, keptUserChain: true });
    expect(await iptablesDump(node)).toBe('*filter\n:BPFNET-USER - [0:0]\n-A BPFNET-USER -s 203.0.113.7/32 -j DROP');

    const state = baseState(env);
    const ebpf = new EbpfDataplane({ root, netns: node.path });
    await ebpf.apply(state);
    await expectServed(env);
    await ebpf.teardown(state);
    await iptables(node, '-F', 'BPFNET-USER');
    expect((await removeOtherModes('ebpf', { netns: node.path, root })).iptables).toEqual({ removed: true, keptUserChain: false });
    expect(await iptablesDump(node)).toBe('');
  });
});
