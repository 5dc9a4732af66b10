/**
 * bpfnet benchmarks: `make bench` (= node dist/bench/run.js).
 *
 *   node dist/bench/run.js                 full run: bench/results/latest.{json,md}, the SVG
 *                                          charts, and README.md's "Benchmarks" section
 *   node dist/bench/run.js --quick         smoke run (few rounds, small sizes) into bench/results/tmp/
 *   node dist/bench/run.js --only connrate,publish   some of them (merged into the existing latest.json)
 *   node dist/bench/run.js --skip docker   all but these
 *   node dist/bench/run.js --out DIR       write the results elsewhere (README untouched)
 *   --rounds N / --repeat N                override rounds (all) / progcost's test-run repeat
 *   node dist/bench/run.js --render       run nothing: re-render latest.md, charts, README from latest.json
 *   --sizes 1,1000,...                     connrate, throughput, publish: the numbers of published ports
 *   --peers ebpf,nft-map,iptables          connrate, throughput: the peers to measure
 *
 * A run replaces only the sections of the benchmarks it ran in latest.json
 * (each section records its own command, date and machine); latest.md, the
 * charts and the README section are rendered from the merged file.
 *
 * Tables go to stdout, progress to stderr. Results are medians and ratios
 * measured in the same run; nothing here asserts on timings. The exit status
 * is 1 when a verification failed (the number would not measure what its
 * label says) or the run itself failed, 2 on bad arguments, 130/143 when
 * interrupted (roots, namespaces, agents and engines are removed).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, relative, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../src/util/paths.js';
import { interruption, machineInfo, progress, RESULTS_DIR, type MachineInfo } from './lib/env.js';
import { PEERS, type PeerId } from './lib/peers.js';
import { renderMarkdown, renderText, type Table } from './lib/stats.js';
import { CONNRATE_FULL, CONNRATE_QUICK, connrateTables, runConnrate } from './connrate.js';
import { DOCKER_FULL, DOCKER_QUICK, dockerMissing, dockerTables, runDocker } from './docker.js';
import { MAPS_FULL, MAPS_QUICK, mapsTables, runMaps } from './maps.js';
import { PROGCOST_FULL, PROGCOST_QUICK, progcostTables, runProgcost } from './progcost.js';
import { PUBLISH_FULL, PUBLISH_QUICK, publishTables, runPublish } from './publish.js';
import { SETUP_FULL, SETUP_QUICK, cniMissing, runSetup, setupTables } from './setup.js';
import { THROUGHPUT_FULL, THROUGHPUT_QUICK, runThroughput, throughputTables } from './throughput.js';
import { charts, replaceReadmeSection, summaryTables, targets, targetsTable, type Results } from './summary.js';

class UsageError extends Error {}

interface Args {
  quick: boolean;
  /** Run nothing: render latest.md, the charts (and the README section) from the existing latest.json. */
  render: boolean;
  only: BenchId[] | undefined;
  skip: BenchId[];
  out: string | undefined;
  rounds: number | undefined;
  repeat: number | undefined;
  sizes: number[] | undefined;
  peers: PeerId[] | undefined;
}

/** One benchmark: its options (full/quick), how to run it, its tables and its verification. */
interface Bench<O, R> {
  full: O;
  quick: O;
  /** Why it cannot run here (checked before anything long starts). */
  missing?: () => Promise<string | undefined> | string | undefined;
  describe(o: O): string;
  run(o: O): Promise<R>;
  tables(r: R): Table[];
  problems(r: R): string[];
}

const bench = <O, R>(b: Bench<O, R>) => b as unknown as Bench<Record<string, unknown>, unknown>;
const verified = (r: { verification: { ok: boolean; problems: string[] } }) => (r.verification.ok ? [] : r.verification.problems);

