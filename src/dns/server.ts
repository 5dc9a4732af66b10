/**
 * The embedded DNS server: Docker's 127.0.0.11:53 (UDP and TCP) inside each
 * sandbox on a user-defined network, served from the agent's own process.
 *
 * attach() creates the two sockets inside the sandbox's network namespace
 * (native listenInNetns: setns on the calling thread, socket, bind, back)
 * and adopts them into Node; the agent itself stays in its own namespace,
 * so forwarded queries leave from there. Every socket knows which sandbox
 * it belongs to: that is the asker's identity for the name table (only
 * networks the asker shares are visible).
 *
 * Per query, as moby's Resolver.ServeDNS:
 * - A: the registry's addresses (TTL 600, shuffled when several);
 * - AAAA and MX for a name the registry knows: NOERROR without records
 *   (bpfnet is IPv4-only; MX: "implicit MX", RFC 5321 5.1);
 * - PTR for an x.x.x.x.in-addr.arpa address the asker can see: "<name>.<network>";
 * - everything else is forwarded to the upstreams (upstream.ts), unless the
 *   sandbox has no external access (all its networks --internal): SERVFAIL,
 *   like Docker's resolver with proxyDNS off;
 * - no upstream answered usefully, or the sandbox has too many forwarded
 *   queries in flight (100, Docker's maxConcurrent): SERVFAIL (counted);
 * - unreadable messages with a readable id: FORMERR; other opcodes: NOTIMP;
 *   messages that are responses (QR set) or too short for an id: dropped.
 * UDP answers larger than the client's limit (512, or its EDNS size) are
 * cut to fit with TC=1; TCP uses 2-byte length framing, several queries per
 * connection (answered as they complete), idle connections closed.
 */
import type dgram from 'node:dgram';
import { setMaxListeners } from 'node:events';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Answer } from 'dns-packet';
import { adoptTcp, adoptUdp, listenInNetns } from '../netlink/sockets.js';
import { BpfnetError } from '../util/errors.js';
import { INTERNAL_NAMESERVER } from '../model/sandboxfiles.js';
import type { DnsRegistry } from './registry.js';
import { normalizeName, reverseToIpv4 } from './registry.js';
import { answerResponse, encodableName, encodeFitting, fitRaw, parseQuery, RCODE, rcodeResponse, shuffle, UDP_MIN_PAYLOAD, type ParsedQuery, type Rcode } from './message.js';
import { forward, MAX_UPSTREAMS, UPSTREAM_TIMEOUT_MS, type Upstream } from './upstream.js';

export type { Upstream };

/** Docker's TTL for its own records (respTTL). */
export const DNS_TTL = 600;
/** Docker's limit of concurrent forwarded queries (maxConcurrent), here per sandbox. */
export const MAX_INFLIGHT = 100;
const MAX_TCP_CONNECTIONS = 64;
const TCP_IDLE_MS = 10_000;
/** How often per sandbox a dropped-query warning is logged at most. */
const WARN_EVERY_MS = 10_000;

export interface DnsServerOptions {
  registry: DnsRegistry;
  /** The node's nameservers (e.g. upstreamNameservers(hostResolvConf)); at most 3 are used. */
  upstreams: readonly Upstream[];
  logger: Logger;
  /** Default 127.0.0.11. */
  address?: string;
  /** Default 53. */
  port?: number;
  /** Per upstream server; default 4000 (Docker's). */
  upstreamTimeoutMs?: number;
  /** Forwarded queries in flight per sandbox; default 100. */
  maxInflightPerSandbox?: number;
  /** Open TCP connections per sandbox; default 64. */
  maxTcpConnectionsPerSandbox?: number;
  /** Default 10000. */
  tcpIdleTimeoutMs?: number;
  /** Default 600. */
  ttl?: number;
}

