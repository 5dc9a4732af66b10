/**
 * Plan -> iptables-restore text (tables raw, nat, filter) in Docker 28/29's
 * layout, in bpfnet's own chains. Pure: the applier feeds the text to one
 * `iptables-restore --noflush`, where `:CHAIN - [0:0]` flushes each of our
 * chains before its rules are written again, so every apply rewrites exactly
 * our chains and nothing else. Jumps from the built-in chains are inserted
 * only when missing (the caller says which exist), so they are added once.
 *
 * Differences from Docker, on purpose:
 * - published ports are accepted in filter by `--ctstate DNAT` (one rule per
 *   network) instead of one ACCEPT per port: the same packets pass (only
 *   translated ones), with half the rules;
 * - hairpin masquerade is one rule per container address, not per port;
 * - node-local clients keep their source address, except loopback ones
 *   (127.0.0.0/8 cannot leave the node: masqueraded to the gateway).
 */
import type { NetPlan, NetSel, Plan } from '../netfilter/plan.js';

export type Table = 'raw' | 'nat' | 'filter';
export const TABLES: readonly Table[] = ['raw', 'nat', 'filter'];

/** The user hook chain: created when missing, never flushed or written by bpfnet. */
export const USER_CHAIN = 'BPFNET-USER';

/** bpfnet's chains per table, in declaration order (USER_CHAIN is handled apart). */
export const CHAINS: Record<Table, readonly string[]> = {
  raw: ['BPFNET-RAW'],
  nat: ['BPFNET', 'BPFNET-POSTROUTING'],
  filter: ['BPFNET-FORWARD', 'BPFNET-CT', 'BPFNET-INTERNAL', 'BPFNET-BRIDGE', 'BPFNET', 'BPFNET-INPUT', 'BPFNET-OUTPUT'],
};

export interface Jump {
  table: Table;
  /** Built-in chain the jump sits in. */
  from: string;
  /** Match before `-j`, in iptables-save's canonical form. */
  match: string;
  to: string;
}

/**
 * The jumps into our chains. nat PREROUTING skips 127.0.0.0/8 so a packet
 * from outside addressed to loopback can never be translated to a container
 * (CVE-2020-8558); OUTPUT keeps it, for node-local clients of 127.0.0.1.
 * FORWARD: the user chain first, then ours, like DOCKER-USER.
 */
export const JUMPS: readonly Jump[] = [
  { table: 'raw', from: 'PREROUTING', match: '', to: 'BPFNET-RAW' },
  { table: 'nat', from: 'PREROUTING', match: '! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL', to: 'BPFNET' },
  { table: 'nat', from: 'OUTPUT', match: '-m addrtype --dst-type LOCAL', to: 'BPFNET' },
  { table: 'nat', from: 'POSTROUTING', match: '', to: 'BPFNET-POSTROUTING' },
  { table: 'filter', from: 'FORWARD', match: '', to: USER_CHAIN },
  { table: 'filter', from: 'FORWARD', match: '', to: 'BPFNET-FORWARD' },
  { table: 'filter', from: 'INPUT', match: '', to: 'BPFNET-INPUT' },
  { table: 'filter', from: 'OUTPUT', match: '', to: 'BPFNET-OUTPUT' },
];

/** "table/CHAIN" of each built-in chain we jump from. */
export const JUMP_SOURCES: readonly string[] = [...new Set(JUMPS.map((j) => `${j.table}/${j.from}`))];

const jumpSpec = (j: Jump) => `${j.match ? `${j.match} ` : ''}-j ${j.to}`;
export const jumpRule = (j: Jump) => `-A ${j.from} ${jumpSpec(j)}`;

/** Whether a rule (iptables -S form) jumps to `to`. */
export const isJumpTo = (rule: string, to: string) => rule.endsWith(` -j ${to}`) || rule.includes(` -j ${to} `);

/** What the applier found in the kernel before rendering. */
export interface Existing {
  /** Rules of the built-in chains we jump from, "table/CHAIN" -> rules in order (iptables -S form). */
  builtin: Record<string, string[]>;
  /** Whether BPFNET-USER exists (then it is not declared, which would flush it). */
  userChain: boolean;
}

export interface Rendered {
  text: string;
  /** Expected rule count of each of our chains, "table/CHAIN" -> n (for drift detection). */
  counts: Record<string, number>;
}

const jumpsTo = (rules: readonly string[] | undefined, to: string) => (rules ?? []).findIndex((r) => isJumpTo(r, to));

