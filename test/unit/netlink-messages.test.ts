/**
 * rtnetlink encoding and decoding without the kernel: framing, attribute
 * alignment and nesting, the fixed headers, requests as the kernel will read
 * them, dump decoding, error acks and the errors built from them.
 */
import { describe, expect, it } from 'vitest';
import { BpfnetError } from '../../src/util/errors.js';
import * as C from '../../src/netlink/constants.js';
import {
  align4,
  attr,
  attrBytesOfString,
  attrNested,
  attrString,
  attrStringValue,
  attrU16,
  attrU32,
  attrU32Value,
  attrU8,
  decodeHeader,
  decodeIfAddrMsg,
  decodeIfInfoMsg,
  decodeNdMsg,
  decodeRtMsg,
  encodeAck,
  encodeIfAddrMsg,
  encodeIfInfoMsg,
  encodeMessage,
  encodeNdMsg,
  encodeRtMsg,
  parseAck,
  parseAttrList,
  parseAttrs,
  parseMessages,
  setSeq,
  type NlMessage,
} from '../../src/netlink/messages.js';
import { broadcastOf, formatIPv4, formatMac, parseCidr, parseIPv4, parseMac } from '../../src/netlink/ipv4.js';
import { decodeAddr, decodeLink, decodeNeigh, decodeRoute, nudStateName } from '../../src/netlink/objects.js';
import {
  addrRequest,
  deleteLinkRequest,
  dumpNeighRequest,
  getLinkRequest,
  neighProxyRequest,
  newLinkRequest,
  routeRequest,
  setLinkRequest,
  vethData,
} from '../../src/netlink/requests.js';
import { errnoName, errnoText, netlinkError, systemError } from '../../src/netlink/errors.js';
import { sysctlPath } from '../../src/netlink/netns.js';
import { checkName, describeRoute } from '../../src/netlink/rtnl.js';

const one = (buf: Buffer): NlMessage => {
  const msgs = parseMessages(buf);
  expect(msgs).toHaveLength(1);
  return msgs[0]!;
};

describe('nlmsghdr framing', () => {
  it('encodes the header in host order with the total length and decodes it back', () => {
    const body = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const m = encodeMessage({ type: C.RTM_NEWLINK, flags: C.NLM_F_REQUEST | C.NLM_F_ACK, seq: 7, pid: 42 }, body);
    expect(m.length).toBe(24);
    expect(decodeHeader(m)).toEqual({ len: 24, type: 16, flags: 5, seq: 7, pid: 42 });
    setSeq(m, 0xfffffffe);
    expect(decodeHeader(m).seq).toBe(0xfffffffe);
    const [p] = parseMessages(m);
    expect(p!.payload).toEqual(body);
  });

  it('splits concatenated messages at their aligned lengths', () => {
    // An odd-length message is padded to 4 bytes before the next one.
    const a = encodeMessage({ type: 100, flags: 0, seq: 1 }, Buffer.from([9, 9, 9]));
    const padded = Buffer.concat([a, Buffer.alloc(align4(a.length) - a.length)]);
    const b = encodeMessage({ type: C.NLMSG_DONE, flags: C.NLM_F_MULTI, seq: 1 }, Buffer.alloc(4));
    const msgs = parseMessages(Buffer.concat([padded, b]));
    expect(msgs.map((m) => [m.type, m.payload.length])).toEqual([
      [100, 3],
      [C.NLMSG_DONE, 4],
    ]);
  });

  it('stops at a truncated message instead of reading past the buffer', () => {
    const a = encodeMessage({ type: 100, flags: 0 }, Buffer.alloc(8));
    const b = encodeMessage({ type: 101, flags: 0 }, Buffer.alloc(40));
    expect(parseMessages(Buffer.concat([a, b.subarray(0, 30)])).map((m) => m.type)).toEqual([100]);
    expect(parseMessages(Buffer.alloc(10))).toEqual([]);
  });
});

