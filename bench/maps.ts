/**
 * Bulk update and delete rates of bpfnet_ports through the map layer
 * (TypedMap in src/maps/map.ts, so key/value encoding is included), per
 * backend and method, at N entries:
 *
 *   libbpf  set        one BPF_MAP_UPDATE_ELEM per entry (TypedMap.set, awaited)
 *   libbpf  setMany    one BPF_MAP_UPDATE_BATCH for all entries
 *   bpftool setMany    one `bpftool batch file` process, one line per entry
 *   bpftool set        one `bpftool map update` process per entry: measured on
 *                      a few hundred entries and extrapolated (labelled so)
 *   reference          BPF_MAP_UPDATE_BATCH of pre-encoded buffers straight
 *                      through the `bpf` package: the syscall without the map
 *                      layer's encoding
 *   libbpf  deleteMany one BPF_MAP_DELETE_ELEM per key (see backend.ts)
 *   bpftool deleteMany a JSON dump of the map, then one batch file
 *   reference          BPF_MAP_DELETE_BATCH straight through the `bpf`
 *                      package: not reachable through src/maps
 *
 * Every round runs every (N, method) job once, in a rotated order (reversed
 * on odd rounds); the map is emptied before each job and its content checked
 * after it. Rates are entries / wall-clock seconds of the one call (or loop).
 */
import { loadObject } from '../src/loader/load.js';
import { DEFAULT_BACKEND, TypedMap } from '../src/maps/map.js';
import type { BackendName } from '../src/maps/backend.js';
import type { PortKey, PortValue } from '../src/maps/generated/abi.js';
import { codecsForMap } from '../src/maps/codec.js';
import { progress, withRoots } from './lib/env.js';
import { RawPinnedMap, nextPow2 } from './lib/rawmap.js';
import { elapsedS, fmtInt, fmtNum, fmtPct, fmtRate, median, nowNs, quantile, rotate, summarize, type Summary, type Table } from './lib/stats.js';

export interface MapsOptions {
  sizes: number[];
  rounds: number;
  /** Entries for the one-process-per-update bpftool job. */
  perProcess: number;
  /** Samples of "publish one more" at the largest N, libbpf / bpftool. */
  publishSamples: number;
  publishSamplesBpftool: number;
}

export const MAPS_FULL: MapsOptions = { sizes: [10_000, 50_000], rounds: 7, perProcess: 200, publishSamples: 1000, publishSamplesBpftool: 100 };
export const MAPS_QUICK: MapsOptions = { sizes: [2_000], rounds: 3, perProcess: 20, publishSamples: 100, publishSamplesBpftool: 10 };

export type MapMethod =
  | 'libbpf-set'
  | 'libbpf-setMany'
  | 'bpftool-setMany'
  | 'bpftool-set-per-process'
  | 'raw-setBatch'
  | 'libbpf-deleteMany'
  | 'bpftool-deleteMany'
  | 'raw-deleteBatch';

const METHOD_INFO: Record<MapMethod, { op: 'insert' | 'delete'; backend: BackendName | 'reference'; label: string }> = {
  'libbpf-set': { op: 'insert', backend: 'libbpf', label: 'libbpf set() per entry (BPF_MAP_UPDATE_ELEM)' },
  'libbpf-setMany': { op: 'insert', backend: 'libbpf', label: 'libbpf setMany() (BPF_MAP_UPDATE_BATCH)' },
  'bpftool-setMany': { op: 'insert', backend: 'bpftool', label: 'bpftool setMany() (batch file, 1 process)' },
  'bpftool-set-per-process': { op: 'insert', backend: 'bpftool', label: 'bpftool set() per entry (1 process each)' },
  'raw-setBatch': { op: 'insert', backend: 'reference', label: 'reference: BPF_MAP_UPDATE_BATCH, pre-encoded (not the map layer)' },
  'libbpf-deleteMany': { op: 'delete', backend: 'libbpf', label: 'libbpf deleteMany() (BPF_MAP_DELETE_BATCH, per-key fallback)' },
  'bpftool-deleteMany': { op: 'delete', backend: 'bpftool', label: 'bpftool deleteMany() (dump + batch file)' },
  'raw-deleteBatch': { op: 'delete', backend: 'reference', label: 'reference: BPF_MAP_DELETE_BATCH (not in src/maps)' },
};

