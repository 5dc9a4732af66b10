/**
 * The NAT garbage collector's decisions (pure), and one run over real pinned
 * maps driven by a fake clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  idleExpired, isPeer, NatGc, natCtExpired, nextInterval, planGc, snatFlowExpired, snatPeerKey, snatTimeout,
  SNAT_DIR_IN, SNAT_DIR_OUT, SNAT_ST_FIN, SNAT_ST_REPLY, SNAT_ST_RST, SNAT_ST_SYN,
} from '../../src/dataplane/ebpf/gc.js';
import type { NatCtKey, NatCtValue, SnatKey, SnatValue } from '../../src/maps/generated/abi.js';
import { loadObject } from '../../src/loader/load.js';
import { TypedMap } from '../../src/maps/map.js';
import { withBpfRoot, type BpfRoot } from '../harness/bpfroot.js';

const S = 1_000_000_000n;
const H = 3600n * S;
const NOW = 1_000_000n * S; // a monotonic clock some 11 days after boot
const tcp = 6;
const udp = 17;
const icmp = 1;

type Row = [SnatKey, SnatValue];

/** Both halves of C:cport -> R:rport masqueraded as N:nport. */
function flow(c: string, cport: number, r: string, rport: number, proto: number, nport: number, state: number, ago: bigint, inAgo = ago): Row[] {
  const isIcmp = proto === icmp;
  return [
    [{ saddr: c, daddr: r, sport: cport, dport: isIcmp ? cport : rport, proto, dir: SNAT_DIR_OUT }, { addr: '198.18.0.1', port: nport, state, flags: 0, last_seen_ns: NOW - ago }],
    [{ saddr: r, daddr: '198.18.0.1', sport: isIcmp ? nport : rport, dport: nport, proto, dir: SNAT_DIR_IN }, { addr: c, port: cport, state: 0, flags: 0, last_seen_ns: NOW - inAgo }],
  ];
}

const ids = (keys: SnatKey[]) => keys.map((k) => `${k.dir} ${k.saddr}:${k.sport}>${k.daddr}:${k.dport}/${k.proto}`).sort();

describe('timeouts', () => {
  const table: [string, number, number, bigint][] = [
    ['TCP SYN only', tcp, SNAT_ST_SYN, 60n * S],
    ['TCP re-created mid-flow, no reply yet', tcp, 0, 60n * S],
    ['TCP established', tcp, SNAT_ST_SYN | SNAT_ST_REPLY, 6n * H],
    ['TCP after FIN', tcp, SNAT_ST_SYN | SNAT_ST_REPLY | SNAT_ST_FIN, 10n * S],
    ['TCP after RST', tcp, SNAT_ST_RST, 10n * S],
    ['UDP', udp, SNAT_ST_REPLY, 60n * S],
    ['UDP unreplied', udp, 0, 60n * S],
    ['ICMP echo', icmp, SNAT_ST_REPLY, 30n * S],
  ];
  for (const [what, proto, state, want] of table) it(what, () => expect(snatTimeout(proto, state)).toBe(want));

  it('idle exactly the timeout is still live; one ns more is dead', () => {
    expect(idleExpired(NOW, NOW - 60n * S, 60n * S)).toBe(false);
    expect(idleExpired(NOW, NOW - 60n * S - 1n, 60n * S)).toBe(true);
  });
  it('a timestamp ahead of the clock is never expired', () => {
    expect(idleExpired(NOW, NOW + 5n * H, 0n)).toBe(false);
  });
  it('nat_ct: 6 h idle for TCP, 60 s for UDP', () => {
    const v = (ago: bigint): NatCtValue => ({ orig_addr: '198.18.0.1', orig_port: 8080, flags: 0, client_addr: '0.0.0.0', last_seen_ns: NOW - ago });
    const k = (proto: number): NatCtKey => ({ saddr: '198.19.0.2', daddr: '192.0.2.1', sport: 80, dport: 40000, proto });
    expect(natCtExpired(NOW, k(tcp), v(5n * H))).toBe(false);
    expect(natCtExpired(NOW, k(tcp), v(7n * H))).toBe(true);
    expect(natCtExpired(NOW, k(udp), v(59n * S))).toBe(false);
    expect(natCtExpired(NOW, k(udp), v(61n * S))).toBe(true);
  });
});

