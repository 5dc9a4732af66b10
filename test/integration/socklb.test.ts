/**
 * Socket-level translation of published ports for node-local clients
 * (bpf/sock.c on the cgroup2 root through pinned links, src/loader/cgroup.ts),
 * against the real kernel:
 *
 *   node ns (the "agent's" netns, its cookie in bpfnet_config)
 *     br0 198.19.0.1 -- container 198.19.0.2 (TCP+UDP server on :80)
 *     up0 198.18.0.1 (a node address)
 *
 * Clients run inside the node ns (nsenter), so only the cgroup hooks stand
 * between them and the container: no tc program is attached. The programs sit
 * on the machine's cgroup2 root, so the test also checks that other netns
 * (this process's, a client ns) are untouched. Everything (links first) is
 * removed in afterAll, pass or fail; a link that leaked anyway would be inert:
 * it acts only in a netns that no longer exists.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPortInUse } from '../../src/agent/listening.js';
import { ensureBpffs } from '../../src/loader/bpffs.js';
import {
  attachCgroup,
  cgroup2Mount,
  detachCgroup,
  linksDir,
  listCgroupLinks,
  sockCgroupProgs,
  type AttachedCgroupLink,
} from '../../src/loader/cgroup.js';
import { loadObject, mapsDir, removeRoot, type LoadedObject } from '../../src/loader/load.js';
import { Topology, UPLINK, BRIDGE } from '../../src/lab/topology.js';
import { TypedMap } from '../../src/maps/map.js';
import { netnsCookie } from '../../src/netlink/netns.js';
import { run } from '../../src/util/exec.js';
import { readMetrics } from '../harness/bpfroot.js';

const TCP = 6;
const UDP = 17;

// ---- fixtures -----------------------------------------------------------------

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch((e: unknown) => console.error('cleanup failed:', e));
  cleanups.length = 0;
});

/** The container's server: TCP answers every chunk (connection stays open), UDP every datagram; both say whom they saw. */
const SERVER = `
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
const port = Number(process.argv[2]);
let ready = 0;
const up = () => { if (++ready === 2) process.stdout.write('ready\\n'); };
createServer((s) => {
  s.on('data', (d) => s.write('saw ' + s.remoteAddress + ':' + s.remotePort + ': ' + d.toString().trim() + '\\n'));
  s.on('error', () => undefined);
}).listen(port, '0.0.0.0', up);
const u = createSocket('udp4');
u.on('message', (m, r) => u.send('saw ' + r.address + ':' + r.port + ': ' + m.toString().trim() + '\\n', r.port, r.address));
u.bind(port, '0.0.0.0', up);
`;

/**
 * One exchange, printed as JSON: {reply, peer} where peer is what the
 * application sees (getpeername for TCP and connected UDP, recvfrom's address
 * for unconnected UDP), or {error: 'ECONNREFUSED' | 'timeout' | ...}.
 * Modes: tcp, udp (sendto/recvfrom), udp-connected, tcp-hold (connects, then
 * one exchange per stdin line, getpeername asked afresh every time).
 */
const CLIENT = `
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
const [mode, host, portStr, msg = 'hi'] = process.argv.slice(2);
const port = Number(portStr);
const print = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const out = (o) => { print(o); process.exit(0); };
const timer = mode === 'tcp-hold' ? undefined : setTimeout(() => out({ error: 'timeout' }), 3000);
const peerOf = (s) => { const o = {}; s._handle.getpeername(o); return { address: o.address, port: o.port }; };
if (mode === 'tcp' || mode === 'tcp-hold') {
  const s = connect(port, host);
  s.on('error', (e) => out({ error: e.code }));
  s.on('connect', () => {
    if (mode === 'tcp') {
      const peer = peerOf(s);
      s.once('data', (d) => out({ reply: d.toString().trim(), peer }));
      s.write(msg);
      return;
    }
    print({ connected: true, peer: peerOf(s) });
    const lines = createInterface({ input: process.stdin });
    const replies = createInterface({ input: s });
    replies.on('line', (l) => print({ reply: l, peer: peerOf(s) }));
    lines.on('line', (l) => s.write(l + '\\n'));
    lines.on('close', () => { s.destroy(); process.exit(0); });
  });
} else if (mode === 'udp') {
  const s = createSocket('udp4');
  s.on('error', (e) => out({ error: e.code }));
  s.on('message', (d, r) => out({ reply: d.toString().trim(), peer: { address: r.address, port: r.port } }));
  s.send(msg, port, host);
} else if (mode === 'udp-connected') {
  const s = createSocket('udp4');
  s.on('error', (e) => out({ error: e.code }));
  s.connect(port, host, () => {
    const a = s.remoteAddress();
    s.on('message', (d, r) => out({ reply: d.toString().trim(), peer: { address: a.address, port: a.port }, from: { address: r.address, port: r.port } }));
    s.send(msg);
  });
} else {
  out({ error: 'bad mode ' + mode });
}
`;

