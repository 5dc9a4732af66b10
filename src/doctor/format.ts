/** Human-readable `bpfnet doctor` output: an aligned table, fixes, then the verdict. */
import type { DoctorReport, ProbeStatus } from './doctor.js';

const MARK: Record<ProbeStatus, string> = { ok: 'ok', warn: 'WARN', fail: 'FAIL' };

export function formatDoctor(r: DoctorReport): string {
  const markW = Math.max(...Object.values(MARK).map((m) => m.length));
  const titleW = Math.max(0, ...r.probes.map((p) => p.title.length));
  const indent = ' '.repeat(markW + 2 + titleW + 2); // fixes line up under the detail column
  const lines: string[] = [];
  for (const p of r.probes) {
    lines.push(`${MARK[p.status].padEnd(markW)}  ${p.title.padEnd(titleW)}  ${p.detail}`.trimEnd());
    if (p.status !== 'ok' && p.fix) lines.push(`${indent}fix: ${p.fix}`);
  }
  lines.push('', `dataplane: ${r.dataplane.selected} (${r.dataplane.reason})`);
  if (r.fallback?.length) {
    lines.push('', 'fallback dataplanes (--dataplane iptables|nftables), where they differ from eBPF:');
    for (const f of r.fallback) {
      lines.push(`  ${f.mode}${f.status === 'warn' ? ' (WARN)' : ''}:`);
      for (const l of f.limits) lines.push(`    - ${l}`);
    }
  }
  return lines.join('\n') + '\n';
}