describe('attributes', () => {
  it('pads every attribute to 4 bytes; nla_len excludes the padding', () => {
    for (const [data, total] of [
      [Buffer.alloc(0), 4],
      [Buffer.alloc(1), 8],
      [Buffer.alloc(3), 8],
      [Buffer.alloc(4), 8],
      [Buffer.alloc(5), 12],
    ] as const) {
      const a = attr(9, data);
      expect(a.length).toBe(total);
      expect(a.readUInt16LE(0)).toBe(4 + data.length);
    }
    expect(attrU8(1, 7).length).toBe(8);
    expect(attrU16(1, 7).length).toBe(8);
    expect(attrString(3, 'eth0')).toEqual(Buffer.from([9, 0, 3, 0, 0x65, 0x74, 0x68, 0x30, 0, 0, 0, 0]));
  });

  it('reads a sequence of differently sized attributes back, in order, duplicates kept', () => {
    const buf = Buffer.concat([attrU8(1, 0xab), attrString(3, 'veth0'), attrU32(4, 1500), attr(5, Buffer.alloc(0)), attrU32(4, 9000)]);
    const list = parseAttrList(buf);
    expect(list.map((a) => [a.type, a.value.length])).toEqual([
      [1, 1],
      [3, 6],
      [4, 4],
      [5, 0],
      [4, 4],
    ]);
    const m = parseAttrs(buf);
    expect(attrStringValue(m.get(3))).toBe('veth0');
    expect(attrU32Value(m.get(4))).toBe(9000); // the last one wins
  });

  it('nests attributes and masks NLA_F_NESTED / NLA_F_NET_BYTEORDER off the type', () => {
    const inner = [attrString(C.IFLA_INFO_KIND, 'bridge'), attrU32(7, 1)];
    const plain = parseAttrList(attrNested(C.IFLA_LINKINFO, inner))[0]!;
    const flagged = parseAttrList(attrNested(C.IFLA_LINKINFO, inner, true))[0]!;
    expect([plain.type, plain.nested]).toEqual([C.IFLA_LINKINFO, false]);
    expect([flagged.type, flagged.nested]).toEqual([C.IFLA_LINKINFO, true]);
    expect(attrStringValue(parseAttrs(flagged.value).get(C.IFLA_INFO_KIND))).toBe('bridge');
    expect(parseAttrList(attr(C.NLA_F_NET_BYTEORDER | 2, Buffer.alloc(2)))[0]!.type).toBe(2);
  });

  it('stops at a malformed attribute (length shorter than its header or past the end)', () => {
    const good = attrU32(1, 5);
    const bad = Buffer.from([2, 0, 9, 0]); // nla_len 2 < 4
    expect(parseAttrList(Buffer.concat([good, bad, attrU32(3, 1)])).map((a) => a.type)).toEqual([1]);
    const long = attrU32(1, 5);
    long.writeUInt16LE(40, 0);
    expect(parseAttrList(long)).toEqual([]);
  });

  it('an alias is sent without its NUL, so an empty one clears it', () => {
    expect(attrBytesOfString(C.IFLA_IFALIAS, '').length).toBe(4);
    expect(attrBytesOfString(C.IFLA_IFALIAS, 'bpfnet:1').readUInt16LE(0)).toBe(12);
  });
});

