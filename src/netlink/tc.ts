/**
 * Traffic control over rtnetlink, limited to what an eBPF dataplane needs: the
 * clsact qdisc and cls_bpf filters in direct-action mode on its ingress and
 * egress hooks (what `tc qdisc add dev D clsact` and `tc filter replace dev D
 * ingress pref P handle H bpf direct-action fd N` do, without a process).
 * This file holds the pure part (handle arithmetic, types, decoding a filter
 * message); the requests are in requests.ts, the calls are Rtnl methods
 * (ensureClsact, attachBpfFilter, listBpfFilters, detachBpfFilter).
 */
import os from 'node:os';
import {
  TC_H_CLSACT,
  TC_H_MAJ_MASK,
  TC_H_MIN_EGRESS,
  TC_H_MIN_INGRESS,
  TC_H_MIN_MASK,
  TCA_BPF_FLAG_ACT_DIRECT,
  TCA_BPF_FLAGS,
  TCA_BPF_FLAGS_GEN,
  TCA_BPF_ID,
  TCA_BPF_NAME,
  TCA_BPF_TAG,
  TCA_CHAIN,
  TCA_CLS_FLAGS_IN_HW,
  TCA_KIND,
  TCA_OPTIONS,
  TCMSG_LEN,
} from './constants.js';
import { attrStringValue, attrU32Value, decodeTcMsg, parseAttrs, type NlMessage } from './messages.js';

export type TcDirection = 'ingress' | 'egress';

/** TC_H_MAKE(maj, min): the major half of maj, the minor half of min. */
export function tcHandle(maj: number, min: number): number {
  return ((maj & TC_H_MAJ_MASK) | (min & TC_H_MIN_MASK)) >>> 0;
}

/** tcm_parent of a filter on the clsact hook: ffff:fff2 (ingress) or ffff:fff3 (egress). */
export function clsactParent(direction: TcDirection): number {
  return tcHandle(TC_H_CLSACT, direction === 'ingress' ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
}

/** The hook a clsact parent stands for, or undefined for another parent. */
export function directionOfParent(parent: number): TcDirection | undefined {
  if (parent === clsactParent('ingress')) return 'ingress';
  if (parent === clsactParent('egress')) return 'egress';
  return undefined;
}

const LE = os.endianness() === 'LE';

/** htons/ntohs (the same swap). */
export function swap16(v: number): number {
  return LE ? ((v & 0xff) << 8) | ((v >> 8) & 0xff) : v & 0xffff;
}

/** tcm_info of a filter: TC_H_MAKE(pref << 16, htons(protocol)). */
export function filterInfo(pref: number, protocol: number): number {
  return tcHandle(pref << 16, swap16(protocol));
}

/** A cls_bpf filter as the kernel reports it (a dump entry or the echo of an attach). */
export interface BpfFilter {
  /** ifindex of the device. */
  index: number;
  /** tcm_parent (ffff:fff2 for clsact ingress, ffff:fff3 for egress). */
  parent: number;
  /** Priority: lower runs first. */
  pref: number;
  /** Identifies the filter within its pref. */
  handle: number;
  /** ETH_P_* in host order (3: all). */
  protocol: number;
  chain: number;
  /** The eBPF program's id (TCA_BPF_ID); undefined for classic BPF. */
  progId?: number;
  /** TCA_BPF_NAME: the annotation given at attach (tc: "<file>:[<section>]"). */
  name?: string;
  /** TCA_BPF_TAG as 16 hex digits. */
  tag?: string;
  /** TCA_BPF_FLAG_ACT_DIRECT: the program's return value is the action. */
  directAction: boolean;
  /** Offloaded to the NIC (TCA_CLS_FLAGS_IN_HW). */
  inHw: boolean;
}

/** What the kernel says about one filter message, before knowing its kind. */
export interface TcFilterMessage {
  index: number;
  parent: number;
  pref: number;
  protocol: number;
  handle: number;
  kind?: string;
  chain: number;
  /** TCA_OPTIONS; absent in the per-(pref, protocol) header a dump sends before the filters themselves. */
  options?: Buffer;
}

/** Decodes an RTM_NEWTFILTER (pure). */
export function decodeTcFilterMessage(m: NlMessage): TcFilterMessage {
  const t = decodeTcMsg(m.payload);
  const a = parseAttrs(m.payload, TCMSG_LEN);
  const f: TcFilterMessage = {
    index: t.index,
    parent: t.parent,
    pref: t.info >>> 16,
    protocol: swap16(t.info & 0xffff),
    handle: t.handle,
    chain: attrU32Value(a.get(TCA_CHAIN)) ?? 0,
  };
  const kind = attrStringValue(a.get(TCA_KIND));
  if (kind !== undefined) f.kind = kind;
  const options = a.get(TCA_OPTIONS);
  if (options) f.options = options;
  return f;
}

/** The cls_bpf filter in a filter message, or undefined for another kind or a dump's header entry. */
export function decodeBpfFilter(m: NlMessage): BpfFilter | undefined {
  const f = decodeTcFilterMessage(m);
  if (f.kind !== 'bpf' || !f.options) return undefined;
  const o = parseAttrs(f.options);
  const flags = attrU32Value(o.get(TCA_BPF_FLAGS)) ?? 0;
  const gen = attrU32Value(o.get(TCA_BPF_FLAGS_GEN)) ?? 0;
  const out: BpfFilter = {
    index: f.index,
    parent: f.parent,
    pref: f.pref,
    handle: f.handle,
    protocol: f.protocol,
    chain: f.chain,
    directAction: (flags & TCA_BPF_FLAG_ACT_DIRECT) !== 0,
    inHw: (gen & TCA_CLS_FLAGS_IN_HW) !== 0,
  };
  const id = attrU32Value(o.get(TCA_BPF_ID));
  if (id !== undefined) out.progId = id;
  const name = attrStringValue(o.get(TCA_BPF_NAME));
  if (name !== undefined) out.name = name;
  const tag = o.get(TCA_BPF_TAG);
  if (tag) out.tag = tag.toString('hex');
  return out;
}
