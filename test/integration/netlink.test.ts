/**
 * The rtnetlink layer against the real kernel, in namespaces of its own: a
 * scratch "node" netns plays the host (nothing touches the machine's own
 * interfaces, routes or firewall), containers are netns files in a private
 * directory under /run, all removed afterwards, also when a test fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { run, tryRun } from '../../src/util/exec.js';
import { BpfnetError } from '../../src/util/errors.js';
import { createNetns, deleteNetns, readSysctl, removeNetnsDir, Rtnl, sysctl } from '../../src/netlink/index.js';

const TAG = randomBytes(3).toString('hex');
const DIR = `/run/bpfnet-test-${TAG}`;
const NODE = `${DIR}/node`;
const C1 = `${DIR}/c1`;
const C2 = `${DIR}/c2`;
/** Host-side devices: <= 15 chars, unique per run. */
const V1 = `bn${TAG}a`;
const V2 = `bn${TAG}b`;
const PAIR = `bx${TAG}`;
/** bpfnet-ish route protocol number, to find its routes again. */
const PROTO = 186;

const opened: Rtnl[] = [];
function open(ns: string): Rtnl {
  const r = Rtnl.open(ns);
  opened.push(r);
  return r;
}

async function ping(ns: string, ip: string, attempts = 3): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    if (await tryRun('ping', ['-c1', '-W1', '-n', ip], { netns: ns })) return true;
  }
  return false;
}

function caught(fn: () => unknown): BpfnetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfnetError);
    return e as BpfnetError;
  }
  throw new Error('expected an error');
}

const threadNetns = (): string => readlinkSync('/proc/thread-self/ns/net');