describe('pairs', () => {
  it('OUT and IN lead to each other (TCP and ICMP echo)', () => {
    for (const proto of [tcp, udp, icmp]) {
      const [[ok, ov], [ik, iv]] = flow('198.19.0.2', 40000, '203.0.113.7', 443, proto, 62000, 0, 0n) as [Row, Row];
      expect(snatPeerKey(ok, ov)).toEqual(ik);
      expect(snatPeerKey(ik, iv)).toEqual(ok);
      expect(isPeer(ok, ov, ik, iv)).toBe(true);
    }
  });
  it('an IN entry re-claimed by another flow is not the OUT entry\'s peer', () => {
    const [[ok, ov]] = flow('198.19.0.2', 40000, '203.0.113.7', 443, tcp, 62000, 0, 0n) as [Row, Row];
    const [, [ik, iv]] = flow('198.19.0.3', 40000, '203.0.113.7', 443, tcp, 62000, 0, 0n) as [Row, Row];
    expect(isPeer(ok, ov, ik, iv)).toBe(false);
  });
  it('the newest half and the union of the state bits decide', () => {
    const [[, ov], [, iv]] = flow('198.19.0.2', 40000, '203.0.113.7', 443, tcp, 62000, SNAT_ST_SYN, 2n * H, 1n * S) as [Row, Row];
    // OUT alone: SYN only and 2 h idle -> dead; with IN (replied 1 s ago, state REPLY): established and live.
    expect(snatFlowExpired(NOW, tcp, [ov])).toBe(true);
    expect(snatFlowExpired(NOW, tcp, [ov, { ...iv, state: SNAT_ST_REPLY }])).toBe(false);
    expect(snatFlowExpired(NOW, tcp, [undefined, undefined])).toBe(false);
  });
});

describe('planGc', () => {
  const live = [
    ...flow('198.19.0.2', 40000, '203.0.113.7', 443, tcp, 62000, SNAT_ST_SYN | SNAT_ST_REPLY, 5n * H),
    ...flow('198.19.0.2', 40001, '203.0.113.7', 53, udp, 62001, SNAT_ST_REPLY, 30n * S),
    ...flow('198.19.0.2', 7, '203.0.113.7', 0, icmp, 62002, 0, 10n * S),
    // OUT idle for long, but replies keep arriving on IN: live
    ...flow('198.19.0.2', 40002, '203.0.113.7', 443, tcp, 62003, SNAT_ST_REPLY, 7n * H, 1n * S),
  ];
  const dead = [
    ...flow('198.19.0.2', 40010, '203.0.113.7', 443, tcp, 62010, SNAT_ST_SYN, 61n * S),
    ...flow('198.19.0.2', 40011, '203.0.113.7', 443, tcp, 62011, SNAT_ST_REPLY | SNAT_ST_FIN, 11n * S),
    ...flow('198.19.0.2', 40012, '203.0.113.7', 443, tcp, 62012, SNAT_ST_REPLY, 7n * H),
    ...flow('198.19.0.2', 40013, '203.0.113.7', 53, udp, 62013, 0, 61n * S),
    ...flow('198.19.0.2', 8, '203.0.113.7', 0, icmp, 62014, SNAT_ST_REPLY, 31n * S),
  ];

  it('deletes dead flows whole and nothing else', () => {
    const plan = planGc(NOW, [...live, ...dead], []);
    expect(ids(plan.snat)).toEqual(ids(dead.map(([k]) => k)));
  });

  it('orphans are judged alone: a dead one goes, a live one stays (BPF may adopt it)', () => {
    const deadIn = flow('198.19.0.4', 1, '203.0.113.7', 443, tcp, 62020, SNAT_ST_REPLY, 7n * H)[1]!;
    const liveOut = flow('198.19.0.4', 2, '203.0.113.7', 443, tcp, 62021, SNAT_ST_SYN, 1n * S)[0]!;
    const plan = planGc(NOW, [deadIn, liveOut], []);
    expect(ids(plan.snat)).toEqual(ids([deadIn[0]]));
  });

  it('an agent restart changes nothing: the same snapshot gives the same plan, and live flows survive it', () => {
    const rows = [...live, ...dead];
    const first = planGc(NOW, rows, []);
    const afterRestart = planGc(NOW, [...rows].reverse(), []);
    expect(ids(afterRestart.snat)).toEqual(ids(first.snat));
    expect(planGc(NOW, live, []).snat).toEqual([]);
  });

  it('entries of an unknown direction are left alone', () => {
    const [k, v] = flow('198.19.0.2', 1, '203.0.113.7', 443, tcp, 62030, 0, 100n * H)[0]!;
    expect(planGc(NOW, [[{ ...k, dir: 3 }, v]], []).snat).toEqual([]);
  });

  it('nat_ct entries by protocol', () => {
    const row = (sport: number, proto: number, ago: bigint): [NatCtKey, NatCtValue] =>
      [{ saddr: '198.19.0.2', daddr: '192.0.2.1', sport, dport: 40000, proto }, { orig_addr: '198.18.0.1', orig_port: 8080, flags: 0, client_addr: '0.0.0.0', last_seen_ns: NOW - ago }];
    const plan = planGc(NOW, [], [row(80, tcp, 1n * H), row(81, tcp, 7n * H), row(53, udp, 10n * S), row(54, udp, 2n * 60n * S)]);
    expect(plan.natCt.map((k) => k.sport).sort()).toEqual([54, 81]);
  });
});

