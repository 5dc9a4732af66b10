import { describe, expect, it } from 'vitest';
import type { Counter, PublishedPort } from '../../src/api/generated/types.js';
import { formatDockerPort, formatPortsTable, hostPort, humanBytes, inspectPorts, parsePrivatePort, portRow } from '../../src/cli/ports.js';
import { formatPortMapping as portMapping } from '../../src/model/portspec.js';
import { counterDeltas, countersJson, formatCountersTable, formatInfoCounters, parseInterval, watchHeader, watchLine } from '../../src/cli/stats.js';
import { metricName, metricNames } from '../../src/dataplane/ebpf/counters.js';

function port(p: Partial<PublishedPort>): PublishedPort {
  return {
    hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: '10.1.0.2', containerPort: 80,
    sandboxId: 'a'.repeat(64), sandboxName: 'web', networkId: 'b'.repeat(64), networkName: 'n1',
    active: true, inactiveReason: '', counted: true, packets: 0, bytes: 0, ...p,
  };
}

const c = (name: string, packets: number, bytes: number): Counter => ({ name, packets, bytes });

describe('ports: notation', () => {
  it("writes Docker's mapping notation", () => {
    expect(portMapping(port({}))).toBe('0.0.0.0:8080->80/tcp');
    expect(portMapping(port({ hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53, proto: 'udp' }))).toBe('127.0.0.1:5353->53/udp');
    expect(hostPort('::1', 80)).toBe('[::1]:80');
  });

  it('prints byte counts like the docker CLI (3 significant digits, decimal units)', () => {
    expect([0, 1, 512, 999, 1000, 1234, 12_345, 999_400, 45_600_000, 3_000_000_000].map(humanBytes)).toEqual([
      '0B', '1B', '512B', '999B', '1kB', '1.23kB', '12.3kB', '999kB', '45.6MB', '3GB',
    ]);
    expect(humanBytes(999_949)).toBe('1MB'); // would round to 1000kB: the next unit instead
    expect(humanBytes(10n ** 3n)).toBe('1kB');
  });
});

describe('ports ls', () => {
  it('is an aligned table with counters, "-" where the dataplane does not count, and why a port is inactive', () => {
    const t = formatPortsTable([
      port({ packets: 12, bytes: 1234 }),
      port({ hostPort: 5353, containerPort: 53, proto: 'udp', counted: false }),
      port({ sandboxName: 'h', networkName: '', hostPort: 81, containerPort: 81, active: false, containerIp: '', counted: false, inactiveReason: 'host networking publishes no ports' }),
    ]);
    const lines = t.split('\n');
    expect(lines[0]).toMatch(/^SANDBOX\s+NETWORK\s+PORT\s+BACKEND\s+PACKETS\s+BYTES$/);
    expect(lines[1]).toMatch(/^web\s+n1\s+0\.0\.0\.0:8080->80\/tcp\s+10\.1\.0\.2:80\s+12\s+1\.23kB$/);
    expect(lines[2]).toMatch(/^web\s+n1\s+0\.0\.0\.0:5353->53\/udp\s+10\.1\.0\.2:53\s+-\s+-$/);
    expect(lines[3]).toMatch(/^h\s+-\s+0\.0\.0\.0:81->81\/tcp\s+\(inactive: host networking publishes no ports\)\s+-\s+-$/);
    // Columns line up: PORT starts at the same offset on every line.
    const col = lines[0]!.indexOf('PORT');
    expect(lines.slice(1, 4).map((l) => l.indexOf('0.0.0.0'))).toEqual([col, col, col]);
    expect(formatPortsTable([])).toMatch(/^SANDBOX\s+NETWORK\s+PORT\s+BACKEND\s+PACKETS\s+BYTES\n$/);
  });

  it('json rows carry counters, or null when not counted, and the reason when inactive', () => {
    expect(portRow(port({ packets: 3, bytes: 180 }))).toEqual({
      sandbox: 'web', sandboxId: 'a'.repeat(64), network: 'n1', hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp',
      containerIp: '10.1.0.2', containerPort: 80, active: true, packets: 3, bytes: 180,
    });
    expect(portRow(port({ active: false, counted: false, inactiveReason: 'why' }))).toMatchObject({ active: false, reason: 'why', packets: null, bytes: null });
  });
});

