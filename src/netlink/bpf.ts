/**
 * The bpf() commands tc and cgroup attachment need, through the addon: an fd
 * of a pinned program (for TCA_BPF_FD), a program's identity (id, name, tag)
 * from its fd or id, and BPF links (create, pin, update, detach, info) for
 * cgroup hooks (src/loader/cgroup.ts). fds are O_CLOEXEC and must be closed (closeFd, or use
 * withPinnedFd). Errors are BpfnetErrors: E_NOT_FOUND for a missing pin or
 * program id, else E_BPFFS (pins) / E_NETLINK (ids, info), errno in details.
 */
import { systemError } from './errors.js';
import { native, type BpfLinkInfo, type BpfProgInfo } from './native.js';

export type { BpfLinkInfo, BpfProgInfo };

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

/** open(path, O_RDONLY|O_DIRECTORY): an fd of a directory (a cgroup, as link target). */
export function openDir(path: string): number {
  try {
    return native().openDir(path);
  } catch (e) {
    throw systemError(`open directory ${path}`, e, 'E_NOT_FOUND');
  }
}

/** bpf(BPF_OBJ_PIN): pin a program, map or link fd at path. E_CONFLICT when the path is taken. */
export function bpfObjPin(fd: number, path: string): void {
  try {
    native().bpfObjPin(fd, path);
  } catch (e) {
    throw systemError(`pin BPF object at ${path}`, e, 'E_BPFFS');
  }
}

/** bpf(BPF_LINK_CREATE): attach progFd to targetFd (a cgroup fd for BPF_CGROUP_* types); returns the link fd. */
export function bpfLinkCreate(progFd: number, targetFd: number, attachType: number): number {
  try {
    return native().bpfLinkCreate(progFd, targetFd, attachType);
  } catch (e) {
    throw systemError(`create BPF link (attach type ${attachType})`, e, 'E_NETLINK');
  }
}

/** bpf(BPF_LINK_UPDATE): swap the link's program atomically (only if it still runs oldProgFd, when given). */
export function bpfLinkUpdate(linkFd: number, newProgFd: number, oldProgFd?: number): void {
  try {
    native().bpfLinkUpdate(linkFd, newProgFd, oldProgFd);
  } catch (e) {
    throw systemError('update BPF link', e, 'E_NETLINK');
  }
}

/** bpf(BPF_LINK_DETACH): detach now, whatever else holds the link. */
export function bpfLinkDetach(linkFd: number): void {
  try {
    native().bpfLinkDetach(linkFd);
  } catch (e) {
    throw systemError('detach BPF link', e, 'E_NETLINK');
  }
}

/** bpf(BPF_OBJ_GET_INFO_BY_FD) of a link fd. */
export function bpfLinkInfo(fd: number): BpfLinkInfo {
  try {
    return native().bpfLinkInfo(fd);
  } catch (e) {
    throw systemError('read BPF link info', e, 'E_NETLINK');
  }
}