export interface AttachOptions {
  /** No network of the sandbox has external access (all --internal): nothing is forwarded, unknown names get SERVFAIL. */
  internal: boolean;
  /** The sandbox's own servers (--dns), instead of the server's upstreams. */
  upstreams?: readonly Upstream[];
  /**
   * The sandbox's resolv.conf sets ndots itself (host option or
   * --dns-option): A/AAAA queries for single-label names the registry does
   * not know get an empty NOERROR answer instead of being forwarded, so the
   * resolver goes on with its search domains (Docker's NdotsSet).
   */
  ndotsSet?: boolean;
}

export interface DnsCounters {
  /** Messages received (UDP datagrams + TCP frames). */
  queries: number;
  udp: number;
  tcp: number;
  /** Answered from the registry (A, PTR, NODATA). */
  local: number;
  /** Forwarded and answered by an upstream. */
  forwarded: number;
  /** SERVFAIL because no upstream answered usefully. */
  upstreamFailed: number;
  /** SERVFAIL because the sandbox is internal-only. */
  internalRefused: number;
  /** SERVFAIL because the sandbox had too many forwarded queries in flight. */
  overLimit: number;
  formerr: number;
  notimp: number;
  /** Not answered at all (responses, messages shorter than an id). */
  dropped: number;
  /** UDP answers cut to fit (TC=1). */
  truncated: number;
  /** TCP connections refused (too many). */
  tcpRejected: number;
}

export interface DnsSandboxStats extends DnsCounters {
  sandboxId: string;
  nsPath: string;
  internal: boolean;
  /** Forwarded queries in flight now. */
  inflight: number;
  tcpConnections: number;
}

export interface DnsStats {
  attached: number;
  totals: DnsCounters;
  sandboxes: DnsSandboxStats[];
}

function zero(): DnsCounters {
  return { queries: 0, udp: 0, tcp: 0, local: 0, forwarded: 0, upstreamFailed: 0, internalRefused: 0, overLimit: 0, formerr: 0, notimp: 0, dropped: 0, truncated: 0, tcpRejected: 0 };
}

interface Attached {
  sandboxId: string;
  nsPath: string;
  opts: AttachOptions;
  udp: dgram.Socket;
  tcp: net.Server;
  conns: Set<net.Socket>;
  inflight: number;
  counters: DnsCounters;
  abort: AbortController;
  lastWarn: number;
}

type Transport = { kind: 'udp' } | { kind: 'tcp' };

export class DnsServer {
  private readonly registry: DnsRegistry;
  private upstreams: Upstream[];
  private readonly log: Logger;
  private readonly address: string;
  private readonly port: number;
  private readonly timeoutMs: number;
  private readonly maxInflight: number;
  private readonly maxConns: number;
  private readonly idleMs: number;
  private readonly ttl: number;
  private readonly sandboxes = new Map<string, Attached>();
  /** The last attach/detach queued per sandbox (they run one at a time, in call order). */
  private readonly queue = new Map<string, Promise<void>>();
  /** Counters of detached sandboxes, so totals never go backwards. */
  private readonly retired = zero();
  private closed = false;

  constructor(opts: DnsServerOptions) {
    this.registry = opts.registry;
    this.upstreams = opts.upstreams.slice(0, MAX_UPSTREAMS).map((u) => ({ addr: u.addr, port: u.port ?? 53 }));
    this.log = opts.logger.child({ component: 'dns' });
    this.address = opts.address ?? INTERNAL_NAMESERVER;
    this.port = opts.port ?? 53;
    this.timeoutMs = opts.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS;
    this.maxInflight = opts.maxInflightPerSandbox ?? MAX_INFLIGHT;
    this.maxConns = opts.maxTcpConnectionsPerSandbox ?? MAX_TCP_CONNECTIONS;
    this.idleMs = opts.tcpIdleTimeoutMs ?? TCP_IDLE_MS;
    this.ttl = opts.ttl ?? DNS_TTL;
  }

  /** Replaces the node's upstreams (resolv.conf changed); queries in flight keep theirs. */
  setUpstreams(upstreams: readonly Upstream[]): void {
    this.upstreams = upstreams.slice(0, MAX_UPSTREAMS).map((u) => ({ addr: u.addr, port: u.port ?? 53 }));
  }

