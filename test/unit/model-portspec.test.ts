/** src/model/portspec.ts: Docker's -p / -P grammar, host-port allocation, docker ps formatting. */
import { describe, expect, it } from 'vitest';
import {
  allocatePorts,
  bindingsConflict,
  DEFAULT_EPHEMERAL,
  formatPortList,
  formatPortMapping,
  parseExposed,
  parsePortSpec,
  parsePortSpecs,
  type AllocateContext,
  type PortRequest,
  publishAll,
  takenBy,
  parseUnpublishSpec,
  PortIndex,
} from '../../src/model/portspec.js';
import type { PortMapping } from '../../src/model/types.js';
import { fails } from '../harness/errors.js';


/** Requests without the spec field, for compact tables. */
const parse = (s: string) => parsePortSpec(s).map(({ spec: _s, ...r }) => r);

describe('parsePortSpec: every form', () => {
  it.each<[string, Omit<PortRequest, 'spec'>[]]>([
    ['80', [{ containerPort: 80, proto: 'tcp' }]],
    ['80/tcp', [{ containerPort: 80, proto: 'tcp' }]],
    ['80/udp', [{ containerPort: 80, proto: 'udp' }]],
    ['80/UDP', [{ containerPort: 80, proto: 'udp' }]],
    ['80/', [{ containerPort: 80, proto: 'tcp' }]],
    ['8080:80', [{ hostPortStart: 8080, hostPortEnd: 8080, containerPort: 80, proto: 'tcp' }]],
    ['8080:80/udp', [{ hostPortStart: 8080, hostPortEnd: 8080, containerPort: 80, proto: 'udp' }]],
    ['127.0.0.1:8080:80', [{ hostIp: '127.0.0.1', hostPortStart: 8080, hostPortEnd: 8080, containerPort: 80, proto: 'tcp' }]],
    ['127.0.0.1::80', [{ hostIp: '127.0.0.1', containerPort: 80, proto: 'tcp' }]],
    ['0.0.0.0:53:53/udp', [{ hostIp: '0.0.0.0', hostPortStart: 53, hostPortEnd: 53, containerPort: 53, proto: 'udp' }]],
    ['0:80', [{ containerPort: 80, proto: 'tcp' }]], // host port 0 = ephemeral, as in Docker
    [':80', [{ containerPort: 80, proto: 'tcp' }]],
    ['8000-9000:80', [{ hostPortStart: 8000, hostPortEnd: 9000, containerPort: 80, proto: 'tcp' }]],
    ['198.18.0.1:8000-8001:53/udp', [{ hostIp: '198.18.0.1', hostPortStart: 8000, hostPortEnd: 8001, containerPort: 53, proto: 'udp' }]],
    [
      '8000-8002:80-82',
      [
        { hostPortStart: 8000, hostPortEnd: 8000, containerPort: 80, proto: 'tcp' },
        { hostPortStart: 8001, hostPortEnd: 8001, containerPort: 81, proto: 'tcp' },
        { hostPortStart: 8002, hostPortEnd: 8002, containerPort: 82, proto: 'tcp' },
      ],
    ],
    [
      '80-81',
      [
        { containerPort: 80, proto: 'tcp' },
        { containerPort: 81, proto: 'tcp' },
      ],
    ],
    [
      '127.0.0.1::80-81/udp',
      [
        { hostIp: '127.0.0.1', containerPort: 80, proto: 'udp' },
        { hostIp: '127.0.0.1', containerPort: 81, proto: 'udp' },
      ],
    ],
    ['8080-8080:80-80', [{ hostPortStart: 8080, hostPortEnd: 8080, containerPort: 80, proto: 'tcp' }]],
    ['65535:1', [{ hostPortStart: 65535, hostPortEnd: 65535, containerPort: 1, proto: 'tcp' }]],
  ])('%s', (spec, want) => {
    expect(parse(spec)).toEqual(want);
  });

  it('8000-8010:80-90 gives 11 one-to-one requests', () => {
    const r = parse('8000-8010:80-90');
    expect(r).toHaveLength(11);
    expect(r[10]).toEqual({ hostPortStart: 8010, hostPortEnd: 8010, containerPort: 90, proto: 'tcp' });
  });

  it('keeps the spec for messages', () => {
    expect(parsePortSpec('8080:80')[0]?.spec).toBe('8080:80');
    expect(parsePortSpecs(['80', '53/udp']).map((r) => r.spec)).toEqual(['80', '53/udp']);
  });
});

