/**
 * Plan -> nft scripts, pure. bpfnet owns two tables and nothing else:
 * - `table ip bpfnet`: published ports in two maps looked up once per new
 *   flow (exact frontend `addr . proto . port`, then wildcard `proto . port`),
 *   masquerade, and Docker's forward policy (CT / INTERNAL / per-network
 *   chains reached through a verdict map on the output device);
 * - `table bridge bpfnet`: per-port anti-spoofing on bridge ports, where the
 *   ip family only sees the bridge as input device.
 * A full render replaces both tables in one transaction (add-then-delete
 * makes it work whether or not they exist); a port-only change is a handful
 * of element adds and deletes, also one transaction.
 */
import { frontendKey, type NetPlan, type NetSel, type Plan } from '../netfilter/plan.js';
import type { PublishedPort } from '../types.js';

export const TABLE = 'bpfnet';
/** The families bpfnet has a table in. */
export const FAMILIES = ['ip', 'bridge'] as const;

/** Base and regular chains of `table ip bpfnet` (names avoid nft keywords). */
export const IP_CHAINS = ['rawpre', 'natpre', 'natout', 'publish', 'natpost', 'filterfwd', 'filterin', 'filterout'] as const;
export const netChain = (id: number) => `net${id}`;

const q = (dev: string) => `"${dev}"`;
const from = (s: NetSel) => (s.kind === 'dev' ? `iifname ${q(s.dev)}` : `ip saddr ${s.cidr}`);
const notFrom = (s: NetSel) => (s.kind === 'dev' ? `iifname != ${q(s.dev)}` : `ip saddr != ${s.cidr}`);
const to = (s: NetSel) => (s.kind === 'dev' ? `oifname ${q(s.dev)}` : `ip daddr ${s.cidr}`);
const notTo = (s: NetSel) => (s.kind === 'dev' ? `oifname != ${q(s.dev)}` : `ip daddr != ${s.cidr}`);

/** Map element keys and values, as nft prints them. */
export const portKey = (p: Pick<PublishedPort, 'hostIp' | 'proto' | 'hostPort'>) =>
  p.hostIp === '0.0.0.0' ? `${p.proto} . ${p.hostPort}` : `${p.hostIp} . ${p.proto} . ${p.hostPort}`;
const portMap = (p: Pick<PublishedPort, 'hostIp'>) => (p.hostIp === '0.0.0.0' ? 'ports_any' : 'ports_addr');
const portElem = (p: PublishedPort) => `${portKey(p)} : ${p.containerIp} . ${p.containerPort}`;

function elements(items: string[]): string {
  return items.length ? ` elements = { ${items.join(', ')} }` : '';
}

/** A base chain's header line. */
const hook = (type: string, h: string, prio: string) => `type ${type} hook ${h} priority ${prio}; policy accept;`;

function chain(name: string, head: string | null, rules: string[]): string[] {
  return [`  chain ${name} {`, ...(head ? [`    ${head}`] : []), ...rules.map((r) => `    ${r}`), '  }'];
}

function ipTable(plan: Plan): string[] {
  const out: string[] = [`table ip ${TABLE} {`];
  const exact = plan.ports.filter((p) => p.hostIp !== '0.0.0.0');
  const any = plan.ports.filter((p) => p.hostIp === '0.0.0.0');
  out.push(`  map ports_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;${elements(exact.map(portElem))} }`);
  out.push(`  map ports_any { type inet_proto . inet_service : ipv4_addr . inet_service;${elements(any.map(portElem))} }`);
  const hairpin = [...new Set(plan.endpoints.map((e) => e.ip))].map((ip) => `${ip} . ${ip}`);
  out.push(`  set hairpin { type ipv4_addr . ipv4_addr;${elements(hairpin)} }`);
  const toNet = plan.nets.flatMap((n) => (n.sel.kind === 'dev' ? [`${q(n.sel.dev)} : jump ${netChain(n.net.id)}`] : []));
  out.push(`  map to_net { type ifname : verdict;${elements(toNet)} }`);

  const raw: string[] = [];
  for (const n of plan.nets) {
    if (!n.internal) raw.push(`${from(n.sel)} ip daddr 127.0.0.0/8 drop`);
    if (n.sel.kind === 'subnet' && plan.uplinks.length) raw.push(`iifname { ${plan.uplinks.map(q).join(', ')} } ip saddr ${n.sel.cidr} drop`);
  }
  for (const e of plan.endpoints) {
    // Bridge ports are checked in the bridge table; routed veths are seen here.
    if (e.sel?.kind !== 'subnet') continue;
    raw.push(`iifname ${q(e.hostDev)} ip saddr != ${e.ip} drop`);
    if (e.mac) raw.push(`iifname ${q(e.hostDev)} ether saddr != ${e.mac} drop`);
  }
  for (const n of plan.nets) {
    const ips = n.protectDirect ? n.endpoints.flatMap((e) => (e.ip ? [e.ip] : [])) : [];
    if (ips.length) raw.push(`${notFrom(n.sel)} ip daddr { ${ips.join(', ')} } drop`);
  }
  out.push(...chain('rawpre', hook('filter', 'prerouting', 'raw'), raw));

  // Loopback is never a frontend from outside (CVE-2020-8558); node-local clients use it through natout.
  out.push(...chain('natpre', hook('nat', 'prerouting', 'dstnat'), ['ip daddr != 127.0.0.0/8 fib daddr type local jump publish']));
  out.push(...chain('natout', hook('nat', 'output', '-100'), ['fib daddr type local jump publish']));
  out.push(...chain('publish', null, ['dnat ip to ip daddr . meta l4proto . th dport map @ports_addr', 'dnat ip to meta l4proto . th dport map @ports_any']));

  const post: string[] = ['ip saddr . ip daddr @hairpin masquerade'];
  for (const n of plan.nets) {
    if (!n.internal) post.push(`ip saddr 127.0.0.0/8 ${to(n.sel)} masquerade`);
    if (n.snat) post.push(`ip saddr ${n.net.subnet} ${notTo(n.sel)} ${n.snat.kind === 'snat' ? `snat to ${n.snat.to}` : 'masquerade'}`);
  }
  out.push(...chain('natpost', hook('nat', 'postrouting', 'srcnat'), post));

  const fwd: string[] = [];
  for (const n of plan.nets) fwd.push(`${to(n.sel)} ct state established,related accept`);
  for (const n of plan.nets.filter((x) => x.internal)) {
    fwd.push(`ip saddr != ${n.net.subnet} ${to(n.sel)} drop`, `ip daddr != ${n.net.subnet} ${from(n.sel)} drop`);
  }
  if (toNet.length) fwd.push('oifname vmap @to_net');
  for (const n of plan.nets.filter((x) => x.sel.kind === 'subnet')) fwd.push(`${to(n.sel)} jump ${netChain(n.net.id)}`);
  for (const n of plan.nets) {
    // ICC off: bridged traffic passes here only with br_netfilter (see doctor).
    if (!n.net.icc) fwd.push(`${from(n.sel)} ${to(n.sel)} drop`);
    fwd.push(`${from(n.sel)} accept`);
  }
  out.push(...chain('filterfwd', hook('filter', 'forward', 'filter'), fwd));
  const iso = plan.nets.filter((n) => n.isolated);
  out.push(...chain('filterin', hook('filter', 'input', 'filter'), iso.map((n) => `${from(n.sel)} drop`)));
  out.push(...chain('filterout', hook('filter', 'output', 'filter'), iso.map((n) => `${to(n.sel)} drop`)));
  for (const n of plan.nets) out.push(...chain(netChain(n.net.id), null, netRules(n, plan.nets)));
  out.push('}');
  return out;
}

