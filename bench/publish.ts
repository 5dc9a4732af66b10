/**
 * Programming published ports: the time to publish N ports in bulk, and to
 * publish and unpublish one more with N present, by peer; with bpfnet's
 * agent RSS and (eBPF) the kernel memory of its maps at each N.
 *
 * Peers:
 *   api-ebpf, api-nftables, api-iptables
 *       a real bpfnet agent per dataplane mode (bench/lib/agentpeer.ts, all
 *       three running side by side, each in its own node netns), end to end
 *       through the API, timed in this process around the call:
 *       bulk  = SandboxCreate of a sandbox publishing `A-B:A-B` (N ports),
 *               next to SandboxCreate of one publishing nothing (the
 *               difference is what publishing the N costs);
 *       one   = PortPublish {sandbox, ['P:P']} / PortUnpublish {sandbox, ['P/tcp']};
 *       then SandboxRemove of both (timed too).
 *   ebpf-apply   EbpfDataplane.apply() in process (what the agent's ebpf mode
 *                calls), fresh bpffs root per job; one = apply() with N+1 / N
 *   nft-map      nftables map: `nft -f` with N elements; one = `nft add/delete element`
 *   iptables     Docker-style rules: one iptables-restore; one = Docker's way,
 *                one `iptables` call per rule (nat -A DNAT, filter -I ACCEPT; -D)
 *   (the last three in a PeerLab of their own, bench/lib/peers.ts)
 *
 * Every round runs every (N, peer) job once: N in a rotated order, the peers
 * back to back for each N in a rotated order (both reversed on odd rounds).
 */
import { AGENT_MODES, startAgentPeer, type AgentMode, type AgentPeer } from './lib/agentpeer.js';
import { progress } from './lib/env.js';
import { checkClean, createPeerLab, netfilterVersions, programPeer, requireTools, tcpRange, type PeerLab } from './lib/peers.js';
import { pairwise, target, type PairwiseRatio, type Target } from './lib/ratios.js';
import { fmtInt, fmtNum, median, rotate, summarize, type Summary, type Table } from './lib/stats.js';

export type ProgPeer = 'api-ebpf' | 'api-nftables' | 'api-iptables' | 'ebpf-apply' | 'nft-map' | 'iptables';
export const PROG_PEERS: readonly ProgPeer[] = ['api-ebpf', 'api-nftables', 'api-iptables', 'ebpf-apply', 'nft-map', 'iptables'];
export const PROG_LABEL: Record<ProgPeer, string> = {
  'api-ebpf': 'bpfnet API, ebpf mode',
  'api-nftables': 'bpfnet API, nftables mode',
  'api-iptables': 'bpfnet API, iptables mode',
  'ebpf-apply': 'EbpfDataplane.apply() in process',
  'nft-map': 'nft (map elements)',
  iptables: 'iptables-restore / iptables (Docker-style rules)',
};
export const PROG_SHORT: Record<ProgPeer, string> = {
  'api-ebpf': 'bpfnet ebpf (API)',
  'api-nftables': 'bpfnet nftables (API)',
  'api-iptables': 'bpfnet iptables (API)',
  'ebpf-apply': 'EbpfDataplane.apply()',
  'nft-map': 'nft map',
  iptables: 'iptables (Docker-style)',
};
const apiMode = (p: ProgPeer): AgentMode | undefined => (p.startsWith('api-') ? (p.slice(4) as AgentMode) : undefined);

export interface PublishOptions {
  sizes: number[];
  rounds: number;
  /** Publish+unpublish one more, this many times per job (each timed). */
  oneRepeats: number;
  /** Host ports basePort .. basePort+N-1 -> the same container ports. */
  basePort: number;
  peers: ProgPeer[];
}

export const PUBLISH_FULL: PublishOptions = { sizes: [1, 200, 1000, 2000, 10_000, 30_000, 50_000], rounds: 3, oneRepeats: 3, basePort: 10_000, peers: [...PROG_PEERS] };
export const PUBLISH_QUICK: PublishOptions = { ...PUBLISH_FULL, sizes: [1, 2000], rounds: 1, oneRepeats: 2 };

