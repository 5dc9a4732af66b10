/** Where bpfnet's own files live, whether run from dist/ or through vitest. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('bpfnet package root not found');
    dir = up;
  }
  return dir;
}

export const PACKAGE_ROOT = findRoot();
export const BPF_SRC_DIR = join(PACKAGE_ROOT, 'bpf');
export const BPF_CACHE_DIR = join(PACKAGE_ROOT, 'build', 'bpf', 'cache');
export const DEFAULT_BPFFS_ROOT = '/sys/fs/bpf/bpfnet';
