/**
 * Forwarding to the upstream nameservers (the node's resolv.conf servers,
 * or a sandbox's --dns), like moby's Resolver.forwardExtDNS:
 *
 * - at most 3 servers, tried in order, each with its own timeout (4 s);
 * - a server that times out, cannot be reached, answers garbage, SERVFAIL
 *   or REFUSED is skipped for the next one; when none answers the caller
 *   gets nothing (the server then says SERVFAIL);
 * - a query that came over TCP goes over TCP; one that came over UDP goes
 *   over UDP, and is asked again over TCP when the server truncated its
 *   answer but the client accepts larger UDP answers (EDNS) than the server
 *   sent; otherwise the truncated answer is passed on (the client retries
 *   over TCP, which is forwarded over TCP).
 *
 * Every query gets its own socket (fresh source port) and a random id,
 * and a reply counts only when it comes from the server asked, carries that
 * id and the same question: spoofed or stray datagrams are ignored. Sockets
 * live in this process's network namespace, so loopback upstreams such as
 * systemd-resolved's 127.0.0.53 work as they do for the node itself.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import type { Question } from 'dns-packet';
import { firstQuestion, RCODE, replyHeader, sameQuestion, splitTcpFrames, tcpFrame, UDP_MIN_PAYLOAD, withId } from './message.js';

export interface Upstream {
  addr: string;
  /** Default 53. */
  port?: number;
}

/** Docker's limit on external servers. */
export const MAX_UPSTREAMS = 3;
/** Docker's per-server timeout (extIOTimeout). */
export const UPSTREAM_TIMEOUT_MS = 4000;

export interface ForwardRequest {
  /** The client's query, raw (its id is restored in the reply). */
  query: Buffer;
  upstreams: readonly Upstream[];
  /** The client came over TCP. */
  tcp: boolean;
  /** For UDP clients: the largest answer they accept (512, or their EDNS size). */
  udpLimit?: number;
  timeoutMs?: number;
  /** Aborts every exchange at once (detach, close). */
  signal?: AbortSignal;
  /** The query's single question when the caller decoded it already (else it is read from query). */
  question?: Question;
}

export interface Attempt {
  upstream: string;
  proto: 'udp' | 'tcp';
  /** ok, or why the next server was tried. */
  outcome: 'ok' | 'timeout' | 'error' | 'servfail' | 'refused' | 'bad-reply' | 'aborted' | 'truncated';
  error?: string;
  ms: number;
}

export interface ForwardResult {
  /** The reply with the client's id, or undefined when no server answered usefully. */
  response: Buffer | undefined;
  attempts: Attempt[];
}

function label(u: Upstream): string {
  const port = u.port ?? 53;
  return net.isIPv6(u.addr) ? `[${u.addr}]:${port}` : `${u.addr}:${port}`;
}

class ExchangeError extends Error {
  constructor(
    readonly outcome: Attempt['outcome'],
    message: string,
  ) {
    super(message);
  }
}

/** Forwards one query; never throws. */
export async function forward(req: ForwardRequest): Promise<ForwardResult> {
  const attempts: Attempt[] = [];
  if (req.query.length < 12) return { response: undefined, attempts };
  const clientId = req.query.readUInt16BE(0);
  const question = req.question ?? firstQuestion(req.query);
  const timeoutMs = req.timeoutMs ?? UPSTREAM_TIMEOUT_MS;
  for (const u of req.upstreams.slice(0, MAX_UPSTREAMS)) {
    if (req.signal?.aborted) break;
    const id = randomInt(0, 0x10000);
    const query = withId(req.query, id);
    const expect = { id, question };
    let proto: 'udp' | 'tcp' = req.tcp ? 'tcp' : 'udp';
    const t0 = performance.now();
    try {
      let reply = await (proto === 'tcp' ? tcpExchange(u, query, expect, timeoutMs, req.signal) : udpExchange(u, query, expect, timeoutMs, req.signal));
      let h = replyHeader(reply);
      const limit = req.udpLimit ?? UDP_MIN_PAYLOAD;
      if (proto === 'udp' && h?.truncated && limit > UDP_MIN_PAYLOAD && limit > reply.length) {
        // The server's UDP limit is below the client's EDNS size: ask it again over TCP. (Without
        // EDNS the server truncated at 512 bytes already, and the client retries over TCP itself.)
        attempts.push({ upstream: label(u), proto, outcome: 'truncated', ms: performance.now() - t0 });
        proto = 'tcp';
        try {
          reply = await tcpExchange(u, query, expect, timeoutMs, req.signal);
          h = replyHeader(reply);
        } catch (e) {
          // Keep the truncated answer: the client can still retry over TCP itself.
          const x = e instanceof ExchangeError ? e : new ExchangeError('error', String(e));
          attempts.push({ upstream: label(u), proto, outcome: x.outcome, error: x.message, ms: performance.now() - t0 });
          return { response: withId(reply, clientId), attempts };
        }
      }
      if (h?.rcode === RCODE.SERVFAIL || h?.rcode === RCODE.REFUSED) {
        attempts.push({ upstream: label(u), proto, outcome: h.rcode === RCODE.SERVFAIL ? 'servfail' : 'refused', ms: performance.now() - t0 });
        continue;
      }
      attempts.push({ upstream: label(u), proto, outcome: 'ok', ms: performance.now() - t0 });
      return { response: withId(reply, clientId), attempts };
    } catch (e) {
      const x = e instanceof ExchangeError ? e : new ExchangeError('error', e instanceof Error ? e.message : String(e));
      attempts.push({ upstream: label(u), proto, outcome: x.outcome, error: x.message, ms: performance.now() - t0 });
    }
  }
  return { response: undefined, attempts };
}

