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
 * Like Docker, the sockets are not bound to port 53, which stays free for
 * the sandbox's own servers (0.0.0.0:53 in a container must work): UDP binds
 * 127.0.0.11:0 (the kernel picks the port) and TCP the same port number
 * (another pick when that is taken), and a redirect inside the sandbox's
 * netns maps 127.0.0.11:53 to that port and back (redirect.ts: a tc program
 * on the sandbox's lo by default; Docker's iptables rules or an nftables
 * table for the fallback dataplanes).
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
import { answerResponse, encodableName, encodeFitting, fitRaw, parseQuery, RCODE, rcodeResponse, shuffle, splitTcpFrames, tcpFrame, UDP_MIN_PAYLOAD, type ParsedQuery, type Rcode } from './message.js';
import { forward, MAX_UPSTREAMS, UPSTREAM_TIMEOUT_MS, type Upstream } from './upstream.js';
import { createRedirect, type Redirect, type RedirectMode } from './redirect.js';
import { netnsCookie } from '../netlink/index.js';

export type { Upstream };

/** Docker's TTL for its own records (respTTL). */
export const DNS_TTL = 600;
/** Docker's limit of concurrent forwarded queries (maxConcurrent), here per sandbox. */
export const MAX_INFLIGHT = 100;
const MAX_TCP_CONNECTIONS = 64;
/** Kernel-chosen UDP ports tried before giving up when TCP cannot have the same number. */
const MAX_BIND_ATTEMPTS = 8;
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
  /**
   * How 127.0.0.11:53 reaches the server's port inside a sandbox: 'ebpf'
   * (default; a tc program on the sandbox's lo), 'iptables' (Docker's
   * rules), 'nftables', or 'none' (nothing: the sockets are bound to `port`
   * itself, 53 by default).
   */
  redirect?: RedirectMode;
  /** bpffs root for redirect 'ebpf' (program pins and bpfnet_dns); default /sys/fs/bpf/bpfnet. */
  bpffsRoot?: string;
  /**
   * The port the sockets bind to inside each sandbox: default 0, a port the
   * kernel picks per sandbox (53 is redirected to it); with redirect 'none'
   * default 53.
   */
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
  /** The port the server's UDP and TCP sockets have on 127.0.0.11 in the sandbox. */
  port: number;
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

/** At most MAX_UPSTREAMS, each with its port. */
function normalizeUpstreams(upstreams: readonly Upstream[]): Upstream[] {
  return upstreams.slice(0, MAX_UPSTREAMS).map((u) => ({ addr: u.addr, port: u.port ?? 53 }));
}

function zero(): DnsCounters {
  return { queries: 0, udp: 0, tcp: 0, local: 0, forwarded: 0, upstreamFailed: 0, internalRefused: 0, overLimit: 0, formerr: 0, notimp: 0, dropped: 0, truncated: 0, tcpRejected: 0 };
}

interface Attached {
  sandboxId: string;
  nsPath: string;
  cookie: bigint;
  port: number;
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
  private redirect: Redirect;
  private readonly timeoutMs: number;
  private readonly maxInflight: number;
  private readonly maxConns: number;
  private readonly idleMs: number;
  private readonly ttl: number;
  private readonly sandboxes = new Map<string, Attached>();
  /** The last attach/detach queued per sandbox (they run one at a time, in call order). */
  private readonly queue = new Map<string, Promise<void>>();
  /** Netns cookies of attached sandboxes (and of attaches in progress): one server per netns. */
  private readonly cookies = new Map<bigint, string>();
  /** Counters of detached sandboxes, so totals never go backwards. */
  private readonly retired = zero();
  private closed = false;
  /** The redirect's warnings (problems that do not fail an attach), logged. */
  private readonly warnRedirect = (msg: string, details: Record<string, unknown>): void => this.log.warn(details, `dns: ${msg}`);

  constructor(opts: DnsServerOptions) {
    this.registry = opts.registry;
    this.upstreams = normalizeUpstreams(opts.upstreams);
    this.address = opts.address ?? INTERNAL_NAMESERVER;
    const mode = opts.redirect ?? 'ebpf';
    this.log = opts.logger.child({ component: 'dns' });
    this.redirect = createRedirect(mode, { ...(opts.bpffsRoot !== undefined ? { bpffsRoot: opts.bpffsRoot } : {}), warn: this.warnRedirect });
    this.port = opts.port ?? (mode === 'none' ? 53 : 0);
    this.timeoutMs = opts.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS;
    this.maxInflight = opts.maxInflightPerSandbox ?? MAX_INFLIGHT;
    this.maxConns = opts.maxTcpConnectionsPerSandbox ?? MAX_TCP_CONNECTIONS;
    this.idleMs = opts.tcpIdleTimeoutMs ?? TCP_IDLE_MS;
    this.ttl = opts.ttl ?? DNS_TTL;
  }

  /** Replaces the node's upstreams (resolv.conf changed); queries in flight keep theirs. */
  setUpstreams(upstreams: readonly Upstream[]): void {
    this.upstreams = normalizeUpstreams(upstreams);
  }