export interface PublishSample {
  round: number;
  peer: ProgPeer;
  n: number;
  /** Publishing the N in bulk (API: SandboxCreate with the range), ms. */
  bulkMs: number;
  /** API: SandboxCreate of a sandbox publishing nothing, in the same job (ms). */
  baseMs?: number;
  /** ebpf-apply: the first apply() with no ports (load + attach), ms. */
  loadMs?: number;
  /** Publishing / unpublishing one more with the N present (ms, every repeat). */
  oneMs: number[];
  unoneMs: number[];
  /** Removing the N (API: SandboxRemove of the publishing sandbox; native: flush / teardown), ms. */
  removeMs: number;
  /** API: SandboxRemove of the one publishing nothing (ms). */
  removeBaseMs?: number;
  /** API: the agent's own account of the bulk SandboxCreate (record, plumb, dataplane ms). */
  phasesMs?: Record<string, number>;
}

/** A fresh agent's memory with N published (N = 0: idle). */
export interface MemorySample {
  mode: AgentMode;
  n: number;
  rssKiB: number;
  /** eBPF: bytes_memlock summed over the agent's maps. */
  mapBytes?: number;
}

export interface PublishCell {
  peer: ProgPeer;
  n: number;
  bulk: Summary;
  /** API: bulk - base per job (what the N ports add to a sandbox's creation). */
  extra?: Summary;
  base?: Summary;
  one: Summary;
  unone: Summary;
  remove: Summary;
  /** API: medians of the agent's logged phases of the bulk create. */
  phases?: Record<string, number>;
}

export interface PublishTarget {
  what: string;
  peer: ProgPeer;
  n: number;
  measuredMs: number;
  target: Target;
}

export interface PublishResult {
  options: PublishOptions;
  wallS: number;
  versions: { nft: string; iptables: string };
  /** Agent memory by mode and N, from a pass of its own after the rounds. */
  memory: MemorySample[];
  samples: PublishSample[];
  cells: PublishCell[];
  /** Pairwise (same round) api-X ÷ api-ebpf for one more publish at each N. */
  ratios: (PairwiseRatio & { n: number; peer: ProgPeer; metric: 'one' | 'bulk' })[];
  targets: PublishTarget[];
  verification: { ok: boolean; checked: number; problems: string[] };
}

const range = (o: PublishOptions, n: number) => (n === 1 ? `${o.basePort}` : `${o.basePort}-${o.basePort + n - 1}`);

async function apiJob(a: AgentPeer, o: PublishOptions, r: number, n: number, problems: string[]): Promise<PublishSample> {
  const tag = `r${r}n${n}`;
  const extra = o.basePort + n;
  const base = await a.timed((c) => c.call('SandboxCreate', { name: `e-${tag}`, network: a.network }));
  const bulk = await a.timed((c) => c.call('SandboxCreate', { name: `p-${tag}`, network: a.network, publish: [`${range(o, n)}:${range(o, n)}`] }));
  const s: PublishSample = { round: r, peer: `api-${a.mode}`, n, bulkMs: bulk.ms, baseMs: base.ms, oneMs: [], unoneMs: [], removeMs: NaN };
  try {
    const ph = a.createPhases(`p-${tag}`);
    if (ph) s.phasesMs = ph;
    if (r === 0) {
      const listed = (await a.client.call('PortList', { sandbox: `p-${tag}` })).value.ports;
      const active = listed.filter((p) => p.active).length;
      if (listed.length !== n || active !== n) problems.push(`api-${a.mode} N=${n}: PortList shows ${listed.length} ports, ${active} active`);
    }
    for (let i = 0; i < o.oneRepeats; i++) {
      const pub = await a.timed((c) => c.call('PortPublish', { sandbox: `p-${tag}`, publish: [`${extra}:${extra}`] }));
      if (i === 0 && r === 0 && !pub.value.value.ports.some((p) => p.hostPort === extra && p.active)) problems.push(`api-${a.mode} N=${n}: PortPublish did not list port ${extra} active`);
      s.oneMs.push(pub.ms);
      const un = await a.timed((c) => c.call('PortUnpublish', { sandbox: `p-${tag}`, ports: [`${extra}/tcp`] }));
      s.unoneMs.push(un.ms);
      if (i === 0 && r === 0) {
        // The answer lists what was removed; the sandbox's ports afterwards must not have it.
        if (!un.value.value.ports.some((p) => p.hostPort === extra)) problems.push(`api-${a.mode} N=${n}: PortUnpublish did not list port ${extra} as removed`);
        const after = (await a.client.call('PortList', { sandbox: `p-${tag}` })).value.ports;
        if (after.length !== n || after.some((p) => p.hostPort === extra)) problems.push(`api-${a.mode} N=${n}: after PortUnpublish the sandbox lists ${after.length} ports`);
      }
    }
  } finally {
    s.removeMs = (await a.timed((c) => c.call('SandboxRemove', { ref: `p-${tag}` }))).ms;
    s.removeBaseMs = (await a.timed((c) => c.call('SandboxRemove', { ref: `e-${tag}` }))).ms;
  }
  return s;
}

