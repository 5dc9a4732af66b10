/**
 * tc over rtnetlink without the kernel: handle arithmetic, the clsact qdisc
 * and cls_bpf filter requests as the kernel will read them (tcmsg layout,
 * flags, TCA_OPTIONS), and decoding filter messages as a dump or an echo
 * returns them.
 */
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import * as C from '../../src/netlink/constants.js';
import {
  attrNested,
  attrString,
  attrStringValue,
  attrU32,
  attr,
  attrU32Value,
  decodeTcMsg,
  encodeMessage,
  encodeTcMsg,
  parseAttrList,
  parseAttrs,
  parseMessages,
  type NlMessage,
} from '../../src/netlink/messages.js';
import { bpfFilterRequest, clsactRequest, deleteFilterRequest, dumpFiltersRequest } from '../../src/netlink/requests.js';
import { clsactParent, decodeBpfFilter, decodeTcFilterMessage, directionOfParent, filterInfo, swap16, tcHandle } from '../../src/netlink/tc.js';

const one = (buf: Buffer): NlMessage => {
  const msgs = parseMessages(buf);
  expect(msgs).toHaveLength(1);
  return msgs[0]!;
};

const LE = os.endianness() === 'LE';

describe('tc handles', () => {
  it('TC_H_MAKE and the clsact parents match linux/pkt_sched.h', () => {
    expect(tcHandle(C.TC_H_CLSACT, 0)).toBe(0xffff0000);
    expect(clsactParent('ingress')).toBe(0xfffffff2);
    expect(clsactParent('egress')).toBe(0xfffffff3);
    expect(directionOfParent(0xfffffff2)).toBe('ingress');
    expect(directionOfParent(0xfffffff3)).toBe('egress');
    expect(directionOfParent(0xffff0000)).toBeUndefined();
    // Unsigned even with the top bit set.
    expect(tcHandle(0xffff << 16, 0xffff)).toBe(0xffffffff);
  });

  it('tcm_info is the pref in the major half and the protocol, in network order, in the minor half', () => {
    expect(swap16(swap16(C.ETH_P_ALL))).toBe(C.ETH_P_ALL);
    const info = filterInfo(100, C.ETH_P_ALL);
    expect(info >>> 16).toBe(100);
    expect(swap16(info & 0xffff)).toBe(C.ETH_P_ALL);
    expect(filterInfo(0xffff, 0) >>> 0).toBe(0xffff0000);
    if (LE) expect(info).toBe(0x00640300);
  });
});

describe('tcmsg', () => {
  it('is 20 bytes: family, 3 pad bytes, ifindex, handle, parent, info', () => {
    const m = { family: 0, index: 7, handle: 0xb9f, parent: 0xfffffff2, info: filterInfo(100, C.ETH_P_ALL) };
    const b = encodeTcMsg(m);
    expect(b.length).toBe(C.TCMSG_LEN);
    expect(decodeTcMsg(b)).toEqual(m);
    if (LE) {
      expect(b.toString('hex')).toBe(['00000000', '07000000', '9f0b0000', 'f2ffffff', '00036400'].join(''));
    }
    expect(() => decodeTcMsg(Buffer.alloc(12))).toThrow(/truncated tcmsg/);
  });
});

describe('tc requests', () => {
  it('clsact: RTM_NEWQDISC with NLM_F_CREATE only (no REPLACE, no EXCL), parent ffff:fff1, handle ffff:0', () => {
    const m = one(clsactRequest(5));
    expect(m.type).toBe(C.RTM_NEWQDISC);
    expect(m.flags).toBe(C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE);
    expect(decodeTcMsg(m.payload)).toEqual({ family: 0, index: 5, handle: 0xffff0000, parent: 0xfffffff1, info: 0 });
    const a = parseAttrList(m.payload, C.TCMSG_LEN);
    expect(a.map((x) => x.type)).toEqual([C.TCA_KIND]);
    expect(attrStringValue(a[0]!.value)).toBe('clsact');
    expect(a[0]!.value.at(-1)).toBe(0); // NUL-terminated, as NLA_STRING wants
  });

  it('bpf filter: RTM_NEWTFILTER create|replace in (pref, handle), kind bpf, fd + name + direct-action', () => {
    const m = one(bpfFilterRequest({ index: 9, parent: clsactParent('ingress'), pref: 100, handle: 0xb9f, progFd: 42, name: 'from_uplink' }));
    expect(m.type).toBe(C.RTM_NEWTFILTER);
    expect(m.flags).toBe(C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_REPLACE);
    expect(m.flags & C.NLM_F_EXCL).toBe(0);
    const t = decodeTcMsg(m.payload);
    expect(t).toMatchObject({ index: 9, parent: 0xfffffff2, handle: 0xb9f });
    expect(t.info >>> 16).toBe(100);
    expect(swap16(t.info & 0xffff)).toBe(C.ETH_P_ALL);
    const a = parseAttrs(m.payload, C.TCMSG_LEN);
    expect([...a.keys()]).toEqual([C.TCA_KIND, C.TCA_OPTIONS]);
    expect(attrStringValue(a.get(C.TCA_KIND))).toBe('bpf');
    const o = parseAttrList(a.get(C.TCA_OPTIONS)!);
    expect(o.map((x) => x.type)).toEqual([C.TCA_BPF_FD, C.TCA_BPF_NAME, C.TCA_BPF_FLAGS]);
    const om = parseAttrs(a.get(C.TCA_OPTIONS)!);
    expect(attrU32Value(om.get(C.TCA_BPF_FD))).toBe(42);
    expect(attrStringValue(om.get(C.TCA_BPF_NAME))).toBe('from_uplink');
    expect(attrU32Value(om.get(C.TCA_BPF_FLAGS))).toBe(C.TCA_BPF_FLAG_ACT_DIRECT);
  });

  it('bpf filter options: egress, echo, no name, classic action mode, another protocol', () => {
    const m = one(bpfFilterRequest({ index: 3, parent: clsactParent('egress'), pref: 200, handle: 1, progFd: 7, echo: true, directAction: false, protocol: 0x0800 }));
    expect(m.flags).toBe(C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_REPLACE | C.NLM_F_ECHO);
    const t = decodeTcMsg(m.payload);
    expect(t.parent).toBe(0xfffffff3);
    expect(swap16(t.info & 0xffff)).toBe(0x0800);
    const o = parseAttrList(parseAttrs(m.payload, C.TCMSG_LEN).get(C.TCA_OPTIONS)!);
    expect(o.map((x) => x.type)).toEqual([C.TCA_BPF_FD]);
  });

  it('delete: RTM_DELTFILTER of one (pref, handle), any protocol, only of kind bpf; never pref 0 (a flush)', () => {
    const m = one(deleteFilterRequest({ index: 4, parent: clsactParent('ingress'), pref: 100, handle: 0xb9f, kind: 'bpf' }));
    expect(m.type).toBe(C.RTM_DELTFILTER);
    expect(m.flags).toBe(C.NLM_F_REQUEST | C.NLM_F_ACK);
    const t = decodeTcMsg(m.payload);
    expect(t).toMatchObject({ index: 4, parent: 0xfffffff2, handle: 0xb9f });
    expect(t.info).toBe(100 << 16);
    expect(attrStringValue(parseAttrs(m.payload, C.TCMSG_LEN).get(C.TCA_KIND))).toBe('bpf');
    for (const pref of [0, -1, 0x10000, 1.5]) {
      expect(() => deleteFilterRequest({ index: 4, parent: clsactParent('ingress'), pref, handle: 1, kind: 'bpf' })).toThrow(RangeError);
    }
  });

  it('dump: RTM_GETTFILTER with NLM_F_DUMP for one device and hook, every chain', () => {
    const m = one(dumpFiltersRequest(6, clsactParent('egress')));
    expect(m.type).toBe(C.RTM_GETTFILTER);
    expect(m.flags).toBe(C.NLM_F_REQUEST | C.NLM_F_DUMP);
    expect(decodeTcMsg(m.payload)).toEqual({ family: 0, index: 6, handle: 0, parent: 0xfffffff3, info: 0 });
    expect(m.payload.length).toBe(C.TCMSG_LEN);
  });
});

