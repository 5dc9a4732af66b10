/** src/agent/listening.ts: /proc/net parsing and "port already in use" overlap rules. */
import { createServer, type Server } from 'node:net';
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import {
  describeSocket,
  formatIPv6,
  isPortInUse,
  parseIPv6,
  parseProcNet,
  portConflicts,
  readBoundSockets,
  NodeSocketCheck,
  type BoundSocket,
} from '../../src/agent/listening.js';

// Captured from a little-endian machine (trailing columns shortened).
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 100 0 0 10 0
   2: 0100007F:A1B2 0100007F:0CEA 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1
   3: 010012C6:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1004 1 0000000000000000 100 0 0 10 0
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000A00000A:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2003 1 0000000000000000 100 0 0 10 0
   3: 000080FE00000000FF0F0002FEFF0100:1388 00000000000000000000000000000000:0000 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
`;
const UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3001 2 0000000000000000 0
  101: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 3002 2 0000000000000000 0
  102: 0100007F:D431 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 3003 2 0000000000000000 0
`;
const UDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  200: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4001 2 0000000000000000 0
`;

const all = (): BoundSocket[] => [
  ...parseProcNet(TCP, 'tcp', 4, true),
  ...parseProcNet(TCP6, 'tcp', 6, true),
  ...parseProcNet(UDP, 'udp', 4, true),
  ...parseProcNet(UDP6, 'udp', 6, true),
];

describe('parseProcNet', () => {
  it('tcp: LISTEN only, addresses in network order, ports in hex', () => {
    expect(parseProcNet(TCP, 'tcp', 4, true)).toEqual([
      { proto: 'tcp', family: 4, addr: '0.0.0.0', port: 8080, state: 10, inode: 1001 },
      { proto: 'tcp', family: 4, addr: '127.0.0.1', port: 3306, state: 10, inode: 1002 },
      { proto: 'tcp', family: 4, addr: '198.18.0.1', port: 80, state: 10, inode: 1004 },
    ]);
  });

  it('tcp6: wildcard, ::1, v4-mapped; TIME_WAIT skipped', () => {
    expect(parseProcNet(TCP6, 'tcp', 6, true).map((s) => [s.addr, s.port])).toEqual([
      ['::', 8081],
      ['::1', 22],
      ['::ffff:10.0.0.10', 3000],
    ]);
  });

  it('udp: every socket with a local port, connected or not', () => {
    expect(parseProcNet(UDP, 'udp', 4, true).map((s) => [s.addr, s.port, s.state])).toEqual([
      ['0.0.0.0', 5353, 7],
      ['127.0.0.53', 53, 7],
      ['127.0.0.1', 54321, 1],
    ]);
    expect(parseProcNet(UDP6, 'udp', 6, true).map((s) => [s.addr, s.port])).toEqual([['::', 5353]]);
  });

  it('big-endian kernels print words the other way round', () => {
    const be = TCP.replace('0100007F:0CEA 00000000:0000 0A', '7F000001:0CEA 00000000:0000 0A');
    expect(parseProcNet(be, 'tcp', 4, false).find((s) => s.port === 3306)?.addr).toBe('127.0.0.1');
  });

  it('ignores the header, blank and malformed lines', () => {
    expect(parseProcNet('  sl  local_address\n\n garbage line here\n 0: zz:zz 00000000:0000 0A a b c d e f\n', 'tcp', 4, true)).toEqual([]);
  });
});

describe('IPv6 text', () => {
  it.each<[string, string]>([
    ['::', '::'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['fe80:0:0:0:200:ff:fe00:1', 'fe80::200:ff:fe00:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::ffff:c000:201', '::ffff:192.0.2.1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('%s -> %s', (input, text) => {
    expect(formatIPv6(parseIPv6(input))).toBe(text);
  });
});

describe('portConflicts: bind() overlap', () => {
  const conflicts = (hostIp: string, port: number, proto: 'tcp' | 'udp') => portConflicts(all(), hostIp, port, proto).map(describeSocket);

  it('a wildcard listener conflicts with every host address', () => {
    expect(conflicts('0.0.0.0', 8080, 'tcp')).toEqual(['tcp 0.0.0.0:8080']);
    expect(conflicts('', 8080, 'tcp')).toEqual(['tcp 0.0.0.0:8080']);
    expect(conflicts('127.0.0.1', 8080, 'tcp')).toEqual(['tcp 0.0.0.0:8080']);
    expect(conflicts('198.18.0.1', 8080, 'tcp')).toEqual(['tcp 0.0.0.0:8080']);
  });

  it('a listener on one address conflicts with that address and with a wildcard publish, not with another address', () => {
    expect(conflicts('127.0.0.1', 3306, 'tcp')).toEqual(['tcp 127.0.0.1:3306']);
    expect(conflicts('0.0.0.0', 3306, 'tcp')).toEqual(['tcp 127.0.0.1:3306']);
    expect(conflicts('198.18.0.1', 3306, 'tcp')).toEqual([]);
    expect(conflicts('127.0.0.2', 3306, 'tcp')).toEqual([]);
  });

  it('protocols are separate port spaces', () => {
    expect(conflicts('0.0.0.0', 80, 'udp')).toEqual([]);
    expect(conflicts('0.0.0.0', 53, 'tcp')).toEqual([]);
    expect(conflicts('0.0.0.0', 53, 'udp')).toEqual(['udp 127.0.0.53:53']);
  });

  it('an established TCP connection does not hold its local port; a connected UDP socket does', () => {
    expect(conflicts('0.0.0.0', 0xa1b2, 'tcp')).toEqual([]);
    expect(conflicts('0.0.0.0', 54321, 'udp')).toEqual(['udp 127.0.0.1:54321']);
  });

  it('IPv6 `::` is dual-stack: it conflicts with IPv4 publishes too', () => {
    expect(conflicts('0.0.0.0', 8081, 'tcp')).toEqual(['tcp [::]:8081']);
    expect(conflicts('198.18.0.1', 8081, 'tcp')).toEqual(['tcp [::]:8081']);
    expect(conflicts('0.0.0.0', 5353, 'udp')).toEqual(['udp 0.0.0.0:5353', 'udp [::]:5353']);
    expect(conflicts('::', 8081, 'tcp')).toEqual(['tcp [::]:8081']);
  });

  it('a specific IPv6 listener conflicts with IPv6 publishes only; v4-mapped ones are IPv4', () => {
    expect(conflicts('0.0.0.0', 22, 'tcp')).toEqual([]);
    expect(conflicts('127.0.0.1', 22, 'tcp')).toEqual([]);
    expect(conflicts('::', 22, 'tcp')).toEqual(['tcp [::1]:22']);
    expect(conflicts('0:0::1', 22, 'tcp')).toEqual(['tcp [::1]:22']);
    expect(conflicts('::2', 22, 'tcp')).toEqual([]);
    expect(conflicts('10.0.0.10', 3000, 'tcp')).toEqual(['tcp [::ffff:10.0.0.10]:3000']);
    expect(conflicts('0.0.0.0', 3000, 'tcp')).toEqual(['tcp [::ffff:10.0.0.10]:3000']);
    expect(conflicts('10.0.0.11', 3000, 'tcp')).toEqual([]);
  });

  it('an IPv6 publish does not conflict with a plain IPv4 listener', () => {
    expect(conflicts('::', 3306, 'tcp')).toEqual([]);
    expect(conflicts('::1', 8080, 'tcp')).toEqual([]);
  });

  it('refuses what is not an address', () => {
    expect(() => portConflicts([], 'localhost', 80, 'tcp')).toThrow(/not an IP address/);
  });
});

describe('the live tables of this process netns', () => {
  it('sees a TCP listener and a UDP socket this test opens, and stops seeing them after close', async () => {
    const srv: Server = createServer();
    await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
    const tcpPort = (srv.address() as { port: number }).port;
    const udp = createSocket('udp4');
    await new Promise<void>((res) => udp.bind(0, '127.0.0.1', res));
    const udpPort = udp.address().port;
    try {
      const socks = await readBoundSockets();
      expect(socks).toContainEqual(expect.objectContaining({ proto: 'tcp', family: 4, addr: '127.0.0.1', port: tcpPort, state: 10 }));
      expect(socks).toContainEqual(expect.objectContaining({ proto: 'udp', family: 4, addr: '127.0.0.1', port: udpPort }));
      expect(await isPortInUse('127.0.0.1', tcpPort, 'tcp')).toBe(true);
      expect(await isPortInUse('0.0.0.0', tcpPort, 'tcp')).toBe(true);
      expect(await isPortInUse('127.0.0.1', udpPort, 'udp')).toBe(true);
      // The same tables read through nsenter (here into this very netns).
      const viaNs = await readBoundSockets({ netns: '/proc/self/ns/net' });
      expect(viaNs).toContainEqual(expect.objectContaining({ proto: 'tcp', addr: '127.0.0.1', port: tcpPort }));
      expect(viaNs).toContainEqual(expect.objectContaining({ proto: 'udp', addr: '127.0.0.1', port: udpPort }));
    } finally {
      await new Promise<void>((res) => srv.close(() => res()));
      await new Promise<void>((res) => udp.close(() => res()));
    }
    expect(await isPortInUse('127.0.0.1', tcpPort, 'tcp')).toBe(false);
  });
});

describe('NodeSocketCheck', () => {
  const held: BoundSocket = { proto: 'tcp', family: 4, addr: '0.0.0.0', port: 8090, state: 10, inode: 1 };
  it('probes a few ports by bind, then reads the tables once for the rest', () => {
    const probed: number[] = [];
    let reads = 0;
    const check = new NodeSocketCheck(
      (_proto, _ip, port) => {
        probed.push(port);
        return port === 8090 ? 98 : 0; // EADDRINUSE
      },
      () => {
        reads++;
        return [held];
      },
      2,
    );
    expect(check.taken('0.0.0.0', 'tcp', 8090)).toBe(true);
    expect(check.taken('0.0.0.0', 'tcp', 8091)).toBe(false);
    expect(reads).toBe(0);
    // Past the probe budget (a range): one read answers every further question.
    expect(check.taken('10.0.0.1', 'tcp', 8090)).toBe(true);
    expect(check.taken('10.0.0.1', 'tcp', 8092)).toBe(false);
    expect(probed).toEqual([8090, 8091]);
    expect(reads).toBe(1);
  });
  it('finds a real listener in this namespace by a bind probe', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    try {
      const check = new NodeSocketCheck(undefined, () => []);
      expect(check.taken('127.0.0.1', 'tcp', port)).toBe(true);
      expect(check.taken('0.0.0.0', 'tcp', port)).toBe(true);
      expect(check.taken('127.0.0.2', 'tcp', port)).toBe(false);
    } finally {
      srv.close();
    }
  });
});
