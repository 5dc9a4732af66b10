/**
 * Real Docker as a peer: a dockerd (Debian docker.io 20.10, src/lab/dockerd.ts)
 * with the userland proxy on and one with it off, each in a node netns of its
 * own with an uplink to a client netns (Topology without containers), against
 * bpfnet.
 *
 *   startup     `docker run -d -p A-B:A-B bb sleep` with 0, 200 (and, once,
 *               2,000) ports against bpfnet's SandboxCreate publishing the
 *               same range (a real agent in eBPF mode, bench/lib/agentpeer.ts),
 *               timed around the CLI / API call; then the processes the peer
 *               runs and their memory (PSS) (dockerd, containerd, shims, docker-proxy;
 *               bpfnet: the agent), and the removal (docker rm -f /
 *               SandboxRemove).
 *   connrate    new connections/s and request/response latency through one
 *               published port (N = 1: Docker 20.10 writes its rules one
 *               iptables call at a time, minutes for thousands of ports), the
 *               echo server (bench/tools/echo.c, static) in the container;
 *               against bpfnet's eBPF dataplane in a PeerLab of its own, in
 *               the same rounds (pairwise ratios).
 *
 * Rounds alternate the peers (rotated, reversed on odd rounds).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dockerdAvailable, ensureBusyboxImage, startDockerd, type Dockerd } from '../src/lab/dockerd.js';
import { Topology, UPLINK } from '../src/lab/topology.js';
import { pssKiB, startAgentPeer, type AgentPeer } from './lib/agentpeer.js';
import { progress, registerCleanup } from './lib/env.js';
import { createPeerLab, programPeer, tcpRange, type PeerLab } from './lib/peers.js';
import { pairwise, type PairwiseRatio } from './lib/ratios.js';
import { elapsedS, fmtInt, fmtNum, median, nowNs, rotate, type Table } from './lib/stats.js';
import { buildTool } from './lib/tools.js';
import { connectionRuns, startEcho, type ConnRunOptions, type CrrOut, type RrOut } from './lib/traffic.js';
import { CONNRATE_FULL, CONNRATE_QUICK, ratioCell, us } from './connrate.js';

export type DockerPeer = 'docker-proxy' | 'docker-noproxy';
type StartPeer = 'bpfnet' | DockerPeer;
const LABEL: Record<StartPeer | 'ebpf', string> = {
  bpfnet: 'bpfnet SandboxCreate (ebpf mode)',
  ebpf: 'bpfnet eBPF (tc)',
  'docker-proxy': 'Docker 20.10, userland proxy on',
  'docker-noproxy': 'Docker 20.10, userland proxy off',
};

export interface DockerOptions {
  rounds: number;
  /** Published ports of the started container / sandbox, every round (0 = none). */
  startupPorts: number[];
  /** Measured once (round 1 only) and with the proxy on only: Docker takes minutes for these. */
  bigPorts: number[];
  /** Host port of the first published port (container port = host port). */
  basePort: number;
  /** The connection workloads (as connrate's, N = 1). */
  conn: ConnRunOptions;
}

export const DOCKER_FULL: DockerOptions = { rounds: 3, startupPorts: [0, 200], bigPorts: [2000], basePort: 20_000, conn: CONNRATE_FULL };
export const DOCKER_QUICK: DockerOptions = { rounds: 1, startupPorts: [0, 200], bigPorts: [], basePort: 20_000, conn: CONNRATE_QUICK };

export interface StartupSample {
  round: number;
  peer: StartPeer;
  ports: number;
  startMs: number;
  removeMs: number;
  /** The peer's processes while it runs the container / sandbox (the container's own excluded). */
  processes: number;
  proxies: number;
  /** PSS summed over those processes. */
  pssKiB: number;
}

export interface ConnSample {
  round: number;
  peer: 'ebpf' | DockerPeer;
  crr: CrrOut;
  serial: CrrOut;
  rr: RrOut;
}