describe('port (docker port)', () => {
  const ports = [port({ packets: 5, bytes: 300 }), port({ hostIp: '127.0.0.1', hostPort: 9090 }), port({ hostPort: 5353, containerPort: 53, proto: 'udp' })];

  it("prints Docker's lines", () => {
    expect(formatDockerPort(ports)).toBe('80/tcp -> 0.0.0.0:8080\n80/tcp -> 127.0.0.1:9090\n53/udp -> 0.0.0.0:5353\n');
    expect(formatDockerPort([])).toBe('');
  });

  it('with a private port prints only the host addresses, and refuses an unpublished one like Docker', () => {
    expect(formatDockerPort(ports, { privatePort: '80' })).toBe('0.0.0.0:8080\n127.0.0.1:9090\n');
    expect(formatDockerPort(ports, { privatePort: '53/udp' })).toBe('0.0.0.0:5353\n');
    expect(() => formatDockerPort(ports, { privatePort: '53', sandbox: 'web' })).toThrow("No public port '53/tcp' published for web");
  });

  it('--counters appends packets and bytes', () => {
    expect(formatDockerPort(ports.slice(0, 1), { counters: true })).toBe('80/tcp -> 0.0.0.0:8080  5 packets, 300B\n');
    expect(formatDockerPort([port({ counted: false })], { counters: true })).toBe('80/tcp -> 0.0.0.0:8080  (not counted)\n');
    expect(formatDockerPort([port({ active: false, inactiveReason: 'x' })], { counters: true })).toBe('80/tcp -> 0.0.0.0:8080  (inactive: x)\n');
  });

  it('parses PRIVATE_PORT[/PROTO] and refuses anything else', () => {
    expect(parsePrivatePort('80')).toEqual({ port: 80, proto: 'tcp' });
    expect(parsePrivatePort('53/UDP')).toEqual({ port: 53, proto: 'udp' });
    for (const bad of ['', 'x', '0', '65536', '80/sctp', '80-81', '80/']) expect(() => parsePrivatePort(bad), bad).toThrow(/invalid/);
  });

  it('inspect extra: each port with backend and counters, Docker-style keys', () => {
    expect(inspectPorts([port({ packets: 2, bytes: 120 }), port({ active: false, counted: false, hostPort: 1 })])).toEqual({
      Ports: [
        { HostIp: '0.0.0.0', HostPort: '8080', ContainerPort: '80/tcp', Backend: '10.1.0.2:80', Active: true, Packets: 2, Bytes: 120 },
        { HostIp: '0.0.0.0', HostPort: '1', ContainerPort: '80/tcp', Backend: '', Active: false, Packets: null, Bytes: null },
      ],
    });
  });
});

describe('stats drops', () => {
  it('names counters after enum metric_id, lowercase without METRIC_, in id order', () => {
    expect(metricName('METRIC_DROP_SPOOF')).toBe('drop_spoof');
    const names = metricNames();
    expect(names[0]).toEqual({ id: 0, name: 'dnat' });
    expect(names.map((n) => n.name)).toContain('drop_isolation');
    expect(names.map((n) => n.name)).not.toContain('max');
    expect(names.map((n) => n.id)).toEqual(names.map((_, i) => i));
  });

  it('is a table of every counter with its meaning, and JSON by name', () => {
    const cs = [c('dnat', 3, 180), c('drop_spoof', 0, 0)];
    const lines = formatCountersTable(cs).split('\n');
    expect(lines[0]).toMatch(/^COUNTER\s+PACKETS\s+BYTES\s+MEANING$/);
    expect(lines[1]).toMatch(/^dnat\s+3\s+180B\s+published-port DNAT applied$/);
    expect(lines[2]).toMatch(/^drop_spoof\s+0\s+0B\s+container sent with another source IP or MAC: dropped$/);
    expect(countersJson('ebpf', cs)).toEqual({ dataplane: 'ebpf', counters: { dnat: { packets: 3, bytes: 180 }, drop_spoof: { packets: 0, bytes: 0 } } });
  });

  it('info shows non-zero counters and drops in two lines', () => {
    expect(formatInfoCounters([c('dnat', 3, 1), c('rnat', 0, 0), c('drop_spoof', 2, 1), c('rewrite_fail', 1, 1)])).toEqual([
      'Counters:       dnat 3',
      'Drops:          drop_spoof 2, rewrite_fail 1',
    ]);
    expect(formatInfoCounters([c('dnat', 0, 0)])).toEqual(['Counters:       (no traffic yet)', 'Drops:          none']);
    expect(formatInfoCounters([])).toEqual([]);
  });

  it('--watch: deltas of changed counters only; a counter that went down counts from zero', () => {
    const prev = [c('dnat', 10, 1000), c('rnat', 5, 500), c('drop_spoof', 7, 70)];
    const cur = [c('dnat', 13, 1180), c('rnat', 5, 500), c('drop_spoof', 2, 20), c('hairpin', 1, 60)];
    expect(counterDeltas(prev, cur)).toEqual([
      { name: 'dnat', packets: 3, bytes: 180, totalPackets: 13, totalBytes: 1180 },
      { name: 'drop_spoof', packets: 2, bytes: 20, totalPackets: 2, totalBytes: 20 },
      { name: 'hairpin', packets: 1, bytes: 60, totalPackets: 1, totalBytes: 60 },
    ]);
    expect(counterDeltas(cur, cur)).toEqual([]);
  });

  it('--watch lines: aligned under the header, or one JSON object per line', () => {
    const at = new Date(2026, 0, 2, 3, 4, 5);
    const d = { name: 'dnat', packets: 3, bytes: 180, totalPackets: 13, totalBytes: 1180 };
    const line = watchLine(at, d, 'table');
    expect(line).toMatch(/^03:04:05\s+dnat\s+\+3\s+\+180B\s+13\n$/);
    expect(line.indexOf('dnat')).toBe(watchHeader().indexOf('COUNTER'));
    expect(line.indexOf('+3')).toBe(watchHeader().indexOf('PACKETS'));
    expect(JSON.parse(watchLine(at, d, 'json'))).toEqual({ time: at.toISOString(), ...d });
  });

  it('--interval: seconds, at least 0.1', () => {
    expect(parseInterval('1')).toBe(1);
    expect(parseInterval('0.5')).toBe(0.5);
    for (const bad of ['0', '0.05', '-1', 'x', '', '1s']) expect(() => parseInterval(bad), bad).toThrow(/invalid --interval/);
  });
});
