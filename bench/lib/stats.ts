/**
 * Small statistics and table helpers for the benchmarks. Everything here is
 * pure: samples in, summaries and strings out.
 */

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** (max - min) / median, as a fraction. */
  spread: number;
  q1: number;
  q3: number;
  /** (q3 - q1) / median: robust against the odd outlier round. */
  iqrRel: number;
}

/** Median (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Linear-interpolated quantile, q in [0, 1]. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export function summarize(xs: readonly number[]): Summary {
  if (xs.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN, spread: NaN, q1: NaN, q3: NaN, iqrRel: NaN };
  const med = median(xs);
  const min = Math.min(...xs);
  const max = Math.max(...xs);
  const q1 = quantile(xs, 0.25);
  const q3 = quantile(xs, 0.75);
  return { n: xs.length, median: med, min, max, spread: med === 0 ? NaN : (max - min) / med, q1, q3, iqrRel: med === 0 ? NaN : (q3 - q1) / med };
}

/** Rotate `items` left by `k`: round r of an alternating benchmark runs rotate(methods, r). */
export function rotate<T>(items: readonly T[], k: number): T[] {
  if (items.length === 0) return [];
  const s = ((k % items.length) + items.length) % items.length;
  return [...items.slice(s), ...items.slice(0, s)];
}

/** Nanoseconds since an arbitrary origin, as a number (µs resolution is plenty). */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

export function elapsedS(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

// ---- formatting ------------------------------------------------------------

/** 1234567 -> "1,234,567"; fractional values keep `digits` decimals. */
export function fmtInt(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return Math.round(x).toLocaleString('en-US');
}

export function fmtNum(x: number, digits = 1): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Rates: 348250 -> "348 k/s", 1.2e6 -> "1.20 M/s". */
export function fmtRate(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M/s`;
  if (x >= 1e4) return `${Math.round(x / 1e3)} k/s`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k/s`;
  return `${x.toFixed(0)} /s`;
}

export function fmtPct(frac: number): string {
  if (!Number.isFinite(frac)) return 'n/a';
  return `${(frac * 100).toFixed(1)}%`;
}

export function fmtRatio(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return `${x.toFixed(2)}×`;
}

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
  /** Right-align these column indexes (numbers). */
  right?: number[];
  notes?: string[];
}

/** Plain-text table for the terminal. */
export function renderText(t: Table): string {
  const widths = t.headers.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const right = new Set(t.right ?? []);
  const cell = (s: string, i: number) => (right.has(i) ? s.padStart(widths[i]!) : s.padEnd(widths[i]!));
  const line = (cells: string[]) => cells.map((c, i) => cell(c, i)).join('  ').trimEnd();
  const out = [t.title, line(t.headers), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of t.rows) out.push(line(t.headers.map((_, i) => r[i] ?? '')));
  for (const n of t.notes ?? []) out.push(`  * ${n}`);
  return out.join('\n');
}

/** GitHub-flavoured markdown table. */
export function renderMarkdown(t: Table, level = 3): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const right = new Set(t.right ?? []);
  const out = [`${'#'.repeat(level)} ${t.title}`, '', `| ${t.headers.map(esc).join(' | ')} |`,
    `|${t.headers.map((_, i) => (right.has(i) ? '---:' : ':---')).join('|')}|`];
  for (const r of t.rows) out.push(`| ${t.headers.map((_, i) => esc(r[i] ?? '')).join(' | ')} |`);
  if (t.notes?.length) {
    out.push('');
    for (const n of t.notes) out.push(`- ${n}`);
  }
  return out.join('\n');
}
