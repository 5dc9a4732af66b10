/** The agent's socket server with stub handlers: protocol errors, permissions, stale sockets. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ApiServer, type Handlers } from '../../src/agent/server.js';
import { Client } from '../../src/api/client.js';
import { encode, decode } from '../../src/api/schema.js';
import { frame, FrameReader } from '../../src/api/transport.js';
import { BpfnetError } from '../../src/util/errors.js';

const log = pino({ level: 'silent' });

function stubHandlers(): Handlers {
  const h = {
    Info: () => ({ version: 'test', dataplane: 'ebpf', pid: 1, stateDir: '', runDir: '', bpffsRoot: '', uplinks: [], nodeAddresses: [], networks: 0, sandboxes: 0, started: '' }),
    NetworkRemove: (req: { ref: string }) => {
      throw new BpfnetError('E_NOT_FOUND', `no such network: ${req.ref}`, { ref: req.ref });
    },
    NetworkList: () => {
      throw new Error('boom');
    },
  };
  return h as unknown as Handlers;
}

describe('api server', () => {
  let dir: string;
  let server: ApiServer;
  let sock: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bpfnet-srv-'));
    sock = join(dir, 'run', 'bpfnet.sock');
    server = new ApiServer(sock, stubHandlers(), log);
    await server.listen();
  });
  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves calls and is root-only (0600 socket in a 0700 dir)', async () => {
    const c = await Client.connect(`unix://${sock}`);
    expect((await c.call('Info')).value.version).toBe('test');
    c.close();
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'run')).mode & 0o777).toBe(0o700);
  });

  it('typed errors keep their code, message and details across the socket', async () => {
    const c = await Client.connect(`unix://${sock}`);
    await expect(c.call('NetworkRemove', { ref: 'x' })).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: 'no such network: x', details: { ref: 'x' } });
    // An unexpected exception is reported, not fatal: the next call still works.
    await expect(c.call('NetworkList')).rejects.toMatchObject({ message: expect.stringMatching(/internal error in NetworkList: boom/) });
    expect((await c.call('Info')).value.version).toBe('test');
    c.close();
  });

  it('an unknown method and a malformed body get clear errors', async () => {
    const s = connect(sock);
    const reader = new FrameReader();
    const replies: ReturnType<typeof decode<'Response'>>[] = [];
    s.on('data', (d: Buffer) => replies.push(...reader.push(d).map((f) => decode('Response', f))));
    await new Promise((r) => s.once('connect', r));
    s.write(frame(encode('Request', { id: 1, method: 'Nope', body: new Uint8Array() })));
    s.write(frame(encode('Request', { id: 2, method: 'NetworkRemove', body: Uint8Array.from([0x0a, 0xff, 0xff]) })));
    s.write(frame(Buffer.from([0xff, 0xff, 0xff])));
    await new Promise((r) => setTimeout(r, 200));
    s.destroy();
    expect(replies).toHaveLength(3);
    expect(replies[0]!.error).toMatchObject({ code: 'E_INVALID_ARGUMENT', message: expect.stringMatching(/unknown method "Nope"; this agent serves: Info, /) });
    expect(replies[1]!.error).toMatchObject({ code: 'E_INVALID_ARGUMENT', message: expect.stringMatching(/malformed Ref message/) });
    expect(replies[2]!.error).toMatchObject({ code: 'E_INVALID_ARGUMENT', message: expect.stringMatching(/malformed Request message/) });
  });

  it('a second agent on the same socket is refused; a stale socket file is replaced', async () => {
    const other = new ApiServer(sock, stubHandlers(), log);
    await expect(other.listen()).rejects.toMatchObject({ code: 'E_CONFLICT' });
    await server.close();
    writeFileSync(sock, ''); // left by a crash: nothing listens
    server = new ApiServer(sock, stubHandlers(), log);
    await server.listen();
    const c = await Client.connect(`unix://${sock}`);
    expect((await c.call('Info')).value.version).toBe('test');
    c.close();
  });

  it('the client says how to find the agent when nothing listens', async () => {
    await expect(Client.connect(`unix://${join(dir, 'nope.sock')}`)).rejects.toMatchObject({ code: 'E_UNAVAILABLE', message: expect.stringMatching(/is `bpfnet agent` running\? Point --host or BPFNET_HOST/) });
    await expect(Client.connect('tcp://1.2.3.4:1')).rejects.toThrow(/unsupported host/);
  });
});
