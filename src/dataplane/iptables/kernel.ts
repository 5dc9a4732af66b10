/**
 * Reading and writing the node namespace's iptables through the iptables
 * tools (nsenter --net, never `ip netns exec`). Reads are cheap listings of
 * the built-in chains we jump from; the full iptables-save is only taken for
 * a rollback snapshot on the first apply (which then stands for the listing
 * too), for drift checks and for removal.
 */
import { run } from '../../util/exec.js';
import { CommandError } from '../../util/errors.js';
import { CHAINS, JUMPS, JUMP_SOURCES, TABLES, USER_CHAIN, isJumpTo, type Existing, type Table } from './render.js';

export type IptablesBackend = 'default' | 'nft' | 'legacy';

interface IptablesTools {
  iptables: string;
  restore: string;
  save: string;
}

export function tools(backend: IptablesBackend = 'default'): IptablesTools {
  const suffix = backend === 'default' ? '' : `-${backend}`;
  return { iptables: `iptables${suffix}`, restore: `iptables${suffix}-restore`, save: `iptables${suffix}-save` };
}

export class IptablesKernel {
  constructor(
    readonly netns: string | undefined,
    readonly tool: IptablesTools,
  ) {}

  /** `iptables -t T -S CHAIN`, or null when the chain does not exist. */
  async listChain(table: Table, chain: string): Promise<string[] | null> {
    try {
      const { stdout } = await run(this.tool.iptables, ['-w', '-t', table, '-S', chain], { netns: this.netns });
      return stdout.split('\n').filter((l) => l.startsWith('-A '));
    } catch (e) {
      if (e instanceof CommandError && e.code === 'E_COMMAND_FAILED') return null;
      throw e;
    }
  }

  /** The built-in chains we jump from, and whether the user chain exists. */
  async existing(): Promise<Existing> {
    const [user, ...lists] = await Promise.all([
      this.listChain('filter', USER_CHAIN),
      ...JUMP_SOURCES.map((k) => {
        const [t, c] = k.split('/') as [Table, string];
        return this.listChain(t, c);
      }),
    ]);
    const builtin: Record<string, string[]> = {};
    JUMP_SOURCES.forEach((k, i) => (builtin[k] = lists[i] ?? []));
    return { builtin, userChain: user !== null };
  }

  /** One table as iptables-save prints it. */
  async save(table: Table): Promise<SavedTable> {
    const { stdout } = await run(this.tool.save, ['-t', table], { netns: this.netns });
    return parseSave(stdout);
  }

  async restore(text: string): Promise<void> {
    await run(this.tool.restore, ['-w', '--noflush'], { netns: this.netns, input: text });
  }
}

export interface SavedTable {
  /** Every chain declared (built-in and user). */
  chains: string[];
  /** chain -> its rules in `-A` form, in order. */
  rules: Map<string, string[]>;
}

/** iptables-save output of one table -> chains and rules (pure). */
export function parseSave(text: string): SavedTable {
  const chains: string[] = [];
  const rules = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      chains.push(name);
      rules.set(name, []);
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      if (!rules.has(chain)) rules.set(chain, []);
      rules.get(chain)!.push(line);
    }
  }
  return { chains, rules };
}

/** What of ours is in the kernel: a snapshot to roll back to, and the input of drift checks. */
export interface Snapshot {
  /** Our chains that exist, "table/CHAIN" -> rules (the user chain is never touched, so not kept). */
  chains: Record<string, string[]>;
  /** "table/FROM/TO" for each of our jumps present. */
  jumps: Set<string>;
  userChain: boolean;
}

export async function snapshot(k: IptablesKernel): Promise<Snapshot & { saved: Record<Table, SavedTable> }> {
  const saved = Object.fromEntries(await Promise.all(TABLES.map(async (t) => [t, await k.save(t)] as const))) as Record<Table, SavedTable>;
  return { ...snapshotOf(saved), saved };
}

/** The built-in chains we jump from, and the user chain, as the saved tables hold them. */
export function existingOf(saved: Record<Table, SavedTable>): Existing {
  const builtin: Record<string, string[]> = {};
  for (const k of JUMP_SOURCES) {
    const [t, c] = k.split('/') as [Table, string];
    builtin[k] = saved[t].rules.get(c) ?? [];
  }
  return { builtin, userChain: saved.filter.chains.includes(USER_CHAIN) };
}

export function snapshotOf(saved: Record<Table, SavedTable>): Snapshot {
  const chains: Record<string, string[]> = {};
  for (const t of TABLES) {
    for (const c of CHAINS[t]) if (saved[t].chains.includes(c)) chains[`${t}/${c}`] = saved[t].rules.get(c) ?? [];
  }
  const existing = existingOf(saved);
  return { chains, jumps: jumpKeysOf(existing), userChain: existing.userChain };
}

/** "table/FROM/TO" of each of our jumps present in the built-in chains. */
export function jumpKeysOf(e: Existing): Set<string> {
  const s = new Set<string>();
  for (const j of JUMPS) {
    if ((e.builtin[`${j.table}/${j.from}`] ?? []).some((r) => isJumpTo(r, j.to))) s.add(`${j.table}/${j.from}/${j.to}`);
  }
  return s;
}

/**
 * Restore text that puts `snap` back: our chains with their old rules (or
 * gone, if they did not exist), and jumps added since removed. `now` is the
 * built-in chains as they are after the failed attempt.
 */
export function renderRollback(snap: Snapshot, now: Existing): string {
  const lines: string[] = [];
  for (const t of TABLES) {
    lines.push(`*${t}`);
    for (const j of JUMPS.filter((x) => x.table === t)) {
      if (snap.jumps.has(`${t}/${j.from}/${j.to}`)) continue;
      for (const r of now.builtin[`${t}/${j.from}`] ?? []) if (isJumpTo(r, j.to)) lines.push(r.replace(/^-A /, '-D '));
    }
    const gone: string[] = [];
    for (const c of CHAINS[t]) {
      lines.push(`:${c} - [0:0]`);
      const old = snap.chains[`${t}/${c}`];
      if (old) lines.push(...old);
      else gone.push(c);
    }
    if (t === 'filter' && !snap.userChain && now.userChain) gone.push(USER_CHAIN);
    lines.push(...gone.map((c) => `-X ${c}`), 'COMMIT');
  }
  return lines.join('\n') + '\n';
}