describe('fixed headers', () => {
  it('round-trips ifinfomsg, ifaddrmsg, rtmsg and ndmsg at their kernel sizes', () => {
    const ifi = { family: 2, type: 1, index: 1220, flags: C.IFF_UP | C.IFF_LOWER_UP, change: 0xffffffff };
    expect(encodeIfInfoMsg(ifi).length).toBe(16);
    expect(decodeIfInfoMsg(encodeIfInfoMsg(ifi))).toEqual(ifi);
    const ifa = { family: 2, prefixLen: 24, flags: 0x80, scope: 253, index: 70000 };
    expect(encodeIfAddrMsg(ifa).length).toBe(8);
    expect(decodeIfAddrMsg(encodeIfAddrMsg(ifa))).toEqual(ifa);
    const rt = { family: 2, dstLen: 32, srcLen: 0, tos: 0, table: 254, protocol: 185, scope: 253, type: 1, flags: C.RTNH_F_ONLINK };
    expect(encodeRtMsg(rt).length).toBe(12);
    expect(decodeRtMsg(encodeRtMsg(rt))).toEqual(rt);
    const nd = { family: 2, index: 3, state: C.NUD_PERMANENT, flags: C.NTF_PROXY, type: 1 };
    expect(encodeNdMsg(nd).length).toBe(12);
    expect(decodeNdMsg(encodeNdMsg(nd))).toEqual(nd);
  });

  it('refuses a truncated header', () => {
    expect(() => decodeIfInfoMsg(Buffer.alloc(8))).toThrow(/truncated ifinfomsg/);
  });
});

