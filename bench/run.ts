/**
 * bpfnet benchmarks: `make bench` (= node dist/bench/run.js).
 *
 *   node dist/bench/run.js                 full run, writes bench/results/latest.{json,md}
 *   node dist/bench/run.js --quick         smoke run (few rounds, small repeat),
 *                                          writes bench/results/tmp/latest.{json,md}
 *   node dist/bench/run.js --only maps     or --only progcost, --only setup
 *   node dist/bench/run.js --out DIR       write the results elsewhere
 *   --rounds N / --repeat N                override rounds (both) / test-run repeat
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

interface Args {
  quick: boolean;
  only: Only | undefined;
  out: string | undefined;
  rounds: number | undefined;
  repeat: number | undefined;
}

class UsageError extends Error {}

const ONLY = ['maps', 'progcost', 'setup'] as const;
type Only = (typeof ONLY)[number];

const USAGE = 'usage: node dist/bench/run.js [--quick] [--only maps|progcost|setup] [--out DIR] [--rounds N] [--repeat N]';

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, only: undefined, out: undefined, rounds: undefined, repeat: undefined };
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
  if (args.rounds) pOpts.rounds = mOpts.rounds = sOpts.rounds = args.rounds;
  if (args.repeat) pOpts.repeat = args.repeat;

  let progcost: ProgcostResult | undefined;
  let maps: MapsResult | undefined;
  let setup: SetupResult | undefined;
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

  const tables: Table[] = [...(progcost ? progcostTables(progcost) : []), ...(maps ? mapsTables(maps) : []), ...(setup ? setupTables(setup) : [])];
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
  return failed.length || (setup && !setup.verification.ok) ? 1 : 0;
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
