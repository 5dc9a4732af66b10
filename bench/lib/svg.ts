/**
 * A small dependency-free SVG line chart for the benchmark results: series
 * of (x, y) points, linear or log axes, a legend below the plot. Pure:
 * spec in, SVG text out (GitHub renders it inline from the README).
 */

export interface Series {
  name: string;
  points: [number, number][];
  dashed?: boolean;
}

export interface ChartSpec {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  xLog?: boolean;
  yLog?: boolean;
  /** Tick positions on x (default: every x that occurs). */
  xTicks?: number[];
  /** Force y to start at 0 (linear axes; default true). */
  yZero?: boolean;
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const r1 = (x: number) => Math.round(x * 10) / 10;

/** 1500 -> "1.5k", 50000 -> "50k", 0.25 -> "0.25". */
export function shortNum(x: number): string {
  const a = Math.abs(x);
  const trim = (v: number, unit: string) => `${Number(v.toPrecision(3))}${unit}`;
  if (a >= 1e9) return trim(x / 1e9, 'G');
  if (a >= 1e6) return trim(x / 1e6, 'M');
  if (a >= 1e3) return trim(x / 1e3, 'k');
  return String(Number(x.toPrecision(3)));
}

/** Round-number ticks from at or below lo to at or above hi (about `count` of them). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const out: number[] = [];
  const top = Math.ceil(hi / step - 1e-9) * step;
  for (let v = Math.floor(lo / step) * step; v <= top + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Powers of ten covering [lo, hi] (lo > 0). */
export function decadeTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}

export function lineChart(spec: ChartSpec): string {
  const W = spec.width ?? 760;
  const legendRows = Math.ceil(spec.series.length / 2);
  const H = (spec.height ?? 420) + legendRows * 18;
  const m = { left: 78, right: 24, top: spec.subtitle ? 56 : 40, bottom: 58 + legendRows * 18 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const pts = spec.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!spec.xLog || x > 0) && (!spec.yLog || y > 0));
  if (!pts.length) return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="80"><text x="10" y="40" font-family="sans-serif">${esc(spec.title)}: no data</text></svg>\n`;

  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let [xLo, xHi] = [Math.min(...xs), Math.max(...xs)];
  if (xLo === xHi) [xLo, xHi] = spec.xLog ? [xLo / 2, xHi * 2] : [xLo - 1, xHi + 1];
  let yTicks: number[];
  let yLo: number;
  let yHi: number;
  if (spec.yLog) {
    yTicks = decadeTicks(Math.min(...ys), Math.max(...ys));
    [yLo, yHi] = [yTicks[0]!, yTicks.at(-1)!];
    if (yLo === yHi) yHi = yLo * 10;
  } else {
    const lo = spec.yZero === false ? Math.min(...ys) : Math.min(0, ...ys);
    yTicks = niceTicks(lo, Math.max(...ys) * 1.02);
    [yLo, yHi] = [yTicks[0]!, Math.max(yTicks.at(-1)!, Math.max(...ys))];
  }
  const tx = (x: number) => (spec.xLog ? (Math.log10(x) - Math.log10(xLo)) / (Math.log10(xHi) - Math.log10(xLo)) : (x - xLo) / (xHi - xLo));
  const ty = (y: number) => (spec.yLog ? (Math.log10(y) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo)) : (y - yLo) / (yHi - yLo));
  const X = (x: number) => r1(m.left + tx(x) * pw);
  const Y = (y: number) => r1(m.top + ph - ty(y) * ph);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  if (spec.subtitle) out.push(`<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(spec.subtitle)}</text>`);
  // grid and y ticks
  for (const t of yTicks) {
    if (t < yLo || t > yHi) continue;
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 6}" y="${Y(t) + 4}" text-anchor="end">${esc(shortNum(t))}</text>`);
  }
  const xTicks = (spec.xTicks ?? [...new Set(xs)].sort((a, b) => a - b)).filter((t) => t >= xLo && t <= xHi);
  for (const t of xTicks) {
    out.push(`<line x1="${X(t)}" x2="${X(t)}" y1="${m.top}" y2="${m.top + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${X(t)}" y="${m.top + ph + 16}" text-anchor="middle">${esc(shortNum(t))}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${m.top + ph + 36}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`);
  // series
  spec.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!spec.xLog || x > 0) && (!spec.yLog || y > 0)).sort((a, b) => a[0] - b[0]);
    if (p.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${p.map(([x, y]) => `${X(x)},${Y(y)}`).join(' ')}"/>`);
    for (const [x, y] of p) out.push(`<circle cx="${X(x)}" cy="${Y(y)}" r="3.5" fill="${color}"><title>${esc(`${s.name}: ${shortNum(x)} -> ${shortNum(y)}`)}</title></circle>`);
    const lx = m.left + (i % 2) * (pw / 2);
    const ly = m.top + ph + 54 + Math.floor(i / 2) * 18;
    out.push(`<line x1="${lx}" x2="${lx + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<circle cx="${lx + 11}" cy="${ly - 4}" r="3.5" fill="${color}"/>`);
    out.push(`<text x="${lx + 28}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