describe('requests', () => {
  it('a veth with its peer in another netns is one RTM_NEWLINK the kernel can read', () => {
    const req = newLinkRequest({
      name: 'bn1234abcd',
      kind: 'veth',
      up: true,
      mtu: 1450,
      mac: '02:42:ac:11:00:01',
      master: 5,
      data: vethData({ name: 'eth0', netnsFd: 33, mtu: 1450, mac: '02:42:ac:11:00:02' }),
    });
    const m = one(req);
    expect(m.type).toBe(C.RTM_NEWLINK);
    expect(m.flags).toBe(C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL);
    expect(decodeIfInfoMsg(m.payload)).toMatchObject({ index: 0, flags: C.IFF_UP, change: C.IFF_UP });
    const a = parseAttrs(m.payload, C.IFINFOMSG_LEN);
    expect(attrStringValue(a.get(C.IFLA_IFNAME))).toBe('bn1234abcd');
    expect(attrU32Value(a.get(C.IFLA_MTU))).toBe(1450);
    expect(formatMac(a.get(C.IFLA_ADDRESS)!)).toBe('02:42:ac:11:00:01');
    expect(attrU32Value(a.get(C.IFLA_MASTER))).toBe(5);
    const info = parseAttrs(a.get(C.IFLA_LINKINFO)!);
    expect(attrStringValue(info.get(C.IFLA_INFO_KIND))).toBe('veth');
    const peer = parseAttrs(info.get(C.IFLA_INFO_DATA)!).get(C.VETH_INFO_PEER)!;
    // The peer: its own ifinfomsg (created down), then its attributes.
    expect(decodeIfInfoMsg(peer)).toMatchObject({ index: 0, flags: 0, change: 0 });
    const pa = parseAttrs(peer, C.IFINFOMSG_LEN);
    expect(attrStringValue(pa.get(C.IFLA_IFNAME))).toBe('eth0');
    expect(attrU32Value(pa.get(C.IFLA_NET_NS_FD))).toBe(33);
    expect(attrU32Value(pa.get(C.IFLA_MTU))).toBe(1450);
    expect(formatMac(pa.get(C.IFLA_ADDRESS)!)).toBe('02:42:ac:11:00:02');
    expect(pa.has(C.IFLA_MASTER)).toBe(false);
  });

  it('targets a device by index, or by IFLA_IFNAME with index 0', () => {
    const byName = one(deleteLinkRequest({ name: 'br0' }));
    expect(decodeIfInfoMsg(byName.payload).index).toBe(0);
    expect(attrStringValue(parseAttrs(byName.payload, C.IFINFOMSG_LEN).get(C.IFLA_IFNAME))).toBe('br0');
    const byIndex = one(getLinkRequest({ index: 7 }));
    expect(decodeIfInfoMsg(byIndex.payload).index).toBe(7);
    const a = parseAttrs(byIndex.payload, C.IFINFOMSG_LEN);
    expect(a.has(C.IFLA_IFNAME)).toBe(false);
    expect(attrU32Value(a.get(C.IFLA_EXT_MASK))).toBe(C.RTEXT_FILTER_SKIP_STATS);
  });

  it('setLink: down clears IFF_UP through the change mask; master 0 releases; untouched fields are absent', () => {
    const m = one(setLinkRequest({ index: 4 }, { up: false, master: 0, name: 'eth1' }));
    expect(m.type).toBe(C.RTM_SETLINK);
    expect(decodeIfInfoMsg(m.payload)).toMatchObject({ index: 4, flags: 0, change: C.IFF_UP });
    const a = parseAttrs(m.payload, C.IFINFOMSG_LEN);
    expect(attrU32Value(a.get(C.IFLA_MASTER))).toBe(0);
    expect(attrStringValue(a.get(C.IFLA_IFNAME))).toBe('eth1');
    expect([...a.keys()].sort()).toEqual([C.IFLA_IFNAME, C.IFLA_MASTER].sort());
    expect(decodeIfInfoMsg(one(setLinkRequest({ index: 4 }, { mtu: 9000 })).payload).change).toBe(0);
  });

  it('addresses: local+address, broadcast up to /30, host scope for 127/8, replace vs exclusive', () => {
    const m = one(addrRequest('add', 3, parseCidr('10.1.2.3/24')));
    expect(m.flags).toBe(C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL);
    expect(decodeIfAddrMsg(m.payload)).toEqual({ family: C.AF_INET, prefixLen: 24, flags: 0, scope: 0, index: 3 });
    const a = parseAttrs(m.payload, C.IFADDRMSG_LEN);
    expect(formatIPv4(a.get(C.IFA_LOCAL)!)).toBe('10.1.2.3');
    expect(formatIPv4(a.get(C.IFA_ADDRESS)!)).toBe('10.1.2.3');
    expect(formatIPv4(a.get(C.IFA_BROADCAST)!)).toBe('10.1.2.255');
    expect(parseAttrs(one(addrRequest('add', 3, parseCidr('10.1.2.3/32'))).payload, 8).has(C.IFA_BROADCAST)).toBe(false);
    expect(parseAttrs(one(addrRequest('add', 3, parseCidr('10.1.2.3/31'))).payload, 8).has(C.IFA_BROADCAST)).toBe(false);
    expect(decodeIfAddrMsg(one(addrRequest('add', 1, parseCidr('127.0.0.2/8'))).payload).scope).toBe(254);
    expect(one(addrRequest('add', 3, parseCidr('10.1.2.3/24'), { replace: true })).flags & C.NLM_F_REPLACE).toBeTruthy();
    const del = one(addrRequest('del', 3, parseCidr('10.1.2.3/24')));
    expect([del.type, del.flags]).toEqual([C.RTM_DELADDR, C.NLM_F_REQUEST | C.NLM_F_ACK]);
  });

  it('routes: iproute2 defaults when adding, wildcards when deleting', () => {
    const dflt = one(routeRequest('add', { dst: 'default', gateway: parseIPv4('10.0.0.1') }));
    expect(decodeRtMsg(dflt.payload)).toEqual({ family: 2, dstLen: 0, srcLen: 0, tos: 0, table: 254, protocol: C.RTPROT_BOOT, scope: 0, type: 1, flags: 0 });
    const da = parseAttrs(dflt.payload, C.RTMSG_LEN);
    expect(da.has(C.RTA_DST)).toBe(false);
    expect(formatIPv4(da.get(C.RTA_GATEWAY)!)).toBe('10.0.0.1');

    const devRoute = one(routeRequest('add', { dst: parseCidr('10.0.1.2/32'), oif: 9, protocol: 185, onlink: true }));
    expect(decodeRtMsg(devRoute.payload)).toMatchObject({ dstLen: 32, scope: C.RT_SCOPES.link, protocol: 185, flags: C.RTNH_F_ONLINK });
    const ra = parseAttrs(devRoute.payload, C.RTMSG_LEN);
    expect(formatIPv4(ra.get(C.RTA_DST)!)).toBe('10.0.1.2');
    expect(attrU32Value(ra.get(C.RTA_OIF))).toBe(9);

    const local = decodeRtMsg(one(routeRequest('add', { dst: parseCidr('10.9.9.9/32'), type: 'local', oif: 1 })).payload);
    expect(local).toMatchObject({ table: C.RT_TABLE_LOCAL, scope: C.RT_SCOPES.host, type: C.RTN_TYPES.local });
    const hole = decodeRtMsg(one(routeRequest('add', { dst: parseCidr('10.8.0.0/16'), type: 'blackhole' })).payload);
    expect(hole).toMatchObject({ scope: 0, type: C.RTN_TYPES.blackhole });

    const big = one(routeRequest('add', { dst: 'default', gateway: parseIPv4('10.0.0.1'), table: 1000 }));
    expect(decodeRtMsg(big.payload).table).toBe(C.RT_TABLE_UNSPEC);
    expect(attrU32Value(parseAttrs(big.payload, C.RTMSG_LEN).get(C.RTA_TABLE))).toBe(1000);

    const del = one(routeRequest('del', { dst: parseCidr('10.0.1.0/24') }));
    expect(del.type).toBe(C.RTM_DELROUTE);
    expect(del.flags).toBe(C.NLM_F_REQUEST | C.NLM_F_ACK);
    expect(decodeRtMsg(del.payload)).toMatchObject({ table: 254, protocol: 0, scope: C.RT_SCOPES.nowhere, type: 0 });
    expect(one(routeRequest('add', { dst: 'default', gateway: parseIPv4('10.0.0.1') }, { replace: true })).flags).toBe(
      C.NLM_F_REQUEST | C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_REPLACE,
    );
  });

  it('proxy neighbours carry NTF_PROXY, and the proxy dump asks for exactly NTF_PROXY', () => {
    const m = one(neighProxyRequest('add', 4, parseIPv4('10.0.0.9')));
    expect(decodeNdMsg(m.payload)).toEqual({ family: 2, index: 4, state: C.NUD_PERMANENT, flags: C.NTF_PROXY, type: 0 });
    expect(formatIPv4(parseAttrs(m.payload, C.NDMSG_LEN).get(C.NDA_DST)!)).toBe('10.0.0.9');
    expect(decodeNdMsg(one(dumpNeighRequest(true)).payload).flags).toBe(C.NTF_PROXY);
    expect(one(dumpNeighRequest(false)).flags).toBe(C.NLM_F_REQUEST | C.NLM_F_DUMP);
  });
});

