/**
 * The embedded DNS server (src/dns): queries per second and latency seen by
 * a client inside a sandbox netns.
 *
 *   node dist/bench/dns.js [--seconds S] [--redirect ebpf[,iptables,nftables,none]] [--json]
 *
 * A scratch directory of netns files under /run and a scratch bpffs root;
 * the server (this process) attaches one sandbox per redirect mode: its
 * sockets on a kernel-chosen port of 127.0.0.11 there, and 127.0.0.11:53
 * redirected to it (ebpf: the tc program on the sandbox's lo, the default;
 * iptables/nftables: NAT rules in the sandbox; none: the sockets on port 53
 * itself, no redirect, the baseline). The client is a separate Node process
 * started in the sandbox with nsenter (client and server do not share an
 * event loop) and always asks 127.0.0.11:53. The registry holds 200
 * sandboxes on 4 networks. Cases: local A answers and queries forwarded to a
 * fake upstream on this process's loopback, each one query at a time
 * (latency) and with 64 in flight (throughput). Everything is removed
 * afterwards, also when interrupted. Nothing asserts on the numbers.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import pino from 'pino';
import dnsPacket from 'dns-packet';
import { createNetns, removeNetnsDir, Rtnl } from '../src/netlink/index.js';
import { DnsRegistry, DnsServer, REDIRECT_MODES, type RedirectMode } from '../src/dns/index.js';
import { ensureBpffs } from '../src/loader/bpffs.js';
import { removeRoot } from '../src/loader/load.js';
import { run } from '../src/util/exec.js';

/** Runs in the sandbox: keeps `window` queries in flight for `seconds`, prints the count and latency quantiles (µs). */
const CLIENT = `
const dgram = require('dgram');
const [seconds, window, ...hex] = process.argv.slice(1);
const queries = hex.map((h) => Buffer.from(h, 'hex'));
const s = dgram.createSocket('udp4');
const sent = new Map();
const lat = [];
let id = 0, done = 0, errors = 0, stop = false, qi = 0;
const t0 = process.hrtime.bigint();
function send() {
  if (stop) return;
  id = (id + 1) & 0xffff;
  const q = Buffer.from(queries[qi++ % queries.length]);
  q.writeUInt16BE(id, 0);
  sent.set(id, process.hrtime.bigint());
  s.send(q, 53, '127.0.0.11');
}
s.on('message', (m) => {
  const i = m.readUInt16BE(0);
  const t = sent.get(i);
  if (t === undefined) return;
  sent.delete(i);
  if ((m.readUInt16BE(2) & 0xf) !== 0 && (m.readUInt16BE(2) & 0xf) !== 3) errors++;
  lat.push(Number(process.hrtime.bigint() - t) / 1000);
  done++;
  send();
});
s.bind(0, '127.0.0.1', () => { for (let i = 0; i < Number(window); i++) send(); });
setTimeout(() => {
  stop = true;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((a, b) => a - b);
  const q = (x) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((lat.length - 1) * x))] : NaN);
  process.stdout.write(JSON.stringify({ done, errors, secs, lost: sent.size, p50: q(0.5), p99: q(0.99) }), () => process.exit(0));
}, Number(seconds) * 1000);
`;

interface CaseResult {
  redirect: RedirectMode;
  case: string;
  window: number;
  qps: number;
  p50us: number;
  p99us: number;
  errors: number;
}