describe('nextInterval', () => {
  const p = { minMs: 10_000, maxMs: 300_000 };
  it('nothing deleted: half as often, up to the max', () => {
    expect(nextInterval(10_000, { deleted: 0, scanned: 100, fill: 0.01 }, p)).toBe(20_000);
    expect(nextInterval(200_000, { deleted: 0, scanned: 0, fill: 0 }, p)).toBe(300_000);
  });
  it('a quarter or more deleted: twice as often, down to the min', () => {
    expect(nextInterval(80_000, { deleted: 30, scanned: 100, fill: 0.01 }, p)).toBe(40_000);
    expect(nextInterval(15_000, { deleted: 100, scanned: 100, fill: 0 }, p)).toBe(10_000);
  });
  it('a map past half full: twice as often whatever was deleted', () => {
    expect(nextInterval(300_000, { deleted: 0, scanned: 200_000, fill: 0.6 }, p)).toBe(150_000);
  });
  it('some deleted, little pressure: unchanged', () => {
    expect(nextInterval(60_000, { deleted: 5, scanned: 100, fill: 0.01 }, p)).toBe(60_000);
  });
});

describe('NatGc on real pinned maps', () => {
  let bpf: BpfRoot;
  beforeAll(async () => {
    bpf = await withBpfRoot();
    await loadObject('uplink', { root: bpf.root });
  });
  afterAll(async () => {
    await bpf?.cleanup();
  });

  it('deletes what is dead by the (fake) clock, keeps the rest, adapts its interval', async () => {
    const snat = TypedMap.open(bpf.mapDir, 'bpfnet_snat');
    const ct = TypedMap.open(bpf.mapDir, 'bpfnet_nat_ct');
    try {
      const live = flow('198.19.0.2', 40000, '203.0.113.7', 443, tcp, 62000, SNAT_ST_REPLY, 1n * H);
      const dead = flow('198.19.0.2', 40001, '203.0.113.7', 443, tcp, 62001, SNAT_ST_SYN, 2n * 60n * S);
      await snat.setMany([...live, ...dead]);
      await ct.setMany([
        [{ saddr: '198.19.0.2', daddr: '192.0.2.1', sport: 53, dport: 40000, proto: udp }, { orig_addr: '198.18.0.1', orig_port: 5353, flags: 0, client_addr: '0.0.0.0', last_seen_ns: NOW - 5n * 60n * S }],
        [{ saddr: '198.19.0.2', daddr: '192.0.2.1', sport: 80, dport: 40000, proto: tcp }, { orig_addr: '198.18.0.1', orig_port: 8080, flags: 0, client_addr: '0.0.0.0', last_seen_ns: NOW - 5n * 60n * S }],
      ]);
      const reports: number[] = [];
      const gc = new NatGc({ mapDir: bpf.mapDir, clock: () => NOW, onRun: (r) => reports.push(r.nextMs) });
      const r = await gc.runOnce();
      expect(r.scanned).toEqual({ snat: 4, natCt: 2 });
      expect(r.deleted).toEqual({ snat: 2, natCt: 1 });
      expect(ids((await snat.toArray()).map(([k]) => k))).toEqual(ids(live.map(([k]) => k)));
      expect((await ct.toArray()).map(([k]) => k.proto)).toEqual([tcp]);
      expect(r.nextMs).toBe(10_000); // half of what was there went: as often as allowed

      // A second run (or the first after a restart) finds nothing more to do.
      const again = await new NatGc({ mapDir: bpf.mapDir, clock: () => NOW }).runOnce();
      expect(again.deleted).toEqual({ snat: 0, natCt: 0 });
      expect(again.nextMs).toBe(20_000);
      expect(reports).toEqual([10_000]);

      // Much later, everything is gone.
      const late = await new NatGc({ mapDir: bpf.mapDir, clock: () => NOW + 7n * H }).runOnce();
      expect(late.deleted).toEqual({ snat: 2, natCt: 1 });
      expect(await snat.toArray()).toEqual([]);
    } finally {
      snat.close();
      ct.close();
    }
  });

  it('start/stop runs in the background and stops cleanly', async () => {
    const runs: number[] = [];
    const gc = new NatGc({ mapDir: bpf.mapDir, clock: () => NOW, onRun: (r) => runs.push(r.scanned.snat) });
    gc.start();
    for (let i = 0; i < 100 && runs.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await gc.stop();
    expect(runs.length).toBeGreaterThan(0);
  });

  it('refuses a nonsensical interval with a typed error', () => {
    expect(() => new NatGc({ mapDir: bpf.mapDir, interval: { minMs: 0 } })).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });

  it('a missing map is a typed error', async () => {
    await expect(new NatGc({ mapDir: '/nonexistent' }).runOnce()).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});
