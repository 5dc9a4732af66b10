/**
 * The behaviour suite: what a user of Docker expects from published ports,
 * masquerade, isolation, ICC, internal networks, anti-spoofing, restarts and
 * DNS, checked with real packets against a real agent, once per dataplane
 * mode. A mode that cannot do something lists it in LIMITS with the reason
 * (the same words its doctor output and the README use); everything else
 * must pass in every mode.
 *
 * Modes: BPFNET_BEHAVIOUR_MODES (comma-separated) or every mode this build has.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Probe, ProbeResult } from '../../src/lab/multiprobe.js';
import { ECHO_SCRIPT, firewallRules, waitReady } from '../../src/lab/lab.js';
import { CLIENT_IP, INTERNET_IP, INTERNET_PORT, NODE_IP, NODE_IP2, World, type Mode, type Place } from './world.js';

const ALL_MODES: Mode[] = ['ebpf', 'ebpf-xdp', 'iptables', 'nftables'];
const MODES = (process.env['BPFNET_BEHAVIOUR_MODES']?.split(',').filter(Boolean) as Mode[] | undefined) ?? ALL_MODES;

/** What a mode cannot do, by case name prefix, and why. */
const LIMITS: Record<Mode, Record<string, string>> = {
  ebpf: {},
  'ebpf-xdp': {},
  iptables: {},
  nftables: {},
};

type Source = 'external' | 'node' | 'same-network' | 'other-network' | 'self';
type Frontend = 'all' | 'loopback' | 'one-ip';
type Proto = 'tcp' | 'udp';

const FRONTENDS: Record<Frontend, { hostPort: number; containerPort: number }> = {
  all: { hostPort: 8080, containerPort: 80 },
  loopback: { hostPort: 8081, containerPort: 81 },
  'one-ip': { hostPort: 8082, containerPort: 82 },
};

/**
 * Every (source, address used, frontend) cell and whether Docker (without
 * the userland proxy's limits) answers there. A frontend on 127.0.0.1 exists
 * only for the node itself; one on a node IP only at that IP.
 */
interface Cell {
  source: Source;
  via: string;
  frontend: Frontend;
  reachable: boolean;
}

function cells(): Cell[] {
  const out: Cell[] = [];
  const add = (source: Source, via: string, frontend: Frontend, reachable: boolean) => out.push({ source, via, frontend, reachable });
  for (const source of ['external', 'node', 'same-network', 'other-network', 'self'] as Source[]) {
    add(source, NODE_IP, 'all', true);
    add(source, NODE_IP2, 'all', true);
    add(source, NODE_IP, 'loopback', false);
    add(source, NODE_IP, 'one-ip', false);
    add(source, NODE_IP2, 'one-ip', true);
  }
  add('node', '127.0.0.1', 'all', true);
  add('node', '127.0.0.1', 'loopback', true);
  add('node', '127.0.0.1', 'one-ip', false);
  return out;
}

