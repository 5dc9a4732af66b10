/**
 * The peers of the traffic and programming benchmarks: ways of publishing
 * ports in a node namespace, programmed one at a time into the same
 * topology (src/lab/topology.ts):
 *
 *   client ns eth0 198.18.0.2 -- up0 198.18.0.1 node ns br0 -- vc0 == container ns 198.19.0.2
 *
 *   ebpf       EbpfDataplane.apply() (tc programs on up0 and vc0, the ports in
 *              bpfnet_ports), in a fresh bpffs root per job
 *   ebpf-xdp   the same plus the XDP DNAT program on up0 (native mode: veth has it)
 *   nft-map    one nftables table: `dnat ip to ip daddr . meta l4proto . th dport
 *              map @ports` (O(1) lookup), loaded with one `nft -f`
 *   iptables   what Docker 28/29 writes per published port, loaded with one
 *              iptables-restore (the machine's default, nf_tables backend)
 *
 * A port set is a list of host port = container port specs; the measured
 * port is the LAST one, last in every rule list.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EbpfDataplane } from '../../src/dataplane/ebpf/dataplane.js';
import type { DesiredState, Protocol, PublishedPort } from '../../src/dataplane/types.js';
import { firewallRules } from '../../src/lab/lab.js';
import { BRIDGE, Topology, UPLINK } from '../../src/lab/topology.js';
import { removeRoot } from '../../src/loader/load.js';
import { listTc } from '../../src/loader/tc.js';
import { getXdp } from '../../src/loader/xdp.js';
import { MetricId } from '../../src/maps/generated/abi.js';
import { readPerCpu } from '../../src/maps/map.js';
import { run, tryRun } from '../../src/util/exec.js';
import { registerCleanup } from './env.js';
import { RawPinnedMap, nextPow2 } from './rawmap.js';
import { elapsedS, nowNs } from './stats.js';

export type PeerId = 'ebpf' | 'ebpf-xdp' | 'nft-map' | 'iptables';
export const PEERS: readonly PeerId[] = ['ebpf', 'ebpf-xdp', 'nft-map', 'iptables'];

export const PEER_LABEL: Record<PeerId, string> = {
  ebpf: 'bpfnet eBPF (tc)',
  'ebpf-xdp': 'bpfnet eBPF (XDP + tc)',
  'nft-map': 'nftables dnat map',
  iptables: 'Docker-style iptables',
};

export const isEbpf = (p: PeerId): boolean => p === 'ebpf' || p === 'ebpf-xdp';

/** Host port = container port. */
export interface PortSpec {
  port: number;
  proto: Protocol;
}

/** N TCP ports base .. base+N-1 (like `-p A-B:A-B`); the last is the measured one. */
export function tcpRange(base: number, n: number): PortSpec[] {
  return Array.from({ length: n }, (_, i) => ({ port: base + i, proto: 'tcp' as const }));
}

/** The topology the peers are programmed into, and what they need to know about it. */
export interface PeerLab {
  topo: Topology;
  /** Temporary directory for rule files. */
  dir: string;
  upIndex: number;
  vcIndex: number;
  ctrIp: string;
  /** Host IP of the eBPF peers' ports: '0.0.0.0' (Docker's default) or the node address. */
  ebpfHostIp: string;
  /** eBPF roots created and not yet removed (for the interrupt cleanup). */
  roots: Set<string>;
  release(): Promise<void>;
}

async function ifindex(topo: Topology, dev: string): Promise<number> {
  const j = JSON.parse((await topo.node.ip('-j', 'link', 'show', dev)).stdout) as { ifindex: number }[];
  return j[0]!.ifindex;
}

