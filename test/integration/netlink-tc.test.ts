/**
 * tc through the rtnetlink layer against the real kernel (Rtnl.ensureClsact,
 * attachBpfFilter, listBpfFilters, detachBpfFilter, and the bpf() helpers),
 * in a namespace and bpffs root of its own, removed afterwards also when a
 * test fails. The loader's attachTc on top is tested in loader.test.ts.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadObject } from '../../src/loader/load.js';
import {
  bpfObjGet,
  bpfProgInfo,
  bpfProgInfoById,
  closeFd,
  clsactParent,
  Rtnl,
  withPinnedFd,
  type BpfFilter,
} from '../../src/netlink/index.js';
import { ETH_P_ALL } from '../../src/netlink/constants.js';
import { run } from '../../src/util/exec.js';
import { BpfnetError } from '../../src/util/errors.js';
import { withBpfRoot, type BpfRoot } from '../harness/bpfroot.js';

let fx: BpfRoot;
let r: Rtnl;
let tcPin: string;
let tcPin2: string;
let xdpPin: string;

beforeAll(async () => {
  fx = await withBpfRoot();
  r = Rtnl.open(fx.netns);
  r.createVeth({ name: 'n0', peerName: 'n1', up: true });
  const empty = await loadObject('empty', { root: fx.root });
  const up = await loadObject('uplink', { root: fx.root });
  tcPin = empty.progs.empty_tc!;
  xdpPin = empty.progs.empty_xdp!;
  tcPin2 = up.progs.from_uplink!;
});

afterAll(async () => {
  r?.close();
  await fx?.cleanup();
});

function caught(fn: () => unknown): BpfnetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfnetError);
    return e as BpfnetError;
  }
  throw new Error('expected an error');
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('bpf() helpers', () => {
  it('an fd of a pinned program, its identity by fd and by id', () => {
    const fd = bpfObjGet(tcPin);
    try {
      const info = bpfProgInfo(fd);
      expect(info).toEqual({ id: expect.any(Number) as number, type: 3, name: 'empty_tc', tag: expect.stringMatching(/^[0-9a-f]{16}$/) as string });
      expect(bpfProgInfoById(info.id)).toEqual(info);
    } finally {
      closeFd(fd);
    }
  });

  it('a missing pin or id is E_NOT_FOUND; withPinnedFd closes its fd also when fn throws', () => {
    expect(caught(() => bpfObjGet(join(fx.root, 'nope'))).code).toBe('E_NOT_FOUND');
    expect(caught(() => bpfProgInfoById(0x7ffffff0)).code).toBe('E_NOT_FOUND');
    const before = openFds();
    expect(withPinnedFd(tcPin, (fd) => bpfProgInfo(fd).name)).toBe('empty_tc');
    expect(() => withPinnedFd(tcPin, () => { throw new Error('boom'); })).toThrow('boom');
    expect(openFds()).toBe(before);
  });
});

describe('clsact and cls_bpf over rtnetlink', () => {
  it('ensureClsact is idempotent and creates exactly one clsact', async () => {
    r.ensureClsact('n0');
    r.ensureClsact('n0');
    const { stdout } = await run('tc', ['-j', 'qdisc', 'show', 'dev', 'n0'], { netns: fx.netns });
    expect((JSON.parse(stdout) as { kind: string }[]).filter((q) => q.kind === 'clsact')).toHaveLength(1);
  });

  it('attach returns the filter as installed; the kernel keeps the program after our fd is closed', () => {
    const n0 = r.link('n0')!;
    const fd = bpfObjGet(tcPin);
    let f: BpfFilter;
    let id: number;
    try {
      id = bpfProgInfo(fd).id;
      f = r.attachBpfFilter({ dev: 'n0', direction: 'ingress', pref: 100, handle: 0xb9f, progFd: fd, name: 'empty_tc' });
    } finally {
      closeFd(fd);
    }
    expect(f).toEqual({
      index: n0.index,
      parent: clsactParent('ingress'),
      pref: 100,
      handle: 0xb9f,
      protocol: ETH_P_ALL,
      chain: 0,
      progId: id,
      name: 'empty_tc',
      tag: bpfProgInfoById(id).tag,
      directAction: true,
      inHw: false,
    });
    expect(r.listBpfFilters('n0', 'ingress')).toEqual([f]);
    // By ifindex, or an already looked-up device: the same.
    expect(r.listBpfFilters(n0.index, 'ingress')).toEqual([f]);
    expect(r.listBpfFilters({ index: n0.index, name: 'n0' }, 'ingress')).toEqual([f]);
    expect(r.listBpfFilters('n0', 'egress')).toEqual([]);
    expect(r.listBpfFilters('n1', 'ingress')).toEqual([]); // no clsact there: nothing, not an error
  });

  it('replace swaps the program in the slot; other slots and directions are separate', () => {
    const f2 = withPinnedFd(tcPin2, (progFd) => r.attachBpfFilter({ dev: 'n0', direction: 'ingress', pref: 100, handle: 0xb9f, progFd, name: 'from_uplink' }));
    expect(r.listBpfFilters('n0', 'ingress')).toEqual([f2]);
    expect(f2.name).toBe('from_uplink');
    const other = withPinnedFd(tcPin, (progFd) =>
      r.attachBpfFilter({ dev: 'n0', direction: 'ingress', pref: 200, handle: 1, progFd, directAction: false }));
    expect(other).toMatchObject({ pref: 200, handle: 1, directAction: false });
    expect(other.name).toBeUndefined();
    expect(r.listBpfFilters('n0', 'ingress').map((f) => [f.pref, f.handle])).toEqual([[100, 0xb9f], [200, 1]]);
    const eg = withPinnedFd(tcPin, (progFd) => r.attachBpfFilter({ dev: 'n0', direction: 'egress', pref: 100, handle: 0xb9f, progFd }));
    expect(eg.parent).toBe(clsactParent('egress'));
    expect(r.listBpfFilters('n0', 'egress')).toEqual([eg]);
  });

  it('detach deletes one filter and is idempotent (no filter, no clsact, no device)', () => {
    expect(r.detachBpfFilter('n0', 'ingress', 200, 1)).toBe(true);
    expect(r.detachBpfFilter('n0', 'ingress', 200, 1)).toBe(false);
    expect(r.listBpfFilters('n0', 'ingress').map((f) => [f.pref, f.handle])).toEqual([[100, 0xb9f]]);
    expect(r.detachBpfFilter('n0', 'ingress', 100, 0xb9f)).toBe(true);
    expect(r.detachBpfFilter('n0', 'egress', 100, 0xb9f)).toBe(true);
    expect(r.listBpfFilters('n0', 'ingress')).toEqual([]);
    expect(r.listBpfFilters('n0', 'egress')).toEqual([]);
    expect(r.detachBpfFilter('n1', 'ingress', 100, 0xb9f)).toBe(false);
    expect(r.detachBpfFilter('gone0', 'ingress', 100, 0xb9f)).toBe(false);
  });

  it('errors: no clsact, a program of another type, a missing device, invalid slots', () => {
    const noClsact = caught(() => withPinnedFd(tcPin, (progFd) => r.attachBpfFilter({ dev: 'n1', direction: 'ingress', pref: 100, handle: 1, progFd })));
    expect(noClsact.code).toBe('E_NETLINK');
    expect(noClsact.message).toMatch(/^attach bpf filter dev n1 ingress pref 100 handle 0x1: Invalid argument \(EINVAL\)/);
    const xdp = caught(() => withPinnedFd(xdpPin, (progFd) => r.attachBpfFilter({ dev: 'n0', direction: 'ingress', pref: 100, handle: 1, progFd })));
    expect(xdp.code).toBe('E_NETLINK');
    expect(caught(() => r.listBpfFilters('gone0', 'ingress')).code).toBe('E_NOT_FOUND');
    expect(caught(() => r.ensureClsact('gone0')).code).toBe('E_NOT_FOUND');
    for (const [pref, handle] of [[0, 1], [0x10000, 1], [1, 0], [1, 2 ** 32]] as const) {
      expect(caught(() => r.attachBpfFilter({ dev: 'n0', direction: 'ingress', pref, handle, progFd: 0 })).code).toBe('E_INVALID_ARGUMENT');
      expect(caught(() => r.detachBpfFilter('n0', 'ingress', pref, handle)).code).toBe('E_INVALID_ARGUMENT');
    }
    expect(caught(() => r.listBpfFilters('n0', 'sideways' as 'ingress')).code).toBe('E_INVALID_ARGUMENT');
    expect(r.listBpfFilters('n0', 'ingress')).toEqual([]);
  });
});
