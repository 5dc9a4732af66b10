/**
 * Sandbox + endpoint setup time: bpfnet's API against the CNI reference
 * plugins, for the same job on the same machine.
 *
 * One unit of work = a fresh network namespace with a veth pair whose host
 * side is on a bridge, an address on the container side and a default route.
 *
 *   bpfnet      `Client.call('SandboxCreate', {name, network})` on a user
 *               bridge network of a real agent (AgentLab: its own throw-away
 *               node netns). The agent creates the netns, the veth pair,
 *               addresses, routes, the sandbox files (hosts, resolv.conf),
 *               records everything in its store and programs the eBPF
 *               dataplane (tc program on the new veth, maps). Timed in this
 *               process around the call: includes the API round trip.
 *               Removal: `SandboxRemove`.
 *   cni         the `bridge` plugin (which execs `host-local` for IPAM) with
 *               CNI_COMMAND=ADD into a namespace made beforehand, untimed
 *               (what a runtime does: containerd makes the netns first).
 *               Removal: CNI_COMMAND=DEL alone.
 *   netns+cni   `createNetns` (src/netlink, the primitive bpfnet uses) + the
 *               same ADD, timed together. Removal: DEL + `deleteNetns`.
 *
 * The plugins are exec'd exactly as libcni does: the plugin binary from
 * CNI_PATH, CNI_COMMAND / CNI_CONTAINERID / CNI_NETNS / CNI_IFNAME / CNI_PATH
 * in the environment, the network config (cniVersion 1.0.0, plus prevResult
 * for DEL) on stdin, the result read from stdout. They run from a helper
 * process that lives in its own throw-away node namespace (this file, run
 * with --cni-helper under `nsenter --net=`), like a runtime that lives in the
 * host namespace; the helper times spawn -> exit, so the CNI numbers exclude
 * the helper round trip that bpfnet's numbers include. Each CNI peer has its
 * own node namespace and bridge, so every peer sees only its own population.
 *
 * Creates accumulate: round r runs every peer's batch of `perRound` creates,
 * in an order rotated by one each round and reversed on odd rounds; then the
 * removal rounds take them all away again (oldest first) in the same way. So
 * each peer goes 0 -> rounds*perRound sandboxes and back, and the first vs
 * last creates show whether the cost grows with the sandboxes present.
 * Every create and removal is verified, untimed, in the kernel (veth on the
 * bridge and up, address, default route; gone afterwards).
 *
 * Everything (agent, namespaces, bpffs root, temp dirs) is removed in a
 * finally block, and synchronously on SIGINT/SIGTERM.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client } from '../src/api/client.js';
import { AgentLab } from '../src/lab/agentlab.js';
import { Netns } from '../src/lab/netns.js';
import { createNetns, deleteNetns, removeNetnsDir, Rtnl } from '../src/netlink/index.js';
import { interruption, progress } from './lib/env.js';
import { elapsedS, fmtNum, fmtRatio, median, nowNs, quantile, rotate, summarize, type Summary, type Table } from './lib/stats.js';

export const CNI_PATH = '/usr/lib/cni';
const SELF = fileURLToPath(import.meta.url);

export interface SetupOptions {
  /** Rounds of creates (and as many of removals). */
  rounds: number;
  /** Creates per peer per round. */
  perRound: number;
  /** Untimed create+remove pairs per peer before the rounds. */
  warmup: number;
  /** The agent's --log-level ('sandbox created' with the phase timings is logged at info). */
  agentLogLevel: string;
}

export const SETUP_FULL: SetupOptions = { rounds: 3, perRound: 100, warmup: 5, agentLogLevel: 'info' };
export const SETUP_QUICK: SetupOptions = { rounds: 2, perRound: 10, warmup: 2, agentLogLevel: 'info' };

export type PeerId = 'bpfnet' | 'cni' | 'netns+cni';
export const PEERS: readonly PeerId[] = ['bpfnet', 'cni', 'netns+cni'];

const LABEL: Record<PeerId, { create: string; remove: string }> = {
  bpfnet: { create: 'bpfnet SandboxCreate (API call)', remove: 'bpfnet SandboxRemove (API call)' },
  cni: { create: 'CNI ADD into a pre-made netns', remove: 'CNI DEL (netns kept)' },
  'netns+cni': { create: 'createNetns + CNI ADD', remove: 'CNI DEL + deleteNetns' },
};

/** The bpfnet user network and the CNI networks (each CNI peer in its own node netns). */
const BPFNET_SUBNET = '10.250.0.0/16';
const CNI_SUBNET: Record<Exclude<PeerId, 'bpfnet'>, string> = { cni: '10.251.0.0/16', 'netns+cni': '10.252.0.0/16' };
const CNI_BRIDGE = 'cni0';

