/**
 * `bpfnet stats drops`: the dataplane's named counters (drop reasons and
 * translations), once as a table or JSON, or live with --watch: every
 * interval, one line per counter that changed, with the change. The
 * formatting is pure and exported for the unit tests.
 */
import { Command } from 'commander';
import { Client } from '../api/client.js';
import type { Counter } from '../api/generated/types.js';
import { call, hostOf, json, out, parseFormat, type Format } from './api.js';
import { formatTable } from '../model/inspect.js';
import { humanBytes } from './ports.js';
import { invalidArgument } from '../util/errors.js';

/** What each eBPF counter means (bpf/lib/maps.h, enum metric_id). */
export const COUNTER_HELP: Readonly<Record<string, string>> = {
  dnat: 'published-port DNAT applied',
  rnat: 'reply reverse-translated',
  pass: 'matched nothing, passed untouched',
  skip_frag: 'IPv4 fragment, passed untouched',
  skip_malformed: 'bad or truncated header, passed untouched',
  ct_insert_fail: 'reverse NAT state not stored (flow still DNATed)',
  rewrite_fail: 'helper failed mid-rewrite: dropped',
  ct_clash: 'reply tuple busy for another frontend: not DNATed',
  drop_isolation: "container -> another network's address: dropped",
  snat: 'outbound masqueraded',
  rsnat: 'reply to a masqueraded flow reversed',
  drop_snat_no_port: 'no free masquerade port: dropped',
  drop_snat_state: 'masquerade state could not be stored: dropped',
  drop_spoof: 'container sent with another source IP or MAC: dropped',
  drop_icc: 'container -> same network, enable_icc=false: dropped',
  drop_internal: 'into or out of an internal network: dropped',
  drop_direct: 'outside -> container address (gateway mode nat): dropped',
  redirect: 'delivered straight into a container by BPF',
  hairpin: 'container reached its own published port',
  sock_xlate: 'node-local connect/sendmsg translated',
  icmp_xlate: "ICMP error's inner header translated",
};

/** Counters that count packets the dataplane dropped. */
export function isDrop(name: string): boolean {
  return name.startsWith('drop_') || name === 'rewrite_fail';
}

export const STATS_HEADERS: readonly string[] = ['COUNTER', 'PACKETS', 'BYTES', 'MEANING'];

/** `stats drops` as a table: every counter in the dataplane's order. */
export function formatCountersTable(counters: readonly Counter[]): string {
  return formatTable(
    STATS_HEADERS,
    counters.map((c) => [c.name, String(c.packets), humanBytes(c.bytes), COUNTER_HELP[c.name] ?? '']),
  );
}

/** `stats drops --format json`: counters by name, in the dataplane's order. */
export function countersJson(dataplane: string, counters: readonly Counter[]): { dataplane: string; counters: Record<string, { packets: number; bytes: number }> } {
  return { dataplane, counters: Object.fromEntries(counters.map((c) => [c.name, { packets: c.packets, bytes: c.bytes }])) };
}

/** The counters section of `bpfnet info`: non-zero counters, then drops (zero says "none"). */
export function formatInfoCounters(counters: readonly Counter[]): string[] {
  if (!counters.length) return [];
  const seen = counters.filter((c) => !isDrop(c.name) && c.packets > 0).map((c) => `${c.name} ${c.packets}`);
  const drops = counters.filter((c) => isDrop(c.name) && c.packets > 0).map((c) => `${c.name} ${c.packets}`);
  return [`Counters:       ${seen.join(', ') || '(no traffic yet)'}`, `Drops:          ${drops.join(', ') || 'none'}`];
}

export interface CounterDelta {
  name: string;
  packets: number;
  bytes: number;
  /** Totals now. */
  totalPackets: number;
  totalBytes: number;
}

/**
 * What changed between two readings: one entry per counter whose packets or
 * bytes changed, in the current reading's order. A counter that went down
 * (its map was recreated) counts from zero.
 */
