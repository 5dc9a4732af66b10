/**
 * The embedded DNS server against the real kernel: sandbox namespaces of
 * its own (netns files in a private directory under /run), the server's
 * sockets created inside them with listenInNetns on a kernel-chosen port of
 * 127.0.0.11, 53 redirected to it (the tc program on each sandbox's lo, in
 * a private bpffs root; Docker's iptables rules and an nftables table in the
 * fallback describes), clients inside them (an in-process UDP socket made
 * the same way, `dig` and a Node TCP client run with nsenter), and fake
 * upstream nameservers on this process's loopback, where the forwarder
 * runs. Everything is removed afterwards, also when a test fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import pino from 'pino';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';
import { adoptTcp, adoptUdp, createNetns, listenInNetns, netnsCookie, removeNetnsDir, Rtnl, sysctl } from '../../src/netlink/index.js';
import { DnsRegistry, DnsServer, IPT_OUTPUT_CHAIN, IPT_POSTROUTING_CHAIN, NFT_TABLE, type RedirectMode, type Upstream } from '../../src/dns/index.js';
import { ensureBpffs } from '../../src/loader/bpffs.js';
import { mapsDir, removeRoot } from '../../src/loader/load.js';
import { TypedMap } from '../../src/maps/map.js';
import { run, tryRun } from '../../src/util/exec.js';
import { BpfnetError } from '../../src/util/errors.js';

const TAG = randomBytes(3).toString('hex');
const DIR = `/run/bpfnet-dnstest-${TAG}`;
const BPF_ROOT = `/sys/fs/bpf/bpfnet-dnstest-${TAG}`;
const NS = { s1: `${DIR}/s1`, s2: `${DIR}/s2`, s3: `${DIR}/s3`, s4: `${DIR}/s4`, s5: `${DIR}/s5`, s6: `${DIR}/s6` };
const id = (c: string): string => c.repeat(64);
const ID = { web: id('1'), db: id('2'), vault: id('3'), flood: id('4'), cache: id('5'), lonely: id('6'), vpeer: id('7'), s5: id('8'), s6: id('9') };
const FRONT = { networkId: id('a'), networkName: 'front' };
const BACK = { networkId: id('b'), networkName: 'back' };
const OTHER = { networkId: id('c'), networkName: 'other' };
const SECRET = { networkId: id('d'), networkName: 'secret' };
const TIMEOUT_MS = 800;

const log = pino({ level: process.env.DNS_TEST_LOG ?? 'silent' });

// ---------- messages ----------

let nextId = 1;
function q(name: string, type: Question['type'] = 'A', opts: { edns?: number; id?: number } = {}): Buffer {
  return dnsPacket.encode({
    id: opts.id ?? (nextId = (nextId % 65000) + 1),
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: opts.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] } as Answer] : [],
  });
}
const RC = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const rcode = (b: Buffer): string => RC[b.readUInt16BE(2) & 0xf] ?? String(b.readUInt16BE(2) & 0xf);
const decode = (b: Buffer): DecodedPacket => dnsPacket.decode(b);
const data = (b: Buffer): string[] => (decode(b).answers ?? []).map((a) => String((a as { data: unknown }).data));

// ---------- a client inside a sandbox netns (in this process) ----------

class NsClient {
  private readonly waiting = new Map<number, (b: Buffer) => void>();
  private constructor(readonly sock: dgram.Socket) {
    sock.on('message', (m) => {
      if (m.length < 2) return;
      const w = this.waiting.get(m.readUInt16BE(0));
      if (w) {
        this.waiting.delete(m.readUInt16BE(0));
        w(m);
      }
    });
  }

  static async open(ns: string): Promise<NsClient> {
    return new NsClient(await adoptUdp(listenInNetns(ns, 'udp', '127.0.0.1', 0)));
  }

  /** Sends raw bytes to 127.0.0.11:53 (or host:port); the reply with the same id (undefined after timeoutMs). */
  send(msg: Buffer, timeoutMs = 3000, host = '127.0.0.11', port = 53): Promise<Buffer | undefined> {
    const qid = msg.length >= 2 ? msg.readUInt16BE(0) : -1;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiting.delete(qid);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(qid, (b) => {
        clearTimeout(t);
        resolve(b);
      });
      this.sock.send(msg, port, host);
    });
  }

  async ask(name: string, type: Question['type'] = 'A', opts: { edns?: number; host?: string } = {}): Promise<Buffer> {
    const r = await this.send(q(name, type, opts), 3000, opts.host);
    if (!r) throw new Error(`no answer for ${name} ${type}`);
    return r;
  }

  close(): void {
    this.sock.close();
  }
}

// ---------- fake upstream nameservers (this process's loopback) ----------

type Behaviour = 'answer' | 'servfail' | 'silent';

interface Fake {
  upstream: Upstream;
  /** Query names received, per protocol. */
  seen: { udp: string[]; tcp: string[] };
  close(): Promise<void>;
}

function upstreamReply(query: Buffer, behaviour: Behaviour, proto: 'udp' | 'tcp'): Buffer | undefined {
  const p = decode(query);
  const qq = p.questions?.[0];
  if (!qq || behaviour === 'silent') return undefined;
  const base = { id: p.id, type: 'response' as const, questions: [qq] };
  if (behaviour === 'servfail') return dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_AVAILABLE | 2 });
  const name = qq.name.toLowerCase();
  if (name === 'example.test' && qq.type === 'A') return dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_AVAILABLE, answers: [{ type: 'A', name: qq.name, ttl: 30, data: '192.0.2.1' }] });
  // Like a server whose UDP answers are capped below the client's EDNS size: TC over UDP, everything over TCP.
  if (name === 'tc.test' && qq.type === 'A' && proto === 'udp') return dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.TRUNCATED_RESPONSE });
  if ((name === 'big.test' || name === 'tc.test') && qq.type === 'A') {
    const answers = Array.from({ length: 60 }, (_, i) => ({ type: 'A' as const, name: qq.name, ttl: 30, data: `198.51.100.${i + 1}` }));
    return dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_AVAILABLE, answers });
  }
  return dnsPacket.encode({ ...base, flags: dnsPacket.RECURSION_AVAILABLE | 3 }); // NXDOMAIN
}

