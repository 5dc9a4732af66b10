/**
 * Network namespaces as files, without spawning `ip netns`: create one at any
 * path (a bind mount of a fresh netns, like iproute2 does under /run/netns),
 * delete it, and read/write its sysctls.
 *
 * Mount propagation: the directory holding the namespace files is made a
 * shared mount the first time (bound onto itself when it is not a mount point
 * yet), exactly what iproute2 does for /run/netns, so namespace mounts and
 * unmounts propagate to mount namespaces created later (container runtimes,
 * `ip netns exec`, services with private /tmp). Without it such a mount
 * namespace keeps a copy of the netns mount, and the namespace, with all its
 * devices, outlives deleteNetns(). Use a directory dedicated to namespace
 * files (/run/netns, /run/bpfnet/netns); removeNetnsDir() undoes it.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { BpfnetError, invalidArgument } from '../util/errors.js';
import { systemError } from './errors.js';
import { native } from './native.js';

function checkPath(path: string, op: string): void {
  if (typeof path !== 'string' || !isAbsolute(path) || path.endsWith('/') || path.split('/').includes('..') || dirname(path) === '/') {
    throw invalidArgument(`${op}: the netns path must be absolute and in a directory (got ${JSON.stringify(path)})`, { path });
  }
}

/** A new, empty netns (only lo, down) at path. E_CONFLICT when a netns is mounted there already. */
export function createNetns(path: string): void {
  const op = `create netns ${path}`;
  checkPath(path, op);
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    native().netnsCreate(path);
  } catch (e) {
    if ((e as { syscall?: unknown }).syscall === 'netns create') {
      throw new BpfnetError('E_CONFLICT', `${op}: a network namespace is mounted there already (EEXIST)`, { op, errno: 17, errnoName: 'EEXIST' });
    }
    throw systemError(op, e, 'E_NETNS');
  }
}

/**
 * Unmounts and removes the netns file; its devices go when the last user of
 * the namespace does. Missing is fine.
 */
export function deleteNetns(path: string): void {
  const op = `delete netns ${path}`;
  checkPath(path, op);
  try {
    native().netnsDelete(path);
  } catch (e) {
    throw systemError(op, e, 'E_NETNS');
  }
}

/**
 * Removes a namespace directory made shared by createNetns(): deletes every
 * netns file still in it, then the directory's self-bind and the directory.
 * Missing is fine.
 */
export function removeNetnsDir(dir: string): void {
  const op = `remove netns directory ${dir}`;
  checkPath(dir, op);
  try {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return;
      throw e;
    }
    for (const n of names) native().netnsDelete(join(dir, n));
    native().netnsDirRemove(dir);
  } catch (e) {
    throw systemError(op, e, 'E_NETNS');
  }
}

/**
 * "net.ipv4.conf.eth0.proxy_arp" -> "net/ipv4/conf/eth0/proxy_arp" under
 * /proc/sys. Like sysctl(8), a key with slashes is taken as a path, so a
 * device name with dots can be written "net/ipv4/conf/eth0.100/proxy_arp".
 */
export function sysctlPath(key: string): string {
  const ok = typeof key === 'string' && /^[\w@:.+-]+(\/[\w@:.+-]+)*$/.test(key);
  const rel = ok ? (key.includes('/') ? key : key.replace(/\./g, '/')) : '';
  if (!ok || rel.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw invalidArgument(`invalid sysctl key ${JSON.stringify(key)}: expected e.g. net.ipv4.ip_forward`, { key });
  }
  return rel;
}

function sysctlOp(verb: string, nsPath: string | undefined, key: string): string {
  return `${verb} sysctl ${key}${nsPath ? ` in netns ${nsPath}` : ''}`;
}

/** Writes a sysctl as seen from the netns at nsPath (undefined: this process's). */
export function sysctl(nsPath: string | undefined, key: string, value: string | number): void {
  const op = sysctlOp('write', nsPath, key);
  const rel = sysctlPath(key);
  try {
    native().sysctlWrite(nsPath ?? null, rel, String(value));
  } catch (e) {
    throw sysctlError(op, e);
  }
}

/** Reads a sysctl (trailing newline removed). */
export function readSysctl(nsPath: string | undefined, key: string): string {
  const op = sysctlOp('read', nsPath, key);
  const rel = sysctlPath(key);
  try {
    return native().sysctlRead(nsPath ?? null, rel).replace(/\n$/, '');
  } catch (e) {
    throw sysctlError(op, e);
  }
}

/** A missing /proc/sys file is E_NOT_FOUND (no such key or device); failing to enter the netns is E_NETNS. */
function sysctlError(op: string, e: unknown): unknown {
  const inProcSys = typeof (e as { path?: unknown })?.path === 'string' && (e as { path: string }).path.startsWith('/proc/sys/');
  return systemError(op, e, 'E_NETNS', inProcSys ? ['ENOENT'] : []);
}

/** The kernel's cookie of the netns at path (default: this process's), as BPF programs see it. */
export function netnsCookie(path?: string): bigint {
  return native().netnsCookie(path);
}
