/**
 * The behaviour suite both netfilter dataplanes (iptables, nftables) pass,
 * with real packets between namespaces the suite creates (fallback-env.ts).
 * Each test file calls fallbackSuite() with its mode's hooks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probe } from '../../src/lab/lab.js';
import { run } from '../../src/util/exec.js';
import { UPLINK, BRIDGE } from '../../src/lab/topology.js';
import { Netns } from '../../src/lab/netns.js';
import type { DesiredState } from '../../src/dataplane/types.js';
import type { NetfilterDataplane } from '../../src/dataplane/netfilter/dataplane.js';
import { createEnv, baseState, NET2, type FallbackEnv } from './fallback-env.js';

export interface ModeHooks {
  mode: 'iptables' | 'nftables';
  prefix: string;
  make(netns: string, rewrite?: (text: string) => string): NetfilterDataplane;
  /** bpfnet's rules in the namespace as text ('' when none). */
  dump(ns: Netns): Promise<string>;
  /** What another program does that wipes our rules. */
  externalFlush(ns: Netns): Promise<void>;
  /** Corrupt a script so that the kernel refuses it late (after an earlier part could have applied). */
  breakIt(text: string): string;
  /** Mode-specific tests, run after the shared ones, before teardown. */
  extra?(ctx: SuiteCtx): void;
}

export interface SuiteCtx {
  env(): FallbackEnv;
  dp(): NetfilterDataplane;
  state(): DesiredState;
}

const re = (s: string) => s.replace(/\./g, '\\.');
export const saw = (name: string, port: number, src: string) => new RegExp(`^${name} (tcp|udp)/${port} saw ${re(src)}:\\d+: `);

/** An external client reaches the base state's wildcard port 8080, and c0 sees the client's address. */
export async function expectServed(env: FallbackEnv): Promise<void> {
  expect(await probe(env.topo.client, 'tcp', UPLINK.nodeIp, 8080, 'x')).toMatch(saw('c0', 80, UPLINK.clientIp));
}

/**
 * A world of its own for a describe block (mode switching): created before
 * its tests; after them, `cleanup` removes what the modes left, then it is destroyed.
 */
export function ownEnv(prefix: string, cleanup: (env: FallbackEnv | undefined) => Promise<unknown>): () => FallbackEnv {
  let env: FallbackEnv | undefined;
  beforeAll(async () => {
    env = await createEnv(prefix);
  });
  afterAll(async () => {
    await cleanup(env).catch(() => undefined);
    await env?.destroy();
  });
  return () => env!;
}

export async function blocked(ns: Netns, proto: 'tcp' | 'udp', host: string, port: number): Promise<void> {
  await expect(probe(ns, proto, host, port, 'blocked?')).rejects.toThrow();
}

export async function ping(ns: Netns, src: string, dst: string): Promise<boolean> {
  return ns.exec('ping', ['-n', '-c', '1', '-W', '1', '-I', src, dst]).then(
    () => true,
    () => false,
  );
}

/** bpfnet's iptables rules and chains, as iptables-save prints them ('' when none). */
export async function iptablesDump(ns: Netns): Promise<string> {
  const out: string[] = [];
  for (const t of ['raw', 'nat', 'filter']) {
    const { stdout } = await run('iptables-save', ['-t', t], { netns: ns.path });
    const ours = stdout.split('\n').filter((l) => l.includes('BPFNET'));
    if (ours.length) out.push(`*${t}`, ...ours);
  }
  return out.join('\n');
}

export async function nftDump(ns: Netns): Promise<string> {
  const out: string[] = [];
  for (const fam of ['ip', 'bridge']) {
    const r = await run('nft', ['list', 'table', fam, 'bpfnet'], { netns: ns.path }).catch(() => null);
    if (r) out.push(r.stdout);
  }
  return out.join('\n');
}