for (const mode of MODES) {
  describe(`behaviour [${mode}]`, () => {
    let w: World;
    const limit = (name: string): string | undefined => Object.entries(LIMITS[mode]).find(([k]) => name.startsWith(k))?.[1];
    const place = (s: Source): Place => {
      switch (s) {
        case 'external': return w.client;
        case 'node': return w.node;
        case 'same-network': return w.sb('a2');
        case 'other-network': return w.sb('b1');
        case 'self': return w.sb('srv');
      }
    };
    /** The address srv should see for a client at `s` (source preserved where Docker keeps it). */
    const seenAs = (s: Source): string | undefined => (s === 'external' ? CLIENT_IP : s === 'same-network' ? w.sb('a2').ip : undefined);

    beforeAll(async () => {
      w = await World.create(mode);
    }, 120_000);
    afterAll(async () => {
      await w?.destroy();
    });

    for (const proto of ['tcp', 'udp'] as Proto[]) {
      it(`published ports: every reachability pair over ${proto}`, async () => {
        const all = cells();
        const failures: string[] = [];
        for (const source of new Set(all.map((c) => c.source))) {
          const mine = all.filter((c) => c.source === source && !limit(`reach ${source}`));
          const probes: Probe[] = mine.map((c) => ({ proto, host: c.via, port: FRONTENDS[c.frontend].hostPort, msg: `${source}->${c.via}:${c.frontend}`, timeout: 1500 }));
          const res: ProbeResult[] = await w.probe(place(source), probes);
          mine.forEach((c, i) => {
            const r = res[i]!;
            const label = `${source} -> ${c.via}:${FRONTENDS[c.frontend].hostPort}/${proto} (published on ${c.frontend})`;
            if (r.ok !== c.reachable) failures.push(`${label}: expected ${c.reachable ? 'a reply' : 'no reply'}, got ${r.ok ? `"${r.reply}"` : r.error}`);
            if (r.ok && c.reachable) {
              const want = `srv ${proto}/${FRONTENDS[c.frontend].containerPort} saw `;
              if (!r.reply?.startsWith(want)) failures.push(`${label}: answered by the wrong server: ${r.reply}`);
              const seen = seenAs(source);
              if (seen && !r.reply?.startsWith(`${want}${seen}:`)) failures.push(`${label}: source not preserved: ${r.reply}`);
            }
          });
        }
        expect(failures).toEqual([]);
      });
    }

    it('masquerade: containers reach the internet as the node, over tcp, udp and icmp', async () => {
      const res = await w.probe(w.sb('a2'), [
        { proto: 'tcp', host: INTERNET_IP, port: INTERNET_PORT, msg: 'out-tcp' },
        { proto: 'udp', host: INTERNET_IP, port: INTERNET_PORT, msg: 'out-udp' },
      ]);
      for (const r of res) expect(r.reply ?? r.error).toMatch(new RegExp(`^internet (tcp|udp)/${INTERNET_PORT} saw ${NODE_IP.replace(/\./g, '\\.')}:`));
      const ping = await w.exec(w.sb('a2'), 'ping', ['-c', '1', '-W', '2', INTERNET_IP]);
      expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    });

    it('isolation: containers on different networks cannot reach each other directly', async () => {
      const [ab, ba, same] = await Promise.all([
        w.probe(w.sb('a2'), [{ proto: 'tcp', host: w.sb('b1').ip, port: 7 }, { proto: 'udp', host: w.sb('b1').ip, port: 7 }]),
        w.probe(w.sb('b1'), [{ proto: 'tcp', host: w.sb('a2').ip, port: 7 }, { proto: 'udp', host: w.sb('a2').ip, port: 7 }]),
        w.probe(w.sb('a2'), [{ proto: 'tcp', host: w.sb('srv').ip, port: 7 }, { proto: 'udp', host: w.sb('srv').ip, port: 7 }]),
      ]);
      expect([...ab, ...ba].map((r) => r.ok)).toEqual([false, false, false, false]);
      expect(same[0]!.reply).toContain(`srv tcp/7 saw ${w.sb('a2').ip}:`);
      expect(same[1]!.reply).toContain(`srv udp/7 saw ${w.sb('a2').ip}:`);
    });

    it('ICC off: containers of that network cannot reach each other, but reach the outside', async () => {
      const [peer, out] = await Promise.all([
        w.probe(w.sb('c1'), [{ proto: 'tcp', host: w.sb('c2').ip, port: 7 }, { proto: 'udp', host: w.sb('c2').ip, port: 7 }]),
        w.probe(w.sb('c1'), [{ proto: 'tcp', host: INTERNET_IP, port: INTERNET_PORT }]),
      ]);
      expect(peer.map((r) => r.ok)).toEqual([false, false]);
      expect(out[0]!.ok).toBe(true);
    });

    it('internal: inside the subnet only; nothing leaves it and nothing from outside enters', async () => {
      const [inside, outside, fromClient] = await Promise.all([
        w.probe(w.sb('i1'), [{ proto: 'tcp', host: w.sb('i2').ip, port: 7 }]),
        w.probe(w.sb('i1'), [{ proto: 'tcp', host: INTERNET_IP, port: INTERNET_PORT }, { proto: 'udp', host: INTERNET_IP, port: INTERNET_PORT }, { proto: 'tcp', host: w.sb('a2').ip, port: 7 }]),
        w.probe(w.client, [{ proto: 'tcp', host: w.sb('i1').ip, port: 7 }]),
      ]);
      expect(inside[0]!.ok).toBe(true);
      expect(outside.map((r) => r.ok)).toEqual([false, false, false]);
      expect(fromClient[0]!.ok).toBe(false);
    });

    it('no direct access to container addresses from outside (gateway mode nat)', async () => {
      const r = await w.probe(w.client, [{ proto: 'tcp', host: w.sb('srv').ip, port: 80 }, { proto: 'udp', host: w.sb('srv').ip, port: 80 }]);
      expect(r.map((x) => x.ok)).toEqual([false, false]);
    });

    it('anti-spoofing: a container cannot send with another source address or MAC', async (ctx) => {
      const why = limit('anti-spoofing');
      if (why) ctx.skip(why);
      const a2 = w.sb('a2');
      const spoofed = '10.71.0.99';
      expect((await w.exec(a2, 'ip', ['addr', 'add', `${spoofed}/32`, 'dev', 'eth0'])).code).toBe(0);
      const ip = await w.probe(a2, [
        { proto: 'udp', host: w.sb('srv').ip, port: 7, bind: spoofed },
        { proto: 'tcp', host: w.sb('srv').ip, port: 7, bind: spoofed },
        { proto: 'udp', host: INTERNET_IP, port: INTERNET_PORT, bind: spoofed },
        { proto: 'udp', host: w.sb('srv').ip, port: 7 }, // control: the real address still works
      ]);
      await w.exec(a2, 'ip', ['addr', 'del', `${spoofed}/32`, 'dev', 'eth0']);
      expect(ip.map((r) => r.ok)).toEqual([false, false, false, true]);

      const link = await w.exec(a2, 'ip', ['-j', 'link', 'show', 'eth0']);
      const mac = (JSON.parse(link.stdout) as { address: string }[])[0]!.address;
      expect((await w.exec(a2, 'ip', ['link', 'set', 'eth0', 'address', '02:00:00:00:00:99'])).code).toBe(0);
      const byMac = await w.probe(a2, [{ proto: 'udp', host: INTERNET_IP, port: INTERNET_PORT }]);
      await w.exec(a2, 'ip', ['link', 'set', 'eth0', 'address', mac]);
      expect(byMac[0]!.ok).toBe(false);
    });

    it('a host port held by a process on the node is refused at publish time, naming the socket', async () => {
      const holder = w.lab.node.spawn(process.execPath, [ECHO_SCRIPT, '8090', 'node-process']);
      try {
        await waitReady(holder, 'node process on 8090');
        const r = await w.lab.cli('sandbox', 'create', '--name', 'taken', '--network', 'n2', '-p', '8090:80');
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain('E_CONFLICT');
        expect(r.stderr).toContain('tcp 0.0.0.0:8090');
        expect((await w.lab.cli('sandbox', 'inspect', 'taken')).code).not.toBe(0);
        // An ephemeral or ranged choice skips it.
        await w.lab.ok('sandbox', 'create', '--name', 'ranged', '--network', 'n2', '-p', '8090-8091:80');
        const ports = await w.lab.json<{ hostPort: number }[]>('ports', 'ls', '--sandbox', 'ranged', '--format', 'json');
        expect(ports.map((p) => p.hostPort)).toEqual([8091]);
        await w.lab.ok('sandbox', 'rm', 'ranged');
      } finally {
        holder.kill('SIGKILL');
      }
    });

    it('ports published on a running sandbox answer at once, and stop when unpublished', async () => {
      const probes = (): Probe[] => [
        { proto: 'tcp', host: NODE_IP, port: 8085, msg: 'late-tcp', timeout: 1500 },
        { proto: 'udp', host: NODE_IP2, port: 8086, msg: 'late-udp', timeout: 1500 },
      ];
      const added = await w.lab.json<{ hostPort: number; active: boolean }[]>('ports', 'publish', 'srv', '8085:82', '8086:81/udp', '--format', 'json');
      expect(added.map((p) => [p.hostPort, p.active])).toEqual([[8085, true], [8086, true]]);
      const on = [...(await w.probe(w.client, probes())), ...(await w.probe(w.node, probes()))];
      expect(on.map((r) => r.reply ?? r.error)).toEqual([
        expect.stringMatching(/^srv tcp\/82 saw /),
        expect.stringMatching(/^srv udp\/81 saw /),
        expect.stringMatching(/^srv tcp\/82 saw /),
        expect.stringMatching(/^srv udp\/81 saw /),
      ]);
      // Taken now, for every sandbox: the same bad input changes nothing.
      const dup = await w.lab.cli('ports', 'publish', 'a2', '8085:7');
      expect(dup.code).not.toBe(0);
      expect(dup.stderr).toContain('E_CONFLICT');
      await w.lab.ok('ports', 'unpublish', 'srv', '8085', '8086/udp');
      const off = [...(await w.probe(w.client, probes())), ...(await w.probe(w.node, probes()))];
      expect(off.map((r) => r.ok)).toEqual([false, false, false, false]);
      const gone = await w.lab.cli('ports', 'unpublish', 'srv', '8085');
      expect(gone.stderr).toContain('E_NOT_FOUND');
      // The original ports are untouched.
      expect((await w.probe(w.client, [{ proto: 'tcp', host: NODE_IP, port: 8080, msg: 'still' }]))[0]!.ok).toBe(true);
    });

    it('embedded DNS: names resolve only on shared networks', async () => {
      const ok = await w.lab.cli('exec', 'a2', '--', 'getent', 'hosts', 'srv');
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain(w.sb('srv').ip);
      const other = await w.lab.cli('exec', 'b1', '--', 'getent', 'hosts', 'srv');
      expect(other.code).not.toBe(0);
    });

    it('a long-lived connection through a published port survives an agent restart', async () => {
      const c = w.hold(w.client, NODE_IP, 8080);
      try {
        expect(await c.say('before')).toContain(`saw ${CLIENT_IP}:`);
        await w.lab.stop();
        expect(await c.say('while-stopped')).toBeDefined();
        await w.lab.start();
        expect(await c.say('after')).toBeDefined();
      } finally {
        c.close();
      }
    });

    if (mode === 'ebpf' || mode === 'ebpf-xdp') {
      it('eBPF mode writes no iptables or nftables rule in the node namespace', async () => {
        expect(await firewallRules(w.lab.node)).toEqual({ iptablesRules: 0, nftRules: 0 });
      });
    }
  });
}