async function fakeUpstream(behaviour: Behaviour): Promise<Fake> {
  const seen = { udp: [] as string[], tcp: [] as string[] };
  const nameOf = (m: Buffer): string => {
    try {
      return decode(m).questions?.[0]?.name ?? '?';
    } catch {
      return '?';
    }
  };
  for (let i = 0; ; i++) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
    const port = udp.address().port;
    const conns = new Set<net.Socket>();
    const tcp = net.createServer((c) => {
      conns.add(c);
      c.on('close', () => conns.delete(c));
      c.on('error', () => undefined);
      let buf: Buffer = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const m = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + m.length);
          seen.tcp.push(nameOf(m));
          const r = upstreamReply(m, behaviour, 'tcp');
          if (r) {
            const len = Buffer.alloc(2);
            len.writeUInt16BE(r.length);
            c.write(Buffer.concat([len, r]));
          }
        }
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) {
      udp.close();
      if (i > 20) throw new Error('no free port pair for a fake upstream');
      continue;
    }
    udp.on('message', (m, r) => {
      seen.udp.push(nameOf(m));
      const reply = upstreamReply(m, behaviour, 'udp');
      if (reply) udp.send(reply, r.port, r.address);
    });
    return {
      upstream: { addr: '127.0.0.1', port },
      seen,
      close: async () => {
        for (const c of conns) c.destroy();
        udp.close();
        await new Promise<void>((resolve) => tcp.close(() => resolve()));
      },
    };
  }
}

/** A loopback UDP port nobody listens on (ECONNREFUSED at once). */
async function deadPort(): Promise<Upstream> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return { addr: '127.0.0.1', port };
}

/** TCP client inside a netns (nsenter + node): sends all queries on one connection and half-closes it, returns the replies in arrival order. */
const TCP_CLIENT = `
const net = require('net');
const [host, ...qs] = process.argv.slice(1);
const out = [];
let buf = Buffer.alloc(0);
const c = net.connect(53, host, () => {
  c.write(Buffer.concat(qs.map((h) => { const b = Buffer.from(h, 'hex'); const l = Buffer.alloc(2); l.writeUInt16BE(b.length); return Buffer.concat([l, b]); })));
  c.end(); // half-close: the answers must still come
});
c.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { const n = buf.readUInt16BE(0); out.push(buf.subarray(2, 2 + n).toString('hex')); buf = buf.subarray(2 + n); }
  if (out.length === qs.length) { console.log(JSON.stringify(out)); c.end(); process.exit(0); }
});
c.on('error', (e) => { console.error(e.message); process.exit(1); });
setTimeout(() => { console.log(JSON.stringify(out)); process.exit(0); }, 5000);
`;

async function tcpAsk(ns: string, queries: Buffer[], host = '127.0.0.11'): Promise<Buffer[]> {
  const r = await run(process.execPath, ['-e', TCP_CLIENT, host, ...queries.map((b) => b.toString('hex'))], { netns: ns, timeout: 15_000 });
  return (JSON.parse(r.stdout) as string[]).map((h) => Buffer.from(h, 'hex'));
}

// ---------- the sandbox's own DNS server on 0.0.0.0:53 ----------

/** What the sandbox's own server answers to everything: one A record. */
const OWN_ANSWER = '203.0.113.53';

function ownReply(m: Buffer): Buffer | undefined {
  try {
    const p = decode(m);
    const qq = p.questions?.[0];
    if (!qq || p.type !== 'query') return undefined;
    return dnsPacket.encode({ id: p.id, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE, questions: [qq], answers: [{ type: 'A', name: qq.name, ttl: 5, data: OWN_ANSWER }] });
  } catch {
    return undefined;
  }
}

/**
 * A server inside the netns on 0.0.0.0:53, UDP and TCP, as a container's own
 * resolver (dnsmasq, CoreDNS) would bind; fails when port 53 is taken there.
 */