async function nativeJob(lab: PeerLab, peer: 'ebpf-apply' | 'nft-map' | 'iptables', o: PublishOptions, r: number, n: number, problems: string[]): Promise<PublishSample> {
  const dirty = await checkClean(lab);
  if (dirty.length) throw new Error(`publish: before ${peer} N=${n}: ${dirty.join('; ')}`);
  const p = await programPeer(lab, peer === 'ebpf-apply' ? 'ebpf' : peer, tcpRange(o.basePort, n));
  const s: PublishSample = { round: r, peer, n, bulkMs: p.programMs, ...(p.loadMs !== undefined ? { loadMs: p.loadMs } : {}), oneMs: [], unoneMs: [], removeMs: NaN };
  try {
    if (r === 0) problems.push(...(await p.verify()));
    const one = { port: o.basePort + n, proto: 'tcp' as const };
    for (let i = 0; i < o.oneRepeats; i++) {
      s.oneMs.push(await p.publishOne(one));
      s.unoneMs.push(await p.unpublishOne(one));
    }
  } finally {
    s.removeMs = await p.remove();
  }
  return s;
}

export async function runPublish(o: PublishOptions): Promise<PublishResult> {
  const t0 = Date.now();
  if (o.basePort + Math.max(...o.sizes) > 65_535) throw new Error(`publish: basePort ${o.basePort} + N ${Math.max(...o.sizes)} (+1) exceeds port 65535`);
  const versions = await netfilterVersions();
  requireTools(o.peers.map((p) => (p === 'iptables' || p === 'api-iptables' ? 'iptables' : p === 'nft-map' || p === 'api-nftables' ? 'nft-map' : 'ebpf')), versions, 'publish');
  const agents = new Map<AgentMode, AgentPeer>();
  let lab: PeerLab | undefined;
  const problems: string[] = [];
  let checked = 0;
  try {
    for (const [i, m] of AGENT_MODES.entries()) {
      if (!o.peers.includes(`api-${m}`)) continue;
      progress(`publish: starting a bpfnet agent, --dataplane ${m}`);
      agents.set(m, await startAgentPeer(m, `10.242.${i}.0/24`));
    }
    if (o.peers.some((p) => !apiMode(p))) lab = await createPeerLab('bnbp');
    // Warm-up, untimed: the first sandbox loads and attaches programs, creates chains, warms the store.
    for (const a of agents.values()) {
      await a.client.call('SandboxCreate', { name: 'warm', network: a.network, publish: ['9000-9009:9000-9009'] });
      await a.client.call('PortPublish', { sandbox: 'warm', publish: ['9010:9010'] });
      await a.client.call('PortUnpublish', { sandbox: 'warm', ports: ['9010/tcp'] });
      await a.client.call('SandboxRemove', { ref: 'warm' });
    }
    const samples: PublishSample[] = [];
    for (let r = 0; r < o.rounds; r++) {
      const rev = <T>(xs: T[]) => (r % 2 ? [...xs].reverse() : xs);
      const rt = Date.now();
      for (const n of rev(rotate(o.sizes, r))) {
        for (const peer of rev(rotate(o.peers, r))) {
          const m = apiMode(peer);
          const s = m ? await apiJob(agents.get(m)!, o, r, n, problems) : await nativeJob(lab!, peer as 'ebpf-apply' | 'nft-map' | 'iptables', o, r, n, problems);
          if (r === 0) checked++;
          samples.push(s);
          progress(`publish: round ${r + 1}/${o.rounds} N=${n} ${peer}: bulk ${fmtNum(s.bulkMs)} ms${s.baseMs !== undefined ? ` (no ports ${fmtNum(s.baseMs)} ms)` : ''}, one more ${fmtNum(median(s.oneMs), 2)} ms, unpublish ${fmtNum(median(s.unoneMs), 2)} ms, remove ${fmtNum(s.removeMs)} ms`);
        }
      }
      progress(`publish: round ${r + 1}/${o.rounds} done in ${((Date.now() - rt) / 1000).toFixed(1)} s`);
    }
    for (const a of agents.values()) await a.release();
    agents.clear();
    const memory = await memoryPass(o, AGENT_MODES.filter((m) => o.peers.includes(`api-${m}`)));
    for (const p of problems) progress(`publish: VERIFICATION: ${p}`);
    const cells = summarizeCells(o, samples);
    return { options: o, wallS: (Date.now() - t0) / 1000, versions, memory, samples, cells, ratios: computeRatios(o, samples), targets: publishTargets(o, cells), verification: { ok: problems.length === 0, checked, problems } };
  } finally {
    for (const a of agents.values()) await a.release();
    await lab?.release();
  }
}

