/**
 * The embedded DNS server against the real kernel: sandbox namespaces of
 * its own (netns files in a private directory under /run), the server's
 * sockets created inside them with listenInNetns, clients inside them (an
 * in-process UDP socket made the same way, `dig` and a Node TCP client run
 * with nsenter), and fake upstream nameservers on this process's loopback,
 * where the forwarder runs. Everything is removed afterwards, also when a
 * test fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import pino from 'pino';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';
import { adoptUdp, createNetns, listenInNetns, removeNetnsDir, Rtnl } from '../../src/netlink/index.js';
import { DnsRegistry, DnsServer, type Upstream } from '../../src/dns/index.js';
import { run, tryRun } from '../../src/util/exec.js';
import { BpfnetError } from '../../src/util/errors.js';

const TAG = randomBytes(3).toString('hex');
const DIR = `/run/bpfnet-dnstest-${TAG}`;
const NS = { s1: `${DIR}/s1`, s2: `${DIR}/s2`, s3: `${DIR}/s3`, s4: `${DIR}/s4`, s5: `${DIR}/s5` };
const id = (c: string): string => c.repeat(64);
const ID = { web: id('1'), db: id('2'), vault: id('3'), flood: id('4'), cache: id('5'), lonely: id('6'), vpeer: id('7'), s5: id('8') };
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

  /** Sends raw bytes to 127.0.0.11:53; the reply with the same id (undefined after timeoutMs). */
  send(msg: Buffer, timeoutMs = 3000): Promise<Buffer | undefined> {
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
      this.sock.send(msg, 53, '127.0.0.11');
    });
  }

  async ask(name: string, type: Question['type'] = 'A', opts: { edns?: number } = {}): Promise<Buffer> {
    const r = await this.send(q(name, type, opts));
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
const qs = process.argv.slice(1);
const out = [];
let buf = Buffer.alloc(0);
const c = net.connect(53, '127.0.0.11', () => {
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

async function tcpAsk(ns: string, queries: Buffer[]): Promise<Buffer[]> {
  const r = await run(process.execPath, ['-e', TCP_CLIENT, ...queries.map((b) => b.toString('hex'))], { netns: ns, timeout: 15_000 });
  return (JSON.parse(r.stdout) as string[]).map((h) => Buffer.from(h, 'hex'));
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
    for (const ns of Object.values(NS)) {
      createNetns(ns);
      const r = Rtnl.open(ns);
      try {
        r.setLink('lo', { up: true });
      } finally {
        r.close();
      }
    }
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

    server = new DnsServer({ registry, upstreams: [dead, live.upstream], logger: log, upstreamTimeoutMs: TIMEOUT_MS });
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
  });

  it('listens on 127.0.0.11:53 (UDP and TCP) inside the sandbox, not in the caller\'s namespace', async () => {
    const udp = await run('ss', ['-Hlnu'], { netns: NS.s1 });
    const tcp = await run('ss', ['-Hlnt'], { netns: NS.s1 });
    expect(udp.stdout).toContain('127.0.0.11:53');
    expect(tcp.stdout).toContain('127.0.0.11:53');
    const none = await run('ss', ['-Hlnu'], { netns: NS.s5 });
    expect(none.stdout).not.toContain('127.0.0.11:53');
    expect(server.isAttached(ID.web)).toBe(true);
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
    // Server upstreams: [dead port, live]: the dead one fails at once (ICMP port unreachable), no timeout.
    const t = performance.now();
    const r = await c1.ask('example.test');
    expect(performance.now() - t).toBeLessThan(TIMEOUT_MS / 2);
    expect(rcode(r)).toBe('NOERROR');
    expect(data(r)).toEqual(['192.0.2.1']);
    expect(r.readUInt16BE(0)).toBe(decode(r).id); // the client's id restored

    // A sandbox with its own (--dns) servers: [SERVFAIL, silent (times out), live].
    await server.attach(ID.db, NS.s2, { internal: false, upstreams: [failing.upstream, silent.upstream, live.upstream] });
    const t0 = Date.now();
    const r2 = await c2.ask('example.test');
    expect(data(r2)).toEqual(['192.0.2.1']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
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
    // Meanwhile another sandbox is answered at once, locally and from upstream.
    const t0 = performance.now();
    expect(data(await c1.ask('db'))).toEqual(['10.2.0.3']);
    expect(performance.now() - t0).toBeLessThan(TIMEOUT_MS / 2); // not queued behind the flood
    expect(data(await c1.ask('example.test'))).toEqual(['192.0.2.1']);
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

    // Another sandbox id on a netns that is served already (127.0.0.11:53/tcp taken): E_CONFLICT, nothing left behind.
    await expect(server.attach(ID.s5, NS.s1, { internal: false })).rejects.toMatchObject({ code: 'E_CONFLICT' });
    expect(server.isAttached(ID.s5)).toBe(false);
    expect((await run('ss', ['-Hlnu'], { netns: NS.s1 })).stdout.match(/127\.0\.0\.11:53\b/g)).toHaveLength(1);
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
    expect((await run('ss', ['-Hlnu'], { netns: NS.s5 })).stdout).not.toContain('127.0.0.11:53');
    registry.removeSandbox(ID.s5);
    expect(data(await c1.ask('db'))).toEqual(['10.2.0.3']); // others unaffected
  });

  it('close() detaches everything; totals are kept', async () => {
    const other = new DnsServer({ registry, upstreams: [live.upstream], logger: log });
    await other.attach(ID.s5, NS.s5, { internal: false });
    const c5 = clients.find((c) => c !== c1 && c !== c2 && c !== c3 && c !== c4)!;
    await c5.ask('db');
    await other.close();
    expect(other.stats()).toMatchObject({ attached: 0, totals: { queries: 1 } });
    await expect(other.attach(ID.s5, NS.s5, { internal: false })).rejects.toMatchObject({ code: 'E_UNAVAILABLE' });
    expect(existsSync(NS.s5)).toBe(true);
  });
});
