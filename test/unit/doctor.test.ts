import { describe, it, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { runDoctor, selectDataplane, type DoctorReport, type Probe } from '../../src/doctor/doctor.js';
import { formatDoctor } from '../../src/doctor/format.js';

const IDS = [
  'kernel', 'btf', 'bpffs', 'bpf', 'cgroup2', 'clsact', 'xdp',
  'tool:clang', 'tool:bpftool', 'tool:tc', 'tool:ip', 'tool:iptables', 'tool:nft', 'tool:nsenter',
  'iptables', 'nftables',
];

async function doctorNetns(): Promise<string[]> {
  const { stdout } = await execa('ip', ['netns', 'list']);
  return stdout.split('\n').filter((l) => l.startsWith('bpfnet-doctor-'));
}

describe('runDoctor on this machine', () => {
  let report: DoctorReport;
  let elapsed = 0;
  beforeAll(async () => {
    const t0 = Date.now();
    report = await runDoctor();
    elapsed = Date.now() - t0;
  }, 15_000);

  it('reports every probe with a known status', () => {
    expect(report.kernel).toMatch(/^\d+\.\d+/);
    expect(report.probes.map((p) => p.id).sort()).toEqual([...IDS].sort());
    for (const p of report.probes) {
      expect(['ok', 'warn', 'fail']).toContain(p.status);
      expect(typeof p.title).toBe('string');
      expect(typeof p.detail).toBe('string');
      if (p.status !== 'ok') expect(p.fix, p.id).toBeTruthy();
    }
  });

  it('selects the eBPF dataplane (root, clang, bpftool, tc installed)', () => {
    const byId = (id: string) => report.probes.find((p) => p.id === id);
    for (const id of ['kernel', 'btf', 'clsact', 'xdp', 'bpf', 'tool:clang', 'tool:bpftool', 'tool:tc']) {
      expect(byId(id)?.status, `${id}: ${byId(id)?.detail}`).toBe('ok');
    }
    expect(report.dataplane.selected).toBe('ebpf');
    expect(report.dataplane.available.ebpf).toBe(true);
    expect(report.dataplane.reason).toMatch(/^kernel \d+\.\d+ with BTF, clsact and clang \d+: eBPF dataplane$/);
  });

  it('runs probes concurrently and quickly', () => {
    expect(elapsed).toBeLessThan(5_000);
  });

  it('formats every probe title and the dataplane line', () => {
    const out = formatDoctor(report);
    for (const p of report.probes) expect(out).toContain(p.title);
    expect(out).toMatch(/^dataplane: ebpf \(.+\)$/m);
  });

  it('leaves no throw-away netns behind', async () => {
    expect(await doctorNetns()).toEqual([]);
  });

  it('round-trips through JSON', () => {
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });

  it('reports a missing bpffsRoot without failing', async () => {
    const r = await runDoctor({ bpffsRoot: '/sys/fs/bpf/bpfnet-doctor-test-does-not-exist' });
    const bpffs = r.probes.find((p) => p.id === 'bpffs');
    expect(bpffs?.detail).toContain('bpfnet-doctor-test-does-not-exist not created yet');
    expect(await doctorNetns()).toEqual([]);
  }, 15_000);

  it('cleans up its netns when several doctors run at once', async () => {
    const rs = await Promise.all([runDoctor(), runDoctor(), runDoctor()]);
    for (const r of rs) expect(r.probes.find((p) => p.id === 'clsact')?.status).toBe('ok');
    expect(await doctorNetns()).toEqual([]);
  }, 15_000);
});

describe('formatDoctor', () => {
  const report: DoctorReport = {
    kernel: '4.19.0',
    probes: [
      { id: 'kernel', title: 'kernel version', status: 'warn', detail: '4.19.0 (too old)', fix: 'upgrade' },
      { id: 'btf', title: 'BTF', status: 'ok', detail: 'present' },
      { id: 'tool:bpftool', title: 'bpftool', status: 'fail', detail: 'not installed', fix: 'apt-get install bpftool' },
    ],
    dataplane: {
      selected: 'iptables',
      reason: 'bpftool missing: falling back to iptables',
      available: { ebpf: false, iptables: true, nftables: false },
    },
  };
  const out = formatDoctor(report);
  const lines = out.trimEnd().split('\n');

  it('aligns the detail column', () => {
    const rows = lines.filter((l) => /^(ok|WARN|FAIL)\s/.test(l));
    expect(rows).toHaveLength(3);
    const cols = report.probes.map((p, i) => rows[i]!.indexOf(p.detail));
    expect(new Set(cols).size).toBe(1);
    // fix lines are indented to the same column
    const fixes = lines.filter((l) => l.trimStart().startsWith('fix: '));
    expect(fixes).toHaveLength(2);
    for (const f of fixes) expect(f.indexOf('fix: ')).toBe(cols[0]);
  });

  it('shows status marks, fixes right under non-ok probes, and the verdict last', () => {
    expect(lines[0]).toMatch(/^WARN  kernel version  4\.19\.0/);
    expect(lines[1]).toBe('                      fix: upgrade');
    expect(lines[2]).toMatch(/^ok    BTF  /);
    expect(out).toContain('fix: apt-get install bpftool');
    expect(out).toContain('fix: upgrade');
    expect(lines.at(-1)).toBe('dataplane: iptables (bpftool missing: falling back to iptables)');
  });
});

describe('selectDataplane', () => {
  const all = (over: Record<string, Partial<Probe>> = {}): Probe[] =>
    ['btf', 'clsact', 'tool:clang', 'tool:bpftool', 'tool:tc', 'tool:iptables', 'tool:nft'].map((id) => ({
      id,
      title: id,
      status: 'ok' as const,
      detail: id === 'tool:clang' ? 'Debian clang version 14.0.6' : '',
      ...over[id],
    }));

  it('picks ebpf when everything is there', () => {
    const d = selectDataplane('6.18.1', all());
    expect(d).toMatchObject({ selected: 'ebpf', reason: 'kernel 6.18 with BTF, clsact and clang 14: eBPF dataplane' });
  });

  it('falls back to iptables, then nftables, then none, saying why', () => {
    const noBpftool = { 'tool:bpftool': { status: 'fail' as const, detail: 'not installed' } };
    expect(selectDataplane('6.18.1', all(noBpftool))).toMatchObject({
      selected: 'iptables',
      reason: 'bpftool missing: falling back to iptables',
    });
    const d = selectDataplane('5.4.0', all({ ...noBpftool, 'tool:iptables': { status: 'fail' } }));
    expect(d.selected).toBe('nftables');
    expect(d.reason).toContain('kernel 5.4.0 < 5.10');
    const none = selectDataplane('6.18.1', all({ ...noBpftool, 'tool:iptables': { status: 'fail' }, 'tool:nft': { status: 'fail' } }));
    expect(none.selected).toBe('none');
    expect(none.available).toEqual({ ebpf: false, iptables: false, nftables: false });
  });
});