export interface MapJobResult {
  method: MapMethod;
  op: 'insert' | 'delete';
  backend: string;
  label: string;
  /** Entries in the timed call. */
  n: number;
  /** For extrapolated jobs: the N the rate is extrapolated to. */
  extrapolatedTo?: number[];
  /** Seconds per round. */
  samplesS: number[];
  /** entries/s per round. */
  ratesPerS: number[];
  rate: Summary;
}

export interface MapsResult {
  options: MapsOptions;
  mapMaxEntries: number;
  defaultBackend: BackendName;
  jobs: MapJobResult[];
  order: string[][];
  /** One-entry latencies with the largest N present: set() of a new key, deleteMany([key]) of one. */
  publishOneMore: { backend: BackendName; op: 'set' | 'deleteMany'; presentEntries: number; samplesUs: number[]; us: Summary }[];
  conclusions: string[];
  wallS: number;
}

function entriesFor(n: number, salt = 0): [PortKey, PortValue][] {
  const out: [PortKey, PortValue][] = [];
  for (let i = 0; i < n; i++) {
    out.push([
      { addr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1024 + ((i + salt) % 60000), proto: 6 },
      { backend_addr: `172.17.${(i >> 8) & 255}.${i & 255}`, backend_port: 80, flags: 0 },
    ]);
  }
  return out;
}

interface Job {
  key: string;
  method: MapMethod;
  n: number;
}

