/**
 * errno -> BpfnetError for rtnetlink and namespace operations. Messages name
 * the operation, the object and the errno: "create veth bn1234abcd: File
 * exists (EEXIST)", plus the kernel's extended-ack text when it gave one.
 */
import os from 'node:os';
import util from 'node:util';
import { BpfnetError, type ErrorCode } from '../util/errors.js';

/** glibc's strerror() texts for what rtnetlink and the namespace calls return. */
const TEXT: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  ERANGE: 'Numerical result out of range',
  ENAMETOOLONG: 'File name too long',
  ENOSYS: 'Function not implemented',
  ENOTEMPTY: 'Directory not empty',
  EMSGSIZE: 'Message too long',
  EPROTONOSUPPORT: 'Protocol not supported',
  EOPNOTSUPP: 'Operation not supported',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETDOWN: 'Network is down',
  ENETUNREACH: 'Network is unreachable',
  ENOBUFS: 'No buffer space available',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENOTSUP: 'Operation not supported',
};

/** Where two names share a number, the one the kernel sources use. */
const PREFERRED = new Set(['EAGAIN', 'EOPNOTSUPP', 'EDEADLK']);

const NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(os.constants.errno)) {
  if (!NAMES.has(n) || PREFERRED.has(name)) NAMES.set(n, name);
}

/** 17 -> 'EEXIST' (positive errno). */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `errno ${errno}`;
}

/** 17 -> 'File exists'. */
export function errnoText(errno: number): string {
  const name = NAMES.get(errno);
  if (name && TEXT[name]) return TEXT[name];
  const uv = util.getSystemErrorMap().get(-errno);
  if (uv) return uv[1].charAt(0).toUpperCase() + uv[1].slice(1);
  return `Unknown error ${errno}`;
}

const CONFLICT = new Set(['EEXIST', 'EBUSY', 'EADDRINUSE']);

/**
 * The error for a failed request. EEXIST/EBUSY/EADDRINUSE are E_CONFLICT;
 * ENODEV, and the op's own "not there" errnos (notFound), are E_NOT_FOUND;
 * everything else E_NETLINK. details: op, errno, errnoName, kernelMessage.
 */
export function netlinkError(op: string, errno: number, kernelMessage?: string, notFound: readonly string[] = []): BpfnetError {
  const name = errnoName(errno);
  let code: ErrorCode = 'E_NETLINK';
  if (CONFLICT.has(name)) code = 'E_CONFLICT';
  else if (name === 'ENODEV' || notFound.includes(name)) code = 'E_NOT_FOUND';
  const ext = kernelMessage ? `: ${kernelMessage}` : '';
  const details: Record<string, unknown> = { op, errno, errnoName: name };
  if (kernelMessage) details.kernelMessage = kernelMessage;
  return new BpfnetError(code, `${op}: ${errnoText(errno)} (${name})${ext}`, details);
}

/**
 * An error thrown by the addon (or by fs), as a BpfnetError: E_CONFLICT for
 * EEXIST/EBUSY, else `code` (E_NETNS for namespace operations).
 */
export function systemError(op: string, e: unknown, code: ErrorCode, notFound: readonly string[] = []): unknown {
  if (e instanceof BpfnetError) return e;
  // The addon's errno is positive, node:fs's negative; both carry syscall and path.
  const x = e as { errno?: unknown; syscall?: unknown; path?: unknown } | null;
  const errno = typeof x?.errno === 'number' ? Math.abs(x.errno) : undefined;
  if (errno === undefined || !x) return e;
  const name = errnoName(errno);
  const what = typeof x.syscall === 'string' ? `${x.syscall}${typeof x.path === 'string' ? ` ${x.path}` : ''}: ` : '';
  const c: ErrorCode = CONFLICT.has(name) ? 'E_CONFLICT' : notFound.includes(name) ? 'E_NOT_FOUND' : code;
  return new BpfnetError(c, `${op}: ${what}${errnoText(errno)} (${name})`, { op, errno, errnoName: name }, { cause: e });
}
