/**
 * 127.0.0.11:53 inside a sandbox → the agent's resolver on 127.0.0.11:<port>.
 *
 * Docker binds its resolver to a random port on 127.0.0.11 and DNATs between
 * :53 and that port with iptables rules inside the container's netns, so
 * port 53 stays free for the container's own servers. The same here, three
 * ways, always inside the *sandbox's* network namespace (never the node's):
 *
 * - ebpf (default): bpf/sandbox_lo.c on tc egress of the sandbox's `lo`
 *   rewrites dport 53 → port for queries and sport port → 53 for replies,
 *   statelessly, both protocols; the port is found in bpfnet_dns by the
 *   netns cookie (bpf_get_netns_cookie, allowed for tc programs since Linux
 *   6.14). Egress alone suffices: every packet between two sockets of the
 *   netns is transmitted on lo, and lo's receive path (socket lookup) runs
 *   after that.
 * - iptables: Docker's exact rules (nat DOCKER_OUTPUT / DOCKER_POSTROUTING,
 *   jumped to from OUTPUT / POSTROUTING for -d 127.0.0.11), one
 *   iptables-restore per attach.
 * - nftables: one table `ip bpfnet_dns` with the same DNAT/SNAT, replaced in
 *   one transaction.
 *   Both NAT through conntrack: after (re)programming, the netns's conntrack
 *   entries toward 127.0.0.11 are deleted (`conntrack -D`), or a client
 *   socket that asked before (no redirect yet, or an older port) would keep
 *   its stale translation for minutes.
 *
 * `none` installs nothing (the server then binds its port directly; only
 * useful with port 53).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pruneVersions, loadObject, mapsDir, type LoadedObject } from '../loader/load.js';
import { attachTc, detachTc } from '../loader/tc.js';
import { TypedMap } from '../maps/map.js';
import { netnsCookie } from '../netlink/index.js';
import { run } from '../util/exec.js';
import { BpfnetError, CommandError } from '../util/errors.js';
import { DEFAULT_BPFFS_ROOT } from '../util/paths.js';

export type RedirectMode = 'ebpf' | 'iptables' | 'nftables' | 'none';

export const REDIRECT_MODES: readonly RedirectMode[] = ['ebpf', 'iptables', 'nftables', 'none'];

/** The redirect that goes with an agent dataplane mode (anything but iptables/nftables: ebpf). */
export function redirectForDataplane(dataplane: string): RedirectMode {
  return dataplane === 'iptables' || dataplane === 'nftables' ? dataplane : 'ebpf';
}

/** The BPF object and program (bpf/sandbox_lo.c), attached to tc egress of the sandbox's lo. */
export const SANDBOX_LO = { object: 'sandbox_lo', prog: 'sandbox_lo', dev: 'lo', direction: 'egress' } as const;

/** iptables chains (Docker's names) and the nftables table. */
export const IPT_OUTPUT_CHAIN = 'DOCKER_OUTPUT';
export const IPT_POSTROUTING_CHAIN = 'DOCKER_POSTROUTING';
export const NFT_TABLE = 'bpfnet_dns';

export interface RedirectTarget {
  nsPath: string;
  /** The netns's cookie (netnsCookie(nsPath)), taken when the sockets were bound. */
  cookie: bigint;
  /** 127.0.0.11 (the server's address). */
  addr: string;
  /** The port the server's UDP and TCP sockets are bound to. */
  port: number;
}

export interface Redirect {
  readonly mode: RedirectMode;
  /**
   * The port an earlier install left in this netns (an agent restarted), if
   * any: binding it again keeps the translation of clients in flight valid.
   */
  previousPort(t: Pick<RedirectTarget, 'nsPath' | 'cookie' | 'addr'>): Promise<number | undefined>;
  /** Makes addr:53 reach addr:port in the netns (replacing what an earlier install there left). */
  install(t: RedirectTarget): Promise<void>;
  /** Undoes install; a netns that is gone already is fine. */
  remove(t: RedirectTarget): Promise<void>;
  /**
   * Forgets state kept outside sandbox namespaces for every netns but
   * `keep` (ebpf: bpfnet_dns entries of namespaces removed while no agent
   * ran); returns how many went. Rules inside a netns go with it.
   */
  prune(keep: ReadonlySet<bigint>): Promise<number>;
  close(): void;
}

