/**
 * The CLI side of the agent API: one unix-socket connection, calls matched
 * to responses by id. The agent is found with --host or BPFNET_HOST
 * (unix:///path or a bare path), like DOCKER_HOST.
 */
import { connect, type Socket } from 'node:net';
import { BpfnetError, type ErrorCode } from '../util/errors.js';
import { decode, encode } from './schema.js';
import { FrameReader, frame } from './transport.js';
import { METHODS, type Method, type Req, type Res } from './methods.js';

export const DEFAULT_HOST = 'unix:///run/bpfnet/bpfnet.sock';

export function socketPath(host: string): string {
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  if (host.includes('://')) throw new BpfnetError('E_INVALID_ARGUMENT', `unsupported host "${host}": use unix:///path/to/bpfnet.sock`);
  return host;
}

export function resolveHost(flag?: string): string {
  return flag ?? process.env['BPFNET_HOST'] ?? DEFAULT_HOST;
}

export interface CallResult<M extends Method> {
  value: Res<M>;
  warnings: string[];
}

export class Client {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: { body: Uint8Array; warnings: string[] }) => void; reject: (e: Error) => void; method: string }>();
  private readonly reader = new FrameReader();

  private constructor(
    readonly host: string,
    private readonly sock: Socket,
  ) {
    sock.on('data', (chunk: Buffer) => {
      for (const f of this.reader.push(chunk)) this.onFrame(f);
    });
    const fail = (e: Error) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new BpfnetError('E_UNAVAILABLE', `the agent at ${host} closed the connection`)));
  }

  static async connect(host: string, timeoutMs = 5000): Promise<Client> {
    const path = socketPath(host);
    return new Promise((resolve, reject) => {
      const sock = connect(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new BpfnetError('E_UNAVAILABLE', `timed out connecting to the bpfnet agent at ${host}`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        resolve(new Client(host, sock));
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          new BpfnetError(
            'E_UNAVAILABLE',
            `cannot reach the bpfnet agent at ${host} (${e.code ?? e.message}): is \`bpfnet agent\` running? Point --host or BPFNET_HOST at its socket`,
            { host },
          ),
        );
      });
    });
  }

  private onFrame(f: Buffer): void {
    const res = decode('Response', f);
    const p = this.pending.get(res.id);
    if (!p) return;
    this.pending.delete(res.id);
    if (res.error && res.error.code) {
      let details: Record<string, unknown> = {};
      try {
        details = res.error.detailsJson ? (JSON.parse(res.error.detailsJson) as Record<string, unknown>) : {};
      } catch {
        /* keep empty */
      }
      p.reject(new BpfnetError(res.error.code as ErrorCode, res.error.message, details));
    } else p.resolve({ body: res.body, warnings: res.warnings });
  }

  async call<M extends Method>(method: M, req: Partial<Req<M>> = {}): Promise<CallResult<M>> {
    const spec = METHODS[method];
    const id = this.nextId++;
    const body = encode(spec.req, req as never);
    const out = await new Promise<{ body: Uint8Array; warnings: string[] }>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.sock.write(frame(encode('Request', { id, method, body })));
    });
    return { value: decode(spec.res, out.body) as Res<M>, warnings: out.warnings };
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }
}
