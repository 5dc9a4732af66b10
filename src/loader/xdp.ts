/** XDP attachment through bpftool; `overwrite` swaps programs atomically. */
import { run } from '../util/exec.js';
import { BpfnetError, CommandError } from '../util/errors.js';

export type XdpMode = 'auto' | 'native' | 'generic';

export interface XdpAttachment {
  netns?: string | undefined;
  dev: string;
  mode: string;
  progId: number;
}

const BPFTOOL_KIND: Record<XdpMode, string> = { auto: 'xdp', native: 'xdpdrv', generic: 'xdpgeneric' };
const KIND_OF_MODE: Record<string, string> = { driver: 'xdpdrv', generic: 'xdpgeneric', offload: 'xdpoffload' };

export async function attachXdp(t: { netns?: string | undefined; dev: string; pin: string; mode?: XdpMode }): Promise<XdpAttachment> {
  try {
    await run('bpftool', ['net', 'attach', BPFTOOL_KIND[t.mode ?? 'auto'], 'pinned', t.pin, 'dev', t.dev, 'overwrite'], { netns: t.netns });
  } catch (e) {
    if (e instanceof CommandError && /No such device|invalid devname|Cannot find/i.test(e.stderr)) {
      throw new BpfnetError('E_NOT_FOUND', `device ${t.dev} not found${t.netns ? ` in netns ${t.netns}` : ''}`, { dev: t.dev });
    }
    throw e;
  }
  const a = await getXdp(t);
  if (!a) throw new BpfnetError('E_COMMAND_FAILED', `XDP program ${t.pin} not listed on ${t.dev} after attach`, { dev: t.dev });
  return a;
}

export async function getXdp(t: { netns?: string | undefined; dev: string }): Promise<XdpAttachment | undefined> {
  const { stdout } = await run('bpftool', ['-j', 'net', 'show', 'dev', t.dev], { netns: t.netns });
  const rows = JSON.parse(stdout) as { xdp?: { devname: string; mode: string; id: number }[] }[];
  const x = rows.flatMap((r) => r.xdp ?? []).find((r) => r.devname === t.dev);
  return x ? { netns: t.netns, dev: t.dev, mode: x.mode, progId: x.id } : undefined;
}

export async function detachXdp(t: { netns?: string | undefined; dev: string }): Promise<boolean> {
  const a = await getXdp(t);
  if (!a) return false;
  await run('bpftool', ['net', 'detach', KIND_OF_MODE[a.mode] ?? 'xdp', 'dev', t.dev], { netns: t.netns });
  return true;
}
