/**
 * Coexistence (issue 5): a bpfnet agent and a real dockerd (iptables on) in
 * the same node namespace, for every bpfnet dataplane mode. Each publishes a
 * port and masquerades its containers; both keep working, and neither's rules
 * go missing, across a dockerd restart (it rewrites its chains) and an agent
 * restart (it reconciles).
 *
 *   client ns 198.18.0.2 ---- up0 198.18.0.1  node ns: bpfnet agent + dockerd
 *     (echo server :7000)       bpfnet "web"  10.231.M.0/24  -p 8080:80 (echo.js)
 *                               docker "dweb" 10.250.M.0/24  -p 9090:80 (busybox httpd)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { AgentLab } from '../../src/lab/agentlab.js';
import { ECHO_SCRIPT, PROBE_SCRIPT, waitReady } from '../../src/lab/lab.js';
import { UPLINK } from '../../src/lab/topology.js';
import { dockerdAvailable, ensureBusyboxImage, startDockerd, type Dockerd } from '../../src/lab/dockerd.js';

const unavailable = await dockerdAvailable();

const MODES = ['ebpf', 'iptables', 'nftables'] as const;
type Mode = (typeof MODES)[number];

/** busybox httpd answering /cgi-bin/ip with the client address it saw. */
const HTTPD = [
  'sh', '-c',
  'mkdir -p /www/cgi-bin && printf \'#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho "docker saw $REMOTE_ADDR"\\n\' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www',
];

async function inNs(path: string, cmd: string[], timeout = 10_000): Promise<{ code: number; out: string }> {
  const r = await execa('nsenter', [`--net=${path}`, '--', ...cmd], { reject: false, timeout });
  return { code: r.exitCode ?? 1, out: `${String(r.stdout)}${String(r.stderr)}` };
}

/** Retries a check for a bounded while (containers come back after a restart); returns the last answer. */
async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await fn();
  while (!ok(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    v = await fn();
  }
  return v;
}

/** Docker's rules in the node (iptables-save lines naming a DOCKER chain), sorted. */
async function dockerRules(lab: AgentLab): Promise<string[]> {
  const r = await inNs(lab.node.path, ['iptables-save']);
  return r.out.split('\n').filter((l) => /DOCKER/.test(l) && !l.startsWith('#')).sort();
}

/** bpfnet's rules or programs in the node, as text to compare across a dockerd restart. */
async function bpfnetState(lab: AgentLab, mode: Mode): Promise<string> {
  if (mode === 'iptables') {
    const r = await inNs(lab.node.path, ['iptables-save']);
    return r.out.split('\n').filter((l) => /BPFNET/.test(l)).sort().join('\n');
  }
  if (mode === 'nftables') return (await inNs(lab.node.path, ['nft', '-s', 'list', 'table', 'ip', 'bpfnet'])).out;
  const tc = await Promise.all(['ingress', 'egress'].map((d) => lab.node.exec('tc', ['filter', 'show', 'dev', UPLINK.dev, d])));
  return tc.map((t) => t.stdout).join('\n');
}