/**
 * `-I` lines for missing jumps. Positions are 1-based among the chain's rules
 * (iptables -S lists the policy first, which is not a rule).
 */
export function jumpInserts(existing: Existing): Record<Table, string[]> {
  const out: Record<Table, string[]> = { raw: [], nat: [], filter: [] };
  for (const j of JUMPS) {
    if (j.table === 'filter' && j.from === 'FORWARD') continue;
    const rules = existing.builtin[`${j.table}/${j.from}`]?.filter((r) => r.startsWith('-A '));
    if (jumpsTo(rules, j.to) < 0) out[j.table].push(`-I ${j.from} 1 ${jumpSpec(j)}`);
  }
  // FORWARD: user chain first, ours right after it.
  const fwd = existing.builtin['filter/FORWARD']?.filter((r) => r.startsWith('-A ')) ?? [];
  const user = jumpsTo(fwd, USER_CHAIN);
  const ours = jumpsTo(fwd, 'BPFNET-FORWARD');
  if (user < 0 && ours < 0) out.filter.push(`-I FORWARD 1 -j ${USER_CHAIN}`, '-I FORWARD 2 -j BPFNET-FORWARD');
  else if (user < 0) out.filter.push(`-I FORWARD ${ours + 1} -j ${USER_CHAIN}`);
  else if (ours < 0) out.filter.push(`-I FORWARD ${user + 2} -j BPFNET-FORWARD`);
  return out;
}

const from = (s: NetSel) => (s.kind === 'dev' ? `-i ${s.dev}` : `-s ${s.cidr}`);
const notFrom = (s: NetSel) => (s.kind === 'dev' ? `! -i ${s.dev}` : `! -s ${s.cidr}`);
const to = (s: NetSel) => (s.kind === 'dev' ? `-o ${s.dev}` : `-d ${s.cidr}`);
const notTo = (s: NetSel) => (s.kind === 'dev' ? `! -o ${s.dev}` : `! -d ${s.cidr}`);

function rawRules(plan: Plan): string[] {
  const r: string[] = [];
  for (const n of plan.nets) {
    // route_localnet is on for these devices: nothing from a container may reach the node's loopback.
    if (!n.internal) r.push(`${from(n.sel)} -d 127.0.0.0/8 -j DROP`);
    if (n.sel.kind === 'subnet') for (const up of plan.uplinks) r.push(`-i ${up} -s ${n.sel.cidr} -j DROP`);
  }
  // Anti-spoofing: a container sends only from its own address and MAC. Bridged
  // frames show the bridge as in-interface; the port is the physdev (br_netfilter).
  for (const e of plan.endpoints) {
    if (!e.sel) continue;
    const port = e.sel.kind === 'dev' ? `-m physdev --physdev-in ${e.hostDev}` : `-i ${e.hostDev}`;
    r.push(`! -s ${e.ip}/32 ${port} -j DROP`);
    if (e.mac) r.push(`${port} -m mac ! --mac-source ${e.mac} -j DROP`);
  }
  // Gateway mode nat: container addresses are not reachable from outside the network (Docker's raw drop).
  for (const n of plan.nets) {
    if (!n.protectDirect) continue;
    for (const e of n.endpoints) if (e.ip) r.push(`-d ${e.ip}/32 ${notFrom(n.sel)} -j DROP`);
  }
  return r.map((x) => `-A BPFNET-RAW ${x}`);
}

function natRules(plan: Plan): string[] {
  const r: string[] = [];
  for (const p of plan.ports) {
    const dst = p.hostIp === '0.0.0.0' ? '' : `-d ${p.hostIp}/32 `;
    r.push(`-A BPFNET ${dst}-p ${p.proto} -m ${p.proto} --dport ${p.hostPort} -j DNAT --to-destination ${p.containerIp}:${p.containerPort}`);
  }
  // Hairpin: a container reaching its own published port must see another source, or it drops its own address.
  for (const ip of [...new Set(plan.endpoints.map((e) => e.ip))]) r.push(`-A BPFNET-POSTROUTING -s ${ip}/32 -d ${ip}/32 -j MASQUERADE`);
  for (const n of plan.nets) {
    if (!n.internal) r.push(`-A BPFNET-POSTROUTING -s 127.0.0.0/8 ${to(n.sel)} -j MASQUERADE`);
    if (n.snat) {
      const target = n.snat.kind === 'snat' ? `SNAT --to-source ${n.snat.to}` : 'MASQUERADE';
      r.push(`-A BPFNET-POSTROUTING -s ${n.net.subnet} ${notTo(n.sel)} -j ${target}`);
    }
  }
  return r;
}