export interface RedirectOptions {
  /** bpffs root of the pins (ebpf): the program under progs/, bpfnet_dns under maps/. */
  bpffsRoot?: string;
  /** Problems that do not fail an attach (e.g. the conntrack tool missing). */
  warn?: (msg: string, details: Record<string, unknown>) => void;
}

export function createRedirect(mode: RedirectMode, opts: RedirectOptions = {}): Redirect {
  switch (mode) {
    case 'ebpf':
      return new EbpfRedirect(opts.bpffsRoot ?? DEFAULT_BPFFS_ROOT);
    case 'iptables':
      return new IptablesRedirect(opts.warn);
    case 'nftables':
      return new NftablesRedirect(opts.warn);
    case 'none':
      return { mode: 'none', previousPort: async () => undefined, install: async () => undefined, remove: async () => undefined, prune: async () => 0, close: () => undefined };
    default:
      throw new BpfnetError('E_INVALID_ARGUMENT', `DNS redirect must be one of ${REDIRECT_MODES.join(', ')} (got ${JSON.stringify(mode)})`, { mode });
  }
}

/** True when the error says the netns (file) is not there any more. */
function netnsGone(e: unknown): boolean {
  return e instanceof BpfnetError && (e.code === 'E_NETNS' || e.code === 'E_NOT_FOUND');
}

// ---------- eBPF ----------

class EbpfRedirect implements Redirect {
  readonly mode = 'ebpf' as const;
  private ready: Promise<{ obj: LoadedObject; map: TypedMap<'bpfnet_dns'> }> | undefined;
  private closed = false;

  constructor(readonly root: string) {}

  private load(): Promise<{ obj: LoadedObject; map: TypedMap<'bpfnet_dns'> }> {
    if (!this.ready) {
      const p = (async () => {
        const obj = await loadObject(SANDBOX_LO.object, { root: this.root, progType: 'classifier' });
        // Older versions are not attached by this process; attached ones keep running without their pin.
        await pruneVersions(this.root, obj.name, obj.hash).catch(() => undefined);
        return { obj, map: TypedMap.open(mapsDir(this.root), 'bpfnet_dns') };
      })();
      p.catch(() => {
        if (this.ready === p) this.ready = undefined;
      });
      this.ready = p;
    }
    return this.ready;
  }

  async previousPort(t: Pick<RedirectTarget, 'cookie'>): Promise<number | undefined> {
    const { map } = await this.load();
    return (await map.get({ netns_cookie: t.cookie }))?.port || undefined;
  }

  async install(t: RedirectTarget): Promise<void> {
    const { obj, map } = await this.load();
    const pin = obj.progs[SANDBOX_LO.prog];
    if (!pin) throw new BpfnetError('E_NOT_FOUND', `object ${obj.name} has no program ${SANDBOX_LO.prog}`, { progs: Object.keys(obj.progs) });
    // The entry first: the program passes packets of a netns without one untouched.
    await map.set({ netns_cookie: t.cookie }, { port: t.port, flags: 0 });
    try {
      await attachTc({ netns: t.nsPath, dev: SANDBOX_LO.dev, direction: SANDBOX_LO.direction, pin });
    } catch (e) {
      await map.delete({ netns_cookie: t.cookie }).catch(() => undefined);
      throw e;
    }
  }

  async remove(t: RedirectTarget): Promise<void> {
    if (this.ready) {
      const { map } = await this.ready;
      await map.delete({ netns_cookie: t.cookie });
    }
    try {
      await detachTc({ netns: t.nsPath, dev: SANDBOX_LO.dev, direction: SANDBOX_LO.direction });
    } catch (e) {
      if (!netnsGone(e)) throw e;
    }
  }