/** In run order: the cheap ones first, the docker engine last. */
const BENCHES = {
  progcost: bench({ full: PROGCOST_FULL, quick: PROGCOST_QUICK, describe: (o) => `${o.rounds} rounds x repeat ${o.repeat}`, run: runProgcost, tables: progcostTables,
    problems: (r) => r.paths.filter((p) => !p.verification.ok).map((p) => `${p.id}: ${p.verification.problems.join('; ')}`) }),
  maps: bench({ full: MAPS_FULL, quick: MAPS_QUICK, describe: (o) => `N = ${o.sizes.join(', ')}, ${o.rounds} rounds`, run: runMaps, tables: mapsTables, problems: () => [] }),
  setup: bench({ full: SETUP_FULL, quick: SETUP_QUICK, missing: cniMissing, describe: (o) => `${o.rounds} rounds x ${o.perRound} creates per peer (bpfnet, CNI)`, run: runSetup, tables: setupTables, problems: verified }),
  connrate: bench({ full: CONNRATE_FULL, quick: CONNRATE_QUICK, describe: (o) => `N = ${o.sizes.join(', ')}, peers ${o.peers.join(', ')}, ${o.rounds} rounds x ${o.durationS} s`, run: runConnrate, tables: connrateTables, problems: verified }),
  throughput: bench({ full: THROUGHPUT_FULL, quick: THROUGHPUT_QUICK, describe: (o) => `N = ${o.sizes.join(', ')}, peers ${o.peers.join(', ')}, ${o.rounds} rounds x ${o.durationS} s`, run: runThroughput, tables: throughputTables, problems: verified }),
  publish: bench({ full: PUBLISH_FULL, quick: PUBLISH_QUICK, describe: (o) => `N = ${o.sizes.join(', ')}, ${o.peers.join(', ')}, ${o.rounds} rounds`, run: runPublish, tables: publishTables, problems: verified }),
  docker: bench({ full: DOCKER_FULL, quick: DOCKER_QUICK, missing: dockerMissing, describe: (o) => `${o.rounds} rounds`, run: runDocker, tables: dockerTables, problems: verified }),
};
type BenchId = keyof typeof BENCHES;
const IDS = Object.keys(BENCHES) as BenchId[];