async function ownServer(ns: string): Promise<{ udpQueries: () => number; tcpQueries: () => number; close(): Promise<void> }> {
  let udpN = 0;
  let tcpN = 0;
  const udp = await adoptUdp(listenInNetns(ns, 'udp', '0.0.0.0', 53));
  udp.on('message', (m, r) => {
    udpN++;
    const reply = ownReply(m);
    if (reply) udp.send(reply, r.port, r.address);
  });
  const conns = new Set<net.Socket>();
  let tcp: net.Server;
  try {
    tcp = await adoptTcp(listenInNetns(ns, 'tcp', '0.0.0.0', 53), (c) => {
      conns.add(c);
      c.on('close', () => conns.delete(c));
      c.on('error', () => undefined);
      let buf: Buffer = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const m = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + m.length);
          tcpN++;
          const r = ownReply(m);
          if (r) {
            const len = Buffer.alloc(2);
            len.writeUInt16BE(r.length);
            c.write(Buffer.concat([len, r]));
          }
        }
      });
      c.on('end', () => c.end());
    }, { allowHalfOpen: true });
  } catch (e) {
    udp.close();
    throw e;
  }
  return {
    udpQueries: () => udpN,
    tcpQueries: () => tcpN,
    close: async () => {
      for (const c of conns) c.destroy();
      udp.close();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

// ---------- redirect state ----------

/** Sockets on 127.0.0.11 in the netns, as "udp:port" / "tcp:port" (ss). */
async function resolverSockets(ns: string): Promise<string[]> {
  const out: string[] = [];
  for (const proto of ['udp', 'tcp'] as const) {
    const r = await run('ss', [proto === 'udp' ? '-Hlnu' : '-Hlnt'], { netns: ns });
    for (const m of r.stdout.matchAll(/127\.0\.0\.11:(\d+)\b/g)) out.push(`${proto}:${m[1]}`);
  }
  return out.sort();
}

/** Names of the BPF programs on tc egress of the netns's lo. */
function loEgressPrograms(ns: string): string[] {
  const r = Rtnl.open(ns);
  try {
    return r.listBpfFilters('lo', 'egress').map((f) => f.name ?? `id ${f.progId}`);
  } finally {
    r.close();
  }
}

async function dnsMapEntry(ns: string): Promise<number | undefined> {
  const m = TypedMap.open(mapsDir(BPF_ROOT), 'bpfnet_dns');
  try {
    return (await m.get({ netns_cookie: netnsCookie(ns) }))?.port;
  } finally {
    m.close();
  }
}

/** A fresh netns with lo up. */
function sandboxNetns(ns: string): void {
  createNetns(ns);
  const r = Rtnl.open(ns);
  try {
    r.setLink('lo', { up: true });
  } finally {
    r.close();
  }
}

// ---------- the scene ----------

describe('embedded DNS server in sandbox namespaces', () => {
  const registry = new DnsRegistry();
  let server: DnsServer;
  let live: Fake;
  let failing: Fake;
  let silent: Fake;
  let dead: Upstream;
  const clients: NsClient[] = [];
  const fakes: Fake[] = [];
  let c1: NsClient; // web: front + back
  let c2: NsClient; // db: back
  let c3: NsClient; // vault: secret (internal)
  let c4: NsClient; // flood: front, upstream that never answers

  async function client(ns: string): Promise<NsClient> {
    const c = await NsClient.open(ns);
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    await ensureBpffs(BPF_ROOT);
    for (const ns of Object.values(NS)) sandboxNetns(ns);
    live = await fakeUpstream('answer');
    failing = await fakeUpstream('servfail');
    silent = await fakeUpstream('silent');
    fakes.push(live, failing, silent);
    dead = await deadPort();

    registry.setSandbox({ sandboxId: ID.web, name: 'web', networks: [{ ...FRONT, ip: '10.1.0.2', aliases: ['www', 'pool'] }, { ...BACK, ip: '10.2.0.2', aliases: [] }] });
    registry.setSandbox({ sandboxId: ID.db, name: 'db', networks: [{ ...BACK, ip: '10.2.0.3', aliases: ['sql'] }] });
    registry.setSandbox({ sandboxId: ID.cache, name: 'cache', networks: [{ ...FRONT, ip: '10.1.0.9', aliases: ['pool'] }] });
    registry.setSandbox({ sandboxId: ID.lonely, name: 'lonely', networks: [{ ...OTHER, ip: '10.3.0.2', aliases: [] }] });
    registry.setSandbox({ sandboxId: ID.vault, name: 'vault', networks: [{ ...SECRET, ip: '10.4.0.2', aliases: [] }] });
    registry.setSandbox({ sandboxId: ID.vpeer, name: 'vaultpeer', networks: [{ ...SECRET, ip: '10.4.0.3', aliases: [] }] });
    registry.setSandbox({ sandboxId: ID.flood, name: 'flood', networks: [{ ...FRONT, ip: '10.1.0.4', aliases: [] }] });

    server = new DnsServer({ registry, upstreams: [dead, live.upstream], logger: log, upstreamTimeoutMs: TIMEOUT_MS, bpffsRoot: BPF_ROOT });
    await server.attach(ID.web, NS.s1, { internal: false });
    await server.attach(ID.db, NS.s2, { internal: false });
    await server.attach(ID.vault, NS.s3, { internal: true });
    await server.attach(ID.flood, NS.s4, { internal: false, upstreams: [silent.upstream] });
    c1 = await client(NS.s1);
    c2 = await client(NS.s2);
    c3 = await client(NS.s3);
    c4 = await client(NS.s4);
  });

  afterAll(async () => {
    for (const c of clients) {
      try {
        c.close();
      } catch {
        /* closed */
      }
    }
    await server?.close();
    for (const f of fakes) await f.close().catch(() => undefined);
    removeNetnsDir(DIR);
    await removeRoot(BPF_ROOT);
  });

  it('listens on one kernel-chosen port of 127.0.0.11 (UDP and TCP) inside the sandbox, not 53, not in the caller\'s namespace; 53 is redirected there', async () => {
    expect(server.redirectMode).toBe('ebpf');
    const port = server.portOf(ID.web)!;
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(53);
    expect(await resolverSockets(NS.s1)).toEqual([`tcp:${port}`, `udp:${port}`]);
    expect(server.stats().sandboxes.find((x) => x.sandboxId === ID.web)?.port).toBe(port);
    expect(await resolverSockets(NS.s5)).toEqual([]);
    const own = await run('ss', ['-Hlnu'], { netns: '/proc/self/ns/net' });
    expect(own.stdout).not.toMatch(new RegExp(`127\\.0\\.0\\.11:${port}\\b`));
    // The redirect: the program on lo's egress and the netns's entry in bpfnet_dns.
    expect(loEgressPrograms(NS.s1)).toHaveLength(1);
    expect(await dnsMapEntry(NS.s1)).toBe(port);
    expect(loEgressPrograms(NS.s5)).toEqual([]);
    expect(await dnsMapEntry(NS.s5)).toBeUndefined();
    expect(server.isAttached(ID.web)).toBe(true);
    // Each sandbox its own port.
    expect(server.portOf(ID.db)).not.toBe(port);
  });

  it('a server of the sandbox on 0.0.0.0:53 (UDP and TCP) works, and names still resolve through 127.0.0.11:53 (UDP and TCP)', async () => {
    const own = await ownServer(NS.s1);
    try {
      // The sandbox's own server, at its own addresses.
      expect(data(await c1.ask('anything.test', 'A', { host: '127.0.0.1' }))).toEqual([OWN_ANSWER]);
      const [viaTcp] = await tcpAsk(NS.s1, [q('anything.test')], '127.0.0.1');
      expect(data(viaTcp!)).toEqual([OWN_ANSWER]);
      expect(own.udpQueries()).toBe(1);
      expect(own.tcpQueries()).toBe(1);
      // The embedded resolver, at 127.0.0.11:53.
      expect(data(await c1.ask('db'))).toEqual(['10.2.0.3']);
      expect(data(await c1.ask('example.test'))).toEqual(['192.0.2.1']);
      const viaResolver = await tcpAsk(NS.s1, [q('db'), q('example.test')]);
      expect(viaResolver.map((b) => data(b)[0]).sort()).toEqual(['10.2.0.3', '192.0.2.1']);
      expect(own.udpQueries()).toBe(1);
      expect(own.tcpQueries()).toBe(1);
    } finally {
      await own.close();
    }
  });

  it('answers A for a name on a shared network, TTL 600, and its own name', async () => {
    const r = await c1.ask('db');
    expect(rcode(r)).toBe('NOERROR');
    const d = decode(r);
    expect(d.answers).toHaveLength(1);
    expect(d.answers?.[0]).toMatchObject({ type: 'A', name: 'db', ttl: 600, data: '10.2.0.3' });
    expect(d.flag_qr && d.flag_ra && d.flag_rd).toBe(true);
    expect(data(await c2.ask('web'))).toEqual(['10.2.0.2']); // db sees web on "back"
    expect(data(await c1.ask('WEB.'))).toEqual(['10.1.0.2']);
  });

  it('answers aliases, short ids and name.network', async () => {
    expect(data(await c1.ask('sql'))).toEqual(['10.2.0.3']);
    expect(data(await c1.ask(ID.db.slice(0, 12)))).toEqual(['10.2.0.3']);
    expect(data(await c2.ask('web.back'))).toEqual(['10.2.0.2']);
  });

  it('a name only on another network is not answered locally: forwarded (the fake upstream says NXDOMAIN)', async () => {
    const before = live.seen.udp.length;
    const r = await c1.ask('lonely');
    expect(rcode(r)).toBe('NXDOMAIN');
    expect(live.seen.udp.slice(before)).toContain('lonely');
    // db is not on "front": the alias pool is not visible to it.
    expect(rcode(await c2.ask('pool'))).toBe('NXDOMAIN');
  });

  it('AAAA of a local name: NOERROR without records (IPv4 only); MX too', async () => {
    for (const type of ['AAAA', 'MX'] as const) {
      const r = await c1.ask('db', type);
      expect(rcode(r)).toBe('NOERROR');
      expect(decode(r).answers).toEqual([]);
    }
  });

  it('PTR: "<name>.<network>" for an address on a shared network, forwarded otherwise', async () => {
    const r = await c2.ask('2.0.2.10.in-addr.arpa', 'PTR');
    expect(rcode(r)).toBe('NOERROR');
    expect(decode(r).answers?.[0]).toMatchObject({ type: 'PTR', ttl: 600, data: 'web.back' });
    expect(data(await c1.ask('3.0.2.10.in-addr.arpa.', 'PTR'))).toEqual(['db.back']);
    // 10.1.0.9 (cache, on front) is not visible from db.
    expect(rcode(await c2.ask('9.0.1.10.in-addr.arpa', 'PTR'))).toBe('NXDOMAIN');
  });

  it('returns several addresses in random order', async () => {
    const orders = new Set<string>();
    for (let i = 0; i < 40 && orders.size < 2; i++) {
      const ips = data(await c1.ask('pool'));
      expect([...ips].sort()).toEqual(['10.1.0.2', '10.1.0.9']);
      orders.add(ips.join(','));
    }
    expect(orders.size).toBe(2);
  });

  it('forwards the rest, failing over from a dead upstream and from SERVFAIL to a live one', async () => {
    // Server upstreams: [dead port, live]: the dead one fails (ICMP port unreachable), the live one answers.
    const r = await c1.ask('example.test');
    expect(rcode(r)).toBe('NOERROR');
    expect(data(r)).toEqual(['192.0.2.1']);
    expect(r.readUInt16BE(0)).toBe(decode(r).id); // the client's id restored

    // A sandbox with its own (--dns) servers: [SERVFAIL, silent (times out), live].
    const portBefore = server.portOf(ID.db);
    await server.attach(ID.db, NS.s2, { internal: false, upstreams: [failing.upstream, silent.upstream, live.upstream] });
    expect(server.portOf(ID.db)).toBe(portBefore); // an update, not a re-attach
    const r2 = await c2.ask('example.test');
    expect(data(r2)).toEqual(['192.0.2.1']);
    expect(failing.seen.udp).toContain('example.test');
    expect(silent.seen.udp).toContain('example.test');

    // None answers usefully: SERVFAIL.
    await server.attach(ID.db, NS.s2, { internal: false, upstreams: [failing.upstream, dead] });
    const r3 = await c2.ask('example.test');
    expect(rcode(r3)).toBe('SERVFAIL');
    await server.attach(ID.db, NS.s2, { internal: false });
    expect(server.stats().sandboxes.find((s) => s.sandboxId === ID.db)?.upstreamFailed).toBeGreaterThanOrEqual(1);
  });

  it('internal-only sandboxes answer local names and never forward (SERVFAIL)', async () => {
    expect(data(await c3.ask('vaultpeer'))).toEqual(['10.4.0.3']);
    const before = live.seen.udp.length + live.seen.tcp.length;
    const r = await c3.ask('example.test');
    expect(rcode(r)).toBe('SERVFAIL');
    expect(rcode(await c3.ask('db'))).toBe('SERVFAIL'); // not on its networks, and nothing goes out
    expect(live.seen.udp.length + live.seen.tcp.length).toBe(before);
    expect(server.stats().sandboxes.find((s) => s.sandboxId === ID.vault)?.internalRefused).toBe(2);
  });

  it('answers over TCP, several queries on one connection, and forwards TCP queries over TCP', async () => {
    const beforeTcp = live.seen.tcp.length;
    const replies = await tcpAsk(NS.s2, [q('web'), q('sql'), q('example.test'), q('2.0.2.10.in-addr.arpa', 'PTR')]);
    expect(replies).toHaveLength(4);
    const byName = new Map(replies.map((b) => [decode(b).questions?.[0]?.name, b]));
    expect(data(byName.get('web')!)).toEqual(['10.2.0.2']);
    expect(data(byName.get('sql')!)).toEqual(['10.2.0.3']);
    expect(data(byName.get('example.test')!)).toEqual(['192.0.2.1']);
    expect(data(byName.get('2.0.2.10.in-addr.arpa')!)).toEqual(['web.back']);
    expect(live.seen.tcp.slice(beforeTcp)).toContain('example.test');
  });

  it('truncates UDP answers over 512 bytes for clients without EDNS (TC=1), not for EDNS or TCP clients', async () => {
    // 60 addresses from the upstream: about 1 KiB.
    const plain = await c1.ask('big.test');
    expect(plain.length).toBeLessThanOrEqual(512);
    expect(decode(plain).flag_tc).toBe(true);
    const edns = await c1.ask('big.test', 'A', { edns: 4096 });
    expect(decode(edns).flag_tc).toBe(false);
    expect(decode(edns).answers).toHaveLength(60);
    const [tcp] = await tcpAsk(NS.s1, [q('big.test')]);
    expect(decode(tcp!).answers).toHaveLength(60);
  });

  it('an upstream that truncates over UDP is asked again over TCP when the client takes more (EDNS); else TC is passed on', async () => {
    const tcpBefore = live.seen.tcp.filter((n) => n === 'tc.test').length;
    const edns = await c1.ask('tc.test', 'A', { edns: 4096 });
    expect(decode(edns).flag_tc).toBe(false);
    expect(decode(edns).answers).toHaveLength(60);
    expect(live.seen.tcp.filter((n) => n === 'tc.test').length).toBe(tcpBefore + 1);
    const plain = await c1.ask('tc.test');
    expect(decode(plain).flag_tc).toBe(true);
    expect(decode(plain).answers).toEqual([]);
    expect(live.seen.tcp.filter((n) => n === 'tc.test').length).toBe(tcpBefore + 1);
  });

  it('works with dig (UDP and +tcp)', async (ctx) => {
    if (!(await tryRun('dig', ['-v']))) ctx.skip();
    const short = await run('dig', ['@127.0.0.11', '+short', '+tries=1', '+time=2', 'web'], { netns: NS.s2 });
    expect(short.stdout.trim()).toBe('10.2.0.2');
    const tcp = await run('dig', ['@127.0.0.11', '+tcp', '+short', '+tries=1', '+time=2', '-x', '10.2.0.3'], { netns: NS.s1 });
    expect(tcp.stdout.trim()).toBe('db.back.');
    const fwd = await run('dig', ['@127.0.0.11', '+tries=1', '+time=3', 'example.test'], { netns: NS.s1 });
    expect(fwd.stdout).toMatch(/status: NOERROR/);
    expect(fwd.stdout).toMatch(/example\.test\.\s+30\s+IN\s+A\s+192\.0\.2\.1/);
  });

  it('answers FORMERR to garbage with a readable id, drops the rest, and keeps serving', async () => {
    const before = server.stats().totals;
    const bad = await c1.send(Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, 0x61]));
    expect(bad).toBeDefined();
    expect(bad!.readUInt16BE(0)).toBe(0xabcd);
    expect(rcode(bad!)).toBe('FORMERR');
    expect(decode(bad!).type).toBe('response');
    // Two questions: FORMERR too.
    const two = dnsPacket.encode({ id: 4242, type: 'query', questions: [{ name: 'a', type: 'A', class: 'IN' }, { name: 'b', type: 'A', class: 'IN' }] });
    expect(rcode((await c1.send(two))!)).toBe('FORMERR');
    // One byte: no id, no answer. A response: no answer.
    expect(await c1.send(Buffer.from([0x01]), 300)).toBeUndefined();
    const resp = dnsPacket.encode({ id: 4343, type: 'response', questions: [{ name: 'web', type: 'A', class: 'IN' }] });
    expect(await c1.send(resp, 300)).toBeUndefined();
    // Not a QUERY (opcode 2, STATUS): NOTIMP.
    const status = q('web');
    status.writeUInt16BE(status.readUInt16BE(2) | (2 << 11), 2);
    expect(rcode((await c1.send(status))!)).toBe('NOTIMP');
    // Garbage over TCP: FORMERR, and the connection goes on.
    const [tbad, tgood] = await tcpAsk(NS.s1, [Buffer.from([0x12, 0x34, 0x00, 0x00, 0xff]), q('db')]);
    expect(rcode(tbad!)).toBe('FORMERR');
    expect(data(tgood!)).toEqual(['10.2.0.3']);
    // Still serving.
    expect(data(await c1.ask('db'))).toEqual(['10.2.0.3']);
    const after = server.stats().totals;
    expect(after.formerr - before.formerr).toBe(3);
    expect(after.dropped - before.dropped).toBe(2);
    expect(after.notimp - before.notimp).toBe(1);
  });

  it('a flood of upstream-bound queries from one sandbox is bounded and does not stop another sandbox', async () => {
    // c4's only upstream never answers: at most 100 queries wait, the rest get SERVFAIL at once.
    const N = 300;
    const flood: Promise<Buffer | undefined>[] = [];
    for (let i = 0; i < N; i++) {
      flood.push(c4.send(q(`f${i}.flood.test`), TIMEOUT_MS * 3));
      if (i % 25 === 24) await new Promise((r) => setTimeout(r, 2)); // paced: no drops in the socket buffers
    }
    await new Promise((r) => setTimeout(r, 100));
    const mid = server.stats().sandboxes.find((s) => s.sandboxId === ID.flood)!;
    expect(mid.queries).toBe(N);
    expect(mid.inflight).toBe(100);
    expect(mid.overLimit).toBe(N - 100);
    // Meanwhile another sandbox is answered, locally and from upstream, while the flood's queries are still waiting.
    expect(data(await c1.ask('db'))).toEqual(['10.2.0.3']);
    expect(data(await c1.ask('example.test'))).toEqual(['192.0.2.1']);
    const [tcpLocal] = await tcpAsk(NS.s1, [q('sql')]);
    expect(data(tcpLocal!)).toEqual(['10.2.0.3']);
    // And the flooding sandbox's local names too.
    expect(data(await c4.ask('web'))).toEqual(['10.1.0.2']);
    const replies = await Promise.all(flood);
    expect(replies.every((r) => r !== undefined && rcode(r) === 'SERVFAIL')).toBe(true);
    const end = server.stats().sandboxes.find((s) => s.sandboxId === ID.flood)!;
    expect(end.inflight).toBe(0);
    expect(end.upstreamFailed).toBe(100);
    expect(silent.seen.udp.length).toBeGreaterThanOrEqual(100);
  });

  it('attach of a missing netns fails with E_NETNS, of a served one with E_CONFLICT; attach twice only updates; detach stops serving and frees the netns', async () => {
    await expect(server.attach(ID.s5, `${DIR}/missing`, { internal: false })).rejects.toMatchObject({ code: 'E_NETNS' });
    await expect(server.attach(ID.s5, `${DIR}/missing`, { internal: false })).rejects.toBeInstanceOf(BpfnetError);

    // Another sandbox id on a netns that is served already: E_CONFLICT, nothing left behind, the first one untouched.
    const webPort = server.portOf(ID.web)!;
    await expect(server.attach(ID.s5, NS.s1, { internal: false })).rejects.toMatchObject({ code: 'E_CONFLICT' });
    expect(server.isAttached(ID.s5)).toBe(false);
    expect(await resolverSockets(NS.s1)).toEqual([`tcp:${webPort}`, `udp:${webPort}`]);
    expect(await dnsMapEntry(NS.s1)).toBe(webPort);
    expect(data(await c1.ask('db'))).toEqual(['10.2.0.3']);

    registry.setSandbox({ sandboxId: ID.s5, name: 'five', networks: [{ ...BACK, ip: '10.2.0.5', aliases: [] }] });
    // Concurrent calls for one sandbox run in order: attach, detach, attach, update.
    await Promise.all([
      server.attach(ID.s5, NS.s5, { internal: false }),
      server.detach(ID.s5),
      server.attach(ID.s5, NS.s5, { internal: false }),
      server.attach(ID.s5, NS.s5, { internal: true }),
    ]);
    expect(server.stats().sandboxes.find((x) => x.sandboxId === ID.s5)?.internal).toBe(true);
    const c5 = await client(NS.s5);
    expect(data(await c5.ask('db'))).toEqual(['10.2.0.3']);
    expect(rcode(await c5.ask('example.test'))).toBe('SERVFAIL'); // now internal
    // ndots set by the user: single-label names nobody has are not sent out (empty NOERROR), dotted ones are.
    await server.attach(ID.s5, NS.s5, { internal: false, ndotsSet: true });
    const seen = live.seen.udp.length;
    const single = await c5.ask('nosuchname');
    expect(rcode(single)).toBe('NOERROR');
    expect(decode(single).answers).toEqual([]);
    expect(live.seen.udp.length).toBe(seen);
    expect(data(await c5.ask('example.test'))).toEqual(['192.0.2.1']);
    await server.detach(ID.s5);
    await server.detach(ID.s5); // not attached: fine
    expect(server.isAttached(ID.s5)).toBe(false);
    expect(await c5.send(q('db'), 300)).toBeUndefined();
    expect(await resolverSockets(NS.s5)).toEqual([]);
    expect(loEgressPrograms(NS.s5)).toEqual([]);
    expect(await dnsMapEntry(NS.s5)).toBeUndefined();
    registry.removeSandbox(ID.s5);
    expect(data(await c1.ask('db'))).toEqual(['10.2.0.3']); // others unaffected
  });

  it('TCP gets the UDP port number; when a sandbox socket holds that TCP port, another pair is picked', async () => {
    // Two ephemeral ports in s6 while attaching; the sandbox holds TCP on the lower one.
    const holder = await adoptTcp(listenInNetns(NS.s6, 'tcp', '127.0.0.11', 40000), (c) => c.destroy());
    registry.setSandbox({ sandboxId: ID.s6, name: 'six', networks: [{ ...BACK, ip: '10.2.0.6', aliases: [] }] });
    try {
      for (let i = 0; i < 3; i++) {
        sysctl(NS.s6, 'net.ipv4.ip_local_port_range', '40000 40001');
        await server.attach(ID.s6, NS.s6, { internal: false });
        expect(server.portOf(ID.s6)).toBe(40001);
        expect((await resolverSockets(NS.s6)).filter((x) => x !== 'tcp:40000')).toEqual(['tcp:40001', 'udp:40001']);
        // The client needs an ephemeral port of its own.
        sysctl(NS.s6, 'net.ipv4.ip_local_port_range', '32768 60999');
        const [t] = await tcpAsk(NS.s6, [q('db')]);
        expect(data(t!)).toEqual(['10.2.0.3']);
        await server.detach(ID.s6);
      }
      // Both taken for TCP: no pair, E_CONFLICT, nothing left behind.
      sysctl(NS.s6, 'net.ipv4.ip_local_port_range', '40000 40001');
      const holder2 = await adoptTcp(listenInNetns(NS.s6, 'tcp', '127.0.0.11', 40001), (c) => c.destroy());
      try {
        await expect(server.attach(ID.s6, NS.s6, { internal: false })).rejects.toMatchObject({ code: 'E_CONFLICT' });
        expect(server.isAttached(ID.s6)).toBe(false);
        expect(await resolverSockets(NS.s6)).toEqual(['tcp:40000', 'tcp:40001']);
        expect(await dnsMapEntry(NS.s6)).toBeUndefined();
      } finally {
        await new Promise<void>((resolve) => holder2.close(() => resolve()));
      }
    } finally {
      registry.removeSandbox(ID.s6);
      await server.detach(ID.s6);
      await new Promise<void>((resolve) => holder.close(() => resolve()));
      sysctl(NS.s6, 'net.ipv4.ip_local_port_range', '32768 60999');
    }
  });

  it('names appear and disappear as a sandbox connects, disconnects and goes; its redirect (tc filter, map entry, sockets) goes with it', async () => {
    const cookie = netnsCookie(NS.s6);
    const six = (nets: { networkId: string; networkName: string; ip: string }[]) => registry.setSandbox({ sandboxId: ID.s6, name: 'six', networks: nets.map((n) => ({ ...n, aliases: ['sixalias'] })) });
    try {
      // Created on "back": db sees it, web too (web is on back), nobody on front only.
      six([{ ...BACK, ip: '10.2.0.6' }]);
      await server.attach(ID.s6, NS.s6, { internal: false });
      const c6 = await client(NS.s6);
      expect(data(await c2.ask('six'))).toEqual(['10.2.0.6']);
      expect(data(await c2.ask('sixalias'))).toEqual(['10.2.0.6']);
      expect(data(await c6.ask('db'))).toEqual(['10.2.0.3']);
      const port = server.portOf(ID.s6)!;
      expect(await dnsMapEntry(NS.s6)).toBe(port);
      expect(loEgressPrograms(NS.s6)).toHaveLength(1);

      // Connected to "front" as well: web (front + back) finds it by name.network, and six sees front's names.
      six([{ ...BACK, ip: '10.2.0.6' }, { ...FRONT, ip: '10.1.0.6' }]);
      expect(data(await c1.ask('six.front'))).toEqual(['10.1.0.6']);
      expect(data(await c6.ask('www'))).toEqual(['10.1.0.2']); // web's alias on front, visible to six now

      // Disconnected from "back": db no longer finds it (forwarded: NXDOMAIN), web still does on front.
      six([{ ...FRONT, ip: '10.1.0.6' }]);
      expect(rcode(await c2.ask('six'))).toBe('NXDOMAIN');
      expect(rcode(await c2.ask('sixalias'))).toBe('NXDOMAIN');
      expect(data(await c1.ask('six'))).toEqual(['10.1.0.6']);
      expect(rcode(await c6.ask('db'))).toBe('NXDOMAIN'); // six is not on back any more

      // Removed: names gone, the resolver, the tc filter and the map entry too.
      registry.removeSandbox(ID.s6);
      await server.detach(ID.s6);
      expect(rcode(await c1.ask('six'))).toBe('NXDOMAIN');
      expect(rcode(await c1.ask('sixalias'))).toBe('NXDOMAIN');
      expect(await resolverSockets(NS.s6)).toEqual([]);
      expect(loEgressPrograms(NS.s6)).toEqual([]);
      expect(await dnsMapEntry(NS.s6)).toBeUndefined();
      expect(await c6.send(q('web'), 300)).toBeUndefined();
      // Nothing else changed: other sandboxes keep theirs.
      expect(await dnsMapEntry(NS.s1)).toBe(server.portOf(ID.web));
      expect(loEgressPrograms(NS.s1)).toHaveLength(1);
      expect(netnsCookie(NS.s6)).toBe(cookie);
    } finally {
      registry.removeSandbox(ID.s6);
      await server.detach(ID.s6);
    }
  });

  it('close() detaches everything; totals are kept', async () => {
    const other = new DnsServer({ registry, upstreams: [live.upstream], logger: log, bpffsRoot: BPF_ROOT });
    await other.attach(ID.s5, NS.s5, { internal: false });
    const c5 = clients.find((c) => c !== c1 && c !== c2 && c !== c3 && c !== c4)!;
    await c5.ask('db');
    await other.close();
    expect(other.stats()).toMatchObject({ attached: 0, totals: { queries: 1 } });
    await expect(other.attach(ID.s5, NS.s5, { internal: false })).rejects.toMatchObject({ code: 'E_UNAVAILABLE' });
    expect(existsSync(NS.s5)).toBe(true);
    expect(await dnsMapEntry(NS.s5)).toBeUndefined();
    expect(loEgressPrograms(NS.s5)).toEqual([]);
  });

  it('close({ leaveRedirects }) (an agent stopping) leaves the redirect; the next server takes the same port; pruneRedirects() forgets entries of namespaces nobody serves', async () => {
    registry.setSandbox({ sandboxId: ID.s5, name: 'five', networks: [{ ...BACK, ip: '10.2.0.5', aliases: [] }] });
    const first = new DnsServer({ registry, upstreams: [live.upstream], logger: log, bpffsRoot: BPF_ROOT });
    let next: DnsServer | undefined;
    try {
      await first.attach(ID.s5, NS.s5, { internal: false });
      const port = first.portOf(ID.s5)!;
      await first.close({ leaveRedirects: true });
      expect(await resolverSockets(NS.s5)).toEqual([]);
      expect(await dnsMapEntry(NS.s5)).toBe(port);
      expect(loEgressPrograms(NS.s5)).toHaveLength(1);
      // Meanwhile 127.0.0.11:53 leads to the closed port, not to a sandbox server on 0.0.0.0:53.
      const own = await ownServer(NS.s5);
      const c5 = await client(NS.s5);
      try {
        expect(await c5.send(q('db'), 300)).toBeUndefined();
        expect(own.udpQueries()).toBe(0);
        next = new DnsServer({ registry, upstreams: [live.upstream], logger: log, bpffsRoot: BPF_ROOT });
        await next.attach(ID.s5, NS.s5, { internal: false });
        expect(next.portOf(ID.s5)).toBe(port);
        expect(data(await c5.ask('db'))).toEqual(['10.2.0.3']);
        expect(own.udpQueries()).toBe(0);
      } finally {
        await own.close();
      }
      await next.close({ leaveRedirects: true });
      // The main server does not serve s5: its entry is stale for it.
      expect(await server.pruneRedirects()).toBe(1);
      expect(await dnsMapEntry(NS.s5)).toBeUndefined();
      expect(await dnsMapEntry(NS.s1)).toBe(server.portOf(ID.web));
      expect(data(await c1.ask('db'))).toEqual(['10.2.0.3']);
      expect(await server.pruneRedirects()).toBe(0);
    } finally {
      registry.removeSandbox(ID.s5);
      await first.close();
      await next?.close();
      // The filter a closed server left on s5's lo (no entry: it passes everything).
      const r = Rtnl.open(NS.s5);
      try {
        for (const f of r.listBpfFilters('lo', 'egress')) r.detachBpfFilter('lo', 'egress', f.pref, f.handle);
      } finally {
        r.close();
      }
    }
  });
});