describe('decoding dumps', () => {
  it('a veth link with master, alias, peer and peer netns id', () => {
    const m = one(
      encodeMessage(
        { type: C.RTM_NEWLINK, flags: C.NLM_F_MULTI },
        encodeIfInfoMsg({ index: 12, flags: C.IFF_UP | C.IFF_LOWER_UP }),
        attrString(C.IFLA_IFNAME, 'bn1'),
        attrU32(C.IFLA_MTU, 1500),
        attr(C.IFLA_ADDRESS, parseMac('02:00:00:00:00:0c')),
        attrU8(C.IFLA_OPERSTATE, C.IF_OPER_UP),
        attrU32(C.IFLA_MASTER, 3),
        attrString(C.IFLA_IFALIAS, 'bpfnet:x'),
        attrU32(C.IFLA_LINK, 2),
        attrU32(C.IFLA_LINK_NETNSID, 0),
        attrNested(C.IFLA_LINKINFO, [attrString(C.IFLA_INFO_KIND, 'veth')]),
      ),
    );
    expect(decodeLink(m)).toEqual({
      index: 12,
      name: 'bn1',
      kind: 'veth',
      mtu: 1500,
      mac: '02:00:00:00:00:0c',
      up: true,
      operUp: true,
      operState: 'up',
      flags: C.IFF_UP | C.IFF_LOWER_UP,
      master: 3,
      alias: 'bpfnet:x',
      peerIndex: 2,
      linkNetnsId: 0,
    });
  });

  it('lo: no kind, operstate unknown with carrier counts as up; IFLA_LINK equal to the index is no peer', () => {
    const m = one(
      encodeMessage(
        { type: C.RTM_NEWLINK, flags: 0 },
        encodeIfInfoMsg({ index: 1, flags: C.IFF_UP | C.IFF_LOWER_UP }),
        attrString(C.IFLA_IFNAME, 'lo'),
        attrU8(C.IFLA_OPERSTATE, C.IF_OPER_UNKNOWN),
        attrU32(C.IFLA_LINK, 1),
      ),
    );
    const l = decodeLink(m);
    expect([l.kind, l.operUp, l.operState, l.peerIndex, l.master]).toEqual([undefined, true, 'unknown', undefined, undefined]);
  });

  it('an address, a route and neighbours', () => {
    const addr = decodeAddr(
      one(
        encodeMessage(
          { type: C.RTM_NEWADDR, flags: 0 },
          encodeIfAddrMsg({ family: 2, prefixLen: 16, scope: 0, index: 2 }),
          attr(C.IFA_ADDRESS, parseIPv4('172.18.0.2')),
          attr(C.IFA_LOCAL, parseIPv4('172.18.0.2')),
          attr(C.IFA_BROADCAST, parseIPv4('172.18.255.255')),
          attrString(C.IFA_LABEL, 'eth0'),
        ),
      ),
    );
    expect(addr).toEqual({ index: 2, address: '172.18.0.2', prefixLen: 16, cidr: '172.18.0.2/16', broadcast: '172.18.255.255', label: 'eth0', scope: 'universe' });

    const route = decodeRoute(
      one(
        encodeMessage(
          { type: C.RTM_NEWROUTE, flags: 0 },
          encodeRtMsg({ family: 2, dstLen: 0, table: 254, protocol: 185, scope: 0, type: 1, flags: C.RTNH_F_ONLINK }),
          attrU32(C.RTA_TABLE, 254),
          attr(C.RTA_GATEWAY, parseIPv4('169.254.1.1')),
          attrU32(C.RTA_OIF, 2),
          attrU32(C.RTA_PRIORITY, 100),
        ),
      ),
    );
    expect(route).toEqual({ dst: 'default', table: 254, protocol: 185, scope: 'universe', type: 'unicast', gateway: '169.254.1.1', oif: 2, metric: 100, onlink: true });
    const host = decodeRoute(
      one(encodeMessage({ type: C.RTM_NEWROUTE, flags: 0 }, encodeRtMsg({ dstLen: 32, table: 255, scope: 254, type: 2 }), attr(C.RTA_DST, parseIPv4('10.0.0.1')))),
    );
    expect([host.dst, host.table, host.scope, host.type]).toEqual(['10.0.0.1/32', 255, 'host', 'local']);
    expect(decodeRoute(one(encodeMessage({ type: 24, flags: 0 }, encodeRtMsg({ scope: 17, type: 42 })))).scope).toBe('17');

    const neigh = decodeNeigh(
      one(
        encodeMessage(
          { type: C.RTM_NEWNEIGH, flags: 0 },
          encodeNdMsg({ family: 2, index: 3, state: C.NUD_STATES.reachable }),
          attr(C.NDA_DST, parseIPv4('10.0.0.2')),
          attr(C.NDA_LLADDR, parseMac('02:00:00:00:00:02')),
        ),
      ),
    );
    expect(neigh).toEqual({ index: 3, ip: '10.0.0.2', mac: '02:00:00:00:00:02', state: 'reachable', proxy: false, router: false });
    const proxy = decodeNeigh(one(encodeMessage({ type: C.RTM_NEWNEIGH, flags: 0 }, encodeNdMsg({ family: 2, index: 3, flags: C.NTF_PROXY }), attr(C.NDA_DST, parseIPv4('10.0.0.9')))));
    expect([proxy.proxy, proxy.state, proxy.mac]).toEqual([true, 'none', undefined]);
    expect(nudStateName(C.NUD_STATES.permanent | C.NUD_STATES.noarp)).toBe('noarp,permanent');
  });
});