/** Foreign rules that must survive every apply, teardown and mode switch. */
async function addForeign(ns: Netns): Promise<void> {
  await run('iptables-restore', ['--noflush'], { netns: ns.path, input: '*filter\n:FOREIGN - [0:0]\n-A FOREIGN -s 203.0.113.9/32 -j DROP\n-A FORWARD -j FOREIGN\nCOMMIT\n' });
  await ns.exec('nft', ['add table ip foreign; add chain ip foreign c; add rule ip foreign c ip saddr 203.0.113.9 drop']);
}

export async function foreignIntact(ns: Netns): Promise<void> {
  const save = (await ns.exec('iptables-save', ['-t', 'filter'])).stdout;
  expect(save).toContain('-A FOREIGN -s 203.0.113.9/32 -j DROP');
  expect(save).toContain('-A FORWARD -j FOREIGN');
  expect((await ns.exec('nft', ['list', 'table', 'ip', 'foreign'])).stdout).toContain('ip saddr 203.0.113.9 drop');
}

export function fallbackSuite(h: ModeHooks): void {
  describe(`${h.mode} dataplane: Docker's behaviour with real packets`, () => {
    let env: FallbackEnv;
    let dp: NetfilterDataplane;
    let state: DesiredState;
    let breaking = false;
    const ctx: SuiteCtx = { env: () => env, dp: () => dp, state: () => state };

    beforeAll(async () => {
      env = await createEnv(h.prefix);
      await addForeign(env.topo.node);
      dp = h.make(env.topo.node.path, (t) => (breaking ? h.breakIt(t) : t));
      state = baseState(env);
      await dp.apply(state);
    });

    afterAll(async () => {
      await dp?.teardown(state).catch(() => undefined);
      await env?.destroy();
    });

    const node = () => env.topo.node;
    const client = () => env.topo.client;
    /** Apply a variant, run fn, and always come back to the base state. */
    const withState = async (s: DesiredState, fn: () => Promise<void>) => {
      await dp.apply(s);
      try {
        await fn();
      } finally {
        await dp.apply(state);
      }
    };

    it('an external client reaches a wildcard TCP port, and the container sees its address', async () => {
      await expectServed(env);
    });

    it('UDP: the reply comes back from the frontend (the probe only accepts that)', async () => {
      expect(await probe(client(), 'udp', UPLINK.nodeIp, 8053, 'x')).toMatch(saw('c0', 53, UPLINK.clientIp));
    });

    it('a port published on one node address goes to its own container', async () => {
      expect(await probe(client(), 'tcp', UPLINK.nodeIp, 9090, 'x')).toMatch(saw('c1', 90, UPLINK.clientIp));
    });

    it('a node-local client reaches a wildcard port via 127.0.0.1 (seen as the gateway: loopback cannot leave the node)', async () => {
      expect(await probe(node(), 'tcp', '127.0.0.1', 8080, 'x')).toMatch(saw('c0', 80, BRIDGE.gatewayIp));
    });

    it('a node-local client reaches a wildcard port via the node address, keeping its address', async () => {
      expect(await probe(node(), 'tcp', UPLINK.nodeIp, 8080, 'x')).toMatch(saw('c0', 80, UPLINK.nodeIp));
    });

    it('a port published on 127.0.0.1 is reachable from the node only', async () => {
      expect(await probe(node(), 'tcp', '127.0.0.1', 7070, 'x')).toMatch(saw('c0', 80, BRIDGE.gatewayIp));
      await blocked(client(), 'tcp', UPLINK.nodeIp, 7070);
      await blocked(node(), 'tcp', UPLINK.nodeIp, 7070);
    });

    it('hairpin: a container reaches its own published port via the node address', async () => {
      expect(await probe(env.c0.ns, 'tcp', UPLINK.nodeIp, 8080, 'x')).toMatch(saw('c0', 80, BRIDGE.gatewayIp));
    });

    it('another container of the network reaches a published port with its own address', async () => {
      expect(await probe(env.c1.ns, 'tcp', UPLINK.nodeIp, 8080, 'x')).toMatch(saw('c0', 80, env.c1.ip));
    });

    it('masquerade: the client sees the node address of outbound container traffic', async () => {
      expect(await probe(env.c0.ns, 'tcp', UPLINK.clientIp, 7000, 'x')).toMatch(saw('client', 7000, UPLINK.nodeIp));
      expect(await probe(env.c2.ns, 'udp', UPLINK.clientIp, 7000, 'x')).toMatch(saw('client', 7000, UPLINK.nodeIp));
    });

    it('host_ipv4: SNAT to the given address instead', async () => {
      await node().ip('addr', 'add', '198.18.0.5/24', 'dev', UPLINK.dev);
      try {
        await withState(baseState(env, { net1: { snatIp: '198.18.0.5' } }), async () => {
          expect(await probe(env.c0.ns, 'tcp', UPLINK.clientIp, 7000, 'x')).toMatch(saw('client', 7000, '198.18.0.5'));
        });
      } finally {
        await node().ip('addr', 'del', '198.18.0.5/24', 'dev', UPLINK.dev);
      }
    });

    it('gateway mode nat: container addresses are not reachable directly from outside', async () => {
      await blocked(client(), 'tcp', env.c0.ip, 80);
    });

    it('nat-unprotected: direct access allowed, still masqueraded', async () => {
      await withState(baseState(env, { net1: { gatewayMode: 'nat-unprotected' } }), async () => {
        expect(await probe(client(), 'tcp', env.c0.ip, 80, 'x')).toMatch(saw('c0', 80, UPLINK.clientIp));
        expect(await probe(env.c0.ns, 'tcp', UPLINK.clientIp, 7000, 'x')).toMatch(saw('client', 7000, UPLINK.nodeIp));
        // ...but not from another network
        await blocked(env.c2.ns, 'tcp', env.c0.ip, 80);
      });
    });

    it('routed: direct access allowed and no masquerade', async () => {
      await withState(baseState(env, { net1: { gatewayMode: 'routed' } }), async () => {
        expect(await probe(client(), 'tcp', env.c0.ip, 80, 'x')).toMatch(saw('c0', 80, UPLINK.clientIp));
        expect(await probe(env.c0.ns, 'tcp', UPLINK.clientIp, 7000, 'x')).toMatch(saw('client', 7000, env.c0.ip));
      });
    });

    it('networks are isolated from each other', async () => {
      await blocked(env.c0.ns, 'tcp', NET2.ip, 80);
      await blocked(env.c2.ns, 'tcp', env.c0.ip, 80);
    });

    it('ICC off: containers of the network cannot talk directly, published ports still work', async () => {
      expect(await probe(env.c0.ns, 'tcp', env.c1.ip, 90, 'x')).toMatch(saw('c1', 90, env.c0.ip));
      await withState(baseState(env, { net1: { icc: false } }), async () => {
        await blocked(env.c0.ns, 'tcp', env.c1.ip, 90);
        expect(await probe(env.c0.ns, 'tcp', UPLINK.nodeIp, 8080, 'x')).toMatch(saw('c0', 80, BRIDGE.gatewayIp));
        expect(await probe(env.c1.ns, 'tcp', UPLINK.nodeIp, 8080, 'x')).toMatch(saw('c0', 80, env.c1.ip));
      });
    });

    it('internal network: nothing leaves it', async () => {
      await withState(baseState(env, { net2: { internal: true } }), async () => {
        await blocked(env.c2.ns, 'tcp', UPLINK.clientIp, 7000);
        await blocked(client(), 'tcp', NET2.ip, 80);
      });
    });

    it('anti-spoofing: a container cannot send from another address or MAC', async () => {
      const ns = env.c0.ns;
      expect(await ping(ns, env.c0.ip, BRIDGE.gatewayIp)).toBe(true);
      await ns.ip('addr', 'add', '198.19.0.99/24', 'dev', 'eth0');
      try {
        expect(await ping(ns, '198.19.0.99', BRIDGE.gatewayIp)).toBe(false);
      } finally {
        await ns.ip('addr', 'del', '198.19.0.99/24', 'dev', 'eth0');
      }
      await ns.ip('link', 'set', 'eth0', 'address', '02:00:00:00:00:99');
      try {
        expect(await ping(ns, env.c0.ip, BRIDGE.gatewayIp)).toBe(false);
      } finally {
        await ns.ip('link', 'set', 'eth0', 'address', env.macs[env.c0.hostDev]!);
      }
      expect(await ping(ns, env.c0.ip, BRIDGE.gatewayIp)).toBe(true);
    });

    it('apply is idempotent: the same state twice leaves the same rules', async () => {
      const before = await h.dump(node());
      expect(before).not.toBe('');
      await dp.apply(state);
      await dp.apply(state);
      expect(await h.dump(node())).toBe(before);
      expect((await dp.verify()).ok).toBe(true);
    });

    it('publishing and unpublishing one port', async () => {
      const more = { ...state, ports: [...state.ports, { hostIp: '0.0.0.0', hostPort: 8181, proto: 'tcp' as const, containerIp: env.c1.ip, containerPort: 90 }] };
      await blocked(client(), 'tcp', UPLINK.nodeIp, 8181);
      await dp.apply(more);
      expect(await probe(client(), 'tcp', UPLINK.nodeIp, 8181, 'x')).toMatch(saw('c1', 90, UPLINK.clientIp));
      await dp.apply(state);
      await blocked(client(), 'tcp', UPLINK.nodeIp, 8181);
      await expectServed(env);
    });

    it('bad input is refused before anything changes', async () => {
      const before = await h.dump(node());
      const bad = { ...state, ports: [...state.ports, { ...state.ports[0]!, hostPort: 8282, containerIp: 'not-an-ip' }] };
      await expect(dp.apply(bad)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
      const dup = { ...state, ports: [...state.ports, { ...state.ports[0]!, containerPort: 81 }] };
      await expect(dp.apply(dup)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
      expect(await h.dump(node())).toBe(before);
    });

    it('a change the kernel refuses rolls back: the old rules stay, the error carries the tool message', async () => {
      const before = await h.dump(node());
      const more = { ...state, ports: [...state.ports, { hostIp: '0.0.0.0', hostPort: 8181, proto: 'tcp' as const, containerIp: env.c1.ip, containerPort: 90 }] };
      breaking = true;
      try {
        const err = await dp.apply(more).then(
          () => null,
          (e: unknown) => e as { code: string; message: string },
        );
        expect(err?.code).toBe('E_DATAPLANE_APPLY');
        expect(err?.message).toMatch(/nothing changed/);
      } finally {
        breaking = false;
      }
      expect(await h.dump(node())).toBe(before);
      await blocked(client(), 'tcp', UPLINK.nodeIp, 8181);
      await expectServed(env);
    });

    it('a refused first apply leaves nothing behind', async () => {
      const bare = await Netns.create(`${h.prefix}-${env.topo.id}-bare`);
      try {
        const fresh = h.make(bare.path, h.breakIt);
        const s: DesiredState = { uplinks: ['lo'], nodeAddresses: [], endpoints: [], ports: [state.ports[0]!], networks: [] };
        await expect(fresh.apply(s)).rejects.toMatchObject({ code: 'E_DATAPLANE_APPLY' });
        expect(await h.dump(bare)).toBe('');
      } finally {
        await bare.destroy();
      }
    });

    it('rules flushed by another program are detected and re-applied', async () => {
      const before = await h.dump(node());
      await h.externalFlush(node());
      await addForeign(node()); // the other program writes its own rules again
      const v = await dp.verify();
      expect(v.ok).toBe(false);
      expect(v.drift.length).toBeGreaterThan(0);
      const r = await dp.reconcile();
      expect(r.reapplied).toBe(true);
      expect(await h.dump(node())).toBe(before);
      expect((await dp.verify()).ok).toBe(true);
      await expectServed(env);
    });

    h.extra?.(ctx);

    it('teardown removes every rule of bpfnet and nothing else', async () => {
      await dp.teardown(state);
      expect(await h.dump(node())).toBe('');
      await foreignIntact(node());
      await blocked(client(), 'tcp', UPLINK.nodeIp, 8080);
      await dp.apply(state); // back for the tests that follow (mode switching)
      await expectServed(env);
    });
  });
}
