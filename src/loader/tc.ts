/**
 * tc attachment (clsact + cls_bpf direct-action) through iproute2, because
 * Debian's bpftool 7.1 cannot attach tc programs. Replacing uses the same
 * pref and handle, which the kernel swaps atomically: never detach-then-attach.
 */
import { run } from '../util/exec.js';
import { BpfnetError, CommandError } from '../util/errors.js';

export type TcDirection = 'ingress' | 'egress';

/** bpfnet's filter slot: low pref runs first; handle identifies us within it. */
export const TC_PREF = 100;
export const TC_HANDLE = 0xb9f;

export interface TcTarget {
  /** Network namespace path (/run/netns/NAME); undefined = the current one. */
  netns?: string | undefined;
  dev: string;
  direction: TcDirection;
}

export interface TcAttachment extends TcTarget {
  pref: number;
  handle: number;
  progId: number;
  progName: string;
  tag: string;
}

interface TcFilterJson {
  pref: number;
  kind: string;
  options?: { handle?: string; bpf_name?: string; prog?: { id: number; name: string; tag: string } };
}

function devError(e: unknown, t: TcTarget): never {
  if (e instanceof CommandError && /Cannot find device|No such device/.test(e.stderr)) {
    throw new BpfnetError('E_NOT_FOUND', `device ${t.dev} not found${t.netns ? ` in netns ${t.netns}` : ''}`, { dev: t.dev, netns: t.netns });
  }
  throw e;
}

export async function ensureClsact(t: Omit<TcTarget, 'direction'>): Promise<void> {
  // `replace` is idempotent and leaves an existing clsact (and its filters) alone.
  await run('tc', ['qdisc', 'replace', 'dev', t.dev, 'clsact'], { netns: t.netns }).catch((e) => devError(e, { ...t, direction: 'ingress' }));
}

export async function attachTc(t: TcTarget & { pin: string; pref?: number; handle?: number }): Promise<TcAttachment> {
  await ensureClsact(t);
  const pref = t.pref ?? TC_PREF;
  const handle = t.handle ?? TC_HANDLE;
  await run('tc', ['filter', 'replace', 'dev', t.dev, t.direction, 'pref', String(pref), 'handle', `0x${handle.toString(16)}`,
    'bpf', 'direct-action', 'object-pinned', t.pin], { netns: t.netns }).catch((e) => devError(e, t));
  const now = (await listTc(t)).find((a) => a.pref === pref && a.handle === handle);
  if (!now) throw new BpfnetError('E_COMMAND_FAILED', `tc accepted ${t.pin} on ${t.dev} ${t.direction} but it is not listed`, { ...t });
  return now;
}

export async function listTc(t: TcTarget): Promise<TcAttachment[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('tc', ['-j', 'filter', 'show', 'dev', t.dev, t.direction], { netns: t.netns }));
  } catch (e) {
    // No clsact qdisc yet: nothing attached.
    if (e instanceof CommandError && /Cannot find specified qdisc|Invalid handle/.test(e.stderr)) return [];
    return devError(e, t);
  }
  const filters = (stdout.trim() ? JSON.parse(stdout) : []) as TcFilterJson[];
  return filters
    .filter((f) => f.kind === 'bpf' && f.options?.prog)
    .map((f) => ({
      netns: t.netns,
      dev: t.dev,
      direction: t.direction,
      pref: f.pref,
      handle: parseInt(f.options!.handle ?? '0', 16),
      progId: f.options!.prog!.id,
      progName: f.options!.prog!.name,
      tag: f.options!.prog!.tag,
    }));
}

/** Idempotent: detaching what is not attached (or from a device gone) succeeds. */
export async function detachTc(t: TcTarget & { pref?: number; handle?: number }): Promise<boolean> {
  const pref = t.pref ?? TC_PREF;
  const handle = t.handle ?? TC_HANDLE;
  const attached = await listTc(t).catch((e: unknown) => {
    if (e instanceof BpfnetError && e.code === 'E_NOT_FOUND') return [];
    throw e;
  });
  const present = attached.some((a) => a.pref === pref && a.handle === handle);
  if (!present) return false;
  await run('tc', ['filter', 'del', 'dev', t.dev, t.direction, 'pref', String(pref), 'handle', `0x${handle.toString(16)}`, 'bpf'], { netns: t.netns });
  return true;
}