describe('acks and errors', () => {
  const req = { type: C.RTM_NEWLINK, flags: C.NLM_F_REQUEST | C.NLM_F_ACK, seq: 5, pid: 0, len: 64 };

  it('a plain ack is errno 0 and names the request it answers', () => {
    const ack = parseAck(one(encodeAck(req, 0)));
    expect(ack).toEqual({ errno: 0, request: { type: C.RTM_NEWLINK, flags: 5, seq: 5, pid: 0 } });
  });

  it('an error carries the positive errno and the extended-ack message and offset', () => {
    const ack = parseAck(one(encodeAck(req, 17, { message: 'Device already exists', offset: 32 })));
    expect([ack.errno, ack.message, ack.offset]).toEqual([17, 'Device already exists', 32]);
  });

  it('without NETLINK_CAP_ACK the request is echoed and the TLVs follow it', () => {
    const echoed = encodeMessage(req, Buffer.alloc(48, 0xee)); // 64 bytes
    const body = Buffer.alloc(4);
    body.writeInt32LE(-22, 0);
    const m = one(
      encodeMessage({ type: C.NLMSG_ERROR, flags: C.NLM_F_ACK_TLVS, seq: 5 }, body, echoed, attrString(C.NLMSGERR_ATTR_MSG, 'Unknown device type')),
    );
    expect(parseAck(m)).toMatchObject({ errno: 22, message: 'Unknown device type' });
  });

  it('NLMSG_DONE carries a failed dump’s errno', () => {
    const body = Buffer.alloc(4);
    body.writeInt32LE(-16, 0);
    expect(parseAck(one(encodeMessage({ type: C.NLMSG_DONE, flags: C.NLM_F_MULTI }, body))).errno).toBe(16);
    expect(parseAck(one(encodeMessage({ type: C.NLMSG_DONE, flags: C.NLM_F_MULTI }, Buffer.alloc(4)))).errno).toBe(0);
  });

  it('turns errnos into BpfnetErrors that name the operation, the object and the errno', () => {
    const e = netlinkError('create veth bn1234abcd', 17);
    expect(e).toBeInstanceOf(BpfnetError);
    expect(e.code).toBe('E_CONFLICT');
    expect(e.message).toBe('create veth bn1234abcd: File exists (EEXIST)');
    expect(e.details).toEqual({ op: 'create veth bn1234abcd', errno: 17, errnoName: 'EEXIST' });
    expect(netlinkError('set master of bn1', 16).code).toBe('E_CONFLICT');
    const nodev = netlinkError('set link nope', 19);
    expect([nodev.code, nodev.message]).toEqual(['E_NOT_FOUND', 'set link nope: No such device (ENODEV)']);
    const ext = netlinkError('add route default via 10.0.0.1', 101, 'Nexthop has invalid gateway');
    expect([ext.code, ext.message, ext.details.kernelMessage]).toEqual([
      'E_NETLINK',
      'add route default via 10.0.0.1: Network is unreachable (ENETUNREACH): Nexthop has invalid gateway',
      'Nexthop has invalid gateway',
    ]);
    expect(netlinkError('delete route 10.0.0.0/8', 3, undefined, ['ESRCH']).code).toBe('E_NOT_FOUND');
    expect(netlinkError('delete route 10.0.0.0/8', 3).code).toBe('E_NETLINK');
    expect([errnoName(95), errnoName(11), errnoText(95), errnoText(999)]).toEqual(['EOPNOTSUPP', 'EAGAIN', 'Operation not supported', 'Unknown error 999']);
  });

  it('wraps the addon’s and node:fs errors with syscall and path', () => {
    const nativeErr = Object.assign(new Error('mount --bind /run/x: Operation not permitted'), { errno: 1, code: 'EPERM', syscall: 'mount --bind', path: '/run/x' });
    const e = systemError('create netns /run/x', nativeErr, 'E_NETNS') as BpfnetError;
    expect([e.code, e.message]).toEqual(['E_NETNS', 'create netns /run/x: mount --bind /run/x: Operation not permitted (EPERM)']);
    const fsErr = Object.assign(new Error('ENOENT'), { errno: -2, code: 'ENOENT', syscall: 'open', path: '/run/netns/none' });
    expect((systemError('create veth a (netns)', fsErr, 'E_NETNS') as BpfnetError).message).toBe(
      'create veth a (netns): open /run/netns/none: No such file or directory (ENOENT)',
    );
    expect((systemError('create netns /x', Object.assign(new Error('x'), { errno: 17, syscall: 'netns create', path: '/x' }), 'E_NETNS') as BpfnetError).code).toBe('E_CONFLICT');
    const plain = new Error('not a system error');
    expect(systemError('op', plain, 'E_NETNS')).toBe(plain);
  });
});