interface Exchange {
  reply?: string;
  peer?: { address: string; port: number };
  from?: { address: string; port: number };
  error?: string;
}

interface Env {
  topo: Topology;
  root: string;
  mapDir: string;
  cgroup: string;
  dir: string;
  sock: LoadedObject;
  links: AttachedCgroupLink[];
  /** Frontend ports, random so nothing on this machine listens there. */
  pAny: number;
  pAnyUdp: number;
  pLo: number;
  pLoUdp: number;
  pNodeIp: number;
}

const env = {} as Env;
const CONTAINER = '198.19.0.2';

async function client(netns: string | undefined, mode: string, host: string, port: number, msg = 'hi'): Promise<Exchange> {
  const args = [join(env.dir, 'client.mjs'), mode, host, String(port), msg];
  const { stdout } = netns ? await run(process.execPath, args, { netns, timeout: 15_000 }) : await run(process.execPath, args, { timeout: 15_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Exchange;
}

const fromNode = (mode: string, host: string, port: number, msg?: string) => client(env.topo.node.path, mode, host, port, msg);

/** This (root netns) process's own TCP connect: the error code, or 'connected'. */
function connectHere(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, 5000);
    s.on('connect', () => { clearTimeout(t); s.destroy(); resolve('connected'); });
    s.on('error', (e: NodeJS.ErrnoException) => { clearTimeout(t); resolve(e.code ?? e.message); });
  });
}

async function freePort(): Promise<number> {
  for (;;) {
    const p = 20000 + (randomBytes(2).readUInt16BE() % 30000);
    if (!(await isPortInUse('0.0.0.0', p, 'tcp')) && !(await isPortInUse('0.0.0.0', p, 'udp'))) return p;
  }
}

async function xlateCount(): Promise<bigint> {
  return (await readMetrics(env.mapDir)).METRIC_SOCK_XLATE.packets;
}

interface CgroupShow { id: number; attach_type: string; name: string }
/** bpftool's view of the programs on the cgroup (ids). */
async function cgroupProgIds(): Promise<number[]> {
  const { stdout } = await run('bpftool', ['-j', 'cgroup', 'show', env.cgroup]);
  return (JSON.parse(stdout || '[]') as CgroupShow[]).map((p) => p.id);
}
interface LinkShow { id: number; type: string; prog_id: number }
async function linkList(): Promise<LinkShow[]> {
  const { stdout } = await run('bpftool', ['-j', 'link', 'list']);
  return JSON.parse(stdout || '[]') as LinkShow[];
}

/**
 * The kernel frees a link whose last reference went in a work item, so
 * bpftool may list it for a moment after the pin is gone: poll (bounded)
 * until neither the links nor their programs on the cgroup remain.
 */
