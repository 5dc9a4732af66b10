/** bpffs: make sure the pin root is on a mounted BPF filesystem. */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run } from '../util/exec.js';
import { BpfnetError } from '../util/errors.js';

export async function bpffsMounts(): Promise<string[]> {
  const text = await readFile('/proc/self/mounts', 'utf8');
  return text.split('\n').map((l) => l.split(' ')).filter((f) => f[2] === 'bpf').map((f) => f[1]!);
}

/**
 * Ensures `root` lives on bpffs, mounting /sys/fs/bpf when nothing is mounted
 * there yet (some hosts, this CI included, boot without it), then creates root.
 */
export async function ensureBpffs(root: string): Promise<void> {
  let mounts = await bpffsMounts();
  const covered = (m: string[]) => m.some((mp) => root === mp || root.startsWith(mp.endsWith('/') ? mp : `${mp}/`));
  if (!covered(mounts)) {
    const mp = root.startsWith('/sys/fs/bpf/') || root === '/sys/fs/bpf' ? '/sys/fs/bpf' : dirname(root);
    try {
      await mkdir(mp, { recursive: true });
      await run('mount', ['-t', 'bpf', 'bpf', mp]);
    } catch (e) {
      throw new BpfnetError('E_BPFFS', `cannot mount bpffs at ${mp}: ${(e as Error).message}; run "mount -t bpf bpf ${mp}" as root`, { root }, { cause: e });
    }
    mounts = await bpffsMounts();
    if (!covered(mounts)) throw new BpfnetError('E_BPFFS', `${root} is not on a bpf filesystem`, { root });
  }
  await mkdir(root, { recursive: true });
}