/**
 * Agent memory with N published: a fresh agent per mode (one at a time), N
 * in ascending order, one sandbox publishing the range; RSS half a second
 * after the create (a V8 heap does not shrink back soon, so a heap that had
 * seen 50k ports would inflate every later N: hence a fresh agent, smaller N
 * first).
 */
async function memoryPass(o: PublishOptions, modes: AgentMode[]): Promise<MemorySample[]> {
  const out: MemorySample[] = [];
  const record = async (a: AgentPeer, n: number) => {
    const mb = await a.mapBytes();
    out.push({ mode: a.mode, n, rssKiB: a.rssKiB(), ...(mb !== undefined ? { mapBytes: mb } : {}) });
  };
  for (const [i, m] of modes.entries()) {
    const a = await startAgentPeer(m, `10.242.${10 + i}.0/24`);
    try {
      await record(a, 0);
      for (const n of [...o.sizes].sort((x, y) => x - y)) {
        await a.client.call('SandboxCreate', { name: `m${n}`, network: a.network, publish: [`${range(o, n)}:${range(o, n)}`] });
        await new Promise((res) => setTimeout(res, 500));
        await record(a, n);
        await a.client.call('SandboxRemove', { ref: `m${n}` });
      }
    } finally {
      await a.release();
    }
    progress(`publish: memory, ${m} mode: ${out.filter((x) => x.mode === m).map((x) => `N=${x.n} ${fmtInt(x.rssKiB / 1024)} MiB`).join(', ')}`);
  }
  return out;
}

function summarizeCells(o: PublishOptions, samples: PublishSample[]): PublishCell[] {
  const cells: PublishCell[] = [];
  for (const peer of o.peers) {
    for (const n of o.sizes) {
      const xs = samples.filter((s) => s.peer === peer && s.n === n);
      if (!xs.length) continue;
      const api = xs.filter((s) => s.baseMs !== undefined);
      const ph = xs.map((s) => s.phasesMs).filter((x): x is Record<string, number> => x !== undefined);
      const phases = ph.length ? Object.fromEntries(Object.keys(ph[0]!).map((k) => [k, median(ph.map((x) => x[k] ?? NaN))])) : undefined;
      cells.push({
        peer,
        n,
        bulk: summarize(xs.map((s) => s.bulkMs)),
        ...(api.length ? { extra: summarize(api.map((s) => s.bulkMs - s.baseMs!)), base: summarize(api.map((s) => s.baseMs!)) } : {}),
        one: summarize(xs.flatMap((s) => s.oneMs)),
        unone: summarize(xs.flatMap((s) => s.unoneMs)),
        remove: summarize(xs.map((s) => s.removeMs)),
        ...(phases ? { phases } : {}),
      });
    }
  }
  return cells;
}

function computeRatios(o: PublishOptions, samples: PublishSample[]): PublishResult['ratios'] {
  const out: PublishResult['ratios'] = [];
  if (!o.peers.includes('api-ebpf')) return out;
  for (const n of o.sizes) {
    for (const peer of o.peers.filter((p) => p !== 'api-ebpf')) {
      for (const metric of ['one', 'bulk'] as const) {
        const f = metric === 'one' ? (s: PublishSample) => median(s.oneMs) : (s: PublishSample) => s.bulkMs;
        const r = pairwise(samples, (s) => s.peer === 'api-ebpf' && s.n === n, (s) => s.peer === peer && s.n === n, f);
        if (r) out.push({ ...r, n, peer, metric });
      }
    }
  }
  return out;
}

/** Issue 8's programming targets, from the api-ebpf cells. */
function publishTargets(o: PublishOptions, cells: PublishCell[]): PublishTarget[] {
  const out: PublishTarget[] = [];
  const c = (n: number) => cells.find((x) => x.peer === 'api-ebpf' && x.n === n);
  const maxN = Math.max(...o.sizes);
  const big = c(maxN);
  if (big) {
    out.push({ what: `publish one more port with ${fmtInt(maxN)} published, through the API (PortPublish)`, peer: 'api-ebpf', n: maxN, measuredMs: big.one.median, target: target(big.one.median, '<=', 1) });
    out.push({ what: `bulk publish ${fmtInt(maxN)} ports through the API (the whole SandboxCreate of a sandbox publishing them)`, peer: 'api-ebpf', n: maxN, measuredMs: big.bulk.median, target: target(big.bulk.median, '<=', 250) });
  }
  const k2 = c(2000);
  if (k2) out.push({ what: 'a sandbox publishing 2,000 ports: created in at most 50 ms more than one publishing none', peer: 'api-ebpf', n: 2000, measuredMs: k2.extra!.median, target: target(k2.extra!.median, '<=', 50) });
  return out;
}

