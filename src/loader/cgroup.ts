/**
 * cgroup attachment through pinned BPF links (the socket-level hooks of
 * bpf/sock.c: connect4, sendmsg4, recvmsg4, getpeername4).
 *
 * A link is created with BPF_LINK_CREATE on the cgroup directory's fd and
 * pinned at <root>/links/<name>. The pin keeps the attachment alive after the
 * agent exits; a restarted (or upgraded) agent finds the pin and, when the
 * program differs, swaps it with BPF_LINK_UPDATE, which is atomic: there is no
 * moment without a program, and never two of ours at once. Nothing flaps.
 *
 * Detaching: detachCgroup() detaches every link under the root at once
 * (BPF_LINK_DETACH, so even an fd someone else still holds is inert) and
 * removes the pins. Removing the whole bpffs root (removeRoot) detaches too:
 * a link is freed with its last pin and fd, and bpfnet never keeps link fds
 * open.
 *
 * A program on the cgroup2 root runs for every process on the machine, in
 * every netns: bpfnet's programs check the netns cookie (bpf/lib/sock.h),
 * so each agent's links only ever act in its own node netns.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  bpfLinkCreate,
  bpfLinkDetach,
  bpfLinkInfo,
  bpfObjGet,
  bpfObjPin,
  bpfLinkUpdate,
  bpfProgInfo,
  closeFd,
  openDir,
  withFd,
  withPinnedFd,
  type BpfLinkInfo,
} from '../netlink/bpf.js';
import { BPF_LINK_TYPE_CGROUP } from '../netlink/constants.js';
import { BpfnetError } from '../util/errors.js';
import { ensureBpffs } from './bpffs.js';

/** enum bpf_attach_type values of the cgroup hooks bpfnet may use. */
export const CGROUP_ATTACH_TYPES = {
  ingress: 0, // BPF_CGROUP_INET_INGRESS
  egress: 1, // BPF_CGROUP_INET_EGRESS
  sock_create: 2, // BPF_CGROUP_INET_SOCK_CREATE
  bind4: 8,
  bind6: 9,
  connect4: 10,
  connect6: 11,
  post_bind4: 12,
  post_bind6: 13,
  sendmsg4: 14, // BPF_CGROUP_UDP4_SENDMSG
  sendmsg6: 15,
  recvmsg4: 19, // BPF_CGROUP_UDP4_RECVMSG
  recvmsg6: 20,
  getpeername4: 29,
  getpeername6: 30,
  getsockname4: 31,
  getsockname6: 32,
  sock_release: 34, // BPF_CGROUP_INET_SOCK_RELEASE
} as const;

export type CgroupAttachType = keyof typeof CGROUP_ATTACH_TYPES;

const ATTACH_TYPE_NAMES = new Map<number, CgroupAttachType>(
  Object.entries(CGROUP_ATTACH_TYPES).map(([n, v]) => [v, n as CgroupAttachType]),
);

/** The programs of bpf/sock.c (loadObject('sock').progs keys) and their hooks. */
export const SOCK_PROGS: Readonly<Record<string, CgroupAttachType>> = {
  sock_connect4: 'connect4',
  sock_sendmsg4: 'sendmsg4',
  sock_recvmsg4: 'recvmsg4',
  sock_getpeername4: 'getpeername4',
};

export interface CgroupProg {
  attachType: CgroupAttachType;
  /** Pin of the program (e.g. loadObject(...).progs.sock_connect4). */
  pin: string;
  /** Name of the link pin under <root>/links (default: attachType). Stable across program versions. */
  name?: string;
}

export interface AttachCgroupOptions {
  /** bpffs root (links are pinned under <root>/links). */
  root: string;
  /** A cgroup2 directory; default: the cgroup2 root (cgroup2Mount()), i.e. every process on the machine. */
  cgroupPath?: string;
  progs: CgroupProg[];
  /** Also detach and unpin links under <root>/links that are not in progs (default false). */
  prune?: boolean;
}

export type CgroupLinkAction =
  /** No link was pinned: created and pinned. */
  | 'created'
  /** The pinned link ran another program: swapped with BPF_LINK_UPDATE (same link id). */
  | 'updated'
  /** The pinned link runs this program already: nothing done. */
  | 'unchanged'
  /** The pinned link was for another cgroup or hook, or defunct: a new link replaced the pin. */
  | 'replaced';

export interface CgroupLink {
  name: string;
  /** <root>/links/<name> */
  pin: string;
  attachType: CgroupAttachType | number;
  linkId: number;
  progId: number;
  /** The cgroup's id (its directory's inode number); 0n when the cgroup is gone or the link was detached. */
  cgroupId: bigint;
}

export interface AttachedCgroupLink extends CgroupLink {
  action: CgroupLinkAction;
}

export const linksDir = (root: string) => join(root, 'links');