describe('parsePortSpec: refusals', () => {
  const ipv6 = 'IPv6 host addresses are not supported yet: bpfnet forwards IPv4 only; use an IPv4 address or omit the host IP';
  it.each([
    ['[::1]:80:80', ipv6],
    ['[::1]:8080:80', ipv6],
    ['[::]::80', ipv6],
    ['::1:80:80', ipv6],
    ['[fe80::1%eth0]:80:80', ipv6],
    ['80/sctp', "sctp is not supported: bpfnet's dataplanes translate tcp and udp only; publish /tcp or /udp"],
    ['8080:80/SCTP', 'sctp is not supported'],
    ['80/icmp', 'invalid protocol "icmp"; use /tcp (the default) or /udp'],
    ['80/tcp/x', 'invalid protocol "tcp/x"'],
    ['1-2:3-5', 'invalid ranges: host ports 1-2 (2) and container ports 3-5 (3) differ in length; give ranges of equal length (e.g. 1-3:3-5)'],
    ['8000-8001:80-90', 'differ in length'],
    ['0', 'container port 0 is out of range; ports are 1-65535'],
    ['8080:0', 'container port 0 is out of range'],
    ['65536', 'container port 65536 is out of range'],
    ['65536:80', 'host port 65536 is out of range'],
    ['99999999999999999999:80', 'host port 99999999999999999999 is out of range'],
    ['0-10:80', 'host port 0 is out of range'],
    ['90-80', 'invalid container port range 90-80: the end is below the start; write it low-high, e.g. 80-90'],
    ['9000-8000:80', 'invalid host port range 9000-8000'],
    ['abc', 'invalid container port "abc": must be a number 1-65535'],
    ['-80', 'invalid container port ""'],
    ['80-', 'invalid container port ""'],
    ['8080:http', 'invalid container port "http"'],
    ['http:80', 'invalid host port "http": must be a number 0-65535'],
    ['', 'empty port specification; expected [hostIP:][hostPort:]containerPort[/tcp|udp]'],
    ['8080:', 'no port specified in "8080:"'],
    ['/tcp', 'no port specified in "/tcp"'],
    ['localhost:8080:80', 'invalid host IP "localhost"; give an IPv4 address such as 127.0.0.1'],
    ['1.2.3:8080:80', 'invalid host IP "1.2.3"'],
    ['[1.2.3.4:8080:80', 'unbalanced brackets'],
    ['8.0.80', 'invalid container port "8.0.80"'],
  ])('%j', (spec, msg) => {
    expect(fails(() => parsePortSpec(spec)).message).toContain(msg);
  });

  it('a bracketed IPv4 host address is accepted', () => {
    expect(parse('[127.0.0.1]:8080:80')).toEqual([{ hostIp: '127.0.0.1', hostPortStart: 8080, hostPortEnd: 8080, containerPort: 80, proto: 'tcp' }]);
  });
});

describe('parseExposed', () => {
  it.each([
    ['80', [{ containerPort: 80, proto: 'tcp' }]],
    ['80/udp', [{ containerPort: 80, proto: 'udp' }]],
    [
      '8000-8002/tcp',
      [
        { containerPort: 8000, proto: 'tcp' },
        { containerPort: 8001, proto: 'tcp' },
        { containerPort: 8002, proto: 'tcp' },
      ],
    ],
  ])('%s', (spec, want) => {
    expect(parseExposed(spec)).toEqual(want);
  });

  it.each([['8080:80', 'invalid exposed port'], ['', 'invalid exposed port'], ['80/sctp', 'sctp is not supported'], ['0', 'out of range']])('refuses %j', (spec, msg) => {
    expect(fails(() => parseExposed(spec)).message).toContain(msg);
  });
});

