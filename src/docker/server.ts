/**
 * bpfnet as a Docker plugin: HTTP/1.1 on a unix socket in
 * /run/docker/plugins (the plugin's name is the socket's basename without
 * .sock), POST /<Interface>.<Method> with JSON, answered with
 * application/vnd.docker.plugins.v1.2+json. Runs inside the agent and talks
 * to it through its API socket like any client.
 *
 * Answers: 200 with the method's response object; a refused call is 200 with
 * the protocol's error object ({"Err": ...} for NetworkDriver, {"Error": ...}
 * for IpamDriver: the fields Docker's clients decode); an unknown method is
 * 404. Calls are served one at a time, in arrival order.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { Client } from '../api/client.js';
import type { Method, Req, Res } from '../api/methods.js';
import { BpfnetError } from '../util/errors.js';
import { SerialQueue } from '../util/serial.js';
import { CONTENT_TYPE } from './protocol.js';
import { networkHandlers, type AgentApi } from './network.js';
import { ipamHandlers } from './ipam.js';
import { PluginState } from './state.js';

export interface DockerPluginOptions {
  /** /run/docker/plugins/<name>.sock */
  socket: string;
  /** The agent's API (unix:///path). */
  agentHost: string;
  /** PluginState file (IPAM pools, endpoints). */
  stateFile: string;
  log: Logger;
}

const MAX_BODY = 1 << 20;

/** The agent API over its socket, reconnecting once when the connection dropped. */
class AgentClient implements AgentApi {
  private client: Client | undefined;
  constructor(readonly host: string) {}

  async call<M extends Method>(method: M, req: Partial<Req<M>>): Promise<Res<M>> {
    for (let attempt = 0; ; attempt++) {
      this.client ??= await Client.connect(this.host);
      try {
        return (await this.client.call(method, req)).value;
      } catch (e) {
        if (!(e instanceof BpfnetError && e.code === 'E_UNAVAILABLE') || attempt > 0) throw e;
        this.client.close();
        this.client = undefined;
      }
    }
  }

  close(): void {
    this.client?.close();
    this.client = undefined;
  }
}

function listening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export type Handler = (body: string) => Promise<Record<string, unknown>>;

export class DockerPluginServer {
  private readonly queue = new SerialQueue();
  private readonly routes: Map<string, { handler: Handler; errField: 'Err' | 'Error' }>;

  private constructor(
    readonly socket: string,
    private readonly server: Server,
    private readonly api: AgentClient,
    private readonly log: Logger,
    routes: Map<string, { handler: Handler; errField: 'Err' | 'Error' }>,
  ) {
    this.routes = routes;
  }

  /** The plugin name Docker knows it by (`-d NAME`, `--ipam-driver NAME`). */
  get name(): string {
    return basename(this.socket).replace(/\.sock$/, '');
  }

  static async start(o: DockerPluginOptions): Promise<DockerPluginServer> {
    if (!o.socket.endsWith('.sock')) throw new BpfnetError('E_INVALID_ARGUMENT', `--docker-plugin ${o.socket}: the socket must be named <plugin name>.sock (Docker derives the name from it), e.g. /run/docker/plugins/bpfnet.sock`);
    const state = PluginState.load(o.stateFile);
    const api = new AgentClient(o.agentHost);
    const log = o.log.child({ component: 'docker-plugin' });
    const routes = new Map<string, { handler: Handler; errField: 'Err' | 'Error' }>();
    routes.set('Plugin.Activate', { handler: async () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }), errField: 'Err' });
    for (const [m, h] of Object.entries(networkHandlers({ api, state, log }))) routes.set(`NetworkDriver.${m}`, { handler: h, errField: 'Err' });
    const ipam = ipamHandlers({
      state,
      networks: async () => (await api.call('NetworkList', {})).networks.flatMap((n) => (n.ipam?.subnet ? [{ subnet: n.ipam.subnet, name: n.name }] : [])),
    });
    for (const [m, h] of Object.entries(ipam)) routes.set(`IpamDriver.${m}`, { handler: h, errField: 'Error' });

    mkdirSync(dirname(o.socket), { recursive: true, mode: 0o755 });
    if (existsSync(o.socket)) {
      if (await listening(o.socket)) throw new BpfnetError('E_CONFLICT', `another process serves the Docker plugin socket ${o.socket}; stop it or pass another --docker-plugin path`);
      unlinkSync(o.socket);
    }
    let self: DockerPluginServer | undefined;
    const server = createServer((req, res) => void self!.onRequest(req, res));
    self = new DockerPluginServer(o.socket, server, api, log, routes);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.socket, () => resolve());
    });
    chmodSync(o.socket, 0o600);
    log.info({ socket: o.socket, name: self.name, state: o.stateFile }, 'docker plugin listening (NetworkDriver, IpamDriver)');
    return self;
  }

  private reply(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.url ?? '').replace(/^\//, '').split('?')[0]!;
    const route = this.routes.get(method);
    let body = '';
    let tooBig = false;
    req.setEncoding('utf8');
    for await (const chunk of req) {
      body += chunk as string;
      if (body.length > MAX_BODY) {
        tooBig = true;
        break;
      }
    }
    if (!route) {
      this.log.warn({ method, http: req.method }, 'docker plugin: unknown method');
      return this.reply(res, 404, { Err: `unknown method ${JSON.stringify(method)}: bpfnet serves Plugin.Activate, NetworkDriver.* and IpamDriver.*` });
    }
    if (req.method !== 'POST') return this.reply(res, 405, { [route.errField]: `${method} takes POST, not ${req.method}` });
    if (tooBig) return this.reply(res, 413, { [route.errField]: `${method}: request body over ${MAX_BODY} bytes` });
    try {
      const out = await this.queue.run(() => route.handler(body));
      this.log.debug({ method }, 'docker plugin call');
      this.reply(res, 200, out);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      this.log.warn({ method, err: msg, code: e instanceof BpfnetError ? e.code : undefined }, 'docker plugin call refused');
      this.reply(res, 200, { [route.errField]: msg });
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.api.close();
    try {
      unlinkSync(this.socket);
    } catch {
      /* gone already */
    }
  }
}

/** POST one plugin call on a unix socket (tests, `bpfnet doctor`-like probes): status and parsed body. */
export function pluginCall(socket: string, method: string, body: string | object | undefined): Promise<{ status: number; body: Record<string, unknown>; contentType: string }> {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath: socket, path: `/${method}`, method: 'POST', headers: { 'Content-Type': CONTENT_TYPE, Accept: CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: data ? (JSON.parse(data) as Record<string, unknown>) : {}, contentType: String(res.headers['content-type'] ?? '') });
        } catch (e) {
          reject(new Error(`plugin answered ${res.statusCode} with non-JSON: ${data.slice(0, 200)} (${(e as Error).message})`));
        }
      });
    });
    req.on('error', reject);
    req.end(text);
  });
}
