/**
 * bpfnet benchmarks: `make bench` (= node dist/bench/run.js).
 *
 *   node dist/bench/run.js                 full run, writes bench/results/latest.{json,md}
 *   node dist/bench/run.js --quick         smoke run (few rounds, small repeat),
 *                                          writes bench/results/tmp/latest.{json,md}
 *   node dist/bench/run.js --only maps     or --only progcost, --only setup, --only connrate
 *   node dist/bench/run.js --out DIR       write the results elsewhere
 *   --rounds N / --repeat N                override rounds (both) / test-run repeat
 *   --sizes 1,1000,...                     connrate: the numbers of published ports
 *   --peers ebpf,nft-map,iptables          connrate: the peers to measure
 *
 * `setup` (sandbox + endpoint setup time against the CNI reference plugins)
 * needs /usr/lib/cni (containernetworking-plugins; `make bench` installs it).
 *
 * Tables go to stdout, progress to stderr. Results are medians and ratios
 * measured in the same run; nothing here asserts on timings. The exit status
 * is 1 when a progcost path failed its functional verification (the number
 * would not measure what its label says) or the run itself failed, 2 on bad
 * arguments, 130/143 when interrupted (roots and namespaces are removed).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, relative } from 'node:path';
import { PACKAGE_ROOT } from '../src/util/paths.js';
import { interruption, machineInfo, progress, RESULTS_DIR } from './lib/env.js';
import { renderMarkdown, renderText, type Table } from './lib/stats.js';
import { MAPS_FULL, MAPS_QUICK, mapsTables, runMaps, type MapsResult } from './maps.js';
import { PROGCOST_FULL, PROGCOST_QUICK, progcostTables, runProgcost, type ProgcostResult } from './progcost.js';
import { SETUP_FULL, SETUP_QUICK, cniMissing, runSetup, setupTables, type SetupResult } from './setup.js';
import { CONNRATE_FULL, CONNRATE_PEERS, CONNRATE_QUICK, connrateTables, runConnrate, type ConnrateResult, type PeerId } from './connrate.js';

interface Args {
  quick: boolean;
  only: Only | undefined;
  out: string | undefined;
  rounds: number | undefined;
  repeat: number | undefined;
  sizes: number[] | undefined;
  peers: PeerId[] | undefined;
}

class UsageError extends Error {}

const ONLY = ['maps', 'progcost', 'setup', 'connrate'] as const;
type Only = (typeof ONLY)[number];

const USAGE = 'usage: node dist/bench/run.js [--quick] [--only maps|progcost|setup|connrate] [--out DIR] [--rounds N] [--repeat N] [--sizes N,N,...] [--peers ebpf,nft-map,iptables]';

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, only: undefined, out: undefined, rounds: undefined, repeat: undefined, sizes: undefined, peers: undefined };
  const int = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} needs a positive integer\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const [flag, inline] = f.startsWith('--') && f.includes('=') ? [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] : [f, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--quick': a.quick = true; break;
      case '--only': {
        const v = value();
        if (!ONLY.includes(v as Only)) throw new UsageError(`--only takes ${ONLY.join(', ')}, got ${String(v)}\n${USAGE}`);
        a.only = v as Only;
        break;
      }
      case '--out': a.out = value(); if (!a.out) throw new UsageError(`--out needs a directory\n${USAGE}`); break;
      case '--rounds': a.rounds = int('--rounds', value()); break;
      case '--repeat': a.repeat = int('--repeat', value()); break;
      case '--sizes': {
        const v = value();
        a.sizes = (v ?? '').split(',').map((x) => int('--sizes', x.trim()));
        break;
      }
      case '--peers': {
        const v = (value() ?? '').split(',').map((x) => x.trim());
        const bad = v.filter((x) => !CONNRATE_PEERS.includes(x as PeerId));
        if (bad.length || !v.length) throw new UsageError(`--peers takes a list of ${CONNRATE_PEERS.join(', ')}, got ${bad.join(',')}\n${USAGE}`);
        a.peers = v as PeerId[];
        break;
      }
      case '-h': case '--help': process.stdout.write(`${USAGE}\n`); process.exit(0); break;
      default: throw new UsageError(`unknown argument ${f}\n${USAGE}`);
    }
  }
  return a;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) progress('warning: not root; loading BPF programs and creating namespaces will probably fail');
  const startedAt = new Date();
  const machine = await machineInfo();
  progress(`kernel ${machine.kernel}, ${machine.cpuCount} x ${machine.cpuModel}, node ${machine.node}, load ${machine.loadavgStart.join(' ')}`);

  const pOpts = { ...(args.quick ? PROGCOST_QUICK : PROGCOST_FULL) };
  const mOpts = { ...(args.quick ? MAPS_QUICK : MAPS_FULL) };
  const sOpts = { ...(args.quick ? SETUP_QUICK : SETUP_FULL) };
  const cOpts = { ...(args.quick ? CONNRATE_QUICK : CONNRATE_FULL) };
  if (args.rounds) pOpts.rounds = mOpts.rounds = sOpts.rounds = cOpts.rounds = args.rounds;
  if (args.sizes) cOpts.sizes = args.sizes;
  if (args.peers) cOpts.peers = args.peers;
  if (args.repeat) pOpts.repeat = args.repeat;

  let progcost: ProgcostResult | undefined;
  let maps: MapsResult | undefined;
  let setup: SetupResult | undefined;
  let connrate: ConnrateResult | undefined;
  const runs = (b: Only) => !args.only || args.only === b;
  // Fail before the long parts rather than after them.
  const missing = runs('setup') ? cniMissing() : undefined;
  if (missing) throw new Error(missing);
  if (runs('progcost')) {
    progress(`progcost: ${pOpts.rounds} rounds x repeat ${pOpts.repeat}`);
    progcost = await runProgcost(pOpts);
    progress(`progcost: done in ${progcost.wallS.toFixed(1)} s`);
  }
  if (runs('maps')) {
    progress(`maps: N = ${mOpts.sizes.join(', ')}, ${mOpts.rounds} rounds`);
    maps = await runMaps(mOpts);
    progress(`maps: done in ${maps.wallS.toFixed(1)} s`);
  }
  if (runs('setup')) {
    progress(`setup: ${sOpts.rounds} rounds x ${sOpts.perRound} creates per peer (bpfnet, CNI)`);
    setup = await runSetup(sOpts);
    progress(`setup: done in ${setup.wallS.toFixed(1)} s`);
  }
  if (runs('connrate')) {
    progress(`connrate: N = ${cOpts.sizes.join(', ')}, peers ${cOpts.peers.join(', ')}, ${cOpts.rounds} rounds x ${cOpts.durationS} s`);
    connrate = await runConnrate(cOpts);
    progress(`connrate: done in ${connrate.wallS.toFixed(1)} s`);
  }

  const tables: Table[] = [...(progcost ? progcostTables(progcost) : []), ...(maps ? mapsTables(maps) : []), ...(setup ? setupTables(setup) : []), ...(connrate ? connrateTables(connrate) : [])];
  for (const t of tables) process.stdout.write(`\n${renderText(t)}\n`);

  const finishedAt = new Date();
  const command = ['node', 'dist/bench/run.js', ...process.argv.slice(2)].join(' ');
  const result = {
    schema: 1,
    command,
    mode: args.quick ? 'quick' : 'full',
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    wallS: (finishedAt.getTime() - startedAt.getTime()) / 1000,
    machine: { ...machine, loadavgEnd: os.loadavg().map((x) => Math.round(x * 100) / 100) },
    progcost,
    maps,
    setup,
    connrate,
  };
  const outDir = args.out ?? (args.quick ? join(RESULTS_DIR, 'tmp') : RESULTS_DIR);
  await mkdir(outDir, { recursive: true });
  const jsonPath = join(outDir, 'latest.json');
  const mdPath = join(outDir, 'latest.md');
  await writeFile(jsonPath, JSON.stringify(result, null, 2) + '\n');
  const m = result.machine;
  const md = [
    '# bpfnet benchmark results',
    '',
    `Generated by \`${command}\` (${result.mode} mode) on ${finishedAt.toISOString()}, ${result.wallS.toFixed(0)} s. See bench/README.md for what the numbers mean.`,
    '',
    `- kernel ${m.kernel} (${m.arch}), ${m.cpuCount} x ${m.cpuModel}, ${m.memoryGiB} GiB`,
    `- node ${m.node}; ${m.clang}; ${m.bpftool}`,
    `- load average at start ${m.loadavgStart.join(' ')}, at end ${m.loadavgEnd.join(' ')}`,
    '',
    ...tables.flatMap((t) => [renderMarkdown(t), '']),
  ].join('\n');
  await writeFile(mdPath, md);
  process.stdout.write(`\nwrote ${relative(PACKAGE_ROOT, jsonPath) || jsonPath} and ${relative(PACKAGE_ROOT, mdPath) || mdPath} (${result.wallS.toFixed(0)} s)\n`);

  const failed = progcost?.paths.filter((p) => !p.verification.ok) ?? [];
  if (failed.length) {
    process.stderr.write(`bench: ${failed.length} path(s) failed verification: ${failed.map((p) => `${p.id} (${p.verification.problems.join('; ')})`).join(', ')}\n`);
  }
  if (setup && !setup.verification.ok) process.stderr.write(`bench: setup failed verification: ${setup.verification.problems.join('; ')}\n`);
  if (connrate && !connrate.verification.ok) process.stderr.write(`bench: connrate failed verification: ${connrate.verification.problems.join('; ')}\n`);
  return failed.length || (setup && !setup.verification.ok) || (connrate && !connrate.verification.ok) ? 1 : 0;
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