describe('wildcard conflicts', () => {
  it.each([
    ['0.0.0.0', '0.0.0.0', true],
    ['0.0.0.0', '127.0.0.1', true],
    ['127.0.0.1', '0.0.0.0', true],
    ['127.0.0.1', '127.0.0.1', true],
    ['127.0.0.1', '198.18.0.1', false],
  ])('%s vs %s on 8080/tcp: %s', (a, b, want) => {
    expect(bindingsConflict({ hostIp: a, proto: 'tcp', hostPort: 8080 }, { hostIp: b, proto: 'tcp', hostPort: 8080 })).toBe(want);
    expect(takenBy([{ hostIp: a, hostPort: 8080, proto: 'tcp' }])(b, 'tcp', 8080)).toBe(want);
  });

  it('different protocol or port never conflicts', () => {
    const taken = takenBy([{ hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp' }]);
    expect(taken('0.0.0.0', 'udp', 8080)).toBe(false);
    expect(taken('0.0.0.0', 'tcp', 8081)).toBe(false);
  });
});

describe('allocatePorts', () => {
  const ctx = (existing: PortMapping[] = [], over: Partial<AllocateContext> = {}): AllocateContext => ({
    defaultHostIp: '0.0.0.0',
    ephemeral: [49153, 49160],
    isTaken: takenBy(existing),
    ...over,
  });
  const M = (hostIp: string, hostPort: number, containerPort: number, proto: 'tcp' | 'udp' = 'tcp'): PortMapping => ({ hostIp, hostPort, containerPort, proto });
  const alloc = (specs: string[], c: AllocateContext = ctx()) => allocatePorts(parsePortSpecs(specs), c);

  it.each<[string, string[], PortMapping[], PortMapping[]]>([
    ['fixed port on the default host IP', ['8080:80'], [], [M('0.0.0.0', 8080, 80)]],
    ['fixed port on a given IP', ['127.0.0.1:8080:80'], [], [M('127.0.0.1', 8080, 80)]],
    ['ephemeral: the lowest free port of the range', ['80'], [], [M('0.0.0.0', 49153, 80)]],
    ['ephemeral skips taken ports', ['80'], [M('0.0.0.0', 49153, 1), M('0.0.0.0', 49154, 1)], [M('0.0.0.0', 49155, 80)]],
    ['ephemeral on a specific IP', ['127.0.0.1::80'], [M('198.18.0.1', 49153, 1)], [M('127.0.0.1', 49153, 80)]],
    ['ephemeral on a specific IP skips a wildcard binding', ['127.0.0.1::80'], [M('0.0.0.0', 49153, 1)], [M('127.0.0.1', 49154, 80)]],
    ['host range: the first free one', ['8000-9000:80'], [M('0.0.0.0', 8000, 1), M('127.0.0.1', 8001, 1)], [M('0.0.0.0', 8002, 80)]],
    ['equal ranges map one to one', ['8000-8002:80-82'], [], [M('0.0.0.0', 8000, 80), M('0.0.0.0', 8001, 81), M('0.0.0.0', 8002, 82)]],
    ['same port, different protocol', ['53:53/tcp', '53:53/udp'], [], [M('0.0.0.0', 53, 53, 'tcp'), M('0.0.0.0', 53, 53, 'udp')]],
    ['same port on two specific IPs', ['127.0.0.1:80:80', '198.18.0.1:80:81'], [], [M('127.0.0.1', 80, 80), M('198.18.0.1', 80, 81)]],
    ['ports chosen earlier in the call count as taken', ['80', '81', '8000-8001:90'], [], [M('0.0.0.0', 49153, 80), M('0.0.0.0', 49154, 81), M('0.0.0.0', 8000, 90)]],
    ['same udp port taken on tcp is free', ['5353:53/udp'], [M('0.0.0.0', 5353, 53, 'tcp')], [M('0.0.0.0', 5353, 53, 'udp')]],
  ])('%s', (_n, specs, existing, want) => {
    expect(alloc(specs, ctx(existing))).toEqual(want);
  });

  it('default host IP from the network (host_binding_ipv4)', () => {
    expect(alloc(['8080:80'], ctx([], { defaultHostIp: '198.18.0.1' }))).toEqual([M('198.18.0.1', 8080, 80)]);
  });

  it.each<[string, string[], PortMapping[], string]>([
    ['taken on the same IP', ['8080:80'], [M('0.0.0.0', 8080, 1)], 'host port 8080/tcp on 0.0.0.0 is already allocated (bind for 0.0.0.0:8080 failed); publish on another host port (e.g. -p 8081:80/tcp) or omit the host port to get a free one'],
    ['wildcard request vs a specific binding', ['8080:80'], [M('127.0.0.1', 8080, 1)], 'host port 8080/tcp on 0.0.0.0 is already allocated'],
    ['specific request vs a wildcard binding', ['127.0.0.1:8080:80/udp'], [M('0.0.0.0', 8080, 1, 'udp')], 'host port 8080/udp on 127.0.0.1 is already allocated (bind for 127.0.0.1:8080 failed); publish on another host port (e.g. -p 8081:80/udp)'],
    ['the suggestion skips taken ports', ['8080:80'], [M('0.0.0.0', 8080, 1), M('0.0.0.0', 8081, 1)], '(e.g. -p 8082:80/tcp)'],
    ['one of an equal range is taken', ['8000-8002:80-82'], [M('0.0.0.0', 8001, 1)], 'host port 8001/tcp on 0.0.0.0 is already allocated'],
    ['the same port twice in one call', ['8080:80', '8080:81'], [], 'host port 8080/tcp on 0.0.0.0 is already allocated'],
    ['wildcard then specific in one call', ['8080:80', '127.0.0.1:8080:81'], [], 'host port 8080/tcp on 127.0.0.1 is already allocated'],
  ])('E_CONFLICT: %s', (_n, specs, existing, msg) => {
    const e = fails(() => alloc(specs, ctx(existing)), 'E_CONFLICT');
    expect(e.message).toContain(msg);
  });

  it('E_EXHAUSTED: the ephemeral range is full', () => {
    const full = Array.from({ length: 8 }, (_, i) => M('0.0.0.0', 49153 + i, 1));
    const e = fails(() => alloc(['80'], ctx(full)), 'E_EXHAUSTED');
    expect(e.message).toBe('no free ephemeral tcp port left on 0.0.0.0 in 49153-49160 for "80"; give an explicit host port (e.g. -p 8080:80) or unpublish something');
  });

  it('E_EXHAUSTED: a host range is full', () => {
    const e = fails(() => alloc(['8000-8001:80'], ctx([M('0.0.0.0', 8000, 1), M('127.0.0.1', 8001, 2)])), 'E_EXHAUSTED');
    expect(e.message).toBe('every host port in 8000-8001/tcp on 0.0.0.0 is already allocated; widen the range or omit the host port to get an ephemeral one');
  });

  it('listening sockets reported by isTaken are honoured', () => {
    const sockets = (ip: string, proto: string, port: number) => proto === 'tcp' && port === 8080 && (ip === '0.0.0.0' || ip === '127.0.0.1');
    expect(fails(() => alloc(['127.0.0.1:8080:80'], ctx([], { isTaken: sockets })), 'E_CONFLICT').message).toContain('8080/tcp on 127.0.0.1');
  });

  it('refuses a bad ephemeral range or default host IP', () => {
    expect(fails(() => alloc(['80'], ctx([], { ephemeral: [60000, 50000] }))).message).toContain("ephemeral port range 60000-50000 is invalid; it must be within 1-65535 with start <= end (Docker's fallback is 49153-65535)");
    expect(fails(() => alloc(['80'], ctx([], { defaultHostIp: '::' }))).message).toContain('default host IP "::" is not an IPv4 address');
    expect(DEFAULT_EPHEMERAL).toEqual([49153, 65535]);
  });
});

describe('publishAll (-P)', () => {
  const ctx: AllocateContext = { defaultHostIp: '0.0.0.0', ephemeral: [49153, 65535], isTaken: () => false };

  it('maps every exposed port to an ephemeral one', () => {
    expect(publishAll(['80', '53/udp', '8000-8002/tcp'], ctx)).toEqual([
      { hostIp: '0.0.0.0', hostPort: 49153, containerPort: 80, proto: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 49153, containerPort: 53, proto: 'udp' },
      { hostIp: '0.0.0.0', hostPort: 49154, containerPort: 8000, proto: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 49155, containerPort: 8001, proto: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 49156, containerPort: 8002, proto: 'tcp' },
    ]);
  });

  it('skips ports already published with -p and duplicates, and avoids their host ports', () => {
    const already: PortMapping[] = [{ hostIp: '0.0.0.0', hostPort: 49153, containerPort: 80, proto: 'tcp' }];
    expect(publishAll(['80/tcp', '81', '81/tcp'], ctx, already)).toEqual([{ hostIp: '0.0.0.0', hostPort: 49154, containerPort: 81, proto: 'tcp' }]);
  });

  it('refuses garbage', () => {
    fails(() => publishAll(['eighty'], ctx));
  });
});

describe('formatting', () => {
  it('formatPortMapping like docker ps', () => {
    expect(formatPortMapping({ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp' })).toBe('0.0.0.0:8080->80/tcp');
    expect(formatPortMapping({ hostIp: '198.18.0.1', hostPort: 5353, containerPort: 53, proto: 'udp' })).toBe('198.18.0.1:5353->53/udp');
  });

  it('formatPortList collapses runs and lists exposed-only ports', () => {
    const m = (hostIp: string, hostPort: number, containerPort: number, proto: 'tcp' | 'udp' = 'tcp'): PortMapping => ({ hostIp, hostPort, containerPort, proto });
    expect(formatPortList([m('0.0.0.0', 8002, 82), m('0.0.0.0', 8000, 80), m('0.0.0.0', 8001, 81), m('0.0.0.0', 5353, 53, 'udp'), m('127.0.0.1', 9000, 90)], ['80', '443', '443/tcp'])).toBe(
      '0.0.0.0:8000-8002->80-82/tcp, 0.0.0.0:5353->53/udp, 127.0.0.1:9000->90/tcp, 443/tcp',
    );
    expect(formatPortList([])).toBe('');
  });
});

describe('parseUnpublishSpec', () => {
  it.each([
    ['8080', { start: 8080, end: 8080, proto: 'tcp' }],
    ['8080/udp', { start: 8080, end: 8080, proto: 'udp' }],
    ['8080-8090/tcp', { start: 8080, end: 8090, proto: 'tcp' }],
    ['127.0.0.1:8080', { hostIp: '127.0.0.1', start: 8080, end: 8080, proto: 'tcp' }],
  ])('%s', (spec, want) => {
    expect(parseUnpublishSpec(spec)).toEqual({ spec, ...want });
  });
  it.each(['', 'x', '80:80:80', '8090-8080', '1.2.3:80', '70000', '80/sctpx'])('refuses %j with the grammar', (spec) => {
    expect(() => parseUnpublishSpec(spec)).toThrow(/HOSTPORT|host port|port|protocol|IP/);
  });
});

describe('PortIndex', () => {
  it('answers conflicts with wildcard semantics, and forgets deleted bindings', () => {
    const idx = new PortIndex([{ hostIp: '127.0.0.1', hostPort: 80, proto: 'tcp' }]);
    expect(idx.conflicts('0.0.0.0', 'tcp', 80)).toBe(true);
    expect(idx.conflicts('127.0.0.1', 'tcp', 80)).toBe(true);
    expect(idx.conflicts('10.0.0.1', 'tcp', 80)).toBe(false);
    expect(idx.conflicts('127.0.0.1', 'udp', 80)).toBe(false);
    idx.add({ hostIp: '0.0.0.0', hostPort: 81, proto: 'udp' });
    expect(idx.conflicts('10.0.0.1', 'udp', 81)).toBe(true);
    idx.delete({ hostIp: '127.0.0.1', hostPort: 80, proto: 'tcp' });
    expect(idx.conflicts('0.0.0.0', 'tcp', 80)).toBe(false);
  });
  it('allocates a 50k range in linear time (each choice is an O(1) check)', () => {
    const reqs = parsePortSpec('10000-59999:10000-59999');
    const chosen = allocatePorts(reqs, { defaultHostIp: '0.0.0.0', ephemeral: [49153, 65535], isTaken: takenBy([]) });
    expect(chosen).toHaveLength(50000);
    expect(chosen[49999]).toEqual({ hostIp: '0.0.0.0', hostPort: 59999, containerPort: 59999, proto: 'tcp' });
  });
});