const USAGE = `usage: node dist/bench/run.js [--quick] [--render] [--only ${IDS.join(',')}] [--skip ...] [--out DIR] [--rounds N] [--repeat N] [--sizes N,N,...] [--peers ${PEERS.join(',')}]`;

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, render: false, only: undefined, skip: [], out: undefined, rounds: undefined, repeat: undefined, sizes: undefined, peers: undefined };
  const int = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} needs a positive integer\n${USAGE}`);
    return n;
  };
  const list = <T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T[] => {
    const xs = (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
    const bad = xs.filter((x) => !allowed.includes(x as T));
    if (bad.length || !xs.length) throw new UsageError(`${flag} takes a list of ${allowed.join(', ')}, got ${String(v)}\n${USAGE}`);
    return xs as T[];
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const [flag, inline] = f.startsWith('--') && f.includes('=') ? [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] : [f, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--quick': a.quick = true; break;
      case '--render': a.render = true; break;
      case '--only': a.only = list('--only', value(), IDS); break;
      case '--skip': a.skip = list('--skip', value(), IDS); break;
      case '--out': a.out = value(); if (!a.out) throw new UsageError(`--out needs a directory\n${USAGE}`); break;
      case '--rounds': a.rounds = int('--rounds', value()); break;
      case '--repeat': a.repeat = int('--repeat', value()); break;
      case '--sizes': a.sizes = (value() ?? '').split(',').map((x) => int('--sizes', x.trim())); break;
      case '--peers': a.peers = list('--peers', value(), PEERS); break;
      case '-h': case '--help': process.stdout.write(`${USAGE}\n`); process.exit(0); break;
      default: throw new UsageError(`unknown argument ${f}\n${USAGE}`);
    }
  }
  return a;
}

/** The options of one benchmark with the command line's overrides applied where they mean something. */
function optionsFor(id: BenchId, a: Args): Record<string, unknown> {
  const b = BENCHES[id];
  const o: Record<string, unknown> = { ...(a.quick ? b.quick : b.full) };
  if (a.rounds && 'rounds' in o) o.rounds = a.rounds;
  if (a.repeat && 'repeat' in o) o.repeat = a.repeat;
  if (a.sizes && 'sizes' in o && id !== 'maps') o.sizes = a.sizes;
  if (a.peers && (id === 'connrate' || id === 'throughput')) o.peers = a.peers;
  return o;
}

/** Where each section of latest.json came from. */
interface RunInfo {
  command: string;
  mode: 'full' | 'quick';
  startedAt: string;
  finishedAt: string;
  wallS: number;
  machine: MachineInfo & { loadavgEnd: number[] };
}

interface ResultsFile extends Results {
  schema: 2;
  updatedAt: string;
  runs: Partial<Record<BenchId, RunInfo>>;
}

/** The existing results file (schema 1 files: every section gets the file's own command and machine). */
async function readResults(path: string): Promise<ResultsFile | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const j = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    if (j.schema === 2) return j as unknown as ResultsFile;
    const info = { command: j.command, mode: j.mode, startedAt: j.startedAt, finishedAt: j.finishedAt, wallS: j.wallS, machine: j.machine } as RunInfo;
    const out: ResultsFile = { schema: 2, updatedAt: String(j.finishedAt), runs: {} };
    for (const id of IDS) {
      if (j[id]) {
        (out as unknown as Record<string, unknown>)[id] = j[id];
        out.runs[id] = info;
      }
    }
    return out;
  } catch (e) {
    progress(`warning: ${path} is not readable JSON (${(e as Error).message}); starting a new one`);
    return undefined;
  }
}

function renderResultsMarkdown(f: ResultsFile, chartFiles: { file: string; title: string }[]): string {
  const ran = IDS.filter((id) => f[id]);
  const machines = [...new Set(ran.map((id) => f.runs[id]?.machine).filter(Boolean).map((m) => `kernel ${m!.kernel} (${m!.arch}), ${m!.cpuCount} x ${m!.cpuModel}, ${m!.memoryGiB} GiB; node ${m!.node}; ${m!.clang}; ${m!.bpftool}`))];
  const out = [
    '# bpfnet benchmark results',
    '',
    'Generated by bench/run.js; each benchmark\'s section was produced by the run listed here. See bench/README.md for what the numbers mean.',
    '',
    ...ran.map((id) => {
      const r = f.runs[id];
      return r ? `- **${id}**: \`${r.command}\` (${r.mode}), ${r.finishedAt}, ${r.wallS.toFixed(0)} s, load ${r.machine.loadavgStart.join(' ')} -> ${r.machine.loadavgEnd.join(' ')}` : `- **${id}**`;
    }),
    '',
    ...machines.map((m) => `Machine: ${m}`),
    '',
    '## Summary',
    '',
    ...summaryTables(f).flatMap((t) => [renderMarkdown(t), '']),
    renderMarkdown(targetsTable(targets(f))),
    '',
    ...chartFiles.flatMap((c) => [`![${c.title}](${c.file})`, '']),
    '## Details',
    '',
    ...ran.flatMap((id) => (BENCHES[id].tables(f[id]) as Table[]).flatMap((t) => [renderMarkdown(t), ''])),
  ];
  return out.join('\n');
}

