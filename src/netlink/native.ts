/**
 * The native addon (native/netlink.c): the system calls Node cannot make
 * (AF_NETLINK sockets, setns, unshare, mount, and the few bpf() commands tc
 * attachment needs). Loaded on first use, so the pure encoders work without it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { BpfnetError } from '../util/errors.js';
import { PACKAGE_ROOT } from '../util/paths.js';

export interface NetlinkAddon {
  /** A NETLINK_ROUTE socket created in the netns at nsPath (default: the caller's). */
  socketOpen(nsPath?: string): number;
  /** Sends one request and returns every reply message with its sequence number, through the ack or NLMSG_DONE. */
  request(fd: number, msg: Buffer): Buffer;
  socketClose(fd: number): void;
  netnsCreate(path: string): void;
  netnsDelete(path: string): void;
  netnsDirRemove(dir: string): void;
  /** relPath is under /proc/sys (e.g. "net/ipv4/ip_forward"). */
  sysctlWrite(nsPath: string | null, relPath: string, value: string): void;
  sysctlRead(nsPath: string | null, relPath: string): string;
  /** bpf(BPF_OBJ_GET): an fd (O_CLOEXEC) of the object pinned at path; close it with closeFd. */
  bpfObjGet(path: string): number;
  /** bpf(BPF_PROG_GET_FD_BY_ID); close it with closeFd. */
  bpfProgGetFdById(id: number): number;
  /** bpf(BPF_OBJ_GET_INFO_BY_FD) of a program fd. */
  bpfProgInfo(fd: number): BpfProgInfo;
  closeFd(fd: number): void;
  /** A bound (TCP: listening) IPv4 server socket created in the netns at nsPath; close it with closeFd, or adopt it (sockets.ts). */
  listenInNetns(nsPath: string, type: 'udp' | 'tcp', addr: string, port: number): number;
  bindProbe(type: 'udp' | 'tcp', addr: string, port: number): number;
  /** The 64-bit cookie of the netns at nsPath (default: the caller's), as bpf_get_netns_cookie() sees it. */
  netnsCookie(nsPath?: string): bigint;
  /** open(path, O_RDONLY|O_DIRECTORY|O_CLOEXEC): e.g. a cgroup directory as BPF_LINK_CREATE target; close with closeFd. */
  openDir(path: string): number;
  /** bpf(BPF_OBJ_PIN): pins the program, map or link fd at path (on bpffs; EEXIST when taken). */
  bpfObjPin(fd: number, path: string): void;
  /** bpf(BPF_LINK_CREATE): attaches progFd to targetFd (a cgroup fd for cgroup attach types); the link fd (close with closeFd). */
  bpfLinkCreate(progFd: number, targetFd: number, attachType: number): number;
  /** bpf(BPF_LINK_UPDATE): the link runs newProgFd from now on (atomic); with oldProgFd, only if it still runs that one (BPF_F_REPLACE, else EPERM). */
  bpfLinkUpdate(linkFd: number, newProgFd: number, oldProgFd?: number): void;
  /** bpf(BPF_LINK_DETACH): detaches now, whoever else holds the link; pins and fds stay valid (defunct). */
  bpfLinkDetach(linkFd: number): void;
  /** bpf(BPF_OBJ_GET_INFO_BY_FD) of a link fd (EINVAL when fd is not a link). */
  bpfLinkInfo(fd: number): BpfLinkInfo;
}

/** What bpfLinkInfo reports. */
export interface BpfLinkInfo {
  id: number;
  /** BPF_LINK_TYPE_* (3: cgroup). */
  type: number;
  /** The program the link runs. */
  progId: number;
  /** Cgroup links: the cgroup's id (its cgroup2 directory's inode number); 0n once the cgroup is gone or the link was detached. */
  cgroupId?: bigint;
  /** Cgroup links: BPF_CGROUP_* attach type. */
  attachType?: number;
}

/** What bpfProgInfo reports. */
export interface BpfProgInfo {
  id: number;
  /** BPF_PROG_TYPE_* (3: sched_cls). */
  type: number;
  /** The kernel's name (at most 15 bytes: longer function names are cut). */
  name: string;
  /** 16 hex digits. */
  tag: string;
}

/** What the addon throws. */
export interface NativeError extends Error {
  errno: number;
  code?: string;
  syscall: string;
  path?: string;
}

export const ADDON_PATH = join(PACKAGE_ROOT, 'native', 'build', 'Release', 'bpfnet_netlink.node');

let addon: NetlinkAddon | undefined;

export function native(): NetlinkAddon {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH)) {
    throw new BpfnetError('E_TOOL_MISSING', `bpfnet's netlink addon is not built (${ADDON_PATH} is missing): run \`make native\``, { path: ADDON_PATH });
  }
  addon = createRequire(import.meta.url)(ADDON_PATH) as NetlinkAddon;
  return addon;
}
