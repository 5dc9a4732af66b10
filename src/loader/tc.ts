/**
 * tc attachment (clsact + cls_bpf direct-action) over rtnetlink, in process
 * (src/netlink: an attach is a handful of syscalls, well under a millisecond,
 * where spawning iproute2's `tc` three times took ~20 ms). Debian's bpftool
 * 7.1 cannot attach tc programs, and nothing here needs iproute2 any more.
 * Replacing uses the same pref and handle, which the kernel swaps atomically:
 * never detach-then-attach.
 */
import { basename } from 'node:path';
import { bpfProgInfo, bpfProgInfoById, Rtnl, withPinnedFd, type BpfFilter, type BpfProgInfo, type TcDirection } from '../netlink/index.js';
import { BPF_PROG_TYPE_SCHED_CLS } from '../netlink/constants.js';
import { BpfnetError } from '../util/errors.js';

export type { TcDirection };

/** bpfnet's filter slot: low pref runs first; handle identifies us within it. */
export const TC_PREF = 100;
export const TC_HANDLE = 0xb9f;

export interface TcTarget {
  /** Network namespace path (/run/netns/NAME); undefined = the current one. */
  netns?: string | undefined;
  dev: string;
  direction: TcDirection;
}

/** A device in a netns (a TcTarget without the hook). */
type DevTarget = Omit<TcTarget, 'direction'>;

export interface TcAttachment extends TcTarget {
  pref: number;
  handle: number;
  progId: number;
  progName: string;
  tag: string;
}

function notFound(t: DevTarget): BpfnetError {
  return new BpfnetError('E_NOT_FOUND', `device ${t.dev} not found${t.netns ? ` in netns ${t.netns}` : ''}`, { dev: t.dev, netns: t.netns });
}

/** One rtnetlink socket in the target's netns for the duration of fn. */
function withRtnl<T>(t: DevTarget, fn: (r: Rtnl) => T): T {
  const r = Rtnl.open(t.netns);
  try {
    return fn(r);
  } finally {
    r.close();
  }
}

/** The target device (index and name), E_NOT_FOUND ("device X not found in netns Y") when there is none. */
function device(r: Rtnl, t: DevTarget): { index: number; name: string } {
  const l = r.link(t.dev);
  if (!l) throw notFound(t);
  return { index: l.index, name: l.name };
}

/** A device that vanished between lookup and request (ENODEV) is reported like a missing one. */
function onDev<T>(t: DevTarget, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof BpfnetError && e.code === 'E_NOT_FOUND' && e.details.errnoName === 'ENODEV') throw notFound(t);
    throw e;
  }
}

function progInfo(fd: number, pin: string): BpfProgInfo {
  try {
    return bpfProgInfo(fd);
  } catch (e) {
    if (e instanceof BpfnetError && e.details.errnoName === 'EINVAL') {
      throw new BpfnetError('E_INVALID_ARGUMENT', `${pin} is not a BPF program (a map?): attach a program pin`, { pin });
    }
    throw e;
  }
}

function toAttachment(t: TcTarget, f: BpfFilter & { progId: number }): TcAttachment {
  // The program's own (kernel) name, as `tc filter show` prints it; the
  // filter's TCA_BPF_NAME is only an annotation (tc writes "<file>:[<section>]").
  let progName = f.name ?? '';
  let tag = f.tag ?? '';
  try {
    const info = bpfProgInfoById(f.progId);
    progName = info.name;
    tag ||= info.tag;
  } catch {
    // Detached and freed in between, or not allowed: keep what the filter says.
  }
  return { netns: t.netns, dev: t.dev, direction: t.direction, pref: f.pref, handle: f.handle, progId: f.progId, progName, tag };
}

/** `tc qdisc add dev D clsact`, leaving an existing clsact (and its filters) alone. */
export async function ensureClsact(t: DevTarget): Promise<void> {
  withRtnl(t, (r) => {
    const dev = device(r, t);
    onDev(t, () => r.ensureClsact(dev));
  });
}

/**
 * The program pinned at pin in bpfnet's slot (pref, handle) of dev's clsact
 * hook, direct-action; an existing filter in the slot gets the new program
 * atomically. The fd of the pin is held only for the request.
 */
export async function attachTc(t: TcTarget & { pin: string; pref?: number; handle?: number }): Promise<TcAttachment> {
  const pref = t.pref ?? TC_PREF;
  const handle = t.handle ?? TC_HANDLE;
  return withRtnl(t, (r) => {
    const dev = device(r, t);
    return withPinnedFd(t.pin, (fd) => {
      const prog = progInfo(fd, t.pin);
      if (prog.type !== BPF_PROG_TYPE_SCHED_CLS) {
        throw new BpfnetError('E_INVALID_ARGUMENT', `${t.pin} is not a tc (sched_cls) program (type ${prog.type}): attach a program from a SEC("tc") section`, { pin: t.pin, type: prog.type });
      }
      onDev(t, () => r.ensureClsact(dev));
      const f = onDev(t, () => r.attachBpfFilter({ dev, direction: t.direction, pref, handle, progFd: fd, name: basename(t.pin) }));
      if (f.progId !== prog.id) {
        throw new BpfnetError('E_CONFLICT', `attached ${t.pin} to ${t.dev} ${t.direction}, but the filter now runs program ${f.progId ?? '(none)'}`, { ...t, progId: prog.id });
      }
      return { netns: t.netns, dev: t.dev, direction: t.direction, pref: f.pref, handle: f.handle, progId: prog.id, progName: prog.name, tag: f.tag ?? prog.tag };
    });
  });
}

/** The eBPF filters on the hook (none without clsact); E_NOT_FOUND for a missing device. */
export async function listTc(t: TcTarget): Promise<TcAttachment[]> {
  return withRtnl(t, (r) => {
    const dev = device(r, t);
    return onDev(t, () => r.listBpfFilters(dev, t.direction))
      .filter((f): f is BpfFilter & { progId: number } => f.progId !== undefined)
      .map((f) => toAttachment(t, f));
  });
}

/** Idempotent: detaching what is not attached (or from a device gone) succeeds, returning false. */
export async function detachTc(t: TcTarget & { pref?: number; handle?: number }): Promise<boolean> {
  const pref = t.pref ?? TC_PREF;
  const handle = t.handle ?? TC_HANDLE;
  return withRtnl(t, (r) => r.detachBpfFilter(t.dev, t.direction, pref, handle));
}