describe('arguments', () => {
  it('IPv4 addresses, prefixes and MACs', () => {
    expect(parseCidr('10.0.0.2/24')).toMatchObject({ ip: '10.0.0.2', prefixLen: 24 });
    expect(parseCidr('10.0.0.2').prefixLen).toBe(32);
    for (const bad of ['10.0.0.256/24', '10.0.0/24', '10.0.0.1/33', '10.0.0.1/', 'x', '010.0.0.1/8']) {
      expect(() => parseCidr(bad), bad).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    }
    expect(formatIPv4(broadcastOf(parseIPv4('10.1.2.3'), 0))).toBe('255.255.255.255');
    expect(formatIPv4(broadcastOf(parseIPv4('10.1.2.3'), 8))).toBe('10.255.255.255');
    expect(formatIPv4(broadcastOf(parseIPv4('10.1.2.3'), 32))).toBe('10.1.2.3');
    expect(formatMac(parseMac('02:42:AC:11:00:02'))).toBe('02:42:ac:11:00:02');
    expect(() => parseMac('02:42:ac:11:00')).toThrow(/invalid MAC/);
  });

  it('interface names follow the kernel’s rules (1-15 bytes, no / : or spaces)', () => {
    for (const ok of ['eth0', 'bn1234abcd', 'a'.repeat(15), 'br-1.2@x']) expect(() => checkName(ok, 'op')).not.toThrow();
    for (const bad of ['', '.', '..', 'a'.repeat(16), 'a/b', 'a:b', 'a b']) {
      expect(() => checkName(bad, 'create bridge'), bad).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    }
  });

  it('sysctl keys become /proc/sys paths; a key with slashes is a path already', () => {
    expect(sysctlPath('net.ipv4.conf.bn1.proxy_arp')).toBe('net/ipv4/conf/bn1/proxy_arp');
    expect(sysctlPath('net/ipv4/conf/eth0.100/proxy_arp')).toBe('net/ipv4/conf/eth0.100/proxy_arp');
    for (const bad of ['', '../etc', 'net/../x', '/net/ipv4', 'net..ipv4', 'net ipv4', 'net/ipv4/']) {
      expect(() => sysctlPath(bad), bad).toThrow(/invalid sysctl key/);
    }
  });

  it('routes are described the way ip shows them', () => {
    expect(describeRoute({ dst: 'default', gateway: '10.0.0.1', dev: 'eth0' })).toBe('default via 10.0.0.1 dev eth0');
    expect(describeRoute({ dst: '10.9.0.0/16', type: 'blackhole', table: 100 })).toBe('blackhole 10.9.0.0/16 table 100');
  });
});