describe.skipIf(unavailable)(`coexistence with a real dockerd${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  MODES.forEach((mode, m) => {
    describe(`bpfnet ${mode}`, () => {
      let lab: AgentLab;
      let d: Dockerd | undefined;
      const children: ChildProcess[] = [];
      let webKey = '';
      const sub = (base: number) => `10.${base}.${m}`;

      async function spawnIn(path: string, args: string[], what: string): Promise<void> {
        const c = spawn('nsenter', [`--net=${path}`, '--', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        children.push(c);
        await waitReady(c, what);
      }

      beforeAll(async () => {
        lab = await AgentLab.create({ defaultSubnet: `${sub(230)}.0/24`, args: ['--dataplane', mode] });
        // dockerd first, as at boot: it finds forwarding off, turns it on and sets
        // the FORWARD policy to DROP, the case bpfnet has to live with.
        d = await startDockerd({ netnsPath: lab.node.path, name: `co${lab.id}`, bip: `${sub(250)}.1/24` });
        await lab.start();
        await lab.ok('network', 'create', '--subnet', `${sub(231)}.0/24`, 'coexnet');
        await lab.ok('sandbox', 'create', '--name', 'web', '--network', 'coexnet', '-p', '8080:80');
        webKey = (await lab.json<{ NetworkSettings: { SandboxKey: string } }[]>('sandbox', 'inspect', 'web'))[0]!.NetworkSettings.SandboxKey;
        await spawnIn(webKey, [ECHO_SCRIPT, '80', 'web'], 'bpfnet web server');
        await spawnIn(lab.client.path, [ECHO_SCRIPT, '7000', 'outside'], 'outside server');
        await ensureBusyboxImage(d);
        // --init: busybox httpd as PID 1 would ignore dockerd's SIGTERM for 10 s at each restart.
        await d.ok(['run', '-d', '--init', '--restart', 'always', '--name', 'dweb', '-p', '9090:80', 'bb', ...HTTPD]);
      });

      afterAll(async () => {
        for (const c of children) c.kill('SIGKILL');
        await d?.stop();
        await lab?.destroy();
      });

      const bpfnetServed = () => lab.client.exec(process.execPath, [PROBE_SCRIPT, 'tcp', UPLINK.nodeIp, '8080', 'hi']).then((r) => r.stdout, (e: Error) => e.message);
      const dockerServed = () => inNs(lab.client.path, [process.execPath, PROBE_SCRIPT, 'tcp', UPLINK.nodeIp, '9090', 'GET /cgi-bin/ip HTTP/1.0\r\n\r\n']).then((r) => r.out);
      const bpfnetOut = () => inNs(webKey, [process.execPath, PROBE_SCRIPT, 'tcp', UPLINK.clientIp, '7000', 'from-bpfnet']).then((r) => r.out);
      const dockerOut = () => d!.docker(['exec', 'dweb', 'sh', '-c', `echo from-docker | nc -w 3 ${UPLINK.clientIp} 7000`]).then((r) => r.stdout + r.stderr);

      /** Both ports from the client (source kept), both masquerade to the node's address. */
      async function expectBothWork(): Promise<void> {
        expect(await eventually(bpfnetServed, (s) => s.includes('web tcp/80 saw'))).toContain(`web tcp/80 saw ${UPLINK.clientIp}:`);
        expect(await eventually(dockerServed, (s) => s.includes('docker saw'))).toMatch(new RegExp(`docker saw \\[::ffff:${UPLINK.clientIp}\\]`));
        expect(await eventually(bpfnetOut, (s) => s.includes('outside tcp'))).toContain(`outside tcp/7000 saw ${UPLINK.nodeIp}:`);
        expect(await eventually(dockerOut, (s) => s.includes('outside tcp'))).toContain(`outside tcp/7000 saw ${UPLINK.nodeIp}:`);
      }

      it('both published ports answer from the client, both masquerade outbound', async () => {
        expect((await inNs(lab.node.path, ['iptables', '-S', 'FORWARD'])).out).toContain('-P FORWARD DROP');
        await expectBothWork();
        // Both rule sets are there: Docker's chains, and bpfnet's own.
        const docker = await dockerRules(lab);
        expect(docker.join('\n')).toMatch(/-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9090 -j DNAT/);
        expect(await bpfnetState(lab, mode)).toMatch(mode === 'ebpf' ? /bpf/ : mode === 'iptables' ? /BPFNET.*--dport 8080 -j DNAT/ : /ports_any/);
        // ebpf and nftables accept outside Docker's chains, so they leave their networks to bpfnet in DOCKER-USER;
        // iptables mode accepts within FORWARD itself and needs nothing there.
        const user = docker.filter((l) => l.startsWith('-A DOCKER-USER') && l.includes('bpfnet'));
        expect(user.length > 0).toBe(mode !== 'iptables');
      });

      it('a dockerd restart rewrites its chains and leaves bpfnet\'s alone', async () => {
        const before = await bpfnetState(lab, mode);
        await d!.restart();
        await eventually(() => d!.docker(['inspect', '-f', '{{.State.Running}}', 'dweb']).then((r) => r.stdout.trim()), (s) => s === 'true');
        expect(await bpfnetState(lab, mode)).toBe(before);
        await expectBothWork();
      });

      it('an agent restart reconciles and leaves Docker\'s rules alone', async () => {
        const before = await dockerRules(lab);
        await lab.stop();
        await lab.start();
        expect(await dockerRules(lab)).toEqual(before);
        await expectBothWork();
      });
    });
  });
});
