#!/usr/bin/env node
/**
 * The `bpfnet` CNI plugin: a runtime execs it with CNI_* in the environment
 * and the network config on stdin; it prints a result (or CNI's error object)
 * on stdout. The work is done by the running `bpfnet agent` (see
 * docs/cni.md); bin/cni/bpfnet is the launcher to put in CNI_PATH.
 */
import { CniError, CNI_ERR } from './errors.js';
import { runCni } from './plugin.js';
import { CURRENT_VERSION } from './version.js';

function readAll(): Promise<string> {
  if (process.stdin.isTTY) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (d: Buffer) => chunks.push(d));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

/** A wedged agent must not wedge the runtime: answer "try again later" instead. */
const WATCHDOG_MS = 90_000;

async function main(): Promise<void> {
  const timer = setTimeout(() => {
    const e = new CniError(CNI_ERR.TRY_AGAIN_LATER, `the bpfnet agent did not answer within ${WATCHDOG_MS / 1000} s`);
    process.stdout.write(`${JSON.stringify(e.toJSON(CURRENT_VERSION))}\n`, () => process.exit(1));
  }, WATCHDOG_MS);
  timer.unref();
  const r = await runCni(process.env, readAll);
  if (r.stderr) process.stderr.write(r.stderr);
  process.stdout.write(r.stdout, () => process.exit(r.exitCode));
}

void main();
