/**
 * Server sockets inside another network namespace, for Node to adopt: the
 * addon creates the socket with a thread-level setns() into the netns (and
 * back), binds it (and listens, for TCP), and hands over the fd. The socket
 * keeps living in that netns while this process stays in its own, so one
 * process can serve e.g. 127.0.0.11:53 in every sandbox.
 *
 *   const fd = listenInNetns(ns, 'udp', '127.0.0.11', 53);
 *   dgram.createSocket('udp4').bind({ fd });          // or adoptUdp(fd)
 *   net.createServer(onConn).listen({ fd });           // or adoptTcp(fd, onConn)
 */
import dgram from 'node:dgram';
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import { isIPv4 } from 'node:net';
import { invalidArgument } from '../util/errors.js';
import { systemError } from './errors.js';
import { native } from './native.js';

export type SocketType = 'udp' | 'tcp';

/**
 * A non-blocking, close-on-exec IPv4 socket bound to addr:port inside the
 * netns at nsPath (SO_REUSEADDR; TCP: listening, backlog 128). The caller
 * owns the fd: adopt it (adoptUdp/adoptTcp) or close it with closeFd.
 * E_NETNS when the netns cannot be entered or the bind fails
 * (EADDRNOTAVAIL: lo is down there; E_CONFLICT: the port is taken).
 */
export function listenInNetns(nsPath: string, type: SocketType, addr: string, port: number): number {
  if (type !== 'udp' && type !== 'tcp') throw invalidArgument(`listen in netns: type must be "udp" or "tcp" (got ${JSON.stringify(type)})`, { type });
  if (!isIPv4(addr)) throw invalidArgument(`listen in netns: ${JSON.stringify(addr)} is not an IPv4 address`, { addr });
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument(`listen in netns: port must be 0..65535 (got ${port})`, { port });
  const op = `listen on ${type} ${addr}:${port} in netns ${nsPath}`;
  try {
    return native().listenInNetns(nsPath, type, addr, port);
  } catch (e) {
    throw systemError(op, e, 'E_NETNS');
  }
}

function closeQuietly(fd: number): void {
  try {
    native().closeFd(fd);
  } catch {
    /* already gone */
  }
}

/** Waits for start() to call back (or fail); the fd is closed when it fails, else owned by what start() set up. */
async function adopt(fd: number, emitter: EventEmitter, start: (done: () => void) => void): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      emitter.once('error', reject);
      start(() => {
        emitter.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
}

/** Wraps a bound UDP fd in a dgram socket (which then owns and closes it). */
export async function adoptUdp(fd: number): Promise<dgram.Socket> {
  const sock = dgram.createSocket('udp4');
  await adopt(fd, sock, (done) => sock.bind({ fd }, done));
  return sock;
}

/** Wraps a listening TCP fd in a net.Server (which then owns and closes it). */
export async function adoptTcp(fd: number, onConnection: (socket: net.Socket) => void, options: net.ServerOpts = {}): Promise<net.Server> {
  const server = net.createServer(options, onConnection);
  await adopt(fd, server, (done) => server.listen({ fd }, done));
  return server;
}