interface Expect {
  id: number;
  question: Question | undefined;
}

/** Whether buf is the reply to the query we sent (id, QR, same question). */
function matches(buf: Buffer, expect: Expect): boolean {
  const h = replyHeader(buf);
  if (!h || !h.isResponse || h.id !== expect.id) return false;
  if (!expect.question) return true;
  const q = firstQuestion(buf);
  // A reply without a question section (some FORMERR/SERVFAIL/REFUSED replies) is accepted by its id alone.
  return q === undefined ? buf.readUInt16BE(4) === 0 : sameQuestion(q, expect.question);
}

/** Runs fn with a timeout and the abort signal; cleanup always runs. */
function exchange(timeoutMs: number, signal: AbortSignal | undefined, fn: (done: (err: ExchangeError | null, reply?: Buffer) => void) => () => void): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new ExchangeError('aborted', 'aborted'));
      return;
    }
    let cleanup: () => void = () => undefined;
    let finished = false;
    const finish = (err: ExchangeError | null, reply?: Buffer): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      cleanup();
      if (err) reject(err);
      else resolve(reply as Buffer);
    };
    const onAbort = (): void => finish(new ExchangeError('aborted', 'aborted'));
    const timer = setTimeout(() => finish(new ExchangeError('timeout', `no answer in ${timeoutMs} ms`)), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    cleanup = fn(finish);
    if (finished) cleanup();
  });
}

function udpExchange(u: Upstream, query: Buffer, expect: Expect, timeoutMs: number, signal?: AbortSignal): Promise<Buffer> {
  return exchange(timeoutMs, signal, (done) => {
    const sock = dgram.createSocket(net.isIPv6(u.addr) ? 'udp6' : 'udp4');
    sock.on('error', (e: NodeJS.ErrnoException) => done(new ExchangeError('error', e.code ?? e.message)));
    sock.on('message', (msg) => {
      // connect() already filters the source address and port.
      if (matches(msg, expect)) done(null, msg);
    });
    // A connected socket also learns about ICMP port unreachable (ECONNREFUSED): a dead server fails at once.
    sock.connect(u.port ?? 53, u.addr, () => {
      sock.send(query, (e) => {
        if (e) done(new ExchangeError('error', (e as NodeJS.ErrnoException).code ?? e.message));
      });
    });
    return () => {
      try {
        sock.close();
      } catch {
        /* closed already */
      }
    };
  });
}

function tcpExchange(u: Upstream, query: Buffer, expect: Expect, timeoutMs: number, signal?: AbortSignal): Promise<Buffer> {
  return exchange(timeoutMs, signal, (done) => {
    const sock = net.connect({ host: u.addr, port: u.port ?? 53 });
    let buf: Buffer = Buffer.alloc(0);
    sock.on('error', (e: NodeJS.ErrnoException) => done(new ExchangeError('error', e.code ?? e.message)));
    sock.on('connect', () => sock.write(tcpFrame(query)));
    sock.on('data', (chunk: Buffer) => {
      const { messages, rest } = splitTcpFrames(buf.length === 0 ? chunk : Buffer.concat([buf, chunk]));
      const reply = messages.find((m) => matches(m, expect));
      if (reply) {
        done(null, Buffer.from(reply));
        return;
      }
      // What is left is less than one frame (its 2-byte length caps it at 64 KiB).
      buf = rest;
    });
    sock.on('end', () => done(new ExchangeError('bad-reply', 'connection closed before the answer')));
    return () => sock.destroy();
  });
}