export interface DockerBenchResult {
  options: DockerOptions;
  wallS: number;
  version: string;
  startupSamples: StartupSample[];
  connSamples: ConnSample[];
  /** For the summary: medians per (peer, ports). */
  startup: { peer: StartPeer; ports: number; startMs: number; extraMs: number; removeMs: number; processes: number; proxies: number; pssKiB: number; samples: number }[];
  connrate: { peer: DockerPeer | 'ebpf'; n: number; rate: number; rrP50Us: number; rrP99Us: number; serialP50Us: number }[];
  ratios: (PairwiseRatio & { what: string })[];
  verification: { ok: boolean; checked: number; problems: string[] };
}

export const dockerMissing = (): Promise<string | undefined> => dockerdAvailable();

/** Processes of an engine: dockerd and its descendants (docker-proxy, containerd) and what names its dir (shims), minus containers. */
function engineProcesses(d: Dockerd, exclude: Set<number>): { pids: number[]; proxies: number } {
  const info = new Map<number, { ppid: number; cmd: string }>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${e}/status`, 'utf8'))?.[1] ?? 0);
      info.set(Number(e), { ppid, cmd: readFileSync(`/proc/${e}/cmdline`, 'utf8') });
    } catch {
      /* gone */
    }
  }
  const roots = [d.pid, ...[...info].filter(([, v]) => v.cmd.includes(d.dir)).map(([p]) => p)];
  const out = new Set<number>();
  const add = (p: number) => {
    if (out.has(p) || exclude.has(p)) return;
    out.add(p);
    for (const [c, v] of info) if (v.ppid === p) add(c);
  };
  roots.forEach(add);
  const pids = [...out].filter((p) => info.has(p));
  return { pids, proxies: pids.filter((p) => info.get(p)!.cmd.startsWith('/usr/sbin/docker-proxy') || info.get(p)!.cmd.includes('docker-proxy\0')).length };
}

const range = (o: DockerOptions, n: number) => (n === 1 ? `${o.basePort}` : `${o.basePort}-${o.basePort + n - 1}`);

interface Engine {
  peer: DockerPeer;
  topo: Topology;
  d: Dockerd;
}

async function containerPid(e: Engine, name: string): Promise<number> {
  return Number(await e.d.ok(['inspect', '-f', '{{.State.Pid}}', name]));
}

async function startupDocker(e: Engine, o: DockerOptions, r: number, ports: number, problems: string[]): Promise<StartupSample> {
  const name = `s${r}p${ports}`;
  const t = nowNs();
  const res = await e.d.docker(['run', '-d', '--name', name, ...(ports ? ['-p', `${range(o, ports)}:${range(o, ports)}`] : []), 'bb', 'sleep', '3600'], { timeout: 1_800_000 });
  const startMs = elapsedS(t) * 1000;
  if (res.exitCode !== 0) throw new Error(`docker run ${name} (${e.peer}): ${res.stderr.trim()}`);
  const cpid = await containerPid(e, name);
  const procs = engineProcesses(e.d, new Set([cpid]));
  // One docker-proxy per port and address family (0.0.0.0 and ::).
  if (r === 0 && e.peer === 'docker-proxy' && procs.proxies < ports) problems.push(`${e.peer} ${ports} ports: ${procs.proxies} docker-proxy processes`);
  if (r === 0 && e.peer === 'docker-noproxy' && procs.proxies) problems.push(`${e.peer}: ${procs.proxies} docker-proxy processes with the proxy off`);
  const pss = procs.pids.reduce((a, p) => a + pssKiB(p), 0);
  const t2 = nowNs();
  await e.d.ok(['rm', '-f', name], { timeout: 1_800_000 });
  return { round: r, peer: e.peer, ports, startMs, removeMs: elapsedS(t2) * 1000, processes: procs.pids.length, proxies: procs.proxies, pssKiB: pss };
}

async function startupBpfnet(a: AgentPeer, o: DockerOptions, r: number, ports: number): Promise<StartupSample> {
  const name = `s${r}p${ports}`;
  const c = await a.timed((cl) => cl.call('SandboxCreate', { name, network: a.network, ...(ports ? { publish: [`${range(o, ports)}:${range(o, ports)}`] } : {}) }));
  const pss = pssKiB(a.lab.agent!.pid!);
  const rm = await a.timed((cl) => cl.call('SandboxRemove', { ref: name }));
  return { round: r, peer: 'bpfnet', ports, startMs: c.ms, removeMs: rm.ms, processes: 1, proxies: 0, pssKiB: pss };
}

export async function runDocker(o: DockerOptions): Promise<DockerBenchResult> {
  const t0 = Date.now();
  const why = await dockerdAvailable();
  if (why) throw new Error(`docker: ${why}`);
  const [connrate, echo, echoStatic] = [await buildTool('connrate'), await buildTool('echo'), await buildTool('echo', { static: true })];
  const engines: Engine[] = [];
  let agent: AgentPeer | undefined;
  let lab: PeerLab | undefined;
  const release = registerCleanup(async () => {
    for (const e of engines) {
      await e.d.stop().catch((err: unknown) => progress(`docker: stopping ${e.peer} failed: ${(err as Error).message}`));
      await e.topo.destroy();
    }
  });
  const problems: string[] = [];
  let checked = 0;
  try {
    for (const peer of ['docker-proxy', 'docker-noproxy'] as const) {
      const topo = await Topology.create({ prefix: 'bndk', containers: 0 });
      let d: Dockerd;
      try {
        d = await startDockerd({ netnsPath: topo.node.path, name: peer === 'docker-proxy' ? 'bench-px' : 'bench-nopx', userlandProxy: peer === 'docker-proxy' });
      } catch (e) {
        await topo.destroy();
        throw e;
      }
      engines.push({ peer, topo, d });
      await ensureBusyboxImage(d, 'bb');
      progress(`docker: ${peer} engine up in ${topo.node.name}`);
    }
    const version = await engines[0]!.d.ok(['version', '-f', 'Docker {{.Server.Version}}, API {{.Server.APIVersion}}']);
    agent = await startAgentPeer('ebpf', '10.243.0.0/24');
    await agent.client.call('SandboxCreate', { name: 'warm', network: agent.network, publish: ['9000:9000'] });
    await agent.client.call('SandboxRemove', { ref: 'warm' });

    // ---- startup
    const startupSamples: StartupSample[] = [];
    const startPeers: StartPeer[] = ['bpfnet', ...engines.map((e) => e.peer)];
    const one = async (peer: StartPeer, r: number, ports: number) => {
      const e = engines.find((x) => x.peer === peer);
      const s = e ? await startupDocker(e, o, r, ports, problems) : await startupBpfnet(agent!, o, r, ports);
      checked++;
      startupSamples.push(s);
      progress(`docker: startup round ${r + 1} ${peer} ${ports} ports: start ${fmtNum(s.startMs)} ms, remove ${fmtNum(s.removeMs)} ms, ${s.processes} processes (${s.proxies} docker-proxy), PSS ${fmtNum(s.pssKiB / 1024)} MiB`);
    };
    for (let r = 0; r < o.rounds; r++) {
      const rev = <T>(xs: T[]) => (r % 2 ? [...xs].reverse() : xs);
      for (const ports of rev(rotate(o.startupPorts, r))) for (const peer of rev(rotate(startPeers, r))) await one(peer, r, ports);
    }
    for (const ports of o.bigPorts) for (const peer of ['bpfnet', 'docker-proxy'] as const) await one(peer, 0, ports);

    // ---- connections through one published port
    const port = o.basePort;
    lab = await createPeerLab('bndc');
    const ebpfPid = await startEcho(lab, echo.path, [port], 1);
    const ebpf = await programPeer(lab, 'ebpf', tcpRange(port, 1));
    const servers = new Map<string, number>();
    for (const e of engines) {
      await e.d.ok(['run', '-d', '--name', 'echo', '-p', `${port}:${port}`, '-v', `${echoStatic.path}:/echo:ro`, 'bb', '/echo', '--port', String(port), '--threads', '1']);
      const deadline = Date.now() + 10_000;
      while (!(await e.d.docker(['logs', 'echo'])).stdout.includes('ready')) {
        if (Date.now() > deadline) throw new Error(`docker: the echo server in ${e.peer} did not start: ${(await e.d.docker(['logs', 'echo'])).stderr}`);
        await new Promise((res) => setTimeout(res, 50));
      }
      servers.set(e.peer, await containerPid(e, 'echo'));
    }
    const connSamples: ConnSample[] = [];
    const connPeers: ('ebpf' | DockerPeer)[] = ['ebpf', ...engines.map((e) => e.peer)];
    try {
      for (let r = 0; r < o.rounds; r++) {
        const order = rotate(connPeers, r);
        for (const peer of r % 2 ? order.reverse() : order) {
          const e = engines.find((x) => x.peer === peer);
          const runs = await connectionRuns(e ? e.topo.client.path : lab.topo.client.path, connrate.path, e ? servers.get(peer)! : ebpfPid, port, o.conn);
          checked++;
          if (!runs.crr.connections || !runs.rr.requests) problems.push(`${peer} round ${r}: no connection completed (${runs.crr.lastError || runs.rr.lastError})`);
          connSamples.push({ round: r, peer, ...runs });
          progress(`docker: connrate round ${r + 1} ${peer}: ${fmtInt(runs.crr.ratePerS)} conn/s, rr p50 ${us(runs.rr.latencyUs.p50)} µs p99 ${us(runs.rr.latencyUs.p99)} µs`);
        }
      }
    } finally {
      await ebpf.remove();
    }

    const startup: DockerBenchResult['startup'] = [];
    for (const peer of startPeers) {
      for (const ports of [...o.startupPorts, ...o.bigPorts]) {
        const xs = startupSamples.filter((s) => s.peer === peer && s.ports === ports);
        if (!xs.length) continue;
        const none = startupSamples.filter((s) => s.peer === peer && s.ports === 0).map((s) => s.startMs);
        const start = median(xs.map((s) => s.startMs));
        startup.push({ peer, ports, startMs: start, extraMs: start - median(none), removeMs: median(xs.map((s) => s.removeMs)), processes: median(xs.map((s) => s.processes)), proxies: median(xs.map((s) => s.proxies)), pssKiB: median(xs.map((s) => s.pssKiB)), samples: xs.length });
      }
    }
    const connrateCells = connPeers.map((peer) => {
      const xs = connSamples.filter((s) => s.peer === peer);
      return { peer, n: 1, rate: median(xs.map((s) => s.crr.ratePerS)), rrP50Us: median(xs.map((s) => s.rr.latencyUs.p50)), rrP99Us: median(xs.map((s) => s.rr.latencyUs.p99)), serialP50Us: median(xs.map((s) => s.serial.latencyUs.p50)) };
    });
    const ratios: DockerBenchResult['ratios'] = [];
    for (const e of engines) {
      const rate = pairwise(connSamples, (s) => s.peer === 'ebpf', (s) => s.peer === e.peer, (s) => s.crr.ratePerS);
      if (rate) ratios.push({ what: `conn/s ebpf ÷ ${e.peer}`, ...rate });
      const p99 = pairwise(connSamples, (s) => s.peer === 'ebpf', (s) => s.peer === e.peer, (s) => s.rr.latencyUs.p99);
      if (p99) ratios.push({ what: `rr p99 ebpf ÷ ${e.peer}`, ...p99 });
      for (const ports of o.startupPorts.filter((p) => p > 0)) {
        const st = pairwise(startupSamples, (s) => s.peer === e.peer && s.ports === ports, (s) => s.peer === 'bpfnet' && s.ports === ports, (s) => s.startMs);
        if (st) ratios.push({ what: `start with ${ports} ports: ${e.peer} ÷ bpfnet`, ...st });
      }
    }
    for (const p of problems) progress(`docker: VERIFICATION: ${p}`);
    return { options: o, wallS: (Date.now() - t0) / 1000, version, startupSamples, connSamples, startup, connrate: connrateCells, ratios, verification: { ok: problems.length === 0, checked, problems } };
  } finally {
    await lab?.release();
    await agent?.release();
    await release();
  }
}

export function dockerTables(r: DockerBenchResult): Table[] {
  const o = r.options;
  const ms = (x: number) => fmtNum(x, x >= 100 ? 0 : 1);
  const start: Table = {
    title: `docker: starting a container / sandbox publishing a port range (${r.version}; ${o.rounds} alternating rounds${o.bigPorts.length ? `, ${o.bigPorts.join(', ')} ports once` : ''})`,
    headers: ['peer', 'ports', 'start ms', 'more than with none, ms', 'remove ms', 'processes', 'of them docker-proxy', 'PSS MiB', 'samples'],
    right: [1, 2, 3, 4, 5, 6, 7, 8],
    rows: r.startup.map((s) => [LABEL[s.peer], fmtInt(s.ports), ms(s.startMs), s.ports ? ms(s.extraMs) : '', ms(s.removeMs), fmtInt(s.processes), fmtInt(s.proxies), fmtNum(s.pssKiB / 1024, 0), String(s.samples)]),
    notes: [
      `Docker: \`docker run -d -p A-B:A-B bb sleep 3600\` (a busybox image made from the machine's static busybox), timed around the CLI until it returns (container running, ports published); removal \`docker rm -f\`; ports ${o.basePort}..; Docker 20.10 writes each port's rules with separate iptables calls (and starts one docker-proxy per port with the proxy on)`,
      'bpfnet: SandboxCreate publishing the same range on an agent in eBPF mode (netns, veth, files, store, maps), removal SandboxRemove; a sandbox has no process, so bpfnet\'s processes = the agent',
      'processes / PSS: the engine while the container runs (dockerd, containerd, shims, docker-proxy; the container\'s own process excluded), proportional set size summed (shared pages split among the processes sharing them, so the sum is real memory); bpfnet: the agent\'s PSS',
      ...(o.bigPorts.length ? [`${o.bigPorts.join(', ')} ports: one sample each, proxy on only (Docker needs minutes to publish and as long again to remove them)`] : []),
    ],
  };
  const conn: Table = {
    title: `docker: new connections/s and latency through one published port (${o.rounds} alternating rounds × ${o.conn.durationS} s)`,
    headers: ['peer', 'conn/s', 'new conn p50 µs (serial)', 'rr p50 µs', 'rr p99 µs'],
    right: [1, 2, 3, 4],
    rows: r.connrate.map((c) => [LABEL[c.peer], fmtInt(c.rate), us(c.serialP50Us), us(c.rrP50Us), us(c.rrP99Us)]),
    notes: [
      `client netns -> ${UPLINK.nodeIp}:${o.basePort} on the uplink of the engine's node netns -> the container (docker0); the same workloads as connrate; bpfnet eBPF in a topology of its own in the same rounds`,
      'the client is external, so Docker\'s DNAT rules carry the traffic with the proxy on as well (docker-proxy serves only node-local and hairpin clients)',
      ...r.ratios.map((x) => `${x.what}: ${ratioCell(x)}`),
      ...(r.verification.ok ? [`verification: ${r.verification.checked} checks (docker-proxy count per port with the proxy on, none with it off; every run completed), all as expected`] : [`VERIFICATION FAILED: ${r.verification.problems.join('; ')}`]),
    ],
  };
  return [start, conn];
}