// ---- tables ------------------------------------------------------------------------

export const ms = (x: number): string => (Number.isFinite(x) ? fmtNum(x, x >= 100 ? 0 : x >= 10 ? 1 : 2) : 'n/a');
const mib = (kib: number | undefined) => (kib === undefined ? '' : fmtNum(kib / 1024, 1));
const mibB = (b: number | undefined) => (b === undefined ? '' : fmtNum(b / 2 ** 20, 2));

export function publishTables(r: PublishResult): Table[] {
  const o = r.options;
  const main: Table = {
    title: `publish: programming N published ports, by peer (${o.rounds} alternating rounds; one more: ${o.oneRepeats} per job)`,
    headers: ['peer', 'N ports', 'bulk ms', 'min-max', 'N ports add (API) ms', 'agent: record / plumb / dataplane ms', 'one more ms', 'unpublish one ms', 'remove ms'],
    right: [1, 2, 3, 4, 5, 6, 7, 8],
    rows: r.cells.map((c) => [PROG_LABEL[c.peer], fmtInt(c.n), ms(c.bulk.median), `${ms(c.bulk.min)}-${ms(c.bulk.max)}`, c.extra ? ms(c.extra.median) : '',
      c.phases ? ['record', 'plumb', 'dataplane'].map((k) => ms(c.phases![k] ?? NaN)).join(' / ') : '', ms(c.one.median), ms(c.unone.median), ms(c.remove.median)]),
    notes: [
      `API peers: a real agent per mode, ports ${o.basePort}-${o.basePort}+N-1 published by one sandbox (\`-p A-B:A-B\`); bulk = SandboxCreate with the range (netns, veth, files, store and the N ports), "N ports add" = that minus SandboxCreate publishing nothing in the same job; one more = PortPublish of port ${o.basePort}+N and PortUnpublish of it; remove = SandboxRemove of the publishing sandbox; timed in the client around the call (unix socket round trip included); record / plumb / dataplane = the agent's own log of the bulk create (store transaction; netns, veth, files; programming the dataplane), the rest of bulk is parsing and allocating the ports, checking the node's sockets, and the API round trip`,
      `native: EbpfDataplane.apply() in process (fresh bpffs root; load+attach is a separate first apply), \`nft -f\` / \`nft add|delete element\` (${r.versions.nft}), \`iptables-restore\` / one \`iptables\` call per rule as Docker makes them (${r.versions.iptables}); nft and iptables include their process start under nsenter`,
      ...(r.verification.ok ? [`verification: ${r.verification.checked} jobs; round 1 read back (PortList of the N active, PortPublish/PortUnpublish listing, map/rule contents), all as expected`] : [`VERIFICATION FAILED: ${r.verification.problems.join('; ')}`]),
    ],
  };
  const modes = AGENT_MODES.filter((m) => o.peers.includes(`api-${m}`));
  const mem: Table = {
    title: 'publish: bpfnet agent memory with N ports published (one sandbox)',
    headers: ['N ports', ...modes.map((m) => `RSS MiB, ${m}`), ...(modes.includes('ebpf') ? ['eBPF maps MiB (bytes_memlock)'] : [])],
    right: [0, ...modes.map((_, i) => i + 1), modes.length + 1],
    rows: [0, ...o.sizes].map((n) => {
      const mem = (m: AgentMode) => r.memory.find((x) => x.mode === m && x.n === n);
      return [n ? fmtInt(n) : 'idle (none)', ...modes.map((m) => mib(mem(m)?.rssKiB)), ...(modes.includes('ebpf') ? [mibB(mem('ebpf')?.mapBytes)] : [])];
    }),
    notes: [
      'RSS: VmRSS of the agent process 0.5 s after SandboxCreate of one sandbox publishing the N; a fresh agent per mode, N ascending (a V8 heap does not shrink back soon, so one that had seen 50k ports would inflate every later N)',
      'eBPF maps: bytes_memlock of every map pinned under the agent\'s root (the kernel\'s accounting, which counts a NO_PREALLOC hash map\'s elements as they are added); the netfilter modes\' rules live in nf_tables memory, not attributable per agent here',
    ],
  };
  return [main, mem];
}