export function counterDeltas(prev: readonly Counter[], cur: readonly Counter[]): CounterDelta[] {
  const before = new Map(prev.map((c) => [c.name, c]));
  const out: CounterDelta[] = [];
  for (const c of cur) {
    const b = before.get(c.name);
    const reset = !!b && (c.packets < b.packets || c.bytes < b.bytes);
    const packets = b && !reset ? c.packets - b.packets : c.packets;
    const bytes = b && !reset ? c.bytes - b.bytes : c.bytes;
    if (packets === 0 && bytes === 0) continue;
    out.push({ name: c.name, packets, bytes, totalPackets: c.packets, totalBytes: c.bytes });
  }
  return out;
}

const WATCH_WIDTHS = [10, 20, 12, 10] as const;

/** Header of --watch in table mode (columns of watchLine). */
export function watchHeader(): string {
  const cols = ['TIME', 'COUNTER', 'PACKETS', 'BYTES', 'TOTAL PACKETS'];
  return `${cols.map((c, i) => (i < WATCH_WIDTHS.length ? c.padEnd(WATCH_WIDTHS[i]!) : c)).join('')}\n`;
}

/** One --watch line: "12:00:01  dnat  +3  +180B  42", or a JSON line. */
export function watchLine(at: Date, d: CounterDelta, fmt: Format): string {
  if (fmt === 'json') return `${JSON.stringify({ time: at.toISOString(), ...d })}\n`;
  const cells = [at.toTimeString().slice(0, 8), d.name, `+${d.packets}`, `+${humanBytes(d.bytes)}`];
  return `${cells.map((c, i) => c.padEnd(WATCH_WIDTHS[i]!)).join('')}${d.totalPackets}\n`;
}

/** --interval: seconds, at least 0.1. */
export function parseInterval(s: string): number {
  const v = Number(s);
  if (!/^[0-9]*\.?[0-9]+$/.test(s.trim()) || !Number.isFinite(v) || v < 0.1) {
    throw invalidArgument(`invalid --interval "${s}": seconds, at least 0.1 (e.g. 1 or 0.5)`);
  }
  return v;
}

/**
 * Polls Counters on one connection until SIGINT/SIGTERM and writes a line per
 * changed counter per interval. Resolves (exit 0) on the signal; a lost agent
 * rejects.
 */
async function watch(host: string, intervalS: number, fmt: Format): Promise<void> {
  const client = await Client.connect(host);
  let stop: () => void = () => undefined;
  let stopped = false;
  const stopped$ = new Promise<void>((resolve) => {
    stop = () => {
      stopped = true;
      resolve();
    };
  });
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const first = (await client.call('Counters')).value;
    if (!first.available) throw invalidArgument(`the ${first.dataplane} dataplane keeps no counters`);
    if (fmt === 'table') {
      process.stderr.write(`watching ${first.counters.length} counters of the ${first.dataplane} dataplane every ${intervalS}s; Ctrl-C stops\n`);
      out(watchHeader());
    }
    let prev = first.counters;
    while (!stopped) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([stopped$, new Promise<void>((r) => (timer = setTimeout(r, intervalS * 1000)))]);
      clearTimeout(timer);
      if (stopped) break;
      const cur = (await client.call('Counters')).value.counters;
      const at = new Date();
      for (const d of counterDeltas(prev, cur)) out(watchLine(at, d, fmt));
      prev = cur;
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    client.close();
  }
}

export function statsCommand(): Command {
  const cmd = new Command('stats').description("the dataplane's counters");

  cmd
    .command('drops')
    .description('drop reasons and translations counted by the dataplane (packets and bytes since its maps were created); --watch shows them change live')
    .option('-w, --watch', 'print what changed every interval, one line per counter, until Ctrl-C')
    .option('--interval <seconds>', 'with --watch: seconds between readings', '1')
    .option('--format <fmt>', 'table or json (with --watch: one JSON object per line)', 'table')
    .action(async (o: { watch?: boolean; interval: string; format: string }, c: Command) => {
      const fmt = parseFormat(o.format);
      const interval = parseInterval(o.interval);
      if (o.watch) return watch(hostOf(c), interval, fmt);
      const r = await call(c, 'Counters');
      if (!r.available) throw invalidArgument(`the ${r.dataplane} dataplane keeps no counters`);
      if (fmt === 'json') return out(json(countersJson(r.dataplane, r.counters)));
      out(formatCountersTable(r.counters));
    });

  return cmd;
}
