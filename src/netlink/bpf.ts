/**
 * The bpf() commands tc and cgroup attachment need, through the addon: an fd
 * of a pinned program (for TCA_BPF_FD), a program's identity (id, name, tag)
 * from its fd or id, and BPF links (create, pin, update, detach, info) for
 * cgroup hooks (src/loader/cgroup.ts). fds are O_CLOEXEC and must be closed (closeFd, or use
 * withPinnedFd / withFd). Errors are BpfnetErrors: E_NOT_FOUND for a missing pin or
 * program id, else E_BPFFS (pins) / E_NETLINK (ids, info), errno in details.
 */
import type { ErrorCode } from '../util/errors.js';
import { systemError } from './errors.js';
import { native, type BpfLinkInfo, type BpfProgInfo } from './native.js';

export type { BpfLinkInfo, BpfProgInfo };

/** Runs one addon call, its error turned into a BpfnetError naming op. */
function call<T>(op: string, code: ErrorCode, fn: () => T, notFound: readonly string[] = []): T {
  try {
    return fn();
  } catch (e) {
    throw systemError(op, e, code, notFound);
  }
}

/** bpf(BPF_OBJ_GET): an fd of what is pinned at path. */
export function bpfObjGet(path: string): number {
  return call(`open pinned BPF object ${path}`, 'E_BPFFS', () => native().bpfObjGet(path), ['ENOENT']);
}

/** bpf(BPF_PROG_GET_FD_BY_ID). */
export function bpfProgGetFdById(id: number): number {
  return call(`open BPF program id ${id}`, 'E_NETLINK', () => native().bpfProgGetFdById(id), ['ENOENT']);
}

/** bpf(BPF_OBJ_GET_INFO_BY_FD) of a program fd. */
export function bpfProgInfo(fd: number): BpfProgInfo {
  return call('read BPF program info', 'E_NETLINK', () => native().bpfProgInfo(fd));
}

/** The identity of the program with this id (fd opened and closed). */
export function bpfProgInfoById(id: number): BpfProgInfo {
  return withFd(bpfProgGetFdById(id), bpfProgInfo);
}

export function closeFd(fd: number): void {
  native().closeFd(fd);
}

/** Runs fn with fd, closed afterwards whatever happens (fn must be synchronous). */
export function withFd<T>(fd: number, fn: (fd: number) => T): T {
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

/** Runs fn with an fd of the object pinned at path, closed afterwards whatever happens. */
export function withPinnedFd<T>(path: string, fn: (fd: number) => T): T {
  return withFd(bpfObjGet(path), fn);
}

/** open(path, O_RDONLY|O_DIRECTORY): an fd of a directory (a cgroup, as link target). */
export function openDir(path: string): number {
  return call(`open directory ${path}`, 'E_NOT_FOUND', () => native().openDir(path));
}

/** bpf(BPF_OBJ_PIN): pin a program, map or link fd at path. E_CONFLICT when the path is taken. */
export function bpfObjPin(fd: number, path: string): void {
  call(`pin BPF object at ${path}`, 'E_BPFFS', () => native().bpfObjPin(fd, path));
}

/** bpf(BPF_LINK_CREATE): attach progFd to targetFd (a cgroup fd for BPF_CGROUP_* types); returns the link fd. */
export function bpfLinkCreate(progFd: number, targetFd: number, attachType: number): number {
  return call(`create BPF link (attach type ${attachType})`, 'E_NETLINK', () => native().bpfLinkCreate(progFd, targetFd, attachType));
}

/** bpf(BPF_LINK_UPDATE): swap the link's program atomically (only if it still runs oldProgFd, when given). */
export function bpfLinkUpdate(linkFd: number, newProgFd: number, oldProgFd?: number): void {
  call('update BPF link', 'E_NETLINK', () => native().bpfLinkUpdate(linkFd, newProgFd, oldProgFd));
}

/** bpf(BPF_LINK_DETACH): detach now, whatever else holds the link. */
export function bpfLinkDetach(linkFd: number): void {
  call('detach BPF link', 'E_NETLINK', () => native().bpfLinkDetach(linkFd));
}

/** bpf(BPF_OBJ_GET_INFO_BY_FD) of a link fd. */
export function bpfLinkInfo(fd: number): BpfLinkInfo {
  return call('read BPF link info', 'E_NETLINK', () => native().bpfLinkInfo(fd));
}