/** No cgroup2 filesystem is mounted: cgroup hooks cannot be attached. */
export class Cgroup2MissingError extends BpfnetError {
  constructor(detail: string) {
    super(
      'E_NOT_FOUND',
      `no cgroup2 filesystem is mounted (${detail}): socket-level translation of published ports needs one; ` +
        'mount it with "mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified"',
      { what: 'cgroup2' },
    );
    this.name = 'Cgroup2MissingError';
  }
}

/** The cgroup2 mounts in /proc/self/mounts (mount points; octal escapes decoded). */
export function parseCgroup2Mounts(mountsText: string): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return mountsText
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length >= 3 && f[2] === 'cgroup2')
    .map((f) => unescape(f[1]!));
}

/** Which cgroup2 mount to use: /sys/fs/cgroup/unified (hybrid hosts) or /sys/fs/cgroup (unified hosts) first, else the first one. */
export function pickCgroup2Mount(mounts: string[]): string | undefined {
  for (const pref of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) if (mounts.includes(pref)) return pref;
  return mounts[0];
}

/** The cgroup2 mount point (its root cgroup); Cgroup2MissingError when there is none. */
export async function cgroup2Mount(mountsPath = '/proc/self/mounts'): Promise<string> {
  let text: string;
  try {
    text = await readFile(mountsPath, 'utf8');
  } catch (e) {
    throw new Cgroup2MissingError(`cannot read ${mountsPath}: ${(e as Error).message}`);
  }
  const mp = pickCgroup2Mount(parseCgroup2Mounts(text));
  if (!mp) throw new Cgroup2MissingError(`none in ${mountsPath}`);
  return mp;
}

/** The id the kernel gives a cgroup (what link info reports): its cgroup2 directory's inode number. */
export function cgroupId(cgroupPath: string): bigint {
  try {
    const st = statSync(cgroupPath, { bigint: true });
    if (!st.isDirectory()) throw new Error('not a directory');
    return st.ino;
  } catch (e) {
    throw new BpfnetError('E_NOT_FOUND', `cgroup ${cgroupPath} not found: ${(e as Error).message}`, { cgroupPath }, { cause: e });
  }
}

function attachTypeNumber(t: CgroupAttachType): number {
  const n = CGROUP_ATTACH_TYPES[t];
  if (n === undefined) throw new BpfnetError('E_INVALID_ARGUMENT', `unknown cgroup attach type ${String(t)} (one of ${Object.keys(CGROUP_ATTACH_TYPES).join(', ')})`);
  return n;
}

function validName(name: string): void {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name) || name.startsWith('tmp-')) {
    throw new BpfnetError('E_INVALID_ARGUMENT', `bad link name ${JSON.stringify(name)}: letters, digits, _ and - (bpffs refuses dots), not starting with tmp-`);
  }
}

function toLink(name: string, pin: string, info: BpfLinkInfo): CgroupLink {
  const at = info.attachType ?? -1;
  return { name, pin, attachType: ATTACH_TYPE_NAMES.get(at) ?? at, linkId: info.id, progId: info.progId, cgroupId: info.cgroupId ?? 0n };
}

/** Info of the link pinned at pin; undefined when nothing (or not a link) is pinned there. */
function pinnedLinkInfo(pin: string): BpfLinkInfo | undefined {
  if (!existsSync(pin)) return undefined;
  let fd: number;
  try {
    fd = bpfObjGet(pin);
  } catch (e) {
    if (e instanceof BpfnetError && e.code === 'E_NOT_FOUND') return undefined;
    throw e;
  }
  return withFd(fd, (f) => {
    try {
      return bpfLinkInfo(f);
    } catch (e) {
      if (e instanceof BpfnetError && e.details.errnoName === 'EINVAL') return undefined; // a program or map pinned there
      throw e;
    }
  });
}