  async prune(keep: ReadonlySet<bigint>): Promise<number> {
    // Without a pinned map there is nothing to prune: no need to load the program for that.
    if (!this.ready && !existsSync(join(mapsDir(this.root), 'bpfnet_dns'))) return 0;
    const { map } = await this.load();
    const stale = (await map.toArray()).map(([k]) => k).filter((k) => !keep.has(k.netns_cookie));
    for (const k of stale) await map.delete(k);
    return stale.length;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.ready?.then(({ map }) => map.close(), () => undefined);
  }
}

// ---------- iptables (Docker's rules) ----------

/** The rules Docker's resolver programs (moby libnetwork resolver_unix.go), as iptables-save prints them. */
export function dockerDnsRules(addr: string, udpPort: number, tcpPort: number = udpPort): { jumps: string[][]; rules: string[] } {
  const a = `${addr}/32`;
  return {
    jumps: [
      ['OUTPUT', '-d', a, '-j', IPT_OUTPUT_CHAIN],
      ['POSTROUTING', '-d', a, '-j', IPT_POSTROUTING_CHAIN],
    ],
    rules: [
      `-A ${IPT_OUTPUT_CHAIN} -d ${a} -p tcp -m tcp --dport 53 -j DNAT --to-destination ${addr}:${tcpPort}`,
      `-A ${IPT_OUTPUT_CHAIN} -d ${a} -p udp -m udp --dport 53 -j DNAT --to-destination ${addr}:${udpPort}`,
      `-A ${IPT_POSTROUTING_CHAIN} -s ${a} -p tcp -m tcp --sport ${tcpPort} -j SNAT --to-source :53`,
      `-A ${IPT_POSTROUTING_CHAIN} -s ${a} -p udp -m udp --sport ${udpPort} -j SNAT --to-source :53`,
    ],
  };
}

class IptablesRedirect implements Redirect {
  readonly mode = 'iptables' as const;
  constructor(private readonly warn?: RedirectOptions['warn']) {}

  async previousPort(t: Pick<RedirectTarget, 'nsPath' | 'addr'>): Promise<number | undefined> {
    const saved = await natLines(t.nsPath).catch(() => undefined);
    const m = saved?.join('\n').match(new RegExp(`^-A ${IPT_OUTPUT_CHAIN} .*-p udp .*--to-destination ${escapeDots(t.addr)}:(\\d+)$`, 'm'));
    return m ? Number(m[1]) : undefined;
  }

  async install(t: RedirectTarget): Promise<void> {
    const { jumps, rules } = dockerDnsRules(t.addr, t.port);
    const have = await natLines(t.nsPath);
    const lines = ['*nat', `:${IPT_OUTPUT_CHAIN} - [0:0]`, `:${IPT_POSTROUTING_CHAIN} - [0:0]`, `-F ${IPT_OUTPUT_CHAIN}`, `-F ${IPT_POSTROUTING_CHAIN}`];
    // Jumps at the top of OUTPUT/POSTROUTING, once (a re-attach finds them there).
    for (const [chain, ...spec] of jumps) if (!have.includes(`-A ${chain} ${spec.join(' ')}`)) lines.push(`-I ${chain} 1 ${spec.join(' ')}`);
    lines.push(...rules);
    await natRestore(t.nsPath, lines);
    await flushConntrack(t, this.warn);
  }

  async remove(t: RedirectTarget): Promise<void> {
    const have = await unlessNetnsGone(t.nsPath, () => natLines(t.nsPath));
    if (!have) return;
    const { jumps } = dockerDnsRules(t.addr, t.port);
    const lines = ['*nat'];
    for (const [chain, ...spec] of jumps) if (have.includes(`-A ${chain} ${spec.join(' ')}`)) lines.push(`-D ${chain} ${spec.join(' ')}`);
    for (const c of [IPT_OUTPUT_CHAIN, IPT_POSTROUTING_CHAIN]) if (have.some((l) => l.startsWith(`:${c} `))) lines.push(`-F ${c}`, `-X ${c}`);
    if (lines.length === 1) return;
    await natRestore(t.nsPath, lines);
  }