  /** How 127.0.0.11:53 reaches the server inside sandboxes. */
  get redirectMode(): RedirectMode {
    return this.redirect.mode;
  }

  /**
   * Serves the sandbox whose netns is at nsPath (its lo must be up for
   * clients to reach 127.0.0.11): binds the sockets there, then installs the
   * redirect from 53. Attaching an attached sandbox again with the same
   * nsPath only updates opts; with another nsPath it re-attaches. The
   * sockets hold a reference to the netns: detach before deleting it.
   * E_NETNS when the netns cannot be entered, E_CONFLICT when this server
   * serves that netns for another sandbox already (or, with a fixed port,
   * something else holds it there).
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
    if (cur && cur.nsPath === nsPath && sameNetns(cur)) {
      cur.opts = copyOpts(opts);
      return;
    }
    if (cur) await this.doDetach(sandboxId);

    let cookie: bigint;
    try {
      cookie = netnsCookie(nsPath);
    } catch (e) {
      throw new BpfnetError('E_NETNS', `embedded DNS: cannot enter netns ${nsPath}: ${e instanceof Error ? e.message : String(e)}`, { sandboxId, nsPath });
    }
    const owner = this.cookies.get(cookie);
    if (owner !== undefined) {
      throw new BpfnetError('E_CONFLICT', `embedded DNS: netns ${nsPath} is served for sandbox ${owner} already`, { sandboxId, nsPath, owner });
    }
    this.cookies.set(cookie, sandboxId);
    try {
      await this.bindAndRedirect(sandboxId, nsPath, cookie, opts);
    } catch (e) {
      if (this.cookies.get(cookie) === sandboxId && !this.sandboxes.has(sandboxId)) this.cookies.delete(cookie);
      throw e;
    }
  }

  /**
   * UDP first on the configured port (0: the kernel's pick), then TCP on the
   * same number; when TCP cannot have it (a sandbox socket holds it),
   * another pick, a few times. UDP sockets whose port TCP could not have are
   * held until the end, so the kernel never picks their port again.
   */
  private async bindPair(nsPath: string, cookie: bigint, onConnection: (c: net.Socket) => void): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
    const attempts = this.port === 0 ? MAX_BIND_ATTEMPTS : 1;
    // The port of an earlier agent's redirect here, when still free: its clients' translations stay valid.
    let previous = this.port === 0 ? await this.redirect.previousPort({ nsPath, cookie, addr: this.address }).catch(() => undefined) : undefined;
    const refused: dgram.Socket[] = [];
    try {
      for (let i = 0; ; i++) {
        let udp: dgram.Socket;
        // adoptUdp/adoptTcp own the fd they are given (and close it when they fail).
        if (previous !== undefined) {
          const want = previous;
          previous = undefined;
          try {
            udp = await adoptUdp(listenInNetns(nsPath, 'udp', this.address, want));
          } catch {
            udp = await adoptUdp(listenInNetns(nsPath, 'udp', this.address, 0));
          }
        } else {
          udp = await adoptUdp(listenInNetns(nsPath, 'udp', this.address, this.port));
        }
        const port = udp.address().port;
        try {
          const tcp = await adoptTcp(listenInNetns(nsPath, 'tcp', this.address, port), onConnection, { allowHalfOpen: true });
          return { udp, tcp, port };
        } catch (e) {
          refused.push(udp);
          if (!(e instanceof BpfnetError && e.code === 'E_CONFLICT') || i + 1 >= attempts) throw e;
          this.log.debug({ nsPath, port }, 'dns: tcp port taken in the sandbox, picking another');
        }
      }
    } finally {
      for (const u of refused) u.close();
    }
  }

  private async bindAndRedirect(sandboxId: string, nsPath: string, cookie: bigint, opts: AttachOptions): Promise<void> {
    let ref: Attached | undefined;
    // Connections accepted before the record below exists are closed (the client retries).
    const { udp, tcp, port } = await this.bindPair(nsPath, cookie, (c) => (ref ? this.onConnection(ref, c) : c.destroy()));
    const closeSockets = (): void => {
      udp.close();
      tcp.close();
    };
    try {
      await this.installRedirect({ nsPath, cookie, addr: this.address, port });
    } catch (e) {
      closeSockets();
      throw e;
    }
    const conns = new Set<net.Socket>();
    const abort = new AbortController();
    setMaxListeners(0, abort.signal); // one listener per forwarded query in flight
    const sb: Attached = { sandboxId, nsPath, cookie, port, opts: copyOpts(opts), udp, tcp, conns, inflight: 0, counters: zero(), abort, lastWarn: 0 };
    ref = sb;
    udp.on('message', (msg, rinfo) => this.onDatagram(sb, msg, rinfo));
    udp.on('error', (e) => this.log.warn({ sandboxId, err: e.message }, 'dns: udp socket error'));
    tcp.on('error', (e) => this.log.warn({ sandboxId, err: e.message }, 'dns: tcp server error'));
    this.sandboxes.set(sandboxId, sb);
    this.log.debug({ sandboxId, nsPath, port, redirect: this.redirect.mode, internal: opts.internal }, 'dns: attached');
  }

  /**
   * The kernel refusing the loopback program (bpf_get_netns_cookie is
   * allowed for tc programs from Linux 6.14 on) switches this server to
   * Docker's iptables rules, once, with a warning, rather than leaving every
   * sandbox without names.
   */
  private async installRedirect(t: { nsPath: string; cookie: bigint; addr: string; port: number }): Promise<void> {
    try {
      await this.redirect.install(t);
    } catch (e) {
      if (this.redirect.mode !== 'ebpf' || !(e instanceof BpfnetError && e.code === 'E_VERIFIER')) throw e;
      this.log.warn({ err: e.message }, 'dns: the kernel refused the sandbox loopback program (bpf_get_netns_cookie in tc needs Linux 6.14); redirecting 127.0.0.11:53 with iptables rules in the sandboxes instead');
      this.redirect.close();
      this.redirect = createRedirect('iptables', { warn: this.warnRedirect });
      await this.redirect.install(t);
    }
  }

  /** Stops serving a sandbox (sockets closed, its forwarded queries abandoned). Not attached is fine. */
  detach(sandboxId: string): Promise<void> {
    return this.serialize(sandboxId, () => this.doDetach(sandboxId));
  }

  private async doDetach(sandboxId: string, removeRedirect = true): Promise<void> {
    const sb = this.sandboxes.get(sandboxId);
    if (!sb) return;
    this.sandboxes.delete(sandboxId);
    if (this.cookies.get(sb.cookie) === sandboxId) this.cookies.delete(sb.cookie);
    sb.abort.abort();
    // The redirect before the sockets: 53 then never leads to a port someone else may bind meanwhile.
    if (removeRedirect) {
      try {
        await this.redirect.remove({ nsPath: sb.nsPath, cookie: sb.cookie, addr: this.address, port: sb.port });
      } catch (e) {
        this.log.warn({ sandboxId, nsPath: sb.nsPath, err: e instanceof Error ? e.message : String(e) }, 'dns: removing the redirect failed');
      }
    }
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

  /**
   * Detaches every sandbox; the server cannot be used afterwards. With
   * leaveRedirects (an agent stopping), the redirects stay in the sandboxes:
   * until a new server attaches there (on the same port when it is still
   * free), 127.0.0.11:53 leads to a closed port (the client fails at once)
   * rather than to whatever the sandbox has on 0.0.0.0:53.
   */
  async close(opts: { leaveRedirects?: boolean } = {}): Promise<void> {
    this.closed = true;
    await Promise.all([...this.queue.values()]);
    await Promise.all([...this.sandboxes.keys()].map((id) => this.doDetach(id, !opts.leaveRedirects)));
    this.redirect.close();
  }

  /**
   * Removes redirect state kept outside sandboxes (ebpf: bpfnet_dns entries)
   * for namespaces this server does not serve: those of sandboxes removed
   * while no agent ran. Call after every sandbox has been attached (after
   * reconcile). Returns how many entries went.
   */
  async pruneRedirects(): Promise<number> {
    await Promise.all([...this.queue.values()]);
    return this.redirect.prune(new Set(this.cookies.keys()));
  }

  isAttached(sandboxId: string): boolean {
    return this.sandboxes.has(sandboxId);
  }

  /** The port the sandbox's resolver sockets are bound to (127.0.0.11:port in its netns), undefined when not attached. */
  portOf(sandboxId: string): number | undefined {
    return this.sandboxes.get(sandboxId)?.port;
  }

  stats(): DnsStats {
    const totals = { ...this.retired };
    const sandboxes: DnsSandboxStats[] = [];
    for (const sb of this.sandboxes.values()) {
      for (const k of Object.keys(totals) as (keyof DnsCounters)[]) totals[k] += sb.counters[k];
      sandboxes.push({ sandboxId: sb.sandboxId, nsPath: sb.nsPath, port: sb.port, internal: sb.opts.internal, inflight: sb.inflight, tcpConnections: sb.conns.size, ...sb.counters });
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
      const { messages, rest } = splitTcpFrames(buf.length === 0 ? chunk : Buffer.concat([buf, chunk]));
      buf = rest;
      for (const msg of messages) {
        sb.counters.tcp++;
        pending++;
        void this.answer(sb, Buffer.from(msg), { kind: 'tcp' }).then((reply) => {
          pending--;
          if (reply && !c.destroyed && c.writable) c.write(tcpFrame(reply));
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
        question: q.question,
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

/** The netns at the sandbox's path is still the one served (not recreated there); unknown (cannot enter) counts as the same. */
function sameNetns(sb: Attached): boolean {
  try {
    return netnsCookie(sb.nsPath) === sb.cookie;
  } catch {
    return true;
  }
}

function copyOpts(o: AttachOptions): AttachOptions {
  return {
    internal: o.internal,
    ...(o.upstreams ? { upstreams: normalizeUpstreams(o.upstreams) } : {}),
    ...(o.ndotsSet !== undefined ? { ndotsSet: o.ndotsSet } : {}),
  };
}