/** Creates a link and pins it at pin (through a scratch name + rename: the pin is never missing, a crash leaves no half state). */
async function createAndPin(progFd: number, cgFd: number, attachType: number, pin: string, dir: string): Promise<BpfLinkInfo> {
  const linkFd = bpfLinkCreate(progFd, cgFd, attachType);
  try {
    const tmp = join(dir, `tmp-${randomBytes(4).toString('hex')}`);
    bpfObjPin(linkFd, tmp);
    try {
      // Replacing an older pin drops that link's last reference: it detaches
      // right after the new one is attached (both ran for an instant, never none).
      await rename(tmp, pin);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
    return bpfLinkInfo(linkFd);
  } finally {
    closeFd(linkFd);
  }
}

/**
 * Attaches each program to the cgroup through a link pinned at
 * <root>/links/<name>. Idempotent: a pinned link for the same cgroup and hook
 * is kept, and updated in place (BPF_LINK_UPDATE, same link id) when it runs
 * another program. Returns what each link is now and what was done.
 */
export async function attachCgroup(opts: AttachCgroupOptions): Promise<AttachedCgroupLink[]> {
  const cgroupPath = opts.cgroupPath ?? (await cgroup2Mount());
  const wantCgroup = cgroupId(cgroupPath);
  const names = new Set<string>();
  for (const p of opts.progs) {
    const name = p.name ?? p.attachType;
    validName(name);
    attachTypeNumber(p.attachType);
    if (names.has(name)) throw new BpfnetError('E_INVALID_ARGUMENT', `two programs for link ${name}: give them distinct names`);
    names.add(name);
  }
  await ensureBpffs(opts.root);
  const dir = linksDir(opts.root);
  await mkdir(dir, { recursive: true });

  const out: AttachedCgroupLink[] = [];
  let cgFd: number;
  try {
    cgFd = openDir(cgroupPath);
  } catch (e) {
    throw new BpfnetError('E_NOT_FOUND', `cannot open cgroup ${cgroupPath}: ${(e as Error).message}`, { cgroupPath }, { cause: e });
  }
  try {
    for (const p of opts.progs) {
      const name = p.name ?? p.attachType;
      const pin = join(dir, name);
      const attachType = attachTypeNumber(p.attachType);
      const progFd = bpfObjGet(p.pin);
      try {
        const prog = bpfProgInfo(progFd);
        const cur = pinnedLinkInfo(pin);
        let action: CgroupLinkAction;
        let info: BpfLinkInfo;
        if (cur && cur.type === BPF_LINK_TYPE_CGROUP && cur.attachType === attachType && cur.cgroupId === wantCgroup) {
          if (cur.progId === prog.id) {
            action = 'unchanged';
            info = cur;
          } else {
            info = withPinnedFd(pin, (linkFd) => {
              bpfLinkUpdate(linkFd, progFd);
              return bpfLinkInfo(linkFd);
            });
            action = 'updated';
          }
        } else {
          info = await createAndPin(progFd, cgFd, attachType, pin, dir);
          action = cur ? 'replaced' : 'created';
        }
        out.push({ ...toLink(name, pin, info), action });
      } finally {
        closeFd(progFd);
      }
    }
  } finally {
    closeFd(cgFd);
  }
  if (opts.prune) {
    const stale = (await readdir(dir)).filter((n) => !names.has(n));
    await detachCgroup(opts.root, { names: stale });
  }
  return out;
}

/** The links pinned under <root>/links (pins that are not links, e.g. leftovers, are skipped). */
export async function listCgroupLinks(root: string): Promise<CgroupLink[]> {
  const dir = linksDir(root);
  if (!existsSync(dir)) return [];
  const out: CgroupLink[] = [];
  for (const name of (await readdir(dir)).sort()) {
    if (name.startsWith('tmp-')) continue;
    const pin = join(dir, name);
    const info = pinnedLinkInfo(pin);
    if (info) out.push(toLink(name, pin, info));
  }
  return out;
}

/**
 * Detaches the links pinned under <root>/links (all, or `names`) and removes
 * their pins; missing is fine. BPF_LINK_DETACH first, so the program stops at
 * once even if some process still holds an fd of the link. Returns the names
 * removed.
 */
export async function detachCgroup(root: string, opts: { names?: string[] } = {}): Promise<string[]> {
  const dir = linksDir(root);
  if (!existsSync(dir)) return [];
  const names = opts.names ?? (await readdir(dir));
  const removed: string[] = [];
  const errors: unknown[] = [];
  for (const name of names) {
    const pin = join(dir, name);
    if (!existsSync(pin)) continue;
    try {
      withPinnedFd(pin, (f) => {
        try {
          bpfLinkDetach(f);
        } catch (e) {
          // Not a link (EINVAL), or already defunct (ENOLINK, its cgroup gone): the pin still goes.
          if (!(e instanceof BpfnetError && ['EINVAL', 'ENOLINK', 'EOPNOTSUPP'].includes(String(e.details.errnoName)))) throw e;
        }
      });
    } catch (e) {
      if (!(e instanceof BpfnetError && e.code === 'E_NOT_FOUND')) errors.push(e);
    }
    // Unpinning drops the last reference in any case: the link is freed and detached.
    await rm(pin, { force: true });
    removed.push(name);
  }
  if (opts.names === undefined) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  if (errors.length) throw errors[0];
  return removed;
}

/**
 * The CgroupProgs of a loaded bpf/sock.c (loadObject('sock', ...).progs):
 * connect4, sendmsg4, recvmsg4, getpeername4, links named after the hook.
 */
export function sockCgroupProgs(progs: Readonly<Record<string, string>>): CgroupProg[] {
  return Object.entries(SOCK_PROGS).map(([prog, attachType]) => {
    const pin = progs[prog];
    if (!pin) throw new BpfnetError('E_NOT_FOUND', `program ${prog} not in the loaded object (have ${Object.keys(progs).join(', ')})`);
    return { attachType, pin };
  });
}