function readmeBody(f: ResultsFile, chartFiles: { file: string; title: string }[], dir: string): string {
  const rel = relative(PACKAGE_ROOT, dir);
  const m = IDS.map((id) => f.runs[id]?.machine).find(Boolean);
  return [
    `\`make bench\` runs every benchmark (about 25 minutes on 2 cores; \`node dist/bench/run.js --quick\` is a smoke run); what each measures and how is in \`bench/README.md\`, every table with its spread in [\`${rel}/latest.md\`](${rel}/latest.md), raw samples in \`${rel}/latest.json\`.` +
      (m ? ` Latest results: kernel ${m.kernel}, ${m.cpuCount} x ${m.cpuModel}, node ${m.node}, ${f.updatedAt.slice(0, 10)}.` : ''),
    'Peers alternate within each round and ratios are taken per round; numbers on a shared 2-core VM are noisy, so compare the ratios more than the absolute values.',
    '',
    ...summaryTables(f).flatMap((t) => [renderMarkdown(t, 3), '']),
    renderMarkdown(targetsTable(targets(f)), 3),
    '',
    ...chartFiles.flatMap((c) => [`![${c.title}](${rel}/${c.file})`, '']),
  ].join('\n');
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) progress('warning: not root; loading BPF programs and creating namespaces will probably fail');
  const machine = await machineInfo();
  progress(`kernel ${machine.kernel}, ${machine.cpuCount} x ${machine.cpuModel}, node ${machine.node}, load ${machine.loadavgStart.join(' ')}`);
  const command = ['node', 'dist/bench/run.js', ...process.argv.slice(2)].join(' ');
  const selected = args.render ? [] : IDS.filter((id) => (!args.only || args.only.includes(id)) && !args.skip.includes(id));

  // Fail before the long parts rather than after them; an optional peer that cannot run is skipped with its reason.
  const skipped: Partial<Record<BenchId, string>> = {};
  for (const id of selected) {
    const why = await BENCHES[id].missing?.();
    if (!why) continue;
    if (id === 'docker' && !args.only?.includes('docker')) {
      skipped[id] = why;
      progress(`docker: skipped: ${why}`);
    } else throw new Error(why);
  }

  const outDir = resolve(args.out ?? (args.quick ? join(RESULTS_DIR, 'tmp') : RESULTS_DIR));
  const jsonPath = join(outDir, 'latest.json');
  const merged: ResultsFile = (await readResults(jsonPath)) ?? { schema: 2, updatedAt: '', runs: {} };
  const problems: string[] = [];
  for (const id of selected.filter((x) => !skipped[x])) {
    const b = BENCHES[id];
    const o = optionsFor(id, args);
    const startedAt = new Date();
    progress(`${id}: ${b.describe(o)}`);
    const r = await b.run(o);
    const finishedAt = new Date();
    const wallS = (finishedAt.getTime() - startedAt.getTime()) / 1000;
    progress(`${id}: done in ${wallS.toFixed(1)} s`);
    for (const t of b.tables(r)) process.stdout.write(`\n${renderText(t)}\n`);
    problems.push(...b.problems(r).map((p) => `${id}: ${p}`));
    (merged as unknown as Record<string, unknown>)[id] = r;
    merged.runs[id] = { command, mode: args.quick ? 'quick' : 'full', startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString(), wallS, machine: { ...machine, loadavgEnd: os.loadavg().map((x) => Math.round(x * 100) / 100) } };
    merged.updatedAt = finishedAt.toISOString();
    // Written after every benchmark: an interrupted long run keeps what it finished.
    await writeOutputs(merged, outDir, !args.out && !args.quick);
  }

  if (args.render) await writeOutputs(merged, outDir, !args.out && !args.quick);
  for (const t of [...summaryTables(merged), targetsTable(targets(merged))]) process.stdout.write(`\n${renderText(t)}\n`);
  process.stdout.write(`\nwrote ${relative(PACKAGE_ROOT, outDir) || outDir}/latest.{json,md} and charts\n`);
  for (const p of problems) process.stderr.write(`bench: VERIFICATION FAILED: ${p}\n`);
  return problems.length ? 1 : 0;
}

async function writeOutputs(f: ResultsFile, dir: string, readme: boolean): Promise<void> {
  await mkdir(dir, { recursive: true });
  const cs = charts(f);
  for (const c of cs) await writeFile(join(dir, c.file), c.svg);
  await writeFile(join(dir, 'latest.json'), JSON.stringify(f, null, 2) + '\n');
  await writeFile(join(dir, 'latest.md'), renderResultsMarkdown(f, cs));
  if (readme) {
    const path = join(PACKAGE_ROOT, 'README.md');
    await writeFile(path, replaceReadmeSection(await readFile(path, 'utf8'), readmeBody(f, cs, dir)));
  }
}

main().then(
  async (code) => {
    await interruption();
    process.exit(code);
  },
  async (e: unknown) => {
    const sig = interruption();
    // Interrupted: the namespaces went away under a running test; the signal handler exits.
    if (sig) return sig;
    process.stderr.write(`bench: ${e instanceof UsageError ? e.message : (e as Error).stack ?? String(e)}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
