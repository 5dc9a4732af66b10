/** src/loader/cgroup.ts, the parts that need no kernel: finding cgroup2, argument checks. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  attachCgroup,
  CGROUP_ATTACH_TYPES,
  Cgroup2MissingError,
  cgroup2Mount,
  parseCgroup2Mounts,
  pickCgroup2Mount,
  sockCgroupProgs,
} from '../../src/loader/cgroup.js';
import { BpfnetError } from '../../src/util/errors.js';

const HYBRID = `sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
bpf /sys/fs/bpf bpf rw,relatime 0 0
`;
const UNIFIED = `cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
`;
const ELSEWHERE = `none /run/my\\040cgroup cgroup2 rw 0 0
`;

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('finding cgroup2', () => {
  it('reads cgroup2 mounts, and only those', () => {
    expect(parseCgroup2Mounts(HYBRID)).toEqual(['/sys/fs/cgroup/unified']);
    expect(parseCgroup2Mounts(UNIFIED)).toEqual(['/sys/fs/cgroup']);
    expect(parseCgroup2Mounts(ELSEWHERE)).toEqual(['/run/my cgroup']);
    expect(parseCgroup2Mounts('')).toEqual([]);
  });

  it('prefers the usual places', () => {
    expect(pickCgroup2Mount(['/run/x', '/sys/fs/cgroup/unified'])).toBe('/sys/fs/cgroup/unified');
    expect(pickCgroup2Mount(['/run/x', '/sys/fs/cgroup'])).toBe('/sys/fs/cgroup');
    expect(pickCgroup2Mount(['/run/x'])).toBe('/run/x');
    expect(pickCgroup2Mount([])).toBeUndefined();
  });

  it('no cgroup2 mounted is a typed error that says how to mount one', async () => {
    const d = await mkdtemp(join(tmpdir(), 'bpfnet-cg-'));
    dirs.push(d);
    await writeFile(join(d, 'mounts'), HYBRID.replace(/^cgroup2 .*\n/m, ''));
    const e = await cgroup2Mount(join(d, 'mounts')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Cgroup2MissingError);
    expect((e as BpfnetError).code).toBe('E_NOT_FOUND');
    expect((e as BpfnetError).message).toMatch(/mount -t cgroup2/);
    expect(await cgroup2Mount(join(d, 'absent')).catch((x: unknown) => x)).toBeInstanceOf(Cgroup2MissingError);
  });

  it('this machine has one', async () => {
    expect(await cgroup2Mount()).toMatch(/^\//);
  });
});

describe('arguments', () => {
  it('attach types are the kernel enum values', () => {
    expect(CGROUP_ATTACH_TYPES.connect4).toBe(10);
    expect(CGROUP_ATTACH_TYPES.sendmsg4).toBe(14);
    expect(CGROUP_ATTACH_TYPES.recvmsg4).toBe(19);
    expect(CGROUP_ATTACH_TYPES.getpeername4).toBe(29);
  });

  it('sockCgroupProgs maps sock.o programs to their hooks and names a missing one', () => {
    const progs = { sock_connect4: '/p/c', sock_sendmsg4: '/p/s', sock_recvmsg4: '/p/r', sock_getpeername4: '/p/g' };
    expect(sockCgroupProgs(progs)).toEqual([
      { attachType: 'connect4', pin: '/p/c' },
      { attachType: 'sendmsg4', pin: '/p/s' },
      { attachType: 'recvmsg4', pin: '/p/r' },
      { attachType: 'getpeername4', pin: '/p/g' },
    ]);
    expect(() => sockCgroupProgs({ sock_connect4: '/p/c' })).toThrow(/sock_sendmsg4/);
  });

  it('refuses bad link names, duplicate names and unknown hooks before touching anything', async () => {
    const base = { root: '/nonexistent-root', cgroupPath: '/' };
    for (const progs of [
      [{ attachType: 'connect4' as const, pin: '/x', name: 'a.b' }],
      [{ attachType: 'connect4' as const, pin: '/x', name: 'tmp-x' }],
      [{ attachType: 'connect4' as const, pin: '/x' }, { attachType: 'connect4' as const, pin: '/y' }],
      [{ attachType: 'nope' as never, pin: '/x' }],
    ]) {
      const e = await attachCgroup({ ...base, progs }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(BpfnetError);
      expect((e as BpfnetError).code).toBe('E_INVALID_ARGUMENT');
    }
  });
});
