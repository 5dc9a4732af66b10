/**
 * The bpf() commands tc attachment needs, through the addon: an fd of a
 * pinned program (for TCA_BPF_FD), and a program's identity (id, name, tag)
 * from its fd or id. fds are O_CLOEXEC and must be closed (closeFd, or use
 * withPinnedFd). Errors are BpfnetErrors: E_NOT_FOUND for a missing pin or
 * program id, else E_BPFFS (pins) / E_NETLINK (ids, info), errno in details.
 */
import { systemError } from './errors.js';
import { native, type BpfProgInfo } from './native.js';

export type { BpfProgInfo };

/** bpf(BPF_OBJ_GET): an fd of what is pinned at path. */
export function bpfObjGet(path: string): number {
  try {
    return native().bpfObjGet(path);
  } catch (e) {
    throw systemError(`open pinned BPF object ${path}`, e, 'E_BPFFS', ['ENOENT']);
  }
}

/** bpf(BPF_PROG_GET_FD_BY_ID). */
export function bpfProgGetFdById(id: number): number {
  try {
    return native().bpfProgGetFdById(id);
  } catch (e) {
    throw systemError(`open BPF program id ${id}`, e, 'E_NETLINK', ['ENOENT']);
  }
}

/** bpf(BPF_OBJ_GET_INFO_BY_FD) of a program fd. */
export function bpfProgInfo(fd: number): BpfProgInfo {
  try {
    return native().bpfProgInfo(fd);
  } catch (e) {
    throw systemError('read BPF program info', e, 'E_NETLINK');
  }
}

/** The identity of the program with this id (fd opened and closed). */
export function bpfProgInfoById(id: number): BpfProgInfo {
  const fd = bpfProgGetFdById(id);
  try {
    return bpfProgInfo(fd);
  } finally {
    closeFd(fd);
  }
}

export function closeFd(fd: number): void {
  native().closeFd(fd);
}

/** Runs fn with an fd of the object pinned at path, closed afterwards whatever happens. */
export function withPinnedFd<T>(path: string, fn: (fd: number) => T): T {
  const fd = bpfObjGet(path);
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}
