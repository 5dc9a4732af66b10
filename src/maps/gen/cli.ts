/**
 * `node dist/src/maps/gen/cli.js [--check] OBJ...`: regenerate (or, with
 * --check, verify) src/maps/generated/abi.ts from compiled BPF objects.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { abiFromBtf, mergeAbi, readBtf } from '../btf.js';
import { renderAbi } from './render.js';

export const GENERATED_PATH = 'src/maps/generated/abi.ts';

export async function generate(objects: string[]): Promise<string> {
  const abis = await Promise.all(objects.map(async (o) => abiFromBtf(await readBtf(o))));
  return renderAbi(mergeAbi(abis), objects.map((o) => basename(o)).sort());
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const check = args[0] === '--check';
  const objects = check ? args.slice(1) : args;
  if (objects.length === 0) {
    process.stderr.write('usage: gen [--check] OBJECT.o...\n');
    process.exit(2);
  }
  const text = await generate(objects);
  if (check) {
    const current = await readFile(GENERATED_PATH, 'utf8').catch(() => '');
    if (current !== text) {
      process.stderr.write(`${GENERATED_PATH} is out of date with bpf/lib/maps.h: run \`make gen\`\n`);
      process.exit(1);
    }
    return;
  }
  await writeFile(GENERATED_PATH, text);
  process.stdout.write(`wrote ${GENERATED_PATH}\n`);
}

if (process.argv[1] && import.meta.url.endsWith(basename(process.argv[1]))) {
  main().catch((e: unknown) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  });
}