/** What may enter network n (Docker's DOCKER chain). */
function netRules(n: NetPlan, nets: NetPlan[]): string[] {
  const r: string[] = [];
  if (!n.internal) r.push('ct status dnat accept');
  if (n.allowDirect) {
    for (const o of nets) if (o !== n) r.push(`${from(o.sel)} drop`);
    r.push('accept');
  }
  r.push(`${notFrom(n.sel)} drop`);
  return r;
}

function bridgeTable(plan: Plan): string[] {
  const ports = plan.endpoints.filter((e) => e.sel?.kind === 'dev');
  const withMac = ports.filter((e) => e.mac);
  return [
    `table bridge ${TABLE} {`,
    `  set ip_ports { type ifname;${elements(ports.map((e) => q(e.hostDev)))} }`,
    `  set ep_ip { type ifname . ipv4_addr;${elements(ports.map((e) => `${q(e.hostDev)} . ${e.ip}`))} }`,
    `  set mac_ports { type ifname;${elements(withMac.map((e) => q(e.hostDev)))} }`,
    `  set ep_mac { type ifname . ether_addr;${elements(withMac.map((e) => `${q(e.hostDev)} . ${e.mac}`))} }`,
    ...chain('spoof', hook('filter', 'prerouting', '-300'), [
      'iifname @ip_ports iifname . ip saddr != @ep_ip drop',
      'iifname @mac_ports iifname . ether saddr != @ep_mac drop',
    ]),
    '}',
  ];
}

/** Replace both tables in one transaction. */
export function renderFull(plan: Plan): string {
  return [...removalLines(), ...ipTable(plan), ...bridgeTable(plan)].join('\n') + '\n';
}

/** Delete both tables, whether or not they exist (add is a no-op on an existing table). */
function removalLines(): string[] {
  return FAMILIES.flatMap((f) => [`table ${f} ${TABLE}`, `delete table ${f} ${TABLE}`]);
}

export function renderRemoval(): string {
  return removalLines().join('\n') + '\n';
}

export interface PortDiff {
  add: PublishedPort[];
  remove: PublishedPort[];
}

/** Ports to add and remove; a changed backend is a remove plus an add. */
export function diffPorts(prev: readonly PublishedPort[], next: readonly PublishedPort[]): PortDiff {
  const had = new Map<number, PublishedPort>();
  for (const p of prev) had.set(frontendKey(p), p);
  const add: PublishedPort[] = [];
  for (const p of next) {
    const k = frontendKey(p);
    const old = had.get(k);
    if (old && old.containerIp === p.containerIp && old.containerPort === p.containerPort) had.delete(k);
    else add.push(p);
  }
  // Whatever is left of prev is gone or has a new backend.
  return { add, remove: [...had.values()] };
}

/** Element deletes then adds, one transaction; empty string when nothing changes. */
export function renderPortDiff(d: PortDiff): string {
  const lines: string[] = [];
  for (const map of ['ports_addr', 'ports_any'] as const) {
    const rm = d.remove.filter((p) => portMap(p) === map);
    const add = d.add.filter((p) => portMap(p) === map);
    if (rm.length) lines.push(`delete element ip ${TABLE} ${map} { ${rm.map(portKey).join(', ')} }`);
    if (add.length) lines.push(`add element ip ${TABLE} ${map} { ${add.map(portElem).join(', ')} }`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}
