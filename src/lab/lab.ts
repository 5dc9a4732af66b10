/**
 * The lab: a node with an uplink to a client, one container running a small
 * TCP+UDP server, ports published through the eBPF dataplane, one request per
 * protocol through them, and an account of what happened. Everything lives in
 * namespaces and a bpffs root of its own, and is removed afterwards.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../util/paths.js';
import { randomBytes } from 'node:crypto';
import { Topology, UPLINK } from './topology.js';
import type { Netns } from './netns.js';
import { EbpfDataplane } from '../dataplane/ebpf/dataplane.js';
import type { ApplyReport, DesiredState } from '../dataplane/types.js';
import { listTc, type TcAttachment } from '../loader/tc.js';
import { TypedMap, readPerCpu } from '../maps/map.js';
import { MetricId } from '../maps/generated/abi.js';
import { run, tryRun } from '../util/exec.js';
import { BpfnetError } from '../util/errors.js';

// Always the compiled scripts, also when this module runs from source (vitest).
const LAB_DIST = join(PACKAGE_ROOT, 'dist', 'src', 'lab');
export const ECHO_SCRIPT = join(LAB_DIST, 'echo.js');
export const PROBE_SCRIPT = join(LAB_DIST, 'probe.js');

export interface LabAccount {
  topology: { id: string; client: string; node: string; container: string; containerIp: string };
  bpffsRoot: string;
  published: { frontend: string; backend: string }[];
  apply: ApplyReport;
  attachments: TcAttachment[];
  mapEntries: { map: string; key: unknown; value: unknown }[];
  exchanges: { proto: string; to: string; reply: string; sourceSeen: string; sourcePreserved: boolean }[];
  metrics: Record<string, { packets: string; bytes: string }>;
  firewall: { iptablesRules: number; nftRules: number };
  kept: boolean;
}

/** Wait for a child started by Netns.spawn to print "ready". */
export function waitReady(child: import('node:child_process').ChildProcess, what: string, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new BpfnetError('E_TIMEOUT', `${what} did not start within ${ms} ms: ${err}`)), ms);
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(t);
      reject(new BpfnetError('E_COMMAND_FAILED', `${what} exited with ${code}: ${err}`));
    });
  });
}

export async function probe(ns: Netns, proto: 'tcp' | 'udp', host: string, port: number, msg = 'hello'): Promise<string> {
  const { stdout } = await ns.exec(process.execPath, [PROBE_SCRIPT, proto, host, String(port), msg], { timeout: 10_000 });
  return stdout.trim();
}

/** Rules in a namespace's firewall, by iptables-save and nft (0 = nothing). */
export async function firewallRules(ns: Netns): Promise<{ iptablesRules: number; nftRules: number }> {
  const ipt = (await tryRun('iptables-save', [], { netns: ns.path }))?.stdout ?? '';
  const nft = (await tryRun('nft', ['list', 'ruleset'], { netns: ns.path }))?.stdout ?? '';
  return {
    iptablesRules: ipt.split('\n').filter((l) => l.startsWith('-A ')).length,
    nftRules: nft.split('\n').filter((l) => /^\s+(ip|tcp|udp|meta|ct|iifname|oifname|counter|jump|dnat|snat|masquerade|accept|drop)\b/.test(l)).length,
  };
}