async function expectGone(links: { linkId: number; progId: number }[]): Promise<void> {
  let left: string[] = [];
  for (let i = 0; i < 100; i++) {
    const ids = new Set((await linkList()).map((l) => l.id));
    const onCgroup = await cgroupProgIds();
    left = links.flatMap((l) => [...(ids.has(l.linkId) ? [`link ${l.linkId}`] : []), ...(onCgroup.includes(l.progId) ? [`prog ${l.progId} on the cgroup`] : [])]);
    if (left.length === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(left, 'still attached').toEqual([]);
}

beforeAll(async () => {
  env.dir = await mkdtemp(join(tmpdir(), 'bpfnet-socklb-'));
  cleanups.push(() => rm(env.dir, { recursive: true, force: true }));
  await writeFile(join(env.dir, 'server.mjs'), SERVER);
  await writeFile(join(env.dir, 'client.mjs'), CLIENT);

  env.topo = await Topology.create({ prefix: 'slb', containers: 1 });
  cleanups.push(() => env.topo.destroy());

  env.root = `/sys/fs/bpf/bpfnet-test-socklb-${randomBytes(4).toString('hex')}`;
  await ensureBpffs(env.root);
  // Registered after the topology: runs first. Links go before anything else.
  cleanups.push(async () => {
    await detachCgroup(env.root).catch((e: unknown) => console.error('detach failed:', e));
    await removeRoot(env.root);
  });
  env.mapDir = mapsDir(env.root);
  env.cgroup = await cgroup2Mount();

  const c0 = env.topo.containers[0]!;
  await new Promise<void>((resolve, reject) => {
    const child = c0.ns.spawn(process.execPath, [join(env.dir, 'server.mjs'), '80']);
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });

  env.sock = await loadObject('sock', { root: env.root });
  const used = new Set<number>();
  const pick = async () => {
    let p: number;
    do p = await freePort(); while (used.has(p));
    used.add(p);
    return p;
  };
  env.pAny = await pick();
  env.pAnyUdp = await pick();
  env.pLo = await pick();
  env.pLoUdp = await pick();
  env.pNodeIp = await pick();

  const ports = TypedMap.open(env.mapDir, 'bpfnet_ports');
  const addrs = TypedMap.open(env.mapDir, 'bpfnet_addrs');
  const config = TypedMap.open(env.mapDir, 'bpfnet_config');
  try {
    const be = { backend_addr: CONTAINER, backend_port: 80, flags: 0 };
    await ports.setMany([
      [{ addr: '0.0.0.0', port: env.pAny, proto: TCP }, be],
      [{ addr: '0.0.0.0', port: env.pAnyUdp, proto: UDP }, be],
      [{ addr: '127.0.0.1', port: env.pLo, proto: TCP }, be],
      [{ addr: '127.0.0.1', port: env.pLoUdp, proto: UDP }, be],
      [{ addr: UPLINK.nodeIp, port: env.pNodeIp, proto: TCP }, be],
    ]);
    await addrs.setMany([[{ addr: UPLINK.nodeIp }, { flags: 0 }], [{ addr: BRIDGE.gatewayIp }, { flags: 0 }]]);
    await config.set(0, { netns_cookie: netnsCookie(env.topo.node.path), snat_port_min: 0, snat_port_max: 0, flags: 0 });
  } finally {
    ports.close();
    addrs.close();
    config.close();
  }
  env.links = await attachCgroup({ root: env.root, cgroupPath: env.cgroup, progs: sockCgroupProgs(env.sock.progs) });
}, 120_000);

// ---- tests ----------------------------------------------------------------------

describe('attachment', () => {
  it('sock.o loads as cgroup sock_addr programs and gets one pinned link per hook on the cgroup2 root', async () => {
    expect(env.cgroup).toMatch(/^\/sys\/fs\/cgroup(\/unified)?$/);
    expect(env.links.map((l) => [l.name, l.attachType, l.action])).toEqual([
      ['connect4', 'connect4', 'created'],
      ['sendmsg4', 'sendmsg4', 'created'],
      ['recvmsg4', 'recvmsg4', 'created'],
      ['getpeername4', 'getpeername4', 'created'],
    ]);
    for (const l of env.links) {
      expect(l.pin).toBe(join(linksDir(env.root), l.name));
      expect(existsSync(l.pin)).toBe(true);
      expect(l.cgroupId).toBe(1n); // the root cgroup
    }
    const onCgroup = await cgroupProgIds();
    for (const l of env.links) expect(onCgroup).toContain(l.progId);
    const { stdout } = await run('bpftool', ['-j', 'prog', 'show', 'pinned', env.sock.progs.sock_connect4!]);
    expect((JSON.parse(stdout) as { type: string }).type).toBe('cgroup_sock_addr');
  });
});

describe('node-local clients reach published ports', () => {
  it('TCP to 127.0.0.1:PORT (wildcard frontend) reaches the container; getpeername says 127.0.0.1:PORT', async () => {
    const before = await xlateCount();
    const r = await fromNode('tcp', '127.0.0.1', env.pAny, 'lo');
    expect(r.error).toBeUndefined();
    expect(r.reply).toMatch(new RegExp(`^saw ${BRIDGE.gatewayIp.replace(/\./g, '\\.')}:\\d+: lo$`));
    expect(r.peer).toEqual({ address: '127.0.0.1', port: env.pAny });
    expect(await xlateCount()).toBe(before + 1n);
  });

  it('TCP to any 127/8 address and to 0.0.0.0 (= the local host) reaches it too', async () => {
    expect((await fromNode('tcp', '127.1.2.3', env.pAny)).peer).toEqual({ address: '127.1.2.3', port: env.pAny });
    const r = await fromNode('tcp', '0.0.0.0', env.pAny);
    expect(r.reply).toMatch(/^saw /);
    expect(r.peer).toEqual({ address: '127.0.0.1', port: env.pAny });
  });

  it('TCP to the node IPs (uplink and bridge gateway) reaches it', async () => {
    for (const ip of [UPLINK.nodeIp, BRIDGE.gatewayIp]) {
      const r = await fromNode('tcp', ip, env.pAny);
      expect(r.reply, ip).toMatch(/^saw /);
      expect(r.peer, ip).toEqual({ address: ip, port: env.pAny });
    }
  });

  it('the translation is recorded per socket in bpfnet_sock_rev (backend -> frontend)', async () => {
    const rev = TypedMap.open(env.mapDir, 'bpfnet_sock_rev');
    try {
      const rows = await rev.toArray();
      expect(rows.length).toBeGreaterThan(0);
      for (const [k] of rows) {
        expect(k.cookie).toBeGreaterThan(0n);
        expect([k.addr, k.port]).toEqual([CONTAINER, 80]);
      }
      expect(rows.map(([, v]) => v)).toContainEqual({ addr: UPLINK.nodeIp, port: env.pAny });
    } finally {
      rev.close();
    }
  });

  it('UDP sendto/recvfrom: the reply arrives and the application sees the frontend as its source', async () => {
    for (const ip of ['127.0.0.1', UPLINK.nodeIp]) {
      const r = await fromNode('udp', ip, env.pAnyUdp, 'dgram');
      expect(r.error, ip).toBeUndefined();
      expect(r.reply, ip).toMatch(/^saw 198\.19\.0\.1:\d+: dgram$/);
      expect(r.peer, ip).toEqual({ address: ip, port: env.pAnyUdp });
    }
  });

  it('connected UDP: connect4 translates, getpeername and recvmsg restore the frontend', async () => {
    const r = await fromNode('udp-connected', '127.0.0.1', env.pAnyUdp, 'conn');
    expect(r.reply).toMatch(/: conn$/);
    expect(r.peer).toEqual({ address: '127.0.0.1', port: env.pAnyUdp });
    expect(r.from).toEqual({ address: '127.0.0.1', port: env.pAnyUdp });
  });

  it('a frontend on 127.0.0.1 answers there only, not on the node IPs', async () => {
    expect((await fromNode('tcp', '127.0.0.1', env.pLo)).reply).toMatch(/^saw /);
    expect((await fromNode('udp', '127.0.0.1', env.pLoUdp)).peer).toEqual({ address: '127.0.0.1', port: env.pLoUdp });
    for (const ip of [UPLINK.nodeIp, BRIDGE.gatewayIp, '127.0.0.2']) {
      expect((await fromNode('tcp', ip, env.pLo)).error, ip).toBe('ECONNREFUSED');
    }
  });

  it('a frontend on one node IP answers there only, not on 127.0.0.1 or another node IP', async () => {
    expect((await fromNode('tcp', UPLINK.nodeIp, env.pNodeIp)).peer).toEqual({ address: UPLINK.nodeIp, port: env.pNodeIp });
    for (const ip of ['127.0.0.1', BRIDGE.gatewayIp]) {
      expect((await fromNode('tcp', ip, env.pNodeIp)).error, ip).toBe('ECONNREFUSED');
    }
  });

  it('an address that is not the node\'s does not match a wildcard frontend', async () => {
    // 198.18.0.2 is the client namespace's address: reached, but nothing listens there.
    expect((await fromNode('tcp', UPLINK.clientIp, env.pAny)).error).toBe('ECONNREFUSED');
  });
});

describe('scoped to the node netns', () => {
  it('this process (root netns) connecting to 127.0.0.1:PORT is not translated', async () => {
    const before = await xlateCount();
    expect(await connectHere('127.0.0.1', env.pAny)).toBe('ECONNREFUSED');
    expect(await xlateCount()).toBe(before);
  });

  it('a process in another netns (the client ns) is not translated', async () => {
    const before = await xlateCount();
    expect((await client(env.topo.client.path, 'tcp', '127.0.0.1', env.pAny)).error).toBe('ECONNREFUSED');
    expect(await xlateCount()).toBe(before);
  });

  it('a zero cookie in bpfnet_config turns translation off everywhere', async () => {
    const config = TypedMap.open(env.mapDir, 'bpfnet_config');
    const saved = (await config.get(0))!;
    try {
      await config.set(0, { ...saved, netns_cookie: 0n });
      expect((await fromNode('tcp', '127.0.0.1', env.pAny)).error).toBe('ECONNREFUSED');
    } finally {
      await config.set(0, saved);
      config.close();
    }
    expect((await fromNode('tcp', '127.0.0.1', env.pAny)).reply).toMatch(/^saw /);
  });
});

describe('links across restarts and upgrades', () => {
  it('attaching again changes nothing: same links, no duplicate attachment', async () => {
    const again = await attachCgroup({ root: env.root, cgroupPath: env.cgroup, progs: sockCgroupProgs(env.sock.progs) });
    expect(again.map((l) => l.action)).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged']);
    expect(again.map((l) => l.linkId)).toEqual(env.links.map((l) => l.linkId));
    const onCgroup = await cgroupProgIds();
    for (const l of env.links) expect(onCgroup.filter((id) => id === l.progId)).toHaveLength(1);
    const ours = (await linkList()).filter((l) => env.links.some((x) => x.linkId === l.id));
    expect(ours).toHaveLength(4);
    expect(new Set(ours.map((l) => l.type))).toEqual(new Set(['cgroup']));
  });

  it('a new program version replaces the old one in the same link (BPF_LINK_UPDATE), an open connection carries on', async () => {
    // A long-lived connection through the old programs.
    const child: ChildProcessWithoutNullStreams = spawn('nsenter', [`--net=${env.topo.node.path}`, '--', process.execPath, join(env.dir, 'client.mjs'), 'tcp-hold', '127.0.0.1', String(env.pAny)]);
    cleanups.push(async () => child.kill('SIGKILL'));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const next = async () => JSON.parse((await lines.next()).value as string) as Exchange & { connected?: boolean };
    expect(await next()).toEqual({ connected: true, peer: { address: '127.0.0.1', port: env.pAny } });
    child.stdin.write('before\n');
    expect((await next()).reply).toMatch(/: before$/);

    // The same code built with another define is another program (other ids).
    const v2 = await loadObject('sock', { root: env.root, defines: { BPFNET_TEST_VERSION: 2 } });
    expect(v2.hash).not.toBe(env.sock.hash);
    const updated = await attachCgroup({ root: env.root, cgroupPath: env.cgroup, progs: sockCgroupProgs(v2.progs) });
    expect(updated.map((l) => l.action)).toEqual(['updated', 'updated', 'updated', 'updated']);
    expect(updated.map((l) => l.linkId)).toEqual(env.links.map((l) => l.linkId));
    for (const [i, l] of updated.entries()) expect(l.progId).not.toBe(env.links[i]!.progId);
    const onCgroup = await cgroupProgIds();
    for (const l of updated) expect(onCgroup).toContain(l.progId);
    for (const l of env.links) expect(onCgroup).not.toContain(l.progId);
    const listed = await listCgroupLinks(env.root);
    expect(listed.map((l) => [l.name, l.linkId, l.progId]).sort()).toEqual(updated.map((l) => [l.name, l.linkId, l.progId]).sort());

    // The open connection still works and still sees its frontend (the new getpeername4 reads the same map).
    child.stdin.write('after\n');
    const after = await next();
    expect(after.reply).toMatch(/: after$/);
    expect(after.peer).toEqual({ address: '127.0.0.1', port: env.pAny });
    child.stdin.end();

    // New connections go through the new programs.
    expect((await fromNode('tcp', '127.0.0.1', env.pAny)).reply).toMatch(/^saw /);
    expect((await fromNode('udp', '127.0.0.1', env.pAnyUdp)).peer).toEqual({ address: '127.0.0.1', port: env.pAnyUdp });

    // And back (an agent downgrade): same links again.
    const back = await attachCgroup({ root: env.root, cgroupPath: env.cgroup, progs: sockCgroupProgs(env.sock.progs) });
    expect(back.map((l) => [l.action, l.linkId, l.progId])).toEqual(env.links.map((l) => ['updated', l.linkId, l.progId]));
  });

  it('a pin that is not a link (or for another hook) is replaced by a fresh link', async () => {
    const pin = join(linksDir(env.root), 'connect4');
    const old = env.links[0]!;
    // Pretend the pin holds a link of another hook: attach connect4's name with the sendmsg4 program.
    const r = await attachCgroup({ root: env.root, cgroupPath: env.cgroup, progs: [{ attachType: 'sendmsg4', pin: env.sock.progs.sock_sendmsg4!, name: 'connect4' }] });
    expect(r[0]!.action).toBe('replaced');
    expect(r[0]!.linkId).not.toBe(old.linkId);
    await expectGone([old]);
    // Put connect4 back.
    const r2 = await attachCgroup({ root: env.root, cgroupPath: env.cgroup, progs: [{ attachType: 'connect4', pin: env.sock.progs.sock_connect4! }] });
    expect(r2[0]!.action).toBe('replaced');
    expect(existsSync(pin)).toBe(true);
    env.links[0] = r2[0]!;
    expect((await fromNode('tcp', '127.0.0.1', env.pAny)).reply).toMatch(/^saw /);
  });

  it('detachCgroup detaches every link at once and removes the pins; attaching again creates new links', async () => {
    const removed = await detachCgroup(env.root);
    expect(removed.sort()).toEqual(['connect4', 'getpeername4', 'recvmsg4', 'sendmsg4']);
    expect(existsSync(linksDir(env.root))).toBe(false);
    // BPF_LINK_DETACH is synchronous: nothing runs any more, whatever bpftool still lists.
    expect(await cgroupProgIds()).not.toEqual(expect.arrayContaining([env.links[0]!.progId]));
    await expectGone(env.links);
    expect((await fromNode('tcp', '127.0.0.1', env.pAny)).error).toBe('ECONNREFUSED');
    expect(await detachCgroup(env.root)).toEqual([]);

    env.links = await attachCgroup({ root: env.root, cgroupPath: env.cgroup, progs: sockCgroupProgs(env.sock.progs) });
    expect(env.links.map((l) => l.action)).toEqual(['created', 'created', 'created', 'created']);
    expect((await fromNode('tcp', '127.0.0.1', env.pAny)).reply).toMatch(/^saw /);
  });

  it('removing the bpffs root detaches: the links go with their last pin', async () => {
    await removeRoot(env.root);
    await expectGone(env.links);
    expect((await fromNode('tcp', '127.0.0.1', env.pAny)).error).toBe('ECONNREFUSED');
  });
});