export async function runMaps(opts: MapsOptions): Promise<MapsResult> {
  const t0 = Date.now();
  const maxN = Math.max(...opts.sizes);
  const size = Math.max(65536, nextPow2(maxN + opts.publishSamples + 1));
  return withRoots(1, async ([root]) => {
    progress(`maps: loading uplink into ${root!.root} (bpfnet_ports max_entries ${size})`);
    await loadObject('uplink', { root: root!.root, mapSizes: { bpfnet_ports: size } });
    const path = `${root!.mapDir}/bpfnet_ports`;
    const raw = new RawPinnedMap(path);
    const lib = TypedMap.open(root!.mapDir, 'bpfnet_ports', 'libbpf');
    const tool = TypedMap.open(root!.mapDir, 'bpfnet_ports', 'bpftool');
    const codec = codecsForMap('bpfnet_ports');
    try {
      if (raw.maxEntries !== size) throw new Error(`bpfnet_ports has max_entries ${raw.maxEntries}, expected ${size}`);
      const data = new Map<number, [PortKey, PortValue][]>();
      for (const n of [...opts.sizes, opts.perProcess]) data.set(n, entriesFor(n));
      const encoded = (n: number) => data.get(n)!.map(([k, v]) => [codec.key.encode(k), codec.value.encode(v)] as [Buffer, Buffer]);

      const jobs: Job[] = [];
      for (const n of opts.sizes) {
        for (const m of ['libbpf-set', 'libbpf-setMany', 'bpftool-setMany', 'raw-setBatch', 'libbpf-deleteMany', 'bpftool-deleteMany', 'raw-deleteBatch'] as MapMethod[]) {
          jobs.push({ key: `${m}@${n}`, method: m, n });
        }
      }
      jobs.push({ key: `bpftool-set-per-process@${opts.perProcess}`, method: 'bpftool-set-per-process', n: opts.perProcess });

      // Warm-up (not recorded): V8 compiles the encode/set paths, bpftool's pages get cached.
      const warm = entriesFor(1000, 1);
      progress('maps: warm-up (1,000 entries per method, not recorded)');
      for (let i = 0; i < 2; i++) {
        for (const [k, v] of warm) await lib.set(k, v);
        await lib.deleteMany(warm.map(([k]) => k));
        await lib.setMany(warm);
        await tool.deleteMany(warm.map(([k]) => k));
        await tool.setMany(warm);
        raw.clear();
      }

      const samples = new Map<string, number[]>(jobs.map((j) => [j.key, []]));
      const order: string[][] = [];
      for (let r = 0; r < opts.rounds; r++) {
        const ids = rotate(jobs, r);
        if (r % 2 === 1) ids.reverse();
        order.push(ids.map((j) => j.key));
        const line: string[] = [];
        for (const j of ids) {
          const entries = data.get(j.n)!;
          const info = METHOD_INFO[j.method];
          const cleared = raw.clear();
          if (raw.count() !== 0) throw new Error(`maps: could not empty bpfnet_ports before ${j.key} (${cleared} removed)`);
          if (info.op === 'delete') {
            raw.setBatch(encoded(j.n));
            if (raw.count() !== j.n) throw new Error(`maps: prefill for ${j.key} left ${raw.count()} entries`);
          }
          const keys = entries.map(([k]) => k);
          const pre = j.method === 'raw-setBatch' ? encoded(j.n) : j.method === 'raw-deleteBatch' ? keys.map((k) => codec.key.encode(k)) : [];
          const start = nowNs();
          switch (j.method) {
            case 'libbpf-set':
              for (const [k, v] of entries) await lib.set(k, v);
              break;
            case 'libbpf-setMany':
              await lib.setMany(entries);
              break;
            case 'bpftool-setMany':
              await tool.setMany(entries);
              break;
            case 'bpftool-set-per-process':
              for (const [k, v] of entries) await tool.set(k, v);
              break;
            case 'libbpf-deleteMany':
              await lib.deleteMany(keys);
              break;
            case 'bpftool-deleteMany':
              await tool.deleteMany(keys);
              break;
            case 'raw-setBatch':
              raw.setBatch(pre as [Buffer, Buffer][], j.n);
              break;
            case 'raw-deleteBatch':
              raw.deleteBatch(pre as Buffer[], j.n);
              break;
          }
          const s = elapsedS(start);
          const after = raw.count();
          const want = info.op === 'insert' ? j.n : 0;
          if (after !== want) throw new Error(`maps: after ${j.key} bpfnet_ports holds ${after} entries, expected ${want}`);
          samples.get(j.key)!.push(s);
          line.push(`${j.key}=${fmtRate(j.n / s)}`);
        }
        raw.clear();
        progress(`maps: round ${r + 1}/${opts.rounds}: ${line.join(' ')}`);
      }

      const results: MapJobResult[] = jobs.map((j) => {
        const s = samples.get(j.key)!;
        const rates = s.map((x) => j.n / x);
        const info = METHOD_INFO[j.method];
        const res: MapJobResult = { method: j.method, op: info.op, backend: info.backend, label: info.label, n: j.n, samplesS: s, ratesPerS: rates, rate: summarize(rates) };
        if (j.method === 'bpftool-set-per-process') res.extrapolatedTo = opts.sizes;
        return res;
      });

      // Publish one more frontend while maxN are present, through the map layer.
      progress(`maps: publish-one-more latency with ${fmtInt(maxN)} entries present`);
      raw.clear();
      raw.setBatch(encoded(maxN));
      const publishOneMore: MapsResult['publishOneMore'] = [];
      const v: PortValue = { backend_addr: '172.18.0.2', backend_port: 80, flags: 0 };
      const newKey = (i: number): PortKey => ({ addr: `11.0.${(i >> 8) & 255}.${i & 255}`, port: 8080, proto: 6 });
      for (const [backend, m, count] of [['libbpf', lib, opts.publishSamples], ['bpftool', tool, opts.publishSamplesBpftool]] as const) {
        const us: number[] = [];
        for (let i = 0; i < count; i++) {
          const k = newKey(i);
          const start = nowNs();
          await m.set(k, v);
          us.push(Number(nowNs() - start) / 1e3);
          if (i === 0 && raw.count() !== maxN + 1) throw new Error(`maps: publish-one-more did not add an entry (${raw.count()})`);
          if (!(await lib.delete(k))) throw new Error('maps: publish-one-more entry missing afterwards');
        }
        publishOneMore.push({ backend, op: 'set', presentEntries: maxN, samplesUs: us, us: summarize(us) });
      }
      // Unpublish one: deleteMany([key]) of one of maxN + 1 entries.
      for (const [backend, m, count] of [['libbpf', lib, opts.publishSamples], ['bpftool', tool, Math.max(3, Math.ceil(opts.publishSamplesBpftool / 10))]] as const) {
        const us: number[] = [];
        for (let i = 0; i < count; i++) {
          const k = newKey(i);
          await lib.set(k, v);
          const start = nowNs();
          await m.deleteMany([k]);
          us.push(Number(nowNs() - start) / 1e3);
          if (await lib.get(k)) throw new Error(`maps: ${backend} deleteMany([key]) left the key in place`);
        }
        publishOneMore.push({ backend, op: 'deleteMany', presentEntries: maxN, samplesUs: us, us: summarize(us) });
      }
      if (raw.count() !== maxN) throw new Error(`maps: publish/unpublish left ${raw.count()} entries, expected ${maxN}`);
      raw.clear();

      return {
        options: opts, mapMaxEntries: size, defaultBackend: DEFAULT_BACKEND, jobs: results, order, publishOneMore,
        conclusions: conclusions(results, opts, publishOneMore), wallS: (Date.now() - t0) / 1000,
      };
    } finally {
      lib.close();
      tool.close();
      raw.close();
    }
  });
}