  /**
   * Serves the sandbox whose netns is at nsPath (its lo must be up for
   * clients to reach 127.0.0.11). Attaching an attached sandbox again with
   * the same nsPath only updates opts; with another nsPath it re-attaches.
   * The sockets hold a reference to the netns: detach before deleting it.
   * E_NETNS when the netns cannot be entered, E_CONFLICT when something
   * else holds 127.0.0.11:53/tcp there.
   */
  attach(sandboxId: string, nsPath: string, opts: AttachOptions): Promise<void> {
    return this.serialize(sandboxId, () => this.doAttach(sandboxId, nsPath, opts));
  }

  /** Runs attach/detach of one sandbox one after the other, in call order. */
  private serialize<T>(sandboxId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queue.get(sandboxId) ?? Promise.resolve();
    const next = prev.then(fn);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.queue.set(sandboxId, tail);
    void tail.then(() => {
      if (this.queue.get(sandboxId) === tail) this.queue.delete(sandboxId);
    });
    return next;
  }

  private async doAttach(sandboxId: string, nsPath: string, opts: AttachOptions): Promise<void> {
    if (this.closed) throw new BpfnetError('E_UNAVAILABLE', 'the DNS server is closed; create a new one', { sandboxId });
    const cur = this.sandboxes.get(sandboxId);
    if (cur && cur.nsPath === nsPath) {
      cur.opts = copyOpts(opts);
      return;
    }
    if (cur) await this.doDetach(sandboxId);

    let ref: Attached | undefined;
    // adoptUdp/adoptTcp own the fd they are given (and close it when they fail).
    const udp = await adoptUdp(listenInNetns(nsPath, 'udp', this.address, this.port));
    let tcp: net.Server;
    try {
      // Connections accepted before the record below exists are closed (the client retries).
      tcp = await adoptTcp(listenInNetns(nsPath, 'tcp', this.address, this.port), (c) => (ref ? this.onConnection(ref, c) : c.destroy()), { allowHalfOpen: true });
    } catch (e) {
      udp.close();
      throw e;
    }
    const conns = new Set<net.Socket>();
    const abort = new AbortController();
    setMaxListeners(0, abort.signal); // one listener per forwarded query in flight
    const sb: Attached = { sandboxId, nsPath, opts: copyOpts(opts), udp, tcp, conns, inflight: 0, counters: zero(), abort, lastWarn: 0 };
    ref = sb;
    udp.on('message', (msg, rinfo) => this.onDatagram(sb, msg, rinfo));
    udp.on('error', (e) => this.log.warn({ sandboxId, err: e.message }, 'dns: udp socket error'));
    tcp.on('error', (e) => this.log.warn({ sandboxId, err: e.message }, 'dns: tcp server error'));
    this.sandboxes.set(sandboxId, sb);
    this.log.debug({ sandboxId, nsPath, internal: opts.internal }, 'dns: attached');
  }

  /** Stops serving a sandbox (sockets closed, its forwarded queries abandoned). Not attached is fine. */
  detach(sandboxId: string): Promise<void> {
    return this.serialize(sandboxId, () => this.doDetach(sandboxId));
  }

  private async doDetach(sandboxId: string): Promise<void> {
    const sb = this.sandboxes.get(sandboxId);
    if (!sb) return;
    this.sandboxes.delete(sandboxId);
    sb.abort.abort();
    for (const c of sb.conns) c.destroy();
    sb.conns.clear();
    const closing = new Promise<void>((resolve) => sb.tcp.close(() => resolve()));
    try {
      sb.udp.close();
    } catch {
      /* closed already */
    }
    await closing;
    for (const k of Object.keys(this.retired) as (keyof DnsCounters)[]) this.retired[k] += sb.counters[k];
    this.log.debug({ sandboxId }, 'dns: detached');
  }