export interface PhaseMs {
  record: number;
  plumb: number;
  dataplane: number;
}

export interface PeerResult {
  id: PeerId;
  create: { label: string; samplesMs: number[]; perRoundMs: number[][]; summary: Summary; p50: number; p90: number; p99: number };
  remove: { label: string; samplesMs: number[]; perRoundMs: number[][]; summary: Summary; p50: number; p90: number; p99: number };
  /** netns+cni: the two parts of each create / removal. */
  parts?: { netnsCreateMs: number[]; addMs: number[]; delMs: number[]; netnsDeleteMs: number[] };
}

export interface SetupResult {
  options: SetupOptions;
  wallS: number;
  cniPlugins: { path: string; version: string };
  /** Per round: the peers in the order they ran. */
  createOrder: PeerId[][];
  removeOrder: PeerId[][];
  peers: PeerResult[];
  /** bpfnet's own per-create phase timings ('sandbox created' log lines), in create order. */
  phases: { samples: PhaseMs[]; median: PhaseMs; firstK: PhaseMs; lastK: PhaseMs };
  /** Creates/removals compared for growth: the first k vs the last k of each peer. */
  growthK: number;
  /** Spawning /bin/true from the CNI helper: the process-creation floor every plugin exec pays. */
  spawnFloorMs: number[];
  verification: { ok: boolean; checked: number; problems: string[] };
}

// ---- the CNI helper (runs inside a CNI node netns) ---------------------------

interface HelperConfig {
  /** Network config without cniVersion/prevResult additions. */
  conf: Record<string, unknown>;
}

type HelperReq =
  | { id: number; op: 'netns'; path: string }
  | { id: number; op: 'netns-del'; path: string }
  | { id: number; op: 'add'; cid: string; netns: string; makeNetns: boolean }
  | { id: number; op: 'del'; cid: string; netns: string; prevResult: unknown; deleteNetns: boolean }
  | { id: number; op: 'true' };

interface HelperRes {
  id: number;
  error?: string;
  /** Whole timed operation (netns + plugin when both). */
  ms?: number;
  netnsMs?: number;
  cniMs?: number;
  result?: unknown;
}