function conclusions(jobs: MapJobResult[], opts: MapsOptions, pub: MapsResult['publishOneMore']): string[] {
  const out: string[] = [];
  const backendOfFastest: string[] = [];
  for (const n of opts.sizes) {
    for (const op of ['insert', 'delete'] as const) {
      const cands = jobs.filter((j) => j.n === n && j.op === op && j.backend !== 'reference').sort((a, b) => b.rate.median - a.rate.median);
      const [best, second] = cands;
      if (!best) continue;
      if (op === 'insert') backendOfFastest.push(best.backend);
      out.push(`N=${fmtInt(n)} ${op}: fastest through the map layer is ${best.label} at ${fmtRate(best.rate.median)}` +
        (second ? `, ${fmtNum(best.rate.median / second.rate.median, 1)}x the next (${second.label}, ${fmtRate(second.rate.median)})` : '') + '.');
    }
    const rs = jobs.find((j) => j.n === n && j.method === 'raw-setBatch');
    const sm = jobs.find((j) => j.n === n && j.method === 'libbpf-setMany');
    if (rs && sm) {
      out.push(`N=${fmtInt(n)} insert: the batch syscall alone (pre-encoded) reaches ${fmtRate(rs.rate.median)}; libbpf setMany's ${fmtRate(sm.rate.median)} ` +
        `means ~${fmtNum(100 * (1 - sm.rate.median / rs.rate.median), 0)}% of its time is TypeScript-side encoding and copying.`);
    }
    const ref = jobs.find((j) => j.n === n && j.method === 'raw-deleteBatch');
    const del = jobs.find((j) => j.n === n && j.method === 'libbpf-deleteMany');
    if (ref && del) {
      out.push(`N=${fmtInt(n)} delete: raw BPF_MAP_DELETE_BATCH reaches ${fmtRate(ref.rate.median)} vs ${fmtRate(del.rate.median)} for libbpf deleteMany (batch delete with encoding; per-key fallback when a key is missing).`);
    }
  }
  const pp = jobs.find((j) => j.method === 'bpftool-set-per-process');
  if (pp) {
    out.push(`bpftool one process per update: ${fmtRate(pp.rate.median)} measured on ${pp.n} entries; extrapolated ` +
      opts.sizes.map((n) => `${fmtInt(n)} entries ~ ${fmtNum(n / pp.rate.median, 0)} s`).join(', ') + ' (EXTRAPOLATED, not measured).');
  }
  const all = backendOfFastest.every((b) => b === DEFAULT_BACKEND);
  out.push(`DEFAULT_BACKEND in src/maps/map.ts is '${DEFAULT_BACKEND}': the fastest insert method was ${all ? '' : 'NOT always '}a ${DEFAULT_BACKEND} method at every N measured` +
    ` (${all ? 'confirms' : 'does not confirm'} the default).`);
  const batch = jobs.filter((j) => j.method === 'libbpf-setMany').map((j) => `${fmtRate(j.rate.median)} at N=${fmtInt(j.n)}`);
  const rawBatch = jobs.filter((j) => j.method === 'raw-setBatch').map((j) => `${fmtRate(j.rate.median)} at N=${fmtInt(j.n)}`);
  out.push(`libbpf setMany (with encoding): ${batch.join(', ')}; bare batch syscall: ${rawBatch.join(', ')}.`);
  for (const p of pub) {
    out.push(`${p.op === 'set' ? 'Publishing one more frontend (set)' : 'Unpublishing one frontend (deleteMany([key]))'} with ${fmtInt(p.presentEntries)} present via ${p.backend}: ` +
      `median ${fmtNum(p.us.median, 1)} µs (${p.samplesUs.length} samples).`);
  }
  return out;
}