// ---------- fallback dataplanes: the redirect with iptables / nftables ----------

/** The nat rules of a netns as iptables-save prints them (rules and chain declarations only). */
async function natRules(ns: string): Promise<string[]> {
  const r = await run('iptables-save', ['-t', 'nat'], { netns: ns });
  return r.stdout.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':'));
}

for (const mode of ['iptables', 'nftables'] as const satisfies readonly RedirectMode[]) {
  describe(`embedded DNS with the ${mode} redirect (fallback dataplanes)`, () => {
    const tag = randomBytes(3).toString('hex');
    const dir = `/run/bpfnet-dnstest-${mode}-${tag}`;
    const ns = `${dir}/sb`;
    const peerNs = `${dir}/peer`;
    const registry = new DnsRegistry();
    const sbId = id('e');
    const peerId = id('f');
    const clients: NsClient[] = [];
    let server: DnsServer | undefined;
    let live: Fake | undefined;
    let nodeBefore = '';

    const nodeRuleset = async (): Promise<string> =>
      mode === 'iptables' ? (await run('iptables-save', ['-t', 'nat'])).stdout.split('\n').filter((l) => l.startsWith('-A ') && l.includes('127.0.0.11')).join('\n') : (await run('nft', ['list', 'tables'])).stdout.split('\n').filter((l) => l.includes(NFT_TABLE)).join('\n');

    beforeAll(async () => {
      sandboxNetns(ns);
      sandboxNetns(peerNs);
      nodeBefore = await nodeRuleset();
      live = await fakeUpstream('answer');
      registry.setSandbox({ sandboxId: sbId, name: 'fb', networks: [{ ...FRONT, ip: '10.9.0.2', aliases: ['fballias'] }] });
      registry.setSandbox({ sandboxId: peerId, name: 'fbpeer', networks: [{ ...FRONT, ip: '10.9.0.3', aliases: [] }] });
      server = new DnsServer({ registry, upstreams: [live.upstream], logger: log, redirect: mode });
      await server.attach(sbId, ns, { internal: false });
      await server.attach(peerId, peerNs, { internal: false });
    });

    afterAll(async () => {
      for (const c of clients) {
        try {
          c.close();
        } catch {
          /* closed */
        }
      }
      await server?.close();
      await live?.close().catch(() => undefined);
      removeNetnsDir(dir);
    });

    it('programs the redirect in the sandbox\'s netns only (Docker\'s rules), not in the node\'s', async () => {
      expect(server!.redirectMode).toBe(mode);
      const port = server!.portOf(sbId)!;
      expect(port).not.toBe(53);
      expect(await resolverSockets(ns)).toEqual([`tcp:${port}`, `udp:${port}`]);
      if (mode === 'iptables') {
        const rules = await natRules(ns);
        expect(rules.filter((l) => l.startsWith('-A '))).toEqual([
          `-A OUTPUT -d 127.0.0.11/32 -j ${IPT_OUTPUT_CHAIN}`,
          `-A POSTROUTING -d 127.0.0.11/32 -j ${IPT_POSTROUTING_CHAIN}`,
          `-A ${IPT_OUTPUT_CHAIN} -d 127.0.0.11/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 127.0.0.11:${port}`,
          `-A ${IPT_OUTPUT_CHAIN} -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.11:${port}`,
          `-A ${IPT_POSTROUTING_CHAIN} -s 127.0.0.11/32 -p tcp -m tcp --sport ${port} -j SNAT --to-source :53`,
          `-A ${IPT_POSTROUTING_CHAIN} -s 127.0.0.11/32 -p udp -m udp --sport ${port} -j SNAT --to-source :53`,
        ]);
      } else {
        const t = (await run('nft', ['list', 'table', 'ip', NFT_TABLE], { netns: ns })).stdout;
        expect(t).toContain(`dnat to 127.0.0.11:${port}`);
        expect(t).toMatch(new RegExp(`udp sport ${port} snat to 127\\.0\\.0\\.11:53`));
      }
      // The peer has its own port and its own rules.
      const peerPort = server!.portOf(peerId)!;
      expect(peerPort).not.toBe(port);
      if (mode === 'iptables') expect((await natRules(peerNs)).join('\n')).toContain(`127.0.0.11:${peerPort}`);
      else expect((await run('nft', ['list', 'table', 'ip', NFT_TABLE], { netns: peerNs })).stdout).toContain(`127.0.0.11:${peerPort}`);
      // Nothing in the node's (this process's) namespace.
      expect(await nodeRuleset()).toBe(nodeBefore);
      expect(await resolverSockets('/proc/self/ns/net')).not.toContain(`udp:${port}`);
    });

    it('a server of the sandbox on 0.0.0.0:53 works, and names resolve through 127.0.0.11:53 (UDP and TCP)', async () => {
      const c = await NsClient.open(ns);
      clients.push(c);
      const own = await ownServer(ns);
      try {
        expect(data(await c.ask('x.test', 'A', { host: '127.0.0.1' }))).toEqual([OWN_ANSWER]);
        const [ownTcp] = await tcpAsk(ns, [q('x.test')], '127.0.0.1');
        expect(data(ownTcp!)).toEqual([OWN_ANSWER]);
        expect(data(await c.ask('fbpeer'))).toEqual(['10.9.0.3']);
        expect(data(await c.ask('example.test'))).toEqual(['192.0.2.1']);
        const replies = await tcpAsk(ns, [q('fballias'), q('example.test')]);
        expect(replies.map((b) => data(b)[0]).sort()).toEqual(['10.9.0.2', '192.0.2.1']);
        expect([own.udpQueries(), own.tcpQueries()]).toEqual([1, 1]);
      } finally {
        await own.close();
      }
    });

    it('detach removes the rules; after a re-attach the same client socket is answered again (its stale conntrack state flushed)', async () => {
      const c = await NsClient.open(peerNs);
      clients.push(c);
      expect(data(await c.ask('fb'))).toEqual(['10.9.0.2']);
      await server!.detach(peerId);
      expect(await c.send(q('fb'), 300)).toBeUndefined();
      if (mode === 'iptables') expect(await natRules(peerNs)).not.toEqual(expect.arrayContaining([expect.stringContaining('127.0.0.11')]));
      else expect((await run('nft', ['list', 'tables'], { netns: peerNs })).stdout).not.toContain(NFT_TABLE);
      expect(await resolverSockets(peerNs)).toEqual([]);
      await server!.attach(peerId, peerNs, { internal: false });
      expect(data(await c.ask('fb'))).toEqual(['10.9.0.2']);
      const [t] = await tcpAsk(peerNs, [q('fb')]);
      expect(data(t!)).toEqual(['10.9.0.2']);
      if (mode === 'iptables') expect((await natRules(peerNs)).filter((l) => l.includes('DNAT'))).toHaveLength(2);
      expect(await nodeRuleset()).toBe(nodeBefore);
    });
  });
}