  /** Detaches every sandbox; the server cannot be used afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.queue.values()]);
    await Promise.all([...this.sandboxes.keys()].map((id) => this.doDetach(id)));
  }

  isAttached(sandboxId: string): boolean {
    return this.sandboxes.has(sandboxId);
  }

  stats(): DnsStats {
    const totals = { ...this.retired };
    const sandboxes: DnsSandboxStats[] = [];
    for (const sb of this.sandboxes.values()) {
      for (const k of Object.keys(totals) as (keyof DnsCounters)[]) totals[k] += sb.counters[k];
      sandboxes.push({ sandboxId: sb.sandboxId, nsPath: sb.nsPath, internal: sb.opts.internal, inflight: sb.inflight, tcpConnections: sb.conns.size, ...sb.counters });
    }
    return { attached: this.sandboxes.size, totals, sandboxes };
  }

  // ---------- transports ----------

  private onDatagram(sb: Attached, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    sb.counters.udp++;
    void this.answer(sb, msg, { kind: 'udp' }).then((reply) => {
      if (!reply || sb.abort.signal.aborted) return;
      sb.udp.send(reply, rinfo.port, rinfo.address, (e) => {
        if (e) this.log.debug({ sandboxId: sb.sandboxId, err: e.message }, 'dns: udp send failed');
      });
    });
  }

  private onConnection(sb: Attached, c: net.Socket): void {
    c.on('error', () => undefined);
    if (sb.abort.signal.aborted) {
      c.destroy();
      return;
    }
    if (sb.conns.size >= this.maxConns) {
      sb.counters.tcpRejected++;
      c.destroy();
      return;
    }
    sb.conns.add(c);
    c.on('close', () => sb.conns.delete(c));
    c.setNoDelay(true);
    // Answers go out as they complete (RFC 7766 pipelining); a client that
    // half-closes after its queries still gets them, then the connection ends.
    let pending = 0;
    let ended = false;
    const maybeEnd = (): void => {
      if (ended && pending === 0 && !c.destroyed) c.end();
    };
    c.setTimeout(this.idleMs, () => {
      if (pending === 0) c.destroy();
    });
    c.on('end', () => {
      ended = true;
      maybeEnd();
    });
    let buf: Buffer = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) break;
        const msg = Buffer.from(buf.subarray(2, 2 + n));
        buf = buf.subarray(2 + n);
        sb.counters.tcp++;
        pending++;
        void this.answer(sb, msg, { kind: 'tcp' }).then((reply) => {
          pending--;
          if (reply && !c.destroyed && c.writable) {
            const len = Buffer.alloc(2);
            len.writeUInt16BE(reply.length);
            c.write(Buffer.concat([len, reply]));
          }
          maybeEnd();
        });
      }
    });
  }

  // ---------- queries ----------

  /** The reply to one message (undefined: no reply). Never throws. */
  private async answer(sb: Attached, msg: Buffer, tr: Transport): Promise<Buffer | undefined> {
    sb.counters.queries++;
    try {
      return await this.resolve(sb, msg, tr);
    } catch (e) {
      this.log.warn({ sandboxId: sb.sandboxId, err: e instanceof Error ? e.message : String(e) }, 'dns: query failed');
      if (msg.length < 4) return undefined;
      return rcodeResponse(msg.readUInt16BE(0), msg.readUInt16BE(2), RCODE.SERVFAIL);
    }
  }