export function mapsTables(r: MapsResult): Table[] {
  const rows = (op: 'insert' | 'delete') =>
    r.jobs.filter((j) => j.op === op).map((j) => [
      j.label + (j.extrapolatedTo ? ' [EXTRAPOLATED]' : ''),
      fmtInt(j.n),
      fmtInt(j.rate.median),
      `${fmtInt(j.rate.min)}-${fmtInt(j.rate.max)}`,
      fmtPct(j.rate.iqrRel),
      j.extrapolatedTo ? j.extrapolatedTo.map((n) => `${fmtNum(n / j.rate.median, 1)} s @${fmtInt(n)}`).join(', ') : `${fmtNum(median(j.samplesS) * 1000, 1)} ms`,
    ]);
  const headers = ['method', 'N', 'median entries/s', 'min-max', 'IQR/med', 'median time for N'];
  return [
    {
      title: `bpfnet_ports updates through TypedMap (${r.options.rounds} alternating rounds, empty map before each)`,
      headers, right: [1, 2, 3, 4, 5], rows: rows('insert'),
      notes: ['bpftool set() per entry runs on a few entries only; its time-for-N column is an extrapolation (rate x N), not a measurement.'],
    },
    {
      title: `bpfnet_ports deletes (map holds exactly the N keys before each run)`,
      headers, right: [1, 2, 3, 4, 5], rows: rows('delete'),
    },
    {
      title: `Publish / unpublish one frontend with ${fmtInt(r.publishOneMore[0]?.presentEntries ?? 0)} entries present (one call, timed individually)`,
      headers: ['operation', 'backend', 'samples', 'median µs', 'min-max µs', 'p90 µs'],
      right: [2, 3, 4, 5],
      rows: r.publishOneMore.map((p) => [p.op === 'set' ? 'set(new key)' : 'deleteMany([key])', p.backend, String(p.samplesUs.length), fmtNum(p.us.median, 1), `${fmtNum(p.us.min, 1)}-${fmtNum(p.us.max, 1)}`,
        fmtNum(quantile(p.samplesUs, 0.9), 1)]),
      notes: r.conclusions,
    },
  ];
}