describe('rtnetlink in network namespaces', () => {
  let node: Rtnl;
  let c1: Rtnl;
  let hostNetns: string;
  let brIndex: number;
  let v1: { index: number; peerIndex: number };

  beforeAll(() => {
    hostNetns = threadNetns();
    createNetns(NODE);
    node = open(NODE);
    node.setLink('lo', { up: true });
  });

  afterAll(() => {
    for (const r of opened) r.close();
    removeNetnsDir(DIR);
  });

  it('creates namespaces at any path, in a shared directory, and never leaves the caller in them', () => {
    const p = `${DIR}/scratch`;
    createNetns(p);
    const r = Rtnl.open(p);
    try {
      expect(r.links().map((l) => l.name)).toEqual(['lo']);
    } finally {
      r.close();
    }
    // Like iproute2's /run/netns: the directory is a shared mount, so netns mounts propagate.
    const mount = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === DIR);
    expect(mount).toMatch(/ shared:\d+/);
    // A live netns at the path is a conflict, not a second mount on top.
    const e = caught(() => createNetns(p));
    expect(e.code).toBe('E_CONFLICT');
    expect(e.message).toBe(`create netns ${p}: a network namespace is mounted there already (EEXIST)`);
    expect(caught(() => createNetns('/netns-in-root')).code).toBe('E_INVALID_ARGUMENT');
    deleteNetns(p);
    deleteNetns(p); // idempotent
    expect(readdirSync(DIR)).not.toContain('scratch');
    expect(caught(() => Rtnl.open(p))).toMatchObject({ code: 'E_NETNS', message: expect.stringContaining(`open ${p}: No such file or directory (ENOENT)`) });
    expect(threadNetns()).toBe(hostNetns);
  });

  it('bridge + veth with its peer created as eth0 inside the container netns, in one request', async () => {
    const br = node.createBridge('br0', { up: true, alias: 'bpfnet:net1' });
    brIndex = br.index;
    expect(br).toMatchObject({ name: 'br0', kind: 'bridge', up: true, alias: 'bpfnet:net1' });
    node.addAddr('br0', '10.77.0.1/24');

    createNetns(C1);
    v1 = node.createVeth({
      name: V1,
      peerName: 'eth0',
      peerNetnsPath: C1,
      master: 'br0',
      alias: `bpfnet:${TAG}`,
      mtu: 1400,
      mac: '02:42:0a:4d:00:fe',
      peerMac: '02:42:0a:4d:00:02',
      up: true,
    });
    const host = node.link(V1)!;
    expect(host).toMatchObject({ index: v1.index, kind: 'veth', master: brIndex, alias: `bpfnet:${TAG}`, mtu: 1400, mac: '02:42:0a:4d:00:fe', up: true });
    expect(host.peerIndex).toBe(v1.peerIndex);
    expect(host.linkNetnsId).toBeTypeOf('number');

    c1 = open(C1);
    const eth0 = c1.link('eth0')!;
    // peerIndex is the ifindex inside the container, and eth0's IFLA_LINK points back.
    expect(eth0).toMatchObject({ index: v1.peerIndex, kind: 'veth', mac: '02:42:0a:4d:00:02', mtu: 1400, peerIndex: v1.index, up: false });
    expect(c1.link(v1.peerIndex)!.name).toBe('eth0');
    // The same pairing as iproute2 shows it: eth0@if<host index>.
    const { stdout } = await run('ip', ['-o', 'link', 'show', 'eth0'], { netns: C1 });
    expect(stdout).toContain(`eth0@if${v1.index}:`);

    c1.setLink('lo', { up: true });
    c1.addAddr('eth0', '10.77.0.2/24');
    c1.setLink(v1.peerIndex, { up: true });
    c1.addRoute({ dst: 'default', gateway: '10.77.0.1' });
    expect(c1.addrs('eth0').map((a) => a.cidr)).toEqual(['10.77.0.2/24']);
    expect(c1.routes()).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '10.77.0.1', dev: 'eth0', protocol: 3, scope: 'universe' }));
    expect(c1.routes()).toContainEqual(expect.objectContaining({ dst: '10.77.0.0/24', dev: 'eth0', protocol: 2, scope: 'link', prefsrc: '10.77.0.2' }));

    expect(await ping(C1, '10.77.0.1')).toBe(true);
    expect(await ping(NODE, '10.77.0.2')).toBe(true);
    // The bridge took its port's MAC (the lowest one), which eth0 resolved 10.77.0.1 to.
    expect(c1.neighbours('eth0')).toContainEqual(expect.objectContaining({ ip: '10.77.0.1', mac: node.link('br0')!.mac, proxy: false, dev: 'eth0' }));
    expect(threadNetns()).toBe(hostNetns);
  });

  it('a routed /32 endpoint: protocol-tagged host route, proxy_arp through sysctl, routes filtered by protocol', async () => {
    createNetns(C2);
    const v2 = node.createVeth({ name: V2, peerName: 'eth0', peerNetnsPath: C2, up: true });
    const c2 = open(C2);
    c2.setLink('lo', { up: true });
    c2.addAddr('eth0', '10.77.1.2/32');
    c2.setLink('eth0', { up: true });
    // The container believes the bridge network is on-link: the host must answer ARP for it.
    c2.addRoute({ dst: '10.77.0.0/24', dev: 'eth0' });
    expect(c2.routes()).toContainEqual(expect.objectContaining({ dst: '10.77.0.0/24', scope: 'link', dev: 'eth0' }));

    sysctl(NODE, 'net.ipv4.ip_forward', 1);
    node.addRoute({ dst: '10.77.1.2/32', dev: V2, protocol: PROTO });
    expect(node.routes({ protocol: PROTO })).toEqual([
      { dst: '10.77.1.2/32', table: 254, protocol: PROTO, scope: 'link', type: 'unicast', oif: v2.index, dev: V2, onlink: false },
    ]);
    expect(node.routes({ dev: V2 }).map((r) => r.dst)).toEqual(['10.77.1.2/32']);
    expect(node.routes({ table: 'all' }).some((r) => r.table === 255 && r.type === 'local' && r.dst === '10.77.0.1/32')).toBe(true);

    // Without proxy_arp nobody answers for 10.77.0.2 on the container's link.
    expect(readSysctl(NODE, `net.ipv4.conf.${V2}.proxy_arp`)).toBe('0');
    expect(await ping(C2, '10.77.0.2', 1)).toBe(false);
    sysctl(NODE, `net.ipv4.conf.${V2}.proxy_arp`, '1');
    expect(readSysctl(NODE, `net.ipv4.conf.${V2}.proxy_arp`)).toBe('1');
    expect(await ping(C2, '10.77.0.2')).toBe(true);
    // sysctls are per netns: the containers were not touched.
    expect(readSysctl(NODE, 'net.ipv4.ip_forward')).toBe('1');
    expect(readSysctl(C1, 'net.ipv4.ip_forward')).toBe('0');
    expect(caught(() => readSysctl(NODE, 'net.ipv4.conf.nodev0.proxy_arp'))).toMatchObject({
      code: 'E_NOT_FOUND',
      message: `read sysctl net.ipv4.conf.nodev0.proxy_arp in netns ${NODE}: open /proc/sys/net/ipv4/conf/nodev0/proxy_arp: No such file or directory (ENOENT)`,
    });

    expect(node.delRoute({ dst: '10.77.1.2/32', dev: V2, protocol: PROTO })).toBe(true);
    expect(node.routes({ protocol: PROTO })).toEqual([]);
    expect(node.delRoute({ dst: '10.77.1.2/32', protocol: PROTO }, { ifExists: true })).toBe(false);
    expect(caught(() => node.delRoute({ dst: '10.77.1.2/32', protocol: PROTO }))).toMatchObject({
      code: 'E_NOT_FOUND',
      message: `delete route 10.77.1.2/32 proto ${PROTO}: No such process (ESRCH)`,
    });
    // replace is idempotent; a second plain add conflicts.
    node.addRoute({ dst: '10.77.1.2/32', dev: V2, protocol: PROTO, replace: true });
    node.addRoute({ dst: '10.77.1.2/32', dev: V2, protocol: PROTO, replace: true });
    expect(node.routes({ protocol: PROTO })).toHaveLength(1);
    expect(caught(() => node.addRoute({ dst: '10.77.1.2/32', dev: V2, protocol: PROTO })).code).toBe('E_CONFLICT');
    node.addRoute({ dst: '10.78.0.0/16', type: 'blackhole', protocol: PROTO });
    node.addRoute({ dst: '10.79.0.0/16', gateway: '10.77.1.2', dev: V2, onlink: true, protocol: PROTO, metric: 50 });
    expect(node.routes({ protocol: PROTO })).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: '10.78.0.0/16', type: 'blackhole' }),
        expect.objectContaining({ dst: '10.79.0.0/16', gateway: '10.77.1.2', onlink: true, metric: 50, dev: V2 }),
      ]),
    );
  });

  it('proxy neighbours: add (idempotent), list, delete', () => {
    node.addNeighProxy(V2, '10.77.1.1');
    node.addNeighProxy(V2, '10.77.1.1');
    const proxies = node.neighbours(V2).filter((n) => n.proxy);
    expect(proxies).toEqual([expect.objectContaining({ ip: '10.77.1.1', dev: V2, proxy: true })]);
    expect(node.neighbours().some((n) => !n.proxy && n.ip === '10.77.1.2' && n.dev === V2)).toBe(true);
    expect(node.delNeighProxy(V2, '10.77.1.1')).toBe(true);
    expect(node.delNeighProxy(V2, '10.77.1.1', { ifExists: true })).toBe(false);
    expect(node.neighbours(V2).filter((n) => n.proxy)).toEqual([]);
  });

  it('setLink: rename, mtu, mac, alias, master on and off, move into another netns', () => {
    const d = node.createVeth({ name: PAIR, peerName: `${PAIR}p`, alias: 'bpfnet:d', up: true });
    expect(node.link(PAIR)).toMatchObject({ kind: 'veth', alias: 'bpfnet:d', up: true, peerIndex: d.peerIndex });
    expect(node.link(`${PAIR}p`)).toMatchObject({ index: d.peerIndex, up: false, peerIndex: d.index });
    expect(node.link(`${PAIR}p`)!.linkNetnsId).toBeUndefined(); // both ends here
    const renamed = `${PAIR}x`;
    node.setLink(PAIR, { name: renamed, mtu: 1300, mac: '02:00:00:00:aa:01', alias: '', up: false });
    expect(node.link(PAIR)).toBeUndefined();
    const l = node.link(renamed)!;
    expect([l.index, l.mtu, l.mac, l.alias, l.up]).toEqual([d.index, 1300, '02:00:00:00:aa:01', undefined, false]);

    node.setLink(V1, { master: null });
    expect(node.link(V1)!.master).toBeUndefined();
    node.setLink(v1.index, { master: brIndex });
    expect(node.link(V1)!.master).toBe(brIndex);

    node.setLink(renamed, { netnsPath: C1 });
    expect(node.link(renamed)).toBeUndefined();
    expect(c1.link(renamed)).toMatchObject({ kind: 'veth', mtu: 1300, peerIndex: d.peerIndex });
    expect(c1.deleteLink(renamed)).toBe(true);
    expect(node.link(`${PAIR}p`)).toBeUndefined(); // the peer went along, across namespaces
  });

  it('deleteLink: a veth takes its peer along; deleting again is E_NOT_FOUND, or false with ifExists', () => {
    const c2 = open(C2);
    expect(c2.link('eth0')).toBeDefined();
    expect(node.deleteLink(V2)).toBe(true);
    expect(c2.link('eth0')).toBeUndefined();
    expect(node.deleteLink(V2, { ifExists: true })).toBe(false);
    expect(caught(() => node.deleteLink(V2))).toMatchObject({ code: 'E_NOT_FOUND', message: `delete link ${V2}: No such device (ENODEV)` });
    expect(node.routes({ protocol: PROTO }).map((r) => r.dst)).toEqual(['10.78.0.0/16']); // routes via V2 went with it
  });

  it('errors name the operation, the object and the errno', () => {
    const dup = caught(() => node.createBridge('br0'));
    expect([dup.code, dup.message, dup.details.errno, dup.details.op]).toEqual(['E_CONFLICT', 'create bridge br0: File exists (EEXIST)', 17, 'create bridge br0']);
    // The peer name is taken inside the container netns.
    const peer = caught(() => node.createVeth({ name: `bn${TAG}c`, peerName: 'eth0', peerNetnsPath: C1 }));
    expect([peer.code, peer.message]).toEqual(['E_CONFLICT', `create veth bn${TAG}c: File exists (EEXIST)`]);
    expect(node.link(`bn${TAG}c`)).toBeUndefined();
    expect(caught(() => c1.addAddr('eth0', '10.77.0.2/24'))).toMatchObject({ code: 'E_CONFLICT', message: 'add address 10.77.0.2/24 dev eth0: File exists (EEXIST): ipv4: Address already assigned' });
    c1.addAddr('eth0', '10.77.0.2/24', { replace: true });

    expect(caught(() => node.setLink('nodev0', { up: true }))).toMatchObject({ code: 'E_NOT_FOUND', message: 'set link nodev0: No such device (ENODEV)' });
    expect(caught(() => node.addAddr('nodev0', '10.0.0.1/24'))).toMatchObject({
      code: 'E_NOT_FOUND',
      message: 'add address 10.0.0.1/24 dev nodev0: no such device nodev0 (ENODEV)',
    });
    expect(caught(() => node.createVeth({ name: `bn${TAG}d`, peerName: 'eth0', master: 'nobridge0' })).message).toBe(
      `create veth bn${TAG}d: no such device nobridge0 (ENODEV)`,
    );
    const unreachable = caught(() => c1.addRoute({ dst: '10.90.0.0/16', gateway: '192.0.2.1' }));
    expect([unreachable.code, unreachable.details.errnoName]).toEqual(['E_NETLINK', 'ENETUNREACH']);
    expect(unreachable.message).toMatch(/^add route 10\.90\.0\.0\/16 via 192\.0\.2\.1: Network is unreachable \(ENETUNREACH\)/);
    expect(caught(() => c1.delAddr('eth0', '10.77.0.9/24'))).toMatchObject({ code: 'E_NOT_FOUND' });
    expect(c1.delAddr('eth0', '10.77.0.9/24', { ifExists: true })).toBe(false);

    expect(caught(() => node.createBridge('a-name-too-long-x')).code).toBe('E_INVALID_ARGUMENT');
    expect(caught(() => node.addAddr('br0', '10.0.0.300/24')).code).toBe('E_INVALID_ARGUMENT');
    expect(caught(() => node.createVeth({ name: `bn${TAG}e`, peerName: 'eth0', peerNetnsPath: `${DIR}/none` }))).toMatchObject({
      code: 'E_NETNS',
      message: `create veth bn${TAG}e (netns): open ${DIR}/none: No such file or directory (ENOENT)`,
    });
    const closed = Rtnl.open(NODE);
    closed.close();
    closed.close();
    expect(caught(() => closed.links()).message).toBe('list links: the rtnetlink socket is closed');
    expect(threadNetns()).toBe(hostNetns);
  });

  it('leaks no file descriptors: 1000 sockets, 50 namespaces, failures included', () => {
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    for (let i = 0; i < 1000; i++) {
      const r = Rtnl.open(NODE);
      expect(r.link(1)!.name).toBe('lo');
      r.close();
    }
    for (let i = 0; i < 50; i++) {
      const p = `${DIR}/leak${i}`;
      createNetns(p);
      expect(() => createNetns(p)).toThrow();
      sysctl(p, 'net.ipv4.ip_forward', 1);
      deleteNetns(p);
      expect(() => Rtnl.open(p)).toThrow();
      expect(() => node.createVeth({ name: `bn${TAG}l`, peerName: 'eth0', peerNetnsPath: p })).toThrow();
    }
    expect(fds()).toBe(before);
    expect(threadNetns()).toBe(hostNetns);
  });
});
