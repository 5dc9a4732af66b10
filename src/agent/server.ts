/**
 * The agent's unix socket: root-only (0600), one request frame in, one
 * response frame out, matched by id. Handlers run one at a time (the agent
 * is a single writer of kernel state and store), so a request never sees
 * another half-applied.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { chmodSync, mkdirSync, unlinkSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { BpfnetError } from '../util/errors.js';
import { decode, encode } from '../api/schema.js';
import { FrameReader, frame } from '../api/transport.js';
import { METHODS, isMethod, type Method, type Req, type Res } from '../api/methods.js';

export type Handlers = { [M in Method]: (req: Req<M>, ctx: CallContext) => Promise<Res<M>> | Res<M> };

export interface CallContext {
  warn(msg: string): void;
}

/** Resolves when nothing is listening on path (a stale socket from a crash). */
function probeStale(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

export class ApiServer {
  private server: Server | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly path: string,
    private readonly handlers: Handlers,
    private readonly log: Logger,
  ) {}

  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    if (existsSync(this.path)) {
      if (!(await probeStale(this.path))) {
        throw new BpfnetError('E_CONFLICT', `another agent is already listening on ${this.path}; stop it or pass another --host`);
      }
      unlinkSync(this.path);
    }
    const server = createServer((sock) => this.onConnection(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  private onConnection(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => undefined);
    const reader = new FrameReader();
    sock.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'bad frame; closing connection');
        sock.destroy();
        return;
      }
      for (const f of frames) {
        // Serialise: every call runs after the previous one finished.
        this.queue = this.queue.then(() => this.dispatch(f)).then((out) => {
          if (!sock.destroyed) sock.write(frame(out));
        });
      }
    });
  }

  private async dispatch(f: Buffer): Promise<Uint8Array> {
    let id = 0;
    const warnings: string[] = [];
    const started = process.hrtime.bigint();
    let method = '?';
    try {
      const req = decode('Request', f);
      id = req.id;
      method = req.method;
      if (!isMethod(req.method)) {
        throw new BpfnetError('E_INVALID_ARGUMENT', `unknown method "${req.method}"; this agent serves: ${Object.keys(METHODS).join(', ')}`);
      }
      const spec = METHODS[req.method];
      const body = decode(spec.req, req.body);
      const handler = this.handlers[req.method] as (r: unknown, c: CallContext) => Promise<unknown>;
      const res = await handler(body, { warn: (m) => warnings.push(m) });
      const out = encode(spec.res, res as never);
      this.log.debug({ method, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'call');
      return encode('Response', { id, body: out, warnings });
    } catch (e) {
      const err =
        e instanceof BpfnetError ? e : new BpfnetError('E_COMMAND_FAILED', `internal error in ${method}: ${(e as Error).message}`, {}, { cause: e });
      const level = e instanceof BpfnetError ? 'info' : 'error';
      this.log[level]({ method, code: err.code, err: err.message, stack: e instanceof BpfnetError ? undefined : (e as Error).stack }, 'call failed');
      return encode('Response', { id, warnings, error: { code: err.code, message: err.message, detailsJson: JSON.stringify(err.details) } });
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      /* gone */
    }
  }
}