/** A Topology with one container, removed (with every eBPF root) by release() or on SIGINT/SIGTERM. */
export async function createPeerLab(prefix: string, ebpfHostIp = '0.0.0.0'): Promise<PeerLab> {
  const topo = await Topology.create({ prefix });
  const dir = await mkdtemp(join(tmpdir(), `bpfnet-${prefix}-`));
  const roots = new Set<string>();
  const release = registerCleanup(async () => {
    await topo.destroy();
    for (const r of roots) await removeRoot(r).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  try {
    const ctr = topo.containers[0]!;
    return { topo, dir, upIndex: await ifindex(topo, UPLINK.dev), vcIndex: await ifindex(topo, ctr.hostDev), ctrIp: ctr.ip, ebpfHostIp, roots, release };
  } catch (e) {
    await release();
    throw e;
  }
}

export interface Programmed {
  /** Publishing the port set in bulk (ms). eBPF: apply() onto loaded, attached, empty maps. */
  programMs: number;
  /** eBPF only: the first apply() with no ports (load programs, create maps, attach). */
  loadMs?: number;
  /** Deep check of the programmed state; problems, empty when fine. */
  verify(): Promise<string[]>;
  /** eBPF only: METRIC_DNAT packets so far. */
  dnatPackets?(): Promise<number>;
  /** Publish one more port the peer's usual way (ms). */
  publishOne(p: PortSpec): Promise<number>;
  /** Unpublish that port again (ms). */
  unpublishOne(p: PortSpec): Promise<number>;
  /** Remove everything the peer programmed (ms). */
  remove(): Promise<number>;
}

export function programPeer(lab: PeerLab, peer: PeerId, specs: PortSpec[]): Promise<Programmed> {
  return isEbpf(peer) ? programEbpf(lab, specs, peer === 'ebpf-xdp') : programNetfilter(lab, peer as 'nft-map' | 'iptables', specs);
}

export async function nodeConntrackCount(lab: PeerLab): Promise<number | undefined> {
  const r = await tryRun('cat', ['/proc/sys/net/netfilter/nf_conntrack_count'], { netns: lab.topo.node.path });
  return r ? Number(r.stdout.trim()) : undefined;
}

// ---- eBPF ------------------------------------------------------------------------

async function programEbpf(lab: PeerLab, specs: PortSpec[], xdp: boolean): Promise<Programmed> {
  const root = `/sys/fs/bpf/bpfnet-bench-${randomBytes(4).toString('hex')}`;
  lab.roots.add(root);
  const n = specs.length;
  const node = lab.topo.node.path;
  const hostDev = lab.topo.containers[0]!.hostDev;
  // nodeLocal off: the socket hooks serve processes on the node and attach to
  // the machine-wide cgroup2 root, where they would also run on the client's
  // connect() (a client in another netns of the same kernel), which a real
  // external client never pays; and the bench leaves the root cgroup alone.
  const dp = new EbpfDataplane({ root, netns: node, mapSizes: { bpfnet_ports: Math.max(65_536, nextPow2(n + 1)) }, nodeLocal: false, ...(xdp ? { xdp: 'native' as const } : {}) });
  const port = (s: PortSpec): PublishedPort => ({ hostIp: lab.ebpfHostIp, hostPort: s.port, proto: s.proto, containerIp: lab.ctrIp, containerPort: s.port });
  const base: DesiredState = {
    uplinks: [UPLINK.dev],
    uplinkIndex: { [UPLINK.dev]: lab.upIndex },
    nodeAddresses: [UPLINK.nodeIp],
    endpoints: [{ hostDev, ifindex: lab.vcIndex, ip: lab.ctrIp }],
    ports: [],
  };
  const state: DesiredState = { ...base, ports: specs.map(port) };
  const timed = async (s: DesiredState) => {
    const t = nowNs();
    await dp.apply(s);
    return elapsedS(t) * 1000;
  };
  const remove = async () => {
    const t = nowNs();
    await dp.teardown(state);
    lab.roots.delete(root);
    return elapsedS(t) * 1000;
  };
  try {
    const loadMs = await timed(base);
    const t = nowNs();
    const rep = await dp.apply(state);
    const programMs = elapsedS(t) * 1000;
    return {
      programMs,
      loadMs,
      verify: async () => {
        const problems: string[] = [];
        if (rep.ports.added !== n) problems.push(`ebpf N=${n}: apply reported ${rep.ports.added} ports added`);
        if (rep.attached.length) problems.push(`ebpf N=${n}: the timed apply attached programs again (${rep.attached.map((a) => a.dev).join(', ')})`);
        const m = new RawPinnedMap(join(dp.mapDir, 'bpfnet_ports'));
        try {
          const c = m.count();
          if (c !== n) problems.push(`ebpf N=${n}: bpfnet_ports holds ${c} entries`);
        } finally {
          m.close();
        }
        for (const dev of [UPLINK.dev, hostDev]) {
          const a = await listTc({ netns: node, dev, direction: 'ingress' });
          if (a.length !== 1) problems.push(`ebpf: ${a.length} tc programs on ${dev} ingress`);
        }
        const x = await getXdp({ netns: node, dev: UPLINK.dev });
        if (xdp && !x) problems.push(`ebpf-xdp: no XDP program on ${UPLINK.dev}`);
        if (!xdp && x) problems.push(`ebpf: an XDP program on ${UPLINK.dev}`);
        return problems;
      },
      dnatPackets: async () => {
        const m = new Map(await readPerCpu(dp.mapDir, 'bpfnet_metrics'));
        return Number(m.get(MetricId.METRIC_DNAT)?.packets ?? 0n);
      },
      // apply() with the whole desired state, as the agent does it.
      publishOne: (p) => timed({ ...state, ports: [...state.ports, port(p)] }),
      unpublishOne: () => timed(state),
      remove,
    };
  } catch (e) {
    await remove().catch(() => undefined);
    throw e;
  }
}

// ---- netfilter -------------------------------------------------------------------

/** nftables: one table, one map keyed on (node address, protocol, port), one rule. */
export function nftRuleset(lab: Pick<PeerLab, 'ctrIp'>, specs: PortSpec[]): string {
  const els = specs.map((s) => `      ${nftElement(lab, s)}`);
  return [
    'table ip bench_dnat {',
    '  map ports {',
    '    type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service',
    '    elements = {',
    els.join(',\n'),
    '    }',
    '  }',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    dnat ip to ip daddr . meta l4proto . th dport map @ports',
    '  }',
    '}',
    '',
  ].join('\n');
}

const nftElement = (lab: Pick<PeerLab, 'ctrIp'>, s: PortSpec) => `${UPLINK.nodeIp} . ${s.proto} . ${s.port} : ${lab.ctrIp} . ${s.port}`;

const dockerDnat = (lab: Pick<PeerLab, 'ctrIp'>, s: PortSpec) =>
  ['!', '-i', BRIDGE.dev, '-p', s.proto, '-m', s.proto, '--dport', String(s.port), '-j', 'DNAT', '--to-destination', `${lab.ctrIp}:${s.port}`];
const dockerAccept = (lab: Pick<PeerLab, 'ctrIp'>, s: PortSpec) =>
  ['-d', `${lab.ctrIp}/32`, '!', '-i', BRIDGE.dev, '-o', BRIDGE.dev, '-p', s.proto, '-m', s.proto, '--dport', String(s.port), '-j', 'ACCEPT'];

/**
 * What Docker 28/29 writes for a bridge network (br0, 198.19.0.0/24) with one
 * container publishing the ports (docker-networking.md, "What Docker writes";
 * userland proxy on, so no hairpin MASQUERADE rules). The measured (last)
 * port's rules come last in both per-port lists (nat DOCKER, filter DOCKER
 * before its final DROP).
 */
export function dockerRules(lab: Pick<PeerLab, 'ctrIp'>, specs: PortSpec[]): string {
  const br = BRIDGE.dev;
  return [
    '*raw',
    ':PREROUTING ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    `-A PREROUTING -d ${lab.ctrIp}/32 ! -i ${br} -j DROP`,
    'COMMIT',
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':DOCKER - [0:0]',
    '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
    '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER',
    `-A POSTROUTING -s ${BRIDGE.subnet} ! -o ${br} -j MASQUERADE`,
    ...specs.map((s) => `-A DOCKER ${dockerDnat(lab, s).join(' ')}`),
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':DOCKER - [0:0]',
    ':DOCKER-BRIDGE - [0:0]',
    ':DOCKER-CT - [0:0]',
    ':DOCKER-FORWARD - [0:0]',
    ':DOCKER-INTERNAL - [0:0]',
    ':DOCKER-USER - [0:0]',
    '-A FORWARD -j DOCKER-USER',
    '-A FORWARD -j DOCKER-FORWARD',
    ...specs.map((s) => `-A DOCKER ${dockerAccept(lab, s).join(' ')}`),
    `-A DOCKER ! -i ${br} -o ${br} -j DROP`,
    `-A DOCKER-BRIDGE -o ${br} -j DOCKER`,
    `-A DOCKER-CT -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    '-A DOCKER-FORWARD -j DOCKER-CT',
    '-A DOCKER-FORWARD -j DOCKER-INTERNAL',
    '-A DOCKER-FORWARD -j DOCKER-BRIDGE',
    `-A DOCKER-FORWARD -i ${br} -j ACCEPT`,
    'COMMIT',
    '',
  ].join('\n');
}

/** Remove every netfilter rule of the node ns (iptables-nft tables are nft tables) and its conntrack entries. */
async function flushNetfilter(lab: PeerLab): Promise<number> {
  const t = nowNs();
  await run('nft', ['flush', 'ruleset'], { netns: lab.topo.node.path });
  const ms = elapsedS(t) * 1000;
  await tryRun('conntrack', ['-F'], { netns: lab.topo.node.path });
  return ms;
}

async function programNetfilter(lab: PeerLab, peer: 'nft-map' | 'iptables', specs: PortSpec[]): Promise<Programmed> {
  const n = specs.length;
  const file = join(lab.dir, `${peer}-${n}.rules`);
  await writeFile(file, peer === 'nft-map' ? nftRuleset(lab, specs) : dockerRules(lab, specs));
  const node = lab.topo.node.path;
  const long = { netns: node, timeout: 300_000 };
  const timed = async (f: () => Promise<unknown>) => {
    const t = nowNs();
    await f();
    return elapsedS(t) * 1000;
  };
  let programMs: number;
  try {
    programMs = await timed(() => (peer === 'nft-map' ? run('nft', ['-f', file], long) : run('iptables-restore', [file], long)));
  } catch (e) {
    await flushNetfilter(lab).catch(() => undefined);
    throw e;
  }
  await rm(file, { force: true });
  const last = specs.at(-1)!;
  return {
    programMs,
    verify: async () => {
      const problems: string[] = [];
      if (peer === 'nft-map') {
        const out = (await run('nft', ['list', 'map', 'ip', 'bench_dnat', 'ports'], { netns: node })).stdout;
        const count = (out.match(/\d+\.\d+\.\d+\.\d+ \. \w+ \. \d+ : /g) ?? []).length;
        if (count !== n) problems.push(`nft-map N=${n}: the map holds ${count} elements`);
        if (!out.includes(nftElement(lab, last))) problems.push(`nft-map N=${n}: measured port ${last.port}/${last.proto} not in the map`);
      } else {
        const lines = (await run('iptables-save', [], { netns: node })).stdout.split('\n');
        const dnat = lines.filter((l) => l.startsWith('-A DOCKER ') && l.includes('-j DNAT'));
        const acc = lines.filter((l) => l.startsWith('-A DOCKER ') && l.includes('-j ACCEPT'));
        if (dnat.length !== n) problems.push(`iptables N=${n}: ${dnat.length} DNAT rules in nat DOCKER`);
        if (acc.length !== n) problems.push(`iptables N=${n}: ${acc.length} ACCEPT rules in filter DOCKER`);
        if (!dnat.at(-1)?.includes(`--dport ${last.port} `)) problems.push(`iptables N=${n}: the last DNAT rule is not port ${last.port}: ${dnat.at(-1)}`);
        if (!acc.at(-1)?.includes(`--dport ${last.port} `)) problems.push(`iptables N=${n}: the last ACCEPT rule is not port ${last.port}: ${acc.at(-1)}`);
      }
      return problems;
    },
    publishOne: (p) =>
      timed(async () => {
        if (peer === 'nft-map') await run('nft', ['add', 'element', 'ip', 'bench_dnat', 'ports', `{ ${nftElement(lab, p)} }`], { netns: node });
        else {
          // As Docker does it: one iptables call per rule (DNAT appended, ACCEPT inserted at the top).
          await run('iptables', ['-t', 'nat', '-A', 'DOCKER', ...dockerDnat(lab, p)], long);
          await run('iptables', ['-t', 'filter', '-I', 'DOCKER', ...dockerAccept(lab, p)], long);
        }
      }),
    unpublishOne: (p) =>
      timed(async () => {
        if (peer === 'nft-map') await run('nft', ['delete', 'element', 'ip', 'bench_dnat', 'ports', `{ ${UPLINK.nodeIp} . ${p.proto} . ${p.port} }`], { netns: node });
        else {
          await run('iptables', ['-t', 'nat', '-D', 'DOCKER', ...dockerDnat(lab, p)], long);
          await run('iptables', ['-t', 'filter', '-D', 'DOCKER', ...dockerAccept(lab, p)], long);
        }
      }),
    remove: () => flushNetfilter(lab),
  };
}

/** Nothing programmed: no rules in the node ns, nothing on the uplink (tc ingress/egress, XDP). */
export async function checkClean(lab: PeerLab): Promise<string[]> {
  const node = lab.topo.node;
  const problems: string[] = [];
  const fw = await firewallRules(node);
  if (fw.iptablesRules || fw.nftRules) problems.push(`node firewall not empty: ${fw.iptablesRules} iptables rules, ${fw.nftRules} nft rules`);
  const tables = (await tryRun('nft', ['list', 'tables'], { netns: node.path }))?.stdout.trim() ?? '';
  if (tables) problems.push(`node has nft tables: ${tables.replace(/\n/g, ', ')}`);
  for (const direction of ['ingress', 'egress'] as const) {
    const tc = await listTc({ netns: node.path, dev: UPLINK.dev, direction });
    if (tc.length) problems.push(`${tc.length} tc program(s) still on ${UPLINK.dev} ${direction}`);
  }
  if (await getXdp({ netns: node.path, dev: UPLINK.dev })) problems.push(`an XDP program still on ${UPLINK.dev}`);
  return problems;
}

/** nft and iptables versions (also: whether they are installed). */
export async function netfilterVersions(): Promise<{ nft: string; iptables: string }> {
  return {
    nft: (await tryRun('nft', ['--version']))?.stdout.trim() ?? 'not found',
    iptables: (await tryRun('iptables', ['--version']))?.stdout.trim() ?? 'not found',
  };
}

/** Throws when a peer's tool is missing. */
export function requireTools(peers: readonly PeerId[], v: { nft: string; iptables: string }, who: string): void {
  if (peers.includes('nft-map') && v.nft === 'not found') throw new Error(`${who}: nft not found (apt-get install nftables)`);
  if (peers.includes('iptables') && v.iptables === 'not found') throw new Error(`${who}: iptables not found (apt-get install iptables)`);
}