function query(name: string): string {
  return dnsPacket.encode({ id: 0, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] }).toString('hex');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let seconds = 3;
  let json = false;
  let modes: RedirectMode[] = ['ebpf'];
  const usage = (): never => {
    process.stderr.write(`usage: node dist/bench/dns.js [--seconds S] [--redirect ${REDIRECT_MODES.join('|')}[,...]] [--json]\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--json') json = true;
    else if (argv[i] === '--seconds' && /^\d+(\.\d+)?$/.test(argv[i + 1] ?? '')) seconds = Number(argv[++i]);
    else if (argv[i] === '--redirect' && argv[i + 1]) {
      modes = argv[++i]!.split(',') as RedirectMode[];
      if (!modes.every((m) => REDIRECT_MODES.includes(m))) usage();
    } else usage();
  }

  const tag = randomBytes(3).toString('hex');
  const dir = `/run/bpfnet-dnsbench-${tag}`;
  const bpffsRoot = `/sys/fs/bpf/bpfnet-dnsbench-${tag}`;
  const servers: DnsServer[] = [];
  let upstream: dgram.Socket | undefined;
  const cleanup = async (): Promise<void> => {
    for (const s of servers) await s.close().catch(() => undefined);
    upstream?.close();
    removeNetnsDir(dir);
    await removeRoot(bpffsRoot).catch(() => undefined);
  };
  const onSignal = (): void => {
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    await ensureBpffs(bpffsRoot);

    // A fake upstream that answers everything at once.
    const up = dgram.createSocket('udp4');
    upstream = up;
    await new Promise<void>((resolve) => up.bind(0, '127.0.0.1', () => resolve()));
    up.on('message', (m, rinfo) => {
      try {
        const p = dnsPacket.decode(m);
        const q = p.questions?.[0];
        if (!q) return;
        up.send(dnsPacket.encode({ id: p.id, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE, questions: [q], answers: [{ type: 'A', name: q.name, ttl: 60, data: '192.0.2.1' }] }), rinfo.port, rinfo.address);
      } catch {
        /* ignore */
      }
    });

    const registry = new DnsRegistry();
    const nets = [0, 1, 2, 3].map((i) => ({ networkId: String(i).repeat(64), networkName: `net${i}` }));
    for (let i = 0; i < 200; i++) {
      const net = nets[i % 4]!;
      registry.setSandbox({
        sandboxId: i.toString(16).padStart(64, 'f'),
        name: `svc${i}`,
        networks: [{ ...net, ip: `10.${i % 4}.${i >> 8}.${(i & 255) + 1}`, aliases: [`alias${i}`, 'shared'] }],
      });
    }
    const clientId = 'c'.repeat(64);
    registry.setSandbox({ sandboxId: clientId, name: 'client', networks: nets.map((n, i) => ({ ...n, ip: `10.${i}.9.9`, aliases: [] })) });
    const local = Array.from({ length: 50 }, (_, i) => query(`svc${i * 4}`));
    const forwarded = Array.from({ length: 50 }, (_, i) => query(`host${i}.example.test`));
    const results: CaseResult[] = [];
    for (const mode of modes) {
      const ns = `${dir}/client-${mode}`;
      createNetns(ns);
      const r = Rtnl.open(ns);
      try {
        r.setLink('lo', { up: true });
      } finally {
        r.close();
      }
      const server = new DnsServer({ registry, upstreams: [{ addr: '127.0.0.1', port: up.address().port }], logger: pino({ level: 'silent' }), redirect: mode, bpffsRoot });
      servers.push(server);
      await server.attach(clientId, ns, { internal: false });
      process.stderr.write(`[dns bench] redirect ${mode}: resolver on 127.0.0.11:${server.portOf(clientId)}\n`);
      for (const [name, qs] of [
        ['local A', local],
        ['forwarded A', forwarded],
      ] as const) {
        for (const window of [1, 64]) {
          const out = await run(process.execPath, ['-e', CLIENT, String(seconds), String(window), ...qs], { netns: ns, timeout: (seconds + 30) * 1000 });
          const res = JSON.parse(out.stdout) as { done: number; errors: number; secs: number; lost: number; p50: number; p99: number };
          results.push({ redirect: mode, case: name, window, qps: res.done / res.secs, p50us: res.p50, p99us: res.p99, errors: res.errors });
          process.stderr.write(`[dns bench] ${mode}: ${name}, ${window} in flight: ${Math.round(res.done / res.secs)} q/s\n`);
        }
      }
      await server.close();
    }
    const machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? '?', kernel: os.release(), node: process.version };
    if (json) {
      process.stdout.write(`${JSON.stringify({ machine, seconds, results }, null, 2)}\n`);
    } else {
      process.stdout.write(`embedded DNS server, client in a sandbox netns (${machine.cpus} x ${machine.cpu}, ${seconds} s per case)\n\n`);
      process.stdout.write('| redirect | case | in flight | queries/s | p50 µs | p99 µs | errors |\n|---|---|---:|---:|---:|---:|---:|\n');
      for (const r of results) {
        process.stdout.write(`| ${r.redirect} | ${r.case} | ${r.window} | ${Math.round(r.qps)} | ${Math.round(r.p50us)} | ${Math.round(r.p99us)} | ${r.errors} |\n`);
      }
    }
  } finally {
    await cleanup();
  }
}

await main();