/** A filter message as cls_bpf's dump writes it (tcf_fill_node + cls_bpf_dump). */
function kernelFilter(o: { index: number; parent: number; pref: number; handle: number; kind: string; chain?: number; options?: Buffer[] }): NlMessage {
  const parts = [encodeTcMsg({ index: o.index, parent: o.parent, handle: o.handle, info: filterInfo(o.pref, C.ETH_P_ALL) }), attrString(C.TCA_KIND, o.kind)];
  parts.push(attrU32(C.TCA_CHAIN, o.chain ?? 0));
  if (o.options) parts.push(attrNested(C.TCA_OPTIONS, o.options));
  return one(encodeMessage({ type: C.RTM_NEWTFILTER, flags: C.NLM_F_MULTI }, ...parts));
}

describe('decoding filters', () => {
  const tag = Buffer.from('59f4a931744dcdc6', 'hex');
  const bpfOptions = [
    attrString(C.TCA_BPF_NAME, 'empty_tc'),
    attrU32(C.TCA_BPF_ID, 8290),
    attr(C.TCA_BPF_TAG, tag),
    attrU32(C.TCA_BPF_FLAGS, C.TCA_BPF_FLAG_ACT_DIRECT),
    attrU32(C.TCA_BPF_FLAGS_GEN, C.TCA_CLS_FLAGS_NOT_IN_HW),
  ];

  it('a cls_bpf filter: pref, handle, protocol, chain, program id, name, tag, direct-action', () => {
    const m = kernelFilter({ index: 2, parent: clsactParent('ingress'), pref: 100, handle: 0xb9f, kind: 'bpf', options: bpfOptions });
    expect(decodeBpfFilter(m)).toEqual({
      index: 2,
      parent: 0xfffffff2,
      pref: 100,
      handle: 0xb9f,
      protocol: C.ETH_P_ALL,
      chain: 0,
      progId: 8290,
      name: 'empty_tc',
      tag: '59f4a931744dcdc6',
      directAction: true,
      inHw: false,
    });
  });

  it('without direct-action, without a name; classic BPF has no program id', () => {
    const m = kernelFilter({ index: 2, parent: clsactParent('egress'), pref: 1, handle: 1, kind: 'bpf', chain: 3, options: [attrU32(C.TCA_BPF_OPS_LEN, 1)] });
    expect(decodeBpfFilter(m)).toEqual({ index: 2, parent: 0xfffffff3, pref: 1, handle: 1, protocol: C.ETH_P_ALL, chain: 3, directAction: false, inHw: false });
  });

  it('the per-pref header entry of a dump (no options) and other kinds are not bpf filters', () => {
    const header = kernelFilter({ index: 2, parent: clsactParent('ingress'), pref: 100, handle: 0, kind: 'bpf' });
    expect(decodeTcFilterMessage(header)).toMatchObject({ pref: 100, handle: 0, kind: 'bpf', chain: 0 });
    expect(decodeTcFilterMessage(header).options).toBeUndefined();
    expect(decodeBpfFilter(header)).toBeUndefined();
    const u32 = kernelFilter({ index: 2, parent: clsactParent('ingress'), pref: 100, handle: 0x800, kind: 'u32', options: [attrU32(1, 0)] });
    expect(decodeBpfFilter(u32)).toBeUndefined();
  });
});
