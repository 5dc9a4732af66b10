/**
 * Sandbox + endpoint setup latency: bpfnet's rtnetlink layer (src/netlink)
 * against the same steps with `ip` commands.
 *
 *   node dist/bench/netlink.js [--iterations N] [--json]
 *
 * One iteration = a new netns, a veth pair with the peer (eth0) created in it
 * and the host side enslaved to a bridge and up, lo and eth0 up, an address on
 * eth0 and a default route. Teardown (delete the host veth and the netns) is
 * measured apart. The two methods alternate every iteration, in a scratch
 * "node" netns (nothing touches the machine's own interfaces); everything is
 * removed afterwards, also when interrupted. Nothing asserts on timings.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { createNetns, deleteNetns, Rtnl } from '../src/netlink/index.js';
import { quantile } from './lib/stats.js';

interface Samples {
  setup: number[];
  teardown: number[];
  /** netlink only: the setup's parts. */
  netns: number[];
  veth: number[];
  sandbox: number[];
  delLink: number[];
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const samples = (): Samples => ({ setup: [], teardown: [], netns: [], veth: [], sandbox: [], delLink: [] });

function parseArgs(argv: string[]): { iterations: number; json: boolean } {
  let iterations = 200;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--json') json = true;
    else if (argv[i] === '--iterations' && /^\d+$/.test(argv[i + 1] ?? '')) iterations = Number(argv[++i]);
    else {
      process.stderr.write('usage: node dist/bench/netlink.js [--iterations N] [--json]\n');
      process.exit(2);
    }
  }
  return { iterations, json };
}

function main(): void {
  const { iterations, json } = parseArgs(process.argv.slice(2));
  const tag = randomBytes(2).toString('hex');
  const nodeName = `bnb-node-${tag}`;
  const nodeNs = `/run/netns/${nodeName}`;
  const made = new Set<string>();
  let stop = false;
  const onSignal = (): void => {
    stop = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const nl = samples();
  const ip = samples();
  const ipCmd = (...args: string[]): void => {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  };

  createNetns(nodeNs);
  made.add(nodeNs);
  const host = Rtnl.open(nodeNs);
  try {
    const br = host.createBridge('br0', { up: true });
    host.addAddr(br.index, '10.200.0.1/16');

    const runNetlink = (i: number): void => {
      const ns = `/run/netns/bnb-${tag}-n${i}`;
      const t0 = now();
      createNetns(ns);
      made.add(ns);
      const t1 = now();
      const { index, peerIndex } = host.createVeth({ name: `bnb${tag}n${i}`, peerName: 'eth0', peerNetnsPath: ns, master: br.index, alias: `bpfnet:${tag}${i}`, up: true });
      const t2 = now();
      const sb = Rtnl.open(ns);
      try {
        sb.setLink(1, { up: true });
        sb.addAddr(peerIndex, `10.200.${(i >> 8) + 1}.${i & 255}/16`);
        sb.setLink(peerIndex, { up: true });
        sb.addRoute({ dst: 'default', gateway: '10.200.0.1' });
      } finally {
        sb.close();
      }
      const t3 = now();
      host.deleteLink(index);
      const t3b = now();
      deleteNetns(ns);
      made.delete(ns);
      const t4 = now();
      nl.delLink.push(t3b - t3);
      nl.setup.push(t3 - t0);
      nl.netns.push(t1 - t0);
      nl.veth.push(t2 - t1);
      nl.sandbox.push(t3 - t2);
      nl.teardown.push(t4 - t3);
    };

    const runIp = (i: number): void => {
      const name = `bnb-${tag}-i${i}`;
      const dev = `bnb${tag}i${i}`;
      const t0 = now();
      ipCmd('netns', 'add', name);
      made.add(`/run/netns/${name}`);
      ipCmd('-n', nodeName, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
      ipCmd('-n', nodeName, 'link', 'set', dev, 'master', 'br0', 'alias', `bpfnet:${tag}${i}`, 'up');
      ipCmd('-n', name, 'link', 'set', 'lo', 'up');
      ipCmd('-n', name, 'addr', 'add', `10.200.${(i >> 8) + 1}.${i & 255}/16`, 'dev', 'eth0');
      ipCmd('-n', name, 'link', 'set', 'eth0', 'up');
      ipCmd('-n', name, 'route', 'add', 'default', 'via', '10.200.0.1');
      const t1 = now();
      ipCmd('-n', nodeName, 'link', 'del', dev);
      ipCmd('netns', 'del', name);
      made.delete(`/run/netns/${name}`);
      const t2 = now();
      ip.setup.push(t1 - t0);
      ip.teardown.push(t2 - t1);
    };

    // Warm-up (first netns, first spawn), not counted.
    runNetlink(9999);
    runIp(9999);
    nl.setup.length = nl.netns.length = nl.veth.length = nl.sandbox.length = nl.teardown.length = nl.delLink.length = 0;
    ip.setup.length = ip.teardown.length = 0;
    for (let i = 0; i < iterations && !stop; i++) {
      if (i % 2 === 0) {
        runNetlink(i);
        runIp(i);
      } else {
        runIp(i);
        runNetlink(i);
      }
      if (i % 50 === 49) process.stderr.write(`  ${i + 1}/${iterations}\n`);
    }
  } finally {
    host.close();
    for (const p of made) deleteNetns(p);
  }

  const row = (label: string, xs: number[]): Record<string, string | number> => ({
    step: label,
    n: xs.length,
    p50: +quantile(xs, 0.5).toFixed(2),
    p90: +quantile(xs, 0.9).toFixed(2),
    p99: +quantile(xs, 0.99).toFixed(2),
  });
  const rows = [
    row('netlink: setup (netns + veth + addr + route + up)', nl.setup),
    row('  netns create', nl.netns),
    row('  veth pair, peer in netns, master, up', nl.veth),
    row('  sandbox: lo up, addr, eth0 up, default route', nl.sandbox),
    row('netlink: teardown (del veth + netns)', nl.teardown),
    row('  delete veth (waits for the kernel to free it)', nl.delLink),
    row('ip: setup (7 commands)', ip.setup),
    row('ip: teardown (2 commands)', ip.teardown),
  ];
  const ratio = quantile(ip.setup, 0.5) / quantile(nl.setup, 0.5);
  if (json) {
    process.stdout.write(`${JSON.stringify({ machine: { cpus: os.cpus().length, kernel: os.release() }, unit: 'ms', rows, setupSpeedupP50: ratio }, null, 2)}\n`);
  } else {
    process.stdout.write(`sandbox + endpoint setup, ms (${nl.setup.length} iterations each, ${os.cpus().length} CPUs, kernel ${os.release()})\n`);
    for (const r of rows) process.stdout.write(`${String(r.step).padEnd(52)} p50 ${String(r.p50).padStart(7)}  p90 ${String(r.p90).padStart(7)}  p99 ${String(r.p99).padStart(7)}\n`);
    process.stdout.write(`setup p50: ip / netlink = ${ratio.toFixed(1)}x\n`);
  }
  if (stop) process.exitCode = 130;
}

main();