  private async resolve(sb: Attached, msg: Buffer, tr: Transport): Promise<Buffer | undefined> {
    const parsed = parseQuery(msg);
    if (!parsed.ok) {
      if (parsed.isResponse || parsed.id === undefined) {
        sb.counters.dropped++;
        return undefined;
      }
      sb.counters.formerr++;
      this.log.debug({ sandboxId: sb.sandboxId, err: parsed.error }, 'dns: malformed query');
      return rcodeResponse(parsed.id, parsed.flags ?? 0, RCODE.FORMERR);
    }
    const q = parsed.query;
    if (q.opcode !== 0) return this.fail(sb, q, RCODE.NOTIMP);
    if (!q.question) return this.fail(sb, q, RCODE.FORMERR);
    const limit = tr.kind === 'udp' ? (q.ednsPayload ?? UDP_MIN_PAYLOAD) : 65535;

    const local = this.localAnswer(sb, q);
    if (local) {
      sb.counters.local++;
      const { buf, truncated } = encodeFitting(answerResponse(q, local), limit);
      if (truncated) sb.counters.truncated++;
      return buf;
    }

    const { name, type } = q.question;
    if (!sb.opts.internal && sb.opts.ndotsSet && (type === 'A' || type === 'AAAA') && !normalizeName(name).includes('.')) {
      // Docker: with ndots set by the user, a single-label name is not sent out; the client moves on to its search domains.
      sb.counters.local++;
      return encodeFitting(answerResponse(q, []), limit).buf;
    }
    if (sb.opts.internal) {
      sb.counters.internalRefused++;
      return rcodeResponse(q.id, q.flags, RCODE.SERVFAIL, q.question);
    }
    if (sb.inflight >= this.maxInflight) {
      sb.counters.overLimit++;
      const now = Date.now();
      if (now - sb.lastWarn >= WARN_EVERY_MS) {
        sb.lastWarn = now;
        this.log.warn({ sandboxId: sb.sandboxId, limit: this.maxInflight, overLimit: sb.counters.overLimit }, 'dns: too many forwarded queries in flight for this sandbox; answering SERVFAIL');
      }
      return rcodeResponse(q.id, q.flags, RCODE.SERVFAIL, q.question);
    }

    sb.inflight++;
    let result;
    try {
      result = await forward({
        query: msg,
        upstreams: sb.opts.upstreams ?? this.upstreams,
        tcp: tr.kind === 'tcp',
        udpLimit: limit,
        timeoutMs: this.timeoutMs,
        signal: sb.abort.signal,
      });
    } finally {
      sb.inflight--;
    }
    if (!result.response) {
      sb.counters.upstreamFailed++;
      this.log.debug({ sandboxId: sb.sandboxId, name, type, attempts: result.attempts }, 'dns: no upstream answered');
      return rcodeResponse(q.id, q.flags, RCODE.SERVFAIL, q.question);
    }
    sb.counters.forwarded++;
    if (tr.kind === 'tcp') return result.response;
    const fit = fitRaw(result.response, limit);
    if (fit.truncated) sb.counters.truncated++;
    return fit.buf;
  }

  private fail(sb: Attached, q: ParsedQuery, rcode: Rcode): Buffer {
    if (rcode === RCODE.FORMERR) sb.counters.formerr++;
    if (rcode === RCODE.NOTIMP) sb.counters.notimp++;
    return rcodeResponse(q.id, q.flags, rcode, q.question);
  }

  /** Records from the registry, [] for NODATA, undefined when the registry does not know the name. */
  private localAnswer(sb: Attached, q: ParsedQuery): Answer[] | undefined {
    const question = q.question;
    if (!question || (question.class !== undefined && question.class !== 'IN')) return undefined;
    const { name, type } = question;
    switch (type) {
      case 'A': {
        const ips = this.registry.lookupA(sb.sandboxId, name);
        if (ips.length === 0) return undefined;
        return shuffle(ips).map((ip) => ({ type: 'A', name, class: 'IN', ttl: this.ttl, data: ip }));
      }
      case 'AAAA':
      case 'MX':
        return this.registry.lookupA(sb.sandboxId, name).length > 0 ? [] : undefined;
      case 'PTR': {
        const ip = reverseToIpv4(name);
        const host = ip === undefined ? undefined : this.registry.lookupPtr(sb.sandboxId, ip);
        if (host === undefined || !encodableName(host)) return undefined;
        return [{ type: 'PTR', name, class: 'IN', ttl: this.ttl, data: `${host}.` }];
      }
      default:
        return undefined;
    }
  }
}

function copyOpts(o: AttachOptions): AttachOptions {
  return {
    internal: o.internal,
    ...(o.upstreams ? { upstreams: o.upstreams.slice(0, MAX_UPSTREAMS).map((u) => ({ addr: u.addr, port: u.port ?? 53 })) } : {}),
    ...(o.ndotsSet !== undefined ? { ndotsSet: o.ndotsSet } : {}),
  };
}