export async function runLab(opts: { keep?: boolean; log?: (line: string) => void } = {}): Promise<LabAccount> {
  const log = opts.log ?? (() => undefined);
  log('creating namespaces: client, node (uplink up0), container (veth vc0 on bridge br0)');
  const topo = await Topology.create({ prefix: 'bnlab' });
  const root = `/sys/fs/bpf/bpfnet-lab-${randomBytes(4).toString('hex')}`;
  const dp = new EbpfDataplane({ root, netns: topo.node.path });
  const ctr = topo.containers[0]!;
  const state: DesiredState = {
    uplinks: [UPLINK.dev],
    nodeAddresses: [UPLINK.nodeIp],
    endpoints: [{ hostDev: ctr.hostDev }],
    ports: [
      { hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: ctr.ip, containerPort: 80 },
      { hostIp: UPLINK.nodeIp, hostPort: 5353, proto: 'udp', containerIp: ctr.ip, containerPort: 53 },
    ],
  };
  // --keep keeps everything even when a step fails: that is when one wants to look.
  const kept = opts.keep ?? false;
  try {
    log(`starting a TCP server on ${ctr.ip}:80 and a UDP server on ${ctr.ip}:53 in the container`);
    await Promise.all([
      waitReady(ctr.ns.spawn(process.execPath, [ECHO_SCRIPT, '80', 'container']), 'tcp server'),
      waitReady(ctr.ns.spawn(process.execPath, [ECHO_SCRIPT, '53', 'container']), 'udp server'),
    ]);
    log(`compiling, loading and attaching BPF programs (bpffs root ${root})`);
    const apply = await dp.apply(state);
    for (const a of apply.attached) log(`  attached ${a.prog} (id ${a.progId}) to ${a.dev} ${a.hook}`);

    const exchanges: LabAccount['exchanges'] = [];
    for (const [proto, port] of [['tcp', 8080], ['udp', 5353]] as const) {
      log(`client ${UPLINK.clientIp} -> ${UPLINK.nodeIp}:${port}/${proto}`);
      const reply = await probe(topo.client, proto, UPLINK.nodeIp, port, `hello over ${proto}`);
      const sourceSeen = /saw ([\d.]+):\d+/.exec(reply)?.[1] ?? '';
      exchanges.push({ proto, to: `${UPLINK.nodeIp}:${port}`, reply, sourceSeen, sourcePreserved: sourceSeen === UPLINK.clientIp });
      log(`  reply: ${reply}`);
    }

    const attachments = (await Promise.all(
      [UPLINK.dev, ctr.hostDev].map((dev) => listTc({ netns: topo.node.path, dev, direction: 'ingress' })),
    )).flat();
    const mapEntries: LabAccount['mapEntries'] = [];
    for (const name of ['bpfnet_ports', 'bpfnet_addrs', 'bpfnet_nat_ct'] as const) {
      const m = TypedMap.open(dp.mapDir, name);
      try {
        for (const [key, value] of await m.toArray()) mapEntries.push({ map: name, key, value });
      } finally {
        m.close();
      }
    }
    const names = Object.fromEntries(Object.entries(MetricId).map(([k, v]) => [v, k.replace(/^METRIC_/, '').toLowerCase()]));
    const metrics: LabAccount['metrics'] = {};
    for (const [k, v] of await readPerCpu(dp.mapDir, 'bpfnet_metrics')) {
      if (v.packets > 0n) metrics[names[k] ?? String(k)] = { packets: v.packets.toString(), bytes: v.bytes.toString() };
    }
    const firewall = await firewallRules(topo.node);
    return {
      topology: { id: topo.id, client: topo.client.name, node: topo.node.name, container: ctr.ns.name, containerIp: ctr.ip },
      bpffsRoot: root,
      published: state.ports.map((p) => ({ frontend: `${p.hostIp}:${p.hostPort}/${p.proto}`, backend: `${p.containerIp}:${p.containerPort}` })),
      apply,
      attachments,
      mapEntries,
      exchanges,
      metrics,
      firewall,
      kept,
    };
  } finally {
    if (kept) {
      for (const ns of topo.namespaces) ns.release();
    } else {
      log('tearing down: detaching programs, removing pins and namespaces');
      await dp.teardown(state).catch(() => undefined);
      await topo.destroy();
    }
  }
}

/** Remove what a `lab --keep` (or a crashed run) left behind. */
export async function cleanLab(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  const names = stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => /^bnlab-[0-9a-f]{6}-/.test(n));
  for (const n of names) await run('ip', ['netns', 'del', n]).catch(() => undefined);
  const pins = (await readdir('/sys/fs/bpf').catch(() => [] as string[])).filter((n) => n.startsWith('bpfnet-lab-'));
  for (const p of pins) await rm(join('/sys/fs/bpf', p), { recursive: true, force: true });
  return [...names, ...pins.map((p) => `/sys/fs/bpf/${p}`)];
}
