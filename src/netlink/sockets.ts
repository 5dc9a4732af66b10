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
import net from 'node:net';
import { isIPv4 } from 'node:net';
import { invalidArgument } from '../util/errors.js';
import { systemError } from './errors.js';
import { native, type NetlinkAddon } from './native.js';

/** The addon's socket export (declared here, next to its only user). */
interface SocketAddon extends NetlinkAddon {
  listenInNetns(nsPath: string, type: SocketType, addr: string, port: number): number;
}
const addon = (): SocketAddon => native() as SocketAddon;

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
    return addon().listenInNetns(nsPath, type, addr, port);
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

/** Wraps a bound UDP fd in a dgram socket (which then owns and closes it). */
export async function adoptUdp(fd: number): Promise<dgram.Socket> {
  const sock = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ fd }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
  return sock;
}

/** Wraps a listening TCP fd in a net.Server (which then owns and closes it). */
export async function adoptTcp(fd: number, onConnection: (socket: net.Socket) => void, options: net.ServerOpts = {}): Promise<net.Server> {
  const server = net.createServer(options, onConnection);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
  return server;
}
