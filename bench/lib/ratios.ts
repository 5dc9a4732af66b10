/**
 * Pairwise ratios between peers measured in the same round: a / b per round,
 * summarised by the median and min-max over rounds, with the ratio of the
 * medians beside it. Rounds ran A B A B, so a ratio compares jobs seconds
 * apart, not whole runs.
 */
import { median } from './stats.js';

export interface Target {
  op: '>=' | '<=';
  value: number;
  met: boolean;
}

export interface PairwiseRatio {
  /** Median of the per-round ratios. */
  pairwise: number;
  min: number;
  max: number;
  /** Ratio of the medians over all rounds. */
  ofMedians: number;
  rounds: number;
}

export function pairwise<S extends { round: number }>(samples: readonly S[], a: (s: S) => boolean, b: (s: S) => boolean, metric: (s: S) => number): PairwiseRatio | undefined {
  const rounds = [...new Set(samples.map((s) => s.round))];
  const per: number[] = [];
  for (const r of rounds) {
    const x = samples.filter((s) => s.round === r && a(s)).map(metric);
    const y = samples.filter((s) => s.round === r && b(s)).map(metric);
    if (x.length && y.length && median(y) > 0 && Number.isFinite(median(x))) per.push(median(x) / median(y));
  }
  if (!per.length) return undefined;
  const ma = median(samples.filter(a).map(metric));
  const mb = median(samples.filter(b).map(metric));
  return { pairwise: median(per), min: Math.min(...per), max: Math.max(...per), ofMedians: ma / mb, rounds: per.length };
}

export function target(value: number, op: '>=' | '<=', bound: number): Target {
  return { op, value: bound, met: op === '>=' ? value >= bound : value <= bound };
}