  async prune(): Promise<number> {
    return 0;
  }

  close(): void {}
}

// ---------- nftables ----------

export function nftDnsRuleset(addr: string, port: number): string {
  return [
    `table ip ${NFT_TABLE} {`,
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    `    ip daddr ${addr} udp dport 53 dnat to ${addr}:${port}`,
    `    ip daddr ${addr} tcp dport 53 dnat to ${addr}:${port}`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority 100; policy accept;',
    `    ip saddr ${addr} udp sport ${port} snat to ${addr}:53`,
    `    ip saddr ${addr} tcp sport ${port} snat to ${addr}:53`,
    '  }',
    '}',
  ].join('\n');
}

/** The netns's nat table, as iptables-save prints it, by line. */
async function natLines(nsPath: string): Promise<string[]> {
  return (await run('iptables-save', ['-t', 'nat'], { netns: nsPath })).stdout.split('\n');
}

/** Applies one nat transaction (lines after `*nat`, without COMMIT), leaving other rules alone. */
async function natRestore(nsPath: string, lines: string[]): Promise<void> {
  await run('iptables-restore', ['--noflush'], { netns: nsPath, input: [...lines, 'COMMIT', ''].join('\n') });
}

const escapeDots = (addr: string): string => addr.replace(/\./g, '\\.');

class NftablesRedirect implements Redirect {
  readonly mode = 'nftables' as const;
  constructor(private readonly warn?: RedirectOptions['warn']) {}

  async previousPort(t: Pick<RedirectTarget, 'nsPath' | 'addr'>): Promise<number | undefined> {
    const listed = await run('nft', ['list', 'table', 'ip', NFT_TABLE], { netns: t.nsPath }).catch(() => undefined);
    const m = listed?.stdout.match(new RegExp(`udp dport 53 dnat (?:ip )?to ${escapeDots(t.addr)}:(\\d+)`));
    return m ? Number(m[1]) : undefined;
  }

  async install(t: RedirectTarget): Promise<void> {
    // One transaction: create-if-missing, delete, define (a re-attach replaces the old port).
    const script = [`table ip ${NFT_TABLE} {}`, `delete table ip ${NFT_TABLE}`, nftDnsRuleset(t.addr, t.port), ''].join('\n');
    await run('nft', ['-f', '-'], { netns: t.nsPath, input: script });
    await flushConntrack(t, this.warn);
  }

  async remove(t: RedirectTarget): Promise<void> {
    await unlessNetnsGone(t.nsPath, () => run('nft', ['-f', '-'], { netns: t.nsPath, input: `table ip ${NFT_TABLE} {}\ndelete table ip ${NFT_TABLE}\n` }));
  }

  async prune(): Promise<number> {
    return 0;
  }

  close(): void {}
}

let warnedNoConntrack = false;

/** Deletes the netns's conntrack entries toward addr (its NAT state for the resolver); none is fine. */
async function flushConntrack(t: RedirectTarget, warn?: RedirectOptions['warn']): Promise<void> {
  try {
    await run('conntrack', ['-D', '-d', t.addr], { netns: t.nsPath });
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    if (e.code === 'E_TOOL_MISSING') {
      if (!warnedNoConntrack) {
        warnedNoConntrack = true;
        warn?.('conntrack not found (apt-get install conntrack): clients that asked 127.0.0.11 before the redirect was (re)programmed keep a stale translation until it expires', { nsPath: t.nsPath });
      }
      return;
    }
    // Exit 1 with "0 flow entries have been deleted": nothing to flush.
    if (/0 flow entries/.test(e.stderr)) return;
    warn?.('flushing conntrack entries toward the resolver failed', { nsPath: t.nsPath, err: e.message });
  }
}

/** fn's result; undefined when a tool failed because the netns is gone (nothing left to undo there). */
async function unlessNetnsGone<T>(nsPath: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CommandError && !nsExists(nsPath)) return undefined;
    throw e;
  }
}

function nsExists(nsPath: string): boolean {
  try {
    netnsCookie(nsPath);
    return true;
  } catch {
    return false;
  }
}