function filterRules(plan: Plan): string[] {
  const r: string[] = ['-A BPFNET-FORWARD -j BPFNET-CT', '-A BPFNET-FORWARD -j BPFNET-INTERNAL', '-A BPFNET-FORWARD -j BPFNET-BRIDGE'];
  const others = (n: NetPlan) => plan.nets.filter((o) => o !== n);
  for (const n of plan.nets) {
    // ICC off: needs br_netfilter for bridged traffic (see doctor).
    if (!n.net.icc) r.push(`-A BPFNET-FORWARD ${from(n.sel)} ${to(n.sel)} -j DROP`);
    r.push(`-A BPFNET-FORWARD ${from(n.sel)} -j ACCEPT`);
    r.push(`-A BPFNET-CT ${to(n.sel)} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    if (n.internal) {
      r.push(`-A BPFNET-INTERNAL ! -s ${n.net.subnet} ${to(n.sel)} -j DROP`);
      r.push(`-A BPFNET-INTERNAL ! -d ${n.net.subnet} ${from(n.sel)} -j DROP`);
    }
    if (n.isolated) {
      r.push(`-A BPFNET-INPUT ${from(n.sel)} -j DROP`);
      r.push(`-A BPFNET-OUTPUT ${to(n.sel)} -j DROP`);
    }
    r.push(`-A BPFNET-BRIDGE ${to(n.sel)} -j BPFNET`);
    if (!n.internal) r.push(`-A BPFNET ${to(n.sel)} -m conntrack --ctstate DNAT -j ACCEPT`);
    if (n.allowDirect) {
      // Direct access from outside, but still isolated from the other networks.
      for (const o of others(n)) r.push(`-A BPFNET ${from(o.sel)} ${to(n.sel)} -j DROP`);
      r.push(`-A BPFNET ${to(n.sel)} -j ACCEPT`);
    }
    r.push(`-A BPFNET ${notFrom(n.sel)} ${to(n.sel)} -j DROP`);
  }
  return r;
}

/** The whole restore text. */
export function renderIptables(plan: Plan, existing: Existing): Rendered {
  const inserts = jumpInserts(existing);
  const rules: Record<Table, string[]> = { raw: rawRules(plan), nat: natRules(plan), filter: filterRules(plan) };
  const counts: Record<string, number> = {};
  const lines: string[] = [];
  for (const t of TABLES) {
    lines.push(`*${t}`);
    if (t === 'filter' && !existing.userChain) lines.push(`:${USER_CHAIN} - [0:0]`);
    for (const c of CHAINS[t]) {
      lines.push(`:${c} - [0:0]`);
      counts[`${t}/${c}`] = 0;
    }
    for (const rule of rules[t]) {
      const chain = rule.split(' ')[1]!;
      counts[`${t}/${chain}`]! += 1;
      lines.push(rule);
    }
    lines.push(...inserts[t], 'COMMIT');
  }
  return { text: lines.join('\n') + '\n', counts };
}

/**
 * Restore text that removes all of bpfnet's rules: our jumps (as found in
 * `existing`), our chains, and BPFNET-USER only if it is empty (a user's rules
 * are never deleted; its jump is removed, so they no longer apply).
 */
export function renderRemoval(existing: Existing & { userRules: number; chains: Record<Table, string[]> }): string {
  const lines: string[] = [];
  for (const t of TABLES) {
    const ours = new Set([...CHAINS[t], ...(t === 'filter' ? [USER_CHAIN] : [])]);
    const present = existing.chains[t].filter((c) => ours.has(c));
    const deletes: string[] = [];
    for (const [key, rules] of Object.entries(existing.builtin)) {
      const [table, chain] = key.split('/');
      if (table !== t) continue;
      for (const rule of rules) {
        const target = / -j (\S+)/.exec(rule)?.[1];
        if (rule.startsWith(`-A ${chain} `) && target && ours.has(target)) deletes.push(rule.replace(/^-A /, '-D '));
      }
    }
    if (present.length === 0 && deletes.length === 0) continue;
    lines.push(`*${t}`, ...deletes);
    const drop = present.filter((c) => c !== USER_CHAIN || existing.userRules === 0);
    // Flush first (chains may jump to each other), then delete.
    for (const c of drop) if (c !== USER_CHAIN) lines.push(`-F ${c}`);
    for (const c of drop) lines.push(`-X ${c}`);
    lines.push('COMMIT');
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}