/** Exec one plugin as libcni's invoke package does: env + config on stdin, result on stdout. */
function execPlugin(command: 'ADD' | 'DEL', cid: string, netns: string, conf: string): Promise<{ ms: number; stdout: string }> {
  const type = 'bridge';
  return new Promise((resolveP, reject) => {
    const t0 = performance.now();
    const child = spawn(join(CNI_PATH, type), [], {
      env: { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, sig) => {
      const ms = performance.now() - t0;
      const stdout = Buffer.concat(out).toString();
      if (code === 0) resolveP({ ms, stdout });
      else reject(new Error(`${type} ${command} ${cid} exited ${code ?? sig}: ${stdout}${Buffer.concat(err).toString()}`.trim()));
    });
    child.stdin.end(conf);
  });
}

function spawnTrue(): Promise<number> {
  return new Promise((resolveP, reject) => {
    const t0 = performance.now();
    const child = spawn('/bin/true', [], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.on('error', reject);
    child.on('close', () => resolveP(performance.now() - t0));
    child.stdin.end();
  });
}

async function helperHandle(cfg: HelperConfig, req: HelperReq): Promise<HelperRes> {
  switch (req.op) {
    case 'netns': {
      const t0 = performance.now();
      createNetns(req.path);
      return { id: req.id, ms: performance.now() - t0 };
    }
    case 'netns-del': {
      const t0 = performance.now();
      deleteNetns(req.path);
      return { id: req.id, ms: performance.now() - t0 };
    }
    case 'add': {
      const conf = JSON.stringify(cfg.conf);
      const t0 = performance.now();
      if (req.makeNetns) createNetns(req.netns);
      const t1 = performance.now();
      const r = await execPlugin('ADD', req.cid, req.netns, conf);
      const t2 = performance.now();
      return { id: req.id, ms: t2 - t0, netnsMs: t1 - t0, cniMs: r.ms, result: JSON.parse(r.stdout) as unknown };
    }
    case 'del': {
      // libcni adds the cached ADD result as prevResult for cniVersion >= 0.4.0.
      const conf = JSON.stringify({ ...cfg.conf, prevResult: req.prevResult });
      const t0 = performance.now();
      const r = await execPlugin('DEL', req.cid, req.netns, conf);
      const t1 = performance.now();
      if (req.deleteNetns) deleteNetns(req.netns);
      const t2 = performance.now();
      return { id: req.id, ms: t2 - t0, cniMs: r.ms, netnsMs: t2 - t1 };
    }
    case 'true':
      return { id: req.id, ms: await spawnTrue() };
  }
}

async function helperMain(cfgB64: string): Promise<void> {
  const cfg = JSON.parse(Buffer.from(cfgB64, 'base64').toString()) as HelperConfig;
  process.stdout.write(JSON.stringify({ id: 0, ms: 0 }) + '\n'); // ready
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const req = JSON.parse(line) as HelperReq;
    let res: HelperRes;
    try {
      res = await helperHandle(cfg, req);
    } catch (e) {
      res = { id: req.id, error: (e as Error).message };
    }
    process.stdout.write(JSON.stringify(res) + '\n');
  }
}

/** The bench side of a helper: one request at a time, answers matched by id. */
class Helper {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: HelperRes) => void; reject: (e: Error) => void }>();
  private stderr = '';

  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let r: HelperRes;
      try {
        r = JSON.parse(line) as HelperRes;
      } catch {
        return;
      }
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      if (r.error) w.reject(new Error(r.error));
      else w.resolve(r);
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    child.on('exit', (code, sig) => {
      for (const w of this.waiting.values()) w.reject(new Error(`CNI helper exited (${code ?? sig}): ${this.stderr}`));
      this.waiting.clear();
    });
  }

  static async start(nodeNetns: string, cfg: HelperConfig, track: (c: ChildProcess) => void): Promise<Helper> {
    const b64 = Buffer.from(JSON.stringify(cfg)).toString('base64');
    const child = spawn('nsenter', [`--net=${nodeNetns}`, '--', process.execPath, SELF, '--cni-helper', b64], { stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    const h = new Helper(child);
    await new Promise<void>((res, rej) => {
      h.waiting.set(0, { resolve: () => res(), reject: rej });
      setTimeout(() => rej(new Error(`CNI helper not ready after 10 s: ${h.stderr}`)), 10_000).unref();
    });
    return h;
  }

  call(req: HelperReq extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never): Promise<HelperRes> {
    const id = this.nextId++;
    return new Promise((res, rej) => {
      this.waiting.set(id, { resolve: res, reject: rej });
      this.child.stdin!.write(JSON.stringify({ ...req, id }) + '\n');
    });
  }

  stop(): void {
    this.child.stdin?.end();
    this.child.kill('SIGKILL');
  }
}

// ---- resources and cleanup ----------------------------------------------------

/** Everything the run creates, removable asynchronously (finally) or synchronously (signal). */
class Resources {
  lab: AgentLab | undefined;
  readonly children = new Set<ChildProcess>();
  readonly nodes: Netns[] = [];
  readonly netnsDirs: string[] = [];
  readonly rtnls: Rtnl[] = [];
  client: Client | undefined;
  dir: string | undefined;
  private done = false;

  private closeHandles(): void {
    this.client?.close();
    this.client = undefined;
    for (const r of this.rtnls.splice(0)) {
      try {
        r.close();
      } catch {
        /* closing twice */
      }
    }
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
  }

  private removeNetnsDirs(): void {
    for (const d of this.netnsDirs.splice(0)) {
      try {
        removeNetnsDir(d);
      } catch (e) {
        progress(`setup: cleanup of ${d} failed: ${(e as Error).message}`);
      }
    }
  }

  async cleanup(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.closeHandles();
    this.removeNetnsDirs();
    for (const n of this.nodes.splice(0)) await n.destroy();
    if (this.lab) await this.lab.destroy().catch((e: unknown) => progress(`setup: lab cleanup failed: ${(e as Error).message}`));
    this.lab = undefined;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** The same, without awaiting anything: for signal handlers (the process exits right after). */
  cleanupSync(): void {
    if (this.done) return;
    this.done = true;
    const quiet = (f: () => void) => {
      try {
        f();
      } catch {
        /* best effort */
      }
    };
    this.closeHandles();
    this.removeNetnsDirs();
    for (const n of this.nodes.splice(0)) quiet(() => execFileSync('ip', ['netns', 'del', n.name], { stdio: 'ignore' }));
    const lab = this.lab;
    if (lab) {
      quiet(() => lab.agent?.kill('SIGKILL'));
      quiet(() => removeNetnsDir(join(lab.runDir, 'netns')));
      quiet(() => execFileSync('umount', [join(lab.runDir, 'hostns')], { stdio: 'ignore' }));
      for (const n of [lab.client, lab.node]) quiet(() => execFileSync('ip', ['netns', 'del', n.name], { stdio: 'ignore' }));
      quiet(() => rmSync(lab.bpffsRoot, { recursive: true, force: true }));
      quiet(() => rmSync(lab.dir, { recursive: true, force: true }));
    }
    if (this.dir) quiet(() => rmSync(this.dir!, { recursive: true, force: true }));
  }
}

// ---- verification (untimed) -------------------------------------------------

interface Placed {
  /** Node-side veth name. */
  hostIf: string;
  netns: string;
  cidr: string;
  gateway: string;
}

class Verifier {
  checked = 0;
  readonly problems: string[] = [];

  private add(p: string): void {
    if (this.problems.length < 30) this.problems.push(p);
    else if (this.problems.length === 30) this.problems.push('(more problems not listed)');
  }

  created(who: string, node: Rtnl, bridge: string, p: Placed): void {
    this.checked++;
    const br = node.link(bridge);
    const h = node.link(p.hostIf);
    if (!h) return this.add(`${who}: host veth ${p.hostIf} missing`);
    if (!br || h.master !== br.index) this.add(`${who}: ${p.hostIf} is not on bridge ${bridge}`);
    if (!h.up) this.add(`${who}: ${p.hostIf} is down`);
    let rt: Rtnl | undefined;
    try {
      rt = Rtnl.open(p.netns);
      const eth0 = rt.link('eth0');
      if (!eth0?.up) this.add(`${who}: eth0 missing or down in ${p.netns}`);
      if (!rt.addrs('eth0').some((a) => a.cidr === p.cidr)) this.add(`${who}: eth0 lacks ${p.cidr}`);
      if (!rt.routes({}).some((r) => r.dst === 'default' && r.gateway === p.gateway)) this.add(`${who}: no default route via ${p.gateway}`);
    } catch (e) {
      this.add(`${who}: ${p.netns}: ${(e as Error).message}`);
    } finally {
      rt?.close();
    }
  }

  removed(who: string, node: Rtnl, p: Placed, netnsGone: boolean): void {
    this.checked++;
    if (node.link(p.hostIf)) this.add(`${who}: host veth ${p.hostIf} still there after removal`);
    if (netnsGone && existsSync(p.netns)) this.add(`${who}: ${p.netns} still there after removal`);
    if (!netnsGone) {
      let rt: Rtnl | undefined;
      try {
        rt = Rtnl.open(p.netns);
        if (rt.link('eth0')) this.add(`${who}: eth0 still in ${p.netns} after DEL`);
      } catch (e) {
        this.add(`${who}: ${p.netns}: ${(e as Error).message}`);
      } finally {
        rt?.close();
      }
    }
  }
}

// ---- peers ----------------------------------------------------------------

interface Op {
  ms: number;
  netnsMs?: number;
  cniMs?: number;
}

interface Peer {
  id: PeerId;
  /** Untimed work before a batch of creates (cni: the namespaces). */
  prepare(names: string[]): Promise<void>;
  create(name: string, verify: boolean): Promise<Op>;
  remove(name: string, verify: boolean): Promise<Op>;
}

function bpfnetPeer(client: Client, network: string, bridge: string, node: Rtnl, v: Verifier): Peer {
  const placed = new Map<string, Placed>();
  return {
    id: 'bpfnet',
    prepare: async () => undefined,
    async create(name, verify) {
      const t0 = performance.now();
      const r = await client.call('SandboxCreate', { name, network });
      const ms = performance.now() - t0;
      const ep = r.value.endpoints[0];
      const gw = r.value.networks[0]?.ipam?.gateway ?? '';
      const p: Placed = { hostIf: ep?.hostIfName ?? '?', netns: r.value.sandbox?.netnsPath ?? '?', cidr: `${ep?.ipv4}/${ep?.prefixLen}`, gateway: gw };
      placed.set(name, p);
      if (verify) v.created(`bpfnet ${name}`, node, bridge, p);
      return { ms };
    },
    async remove(name, verify) {
      const t0 = performance.now();
      await client.call('SandboxRemove', { ref: name });
      const ms = performance.now() - t0;
      const p = placed.get(name);
      placed.delete(name);
      if (verify && p) v.removed(`bpfnet ${name}`, node, p, true);
      return { ms };
    },
  };
}

interface CniResult {
  interfaces?: { name: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string }[];
}

function cniPeer(id: 'cni' | 'netns+cni', helper: Helper, netnsDir: string, tag: string, node: Rtnl, v: Verifier): Peer {
  const withNetns = id === 'netns+cni';
  const state = new Map<string, { cid: string; netns: string; result: CniResult; placed: Placed }>();
  const cidOf = (name: string) => `bench-${tag}-${id === 'cni' ? 'c' : 'n'}-${name}`;
  const netnsOf = (name: string) => join(netnsDir, name);
  return {
    id,
    async prepare(names) {
      if (withNetns) return;
      for (const n of names) await helper.call({ op: 'netns', path: netnsOf(n) });
    },
    async create(name, verify) {
      const cid = cidOf(name);
      const netns = netnsOf(name);
      const r = await helper.call({ op: 'add', cid, netns, makeNetns: withNetns });
      const result = r.result as CniResult;
      const hostIf = result.interfaces?.find((i) => !i.sandbox && i.name !== CNI_BRIDGE)?.name ?? '?';
      const ip = result.ips?.[0];
      const placed: Placed = { hostIf, netns, cidr: ip?.address ?? '?', gateway: ip?.gateway ?? '?' };
      state.set(name, { cid, netns, result, placed });
      if (verify) v.created(`${id} ${name}`, node, CNI_BRIDGE, placed);
      return withNetns ? { ms: r.ms!, netnsMs: r.netnsMs!, cniMs: r.cniMs! } : { ms: r.cniMs! };
    },
    async remove(name, verify) {
      const s = state.get(name);
      if (!s) throw new Error(`${id}: nothing created under ${name}`);
      state.delete(name);
      const r = await helper.call({ op: 'del', cid: s.cid, netns: s.netns, prevResult: s.result, deleteNetns: withNetns });
      if (verify) v.removed(`${id} ${name}`, node, s.placed, withNetns);
      // cni: the runtime deletes the namespace itself afterwards (untimed here).
      if (!withNetns) await helper.call({ op: 'netns-del', path: s.netns });
      return withNetns ? { ms: r.ms!, netnsMs: r.netnsMs!, cniMs: r.cniMs! } : { ms: r.cniMs! };
    },
  };
}

// ---- the run ----------------------------------------------------------------

/** Round r's order: rotated by r, reversed on odd rounds (as in progcost and maps). */
function roundOrder(r: number): PeerId[] {
  const o = rotate(PEERS, r);
  return r % 2 === 1 ? o.reverse() : o;
}

function parsePhases(log: string): Map<string, PhaseMs> {
  const m = new Map<string, PhaseMs>();
  for (const line of log.split('\n')) {
    if (!line.includes('"sandbox created"')) continue;
    try {
      const o = JSON.parse(line) as { msg?: string; sandbox?: string; ms?: PhaseMs };
      if (o.msg === 'sandbox created' && o.sandbox && o.ms) m.set(o.sandbox, o.ms);
    } catch {
      /* not JSON */
    }
  }
  return m;
}

const phaseMedian = (xs: PhaseMs[]): PhaseMs => ({
  record: median(xs.map((x) => x.record)),
  plumb: median(xs.map((x) => x.plumb)),
  dataplane: median(xs.map((x) => x.dataplane)),
});

/** "containernetworking-plugins 1.1.1+ds1-3+b5, CNI spec up to 1.0.0". */
function pluginVersion(): string {
  let pkg = 'containernetworking-plugins (version unknown)';
  try {
    pkg = `containernetworking-plugins ${execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'containernetworking-plugins'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()}`;
  } catch {
    /* not from a Debian package */
  }
  try {
    const out = execFileSync(join(CNI_PATH, 'bridge'), [], { env: { ...process.env, CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', stdio: ['pipe', 'pipe', 'ignore'] });
    const v = JSON.parse(out.toString()) as { supportedVersions?: string[] };
    return `${pkg}, CNI spec ${v.supportedVersions?.join(' ') ?? '?'}`;
  } catch {
    return pkg;
  }
}

/** Why the setup benchmark cannot run here, or undefined when it can. */
export function cniMissing(): string | undefined {
  const missing = ['bridge', 'host-local'].filter((p) => !existsSync(join(CNI_PATH, p)));
  if (!missing.length) return undefined;
  return `the setup benchmark needs the CNI reference plugins (${missing.map((p) => join(CNI_PATH, p)).join(', ')} missing): apt-get install containernetworking-plugins, or run make bench (BENCH=1 scripts/install-deps.sh installs it)`;
}

export async function runSetup(o: SetupOptions): Promise<SetupResult> {
  const missing = cniMissing();
  if (missing) throw new Error(missing);
  const started = nowNs();
  const res = new Resources();
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) return;
    signalled = true;
    process.stderr.write(`[bench] ${sig}: removing the setup benchmark's agent, namespaces and dirs\n`);
    res.cleanupSync();
    // bench/lib/env.ts's handler (when hooked) exits once its own cleanup is done.
    if (!interruption()) process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await runInside(o, res, started);
  } finally {
    await res.cleanup();
    if (!signalled) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}

async function runInside(o: SetupOptions, res: Resources, started: bigint): Promise<SetupResult> {
  const tag = randomBytes(2).toString('hex');
  res.dir = mkdtempSync(join(tmpdir(), 'bpfnet-bench-setup-'));
  const version = pluginVersion();

  // bpfnet: a real agent in its throw-away node netns.
  progress(`setup: starting an agent (AgentLab, log level ${o.agentLogLevel})`);
  res.lab = await AgentLab.create({ defaultSubnet: '10.240.0.0/24', args: ['--log-level', o.agentLogLevel] });
  const lab = res.lab;
  await lab.start();
  const client = await Client.connect(lab.host);
  res.client = client;
  const net = (await client.call('NetworkCreate', { name: 'bench', subnet: BPFNET_SUBNET })).value;
  if (!net.bridgeName) throw new Error(`network bench has no bridge: ${JSON.stringify(net)}`);
  const labNode = Rtnl.open(lab.node.path);
  res.rtnls.push(labNode);

  const v = new Verifier();
  const peers = new Map<PeerId, Peer>();
  peers.set('bpfnet', bpfnetPeer(client, 'bench', net.bridgeName, labNode, v));
  /** Each peer's node namespace and bridge, for the final check. */
  const bridges: [PeerId, Rtnl, string][] = [['bpfnet', labNode, net.bridgeName]];

  // CNI: one throw-away node netns, bridge, IPAM dir and helper per peer.
  const helpers: Helper[] = [];
  for (const id of ['cni', 'netns+cni'] as const) {
    const short = id === 'cni' ? 'c' : 'n';
    const node = await Netns.create(`bs-${tag}-${short}node`);
    res.nodes.push(node);
    const netnsDir = join(res.dir, `netns-${short}`);
    mkdirSync(netnsDir, { recursive: true });
    res.netnsDirs.push(netnsDir);
    const conf = {
      cniVersion: '1.0.0',
      name: `bench-${short}`,
      type: 'bridge',
      bridge: CNI_BRIDGE,
      isGateway: true,
      ipMasq: false,
      ipam: { type: 'host-local', subnet: CNI_SUBNET[id], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(res.dir, `ipam-${short}`) },
    };
    const helper = await Helper.start(node.path, { conf }, (c) => res.children.add(c));
    helpers.push(helper);
    const rt = Rtnl.open(node.path);
    res.rtnls.push(rt);
    peers.set(id, cniPeer(id, helper, netnsDir, tag, rt, v));
    bridges.push([id, rt, CNI_BRIDGE]);
  }

  // Warm-up: first bridge creation (CNI), first attach and load (bpfnet), page cache for the plugin binaries.
  progress(`setup: warm-up (${o.warmup} create+remove per peer)`);
  for (const id of PEERS) {
    const p = peers.get(id)!;
    const names = Array.from({ length: o.warmup }, (_, i) => `w${i}`);
    await p.prepare(names);
    for (const n of names) await p.create(n, true);
    for (const n of names) await p.remove(n, true);
  }
  const spawnFloorMs: number[] = [];
  for (let i = 0; i < 20; i++) spawnFloorMs.push((await helpers[0]!.call({ op: 'true' })).ms!);

  const samples = new Map<PeerId, { create: Op[][]; remove: Op[][] }>(PEERS.map((id) => [id, { create: [], remove: [] }]));
  const createOrder: PeerId[][] = [];
  const removeOrder: PeerId[][] = [];
  const total = o.rounds * o.perRound;
  const nameOf = (i: number) => `s${String(i).padStart(4, '0')}`;

  for (let r = 0; r < o.rounds; r++) {
    const order = roundOrder(r);
    createOrder.push(order);
    const names = Array.from({ length: o.perRound }, (_, i) => nameOf(r * o.perRound + i));
    for (const id of order) {
      const p = peers.get(id)!;
      await p.prepare(names);
      const ops: Op[] = [];
      for (const n of names) ops.push(await p.create(n, true));
      samples.get(id)!.create.push(ops);
    }
    progress(`setup: create round ${r + 1}/${o.rounds} (${order.join(', ')}): ${(r + 1) * o.perRound} sandboxes per peer`);
  }
  for (let r = 0; r < o.rounds; r++) {
    const order = roundOrder(r);
    removeOrder.push(order);
    const names = Array.from({ length: o.perRound }, (_, i) => nameOf(r * o.perRound + i));
    for (const id of order) {
      const p = peers.get(id)!;
      const ops: Op[] = [];
      for (const n of names) ops.push(await p.remove(n, true));
      samples.get(id)!.remove.push(ops);
    }
    progress(`setup: remove round ${r + 1}/${o.rounds} (${order.join(', ')}): ${total - (r + 1) * o.perRound} left per peer`);
  }

  // Nothing left on any bridge.
  for (const [who, rt, bridge] of bridges) {
    const br = rt.link(bridge);
    const ports = br ? rt.links().filter((l) => l.master === br.index) : [];
    if (ports.length) v.problems.push(`${who}: ${ports.length} device(s) still on ${bridge} at the end: ${ports.slice(0, 5).map((l) => l.name).join(', ')}`);
  }

  // Phase timings from the agent's log, in create order of the timed sandboxes.
  const logged = parsePhases(lab.agentLog);
  const phaseSamples: PhaseMs[] = [];
  for (let i = 0; i < total; i++) {
    const ph = logged.get(nameOf(i));
    if (ph) phaseSamples.push(ph);
  }
  if (phaseSamples.length !== total) v.problems.push(`bpfnet: ${phaseSamples.length} of ${total} 'sandbox created' log lines with phase timings found`);
  const k = growthK(total);

  const peerResults: PeerResult[] = PEERS.map((id) => {
    const s = samples.get(id)!;
    const side = (which: 'create' | 'remove') => {
      const perRoundMs = s[which].map((ops) => ops.map((x) => x.ms));
      const all = perRoundMs.flat();
      return { label: LABEL[id][which], samplesMs: all, perRoundMs, summary: summarize(all), p50: quantile(all, 0.5), p90: quantile(all, 0.9), p99: quantile(all, 0.99) };
    };
    const pr: PeerResult = { id, create: side('create'), remove: side('remove') };
    if (id === 'netns+cni') {
      const c = s.create.flat();
      const d = s.remove.flat();
      pr.parts = { netnsCreateMs: c.map((x) => x.netnsMs ?? NaN), addMs: c.map((x) => x.cniMs ?? NaN), delMs: d.map((x) => x.cniMs ?? NaN), netnsDeleteMs: d.map((x) => x.netnsMs ?? NaN) };
    }
    return pr;
  });

  return {
    options: o,
    wallS: elapsedS(started),
    cniPlugins: { path: CNI_PATH, version },
    createOrder,
    removeOrder,
    peers: peerResults,
    phases: { samples: phaseSamples, median: phaseMedian(phaseSamples), firstK: phaseMedian(phaseSamples.slice(0, k)), lastK: phaseMedian(phaseSamples.slice(-k)) },
    growthK: k,
    spawnFloorMs,
    verification: { ok: v.problems.length === 0, checked: v.checked, problems: v.problems },
  };
}

function growthK(total: number): number {
  return Math.max(1, Math.min(50, Math.floor(total / 6)));
}

// ---- tables ---------------------------------------------------------------

const ms = (x: number) => fmtNum(x, 2);

export function setupTables(r: SetupResult): Table[] {
  const bp = r.peers.find((p) => p.id === 'bpfnet')!;
  const k = r.growthK;
  const n = r.options.rounds * r.options.perRound;
  const latencyRows = (which: 'create' | 'remove') =>
    r.peers.flatMap((p) => {
      const s = p[which];
      const rows = [[
        s.label,
        String(s.samplesMs.length),
        ms(s.p50),
        ms(s.p90),
        ms(s.p99),
        `${ms(s.summary.min)}-${ms(s.summary.max)}`,
        s.perRoundMs.map((xs) => ms(median(xs))).join(' / '),
        p.id === 'bpfnet' ? '1.00×' : fmtRatio(s.p50 / bp[which].p50),
      ]];
      if (p.parts) {
        const [a, b] = which === 'create' ? [p.parts.netnsCreateMs, p.parts.addMs] : [p.parts.delMs, p.parts.netnsDeleteMs];
        const [la, lb] = which === 'create' ? ['createNetns', 'CNI ADD'] : ['CNI DEL', 'deleteNetns'];
        rows.push([`  of which ${la}`, String(a.length), ms(quantile(a, 0.5)), ms(quantile(a, 0.9)), ms(quantile(a, 0.99)), '', '', '']);
        rows.push([`  of which ${lb}`, String(b.length), ms(quantile(b, 0.5)), ms(quantile(b, 0.9)), ms(quantile(b, 0.99)), '', '', '']);
      }
      return rows;
    });
  const headers = ['peer', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'min-max ms', 'p50 per round', 'p50 vs bpfnet'];
  const target = bp.create.p50 <= 10;
  const floor = median(r.spawnFloorMs);
  const ph = r.phases;
  const phaseSum = ph.median.record + ph.median.plumb + ph.median.dataplane;

  const create: Table = {
    title: `setup: sandbox + endpoint creation (${r.options.rounds} rounds × ${r.options.perRound} per peer, alternating)`,
    headers,
    right: [1, 2, 3, 4, 5, 6, 7],
    rows: latencyRows('create'),
    notes: [
      `issue target bpfnet p50 <= 10 ms: ${target ? 'reached' : 'NOT reached'} (p50 ${ms(bp.create.p50)} ms, p99 ${ms(bp.create.p99)} ms)`,
      'bpfnet: netns, veth pair on the bridge, lo up, address, default route, sandbox files, store records and the eBPF dataplane (tc program on the new veth, maps), timed around the API call (includes the socket round trip)',
      `CNI: ${r.cniPlugins.path}/bridge (which execs host-local) as libcni execs it (env, config on stdin; ${r.cniPlugins.version}); timed spawn -> exit inside a helper in the CNI node netns. Does not bring lo up (containerd runs the loopback plugin for that, one more exec), writes no files or state besides host-local's lease, no dataplane`,
      `process-creation floor: spawning /bin/true from the (Node) helper takes ${ms(floor)} ms median; libcni (Go) execs with its own cost; bridge execs host-local, so each ADD/DEL pays two execs`,
      'each peer has its own node netns and bridge; creates accumulate (0 -> N sandboxes per peer) and every one is verified untimed',
    ],
  };
  const remove: Table = {
    title: 'setup: sandbox + endpoint removal (same sandboxes, oldest first, alternating)',
    headers,
    right: [1, 2, 3, 4, 5, 6, 7],
    rows: latencyRows('remove'),
    notes: [
      'bpfnet: deletes the host veth (the pair goes with it), the netns, the files and the records, and reprograms the dataplane',
      'CNI DEL (bridge): deletes eth0 inside the netns and releases the host-local lease; the runtime deletes the netns itself (the netns+cni row)',
    ],
  };
  const phases: Table = {
    title: "setup: where bpfnet's create time goes (agent's 'sandbox created' log, median ms)",
    headers: ['phase', 'what', 'median ms', `first ${k}`, `last ${k}`],
    right: [2, 3, 4],
    rows: [
      ['record', 'validation done; one store transaction (sandbox + endpoint, address allocation)', ms(ph.median.record), ms(ph.firstK.record), ms(ph.lastK.record)],
      ['plumb', 'netns, veth pair, addresses, routes, sandbox files (rtnetlink, in process)', ms(ph.median.plumb), ms(ph.firstK.plumb), ms(ph.lastK.plumb)],
      ['dataplane', 'desired state, map diffs, tc attach of the endpoint program', ms(ph.median.dataplane), ms(ph.firstK.dataplane), ms(ph.lastK.dataplane)],
      ['sum of medians', '', ms(phaseSum), '', ''],
      ['API call p50', 'the rest: validation before the record, response (detail incl. link lookups), socket', ms(bp.create.p50), '', ''],
    ],
    notes: [`${ph.samples.length} timed creates; first/last ${k} = with 0..${k - 1} vs ${n - k}..${n - 1} sandboxes already present`],
  };
  const growthRows = r.peers.flatMap((p) =>
    (['create', 'remove'] as const).map((which) => {
      const xs = p[which].samplesMs;
      const first = quantile(xs.slice(0, k), 0.5);
      const last = quantile(xs.slice(-k), 0.5);
      return [p[which].label, which === 'create' ? `0..${k - 1}` : `${n}..${n - k + 1}`, ms(first), which === 'create' ? `${n - k}..${n - 1}` : `${k}..1`, ms(last), fmtRatio(last / first)];
    }),
  );
  const growth: Table = {
    title: `setup: does it grow with the sandboxes present? (p50 of the first ${k} vs the last ${k} of ${n})`,
    headers: ['operation', 'present before (first)', `p50 first ${k}`, 'present before (last)', `p50 last ${k}`, 'last / first'],
    right: [2, 4, 5],
    rows: growthRows,
    notes: [
      'creates run while the population grows 0 -> N, removals while it shrinks N -> 0; other peers\' populations live in other namespaces',
      ...(r.verification.ok ? [`verification: ${r.verification.checked} creates/removals checked in the kernel, all as expected`] : [`VERIFICATION FAILED: ${r.verification.problems.join('; ')}`]),
    ],
  };
  return [create, remove, phases, growth];
}

// ---- helper entry point -----------------------------------------------------

if (process.argv[2] === '--cni-helper' && process.argv[1] && resolve(process.argv[1]) === SELF) {
  helperMain(process.argv[3] ?? '').catch((e: unknown) => {
    process.stderr.write(`cni helper: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
