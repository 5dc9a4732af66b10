import { describe, expect, it } from 'vitest';
import {
  buildFrame,
  buildPacket,
  ETH_P_ARP,
  fixIpChecksum,
  internetChecksum,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  parsePacket,
  TCP_ACK,
  TCP_SYN,
  verifyChecksums,
  type PacketSpec,
} from '../harness/packet.js';

const MACS = { srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02' };

/*
 * Vectors built by an independent Python (struct/socket) implementation and
 * checked with `tcpdump -vv` (which reported "cksum 0x281d (correct)",
 * "udp sum ok", no "bad cksum" on the IPv4 headers).
 */
const VECTORS: { name: string; spec: PacketSpec; hex: string }[] = [
  {
    name: 'TCP SYN, odd-length payload',
    spec: { ...MACS, src: '192.0.2.1', dst: '198.18.0.10', proto: 'tcp', sport: 40000, dport: 8080, id: 0x1234, tcpFlags: TCP_SYN, payload: Buffer.from('hello') },
    hex: '02000000000202000000000108004500002d123400004006e079c0000201c612000a9c401f9000000000000000005002ffff281d000068656c6c6f',
  },
  {
    name: 'UDP, odd-length payload',
    spec: { ...MACS, src: '192.0.2.7', dst: '198.18.0.10', proto: 'udp', sport: 5353, dport: 53, id: 1, payload: Buffer.from('abc') },
    hex: '02000000000202000000000108004500001f000100004011f2a9c0000207c612000a14e90035000b9e33616263',
  },
  {
    name: 'ICMP echo request',
    spec: { ...MACS, src: '192.0.2.1', dst: '198.18.0.10', proto: 'icmp', sport: 0x1234, dport: 1, id: 7, ttl: 63, payload: Buffer.from('ping') },
    hex: '020000000002020000000001080045000020000700003f01f3b8c0000201c612000a080006fa1234000170696e67',
  },
  {
    name: 'TCP SYN-ACK with 4 bytes of IP options',
    spec: {
      ...MACS, src: '198.18.0.20', dst: '192.0.2.99', proto: 'tcp', sport: 443, dport: 51234, id: 0xbeef,
      tcpFlags: TCP_SYN | TCP_ACK, tcpSeq: 1000, tcpAck: 2001, tcpWindow: 29200, ipOptions: Buffer.from([1, 1, 1, 0]),
    },
    hex: '02000000000202000000000108004600002cbeef000040063052c6120014c00002630101010001bbc822000003e8000007d150127210dfa10000',
  },
];

describe('internetChecksum', () => {
  it('matches RFC 1071 section 3 example', () => {
    // Sum of 0001 f203 f4f5 f6f7 is 0xddf2; the checksum is its complement.
    expect(internetChecksum(Buffer.from('0001f203f4f5f6f7', 'hex'))).toBe(0x220d);
  });

  it('matches a well-known IPv4 header (checksum 0xb861)', () => {
    const hdr = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(internetChecksum(hdr)).toBe(0xb861);
  });

  it('pads an odd trailing byte with zero', () => {
    expect(internetChecksum(Buffer.from([0x12]))).toBe(~0x1200 & 0xffff);
    expect(internetChecksum(Buffer.from([0x12, 0x34, 0x56]))).toBe(~(0x1234 + 0x5600) & 0xffff);
  });

  it('folds carries end-around', () => {
    // 0xffff + 0x0001 = 0x10000 -> 0x0001 -> checksum 0xfffe
    expect(internetChecksum(Buffer.from('ffff0001', 'hex'))).toBe(0xfffe);
  });
});

describe('buildPacket', () => {
  for (const v of VECTORS) {
    it(`builds the independent vector: ${v.name}`, () => {
      expect(buildPacket(v.spec).toString('hex')).toBe(v.hex);
      expect(verifyChecksums(Buffer.from(v.hex, 'hex'))).toBe(true);
    });
  }

  it('lays out Ethernet, IPv4, TCP with defaults', () => {
    const b = buildPacket({ src: '192.0.2.1', dst: '198.18.0.1', proto: 'tcp', sport: 1, dport: 2 });
    expect(b.length).toBe(14 + 20 + 20);
    expect(b.readUInt16BE(12)).toBe(0x0800);
    expect(b[14]).toBe(0x45);
    expect(b[14 + 8]).toBe(64); // ttl
    expect(b[14 + 9]).toBe(IPPROTO_TCP);
    expect(b[14 + 20 + 12]).toBe(0x50); // doff 5
    expect(b[14 + 20 + 13]).toBe(TCP_SYN);
  });

  it('sets fragment fields', () => {
    const mf = parsePacket(buildPacket({ src: '192.0.2.1', dst: '198.18.0.1', proto: 'udp', sport: 1, dport: 2, moreFragments: true }));
    expect(mf.moreFragments).toBe(true);
    expect(mf.fragOffset).toBe(0);
    const off = buildPacket({ src: '192.0.2.1', dst: '198.18.0.1', proto: 'udp', sport: 1, dport: 2, fragOffset: 185 });
    expect(off.readUInt16BE(14 + 6)).toBe(185);
    const p = parsePacket(off);
    expect(p.fragOffset).toBe(185);
    expect(p.sport).toBeUndefined(); // no L4 header in a non-first fragment
    expect(p.ipChecksumOk).toBe(true);
  });

  it('writes a zero UDP checksum only when asked to', () => {
    const spec: PacketSpec = { src: '192.0.2.1', dst: '198.18.0.1', proto: 'udp', sport: 1000, dport: 53, payload: Buffer.from('x') };
    const z = parsePacket(buildPacket({ ...spec, udpChecksumZero: true }));
    expect(z.udpChecksum).toBe(0);
    expect(z.l4ChecksumOk).toBe(true);
    const c = parsePacket(buildPacket(spec));
    expect(c.udpChecksum).not.toBe(0);
    expect(c.l4ChecksumOk).toBe(true);
  });

  it('sends a computed-zero UDP checksum as 0xffff', () => {
    // Find a payload whose UDP checksum computes to 0 (sum 0xffff): solve for the last word.
    const base: PacketSpec = { src: '192.0.2.1', dst: '198.18.0.1', proto: 'udp', sport: 1000, dport: 53 };
    const probe = buildPacket({ ...base, payload: Buffer.alloc(2) });
    const cks = probe.readUInt16BE(14 + 20 + 6); // checksum with payload word 0
    // Adding word w changes the sum by w; we want sum == 0xffff, i.e. checksum 0: w = cks.
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(cks === 0xffff ? 0 : cks, 0);
    const b = buildPacket({ ...base, payload });
    expect(b.readUInt16BE(14 + 20 + 6)).toBe(0xffff);
    expect(verifyChecksums(b)).toBe(true);
  });

  it('rejects IP options that are not a multiple of 4 bytes', () => {
    expect(() => buildPacket({ src: '192.0.2.1', dst: '198.18.0.1', proto: 'tcp', ipOptions: Buffer.alloc(3) })).toThrow(/multiple of 4/);
    expect(() => buildPacket({ src: '192.0.2.1', dst: '198.18.0.1', proto: 'tcp', ipOptions: Buffer.alloc(44) })).toThrow(/multiple of 4/);
  });

  it('rejects bad addresses and ports', () => {
    expect(() => buildPacket({ src: '192.0.2.256', dst: '198.18.0.1', proto: 'tcp' })).toThrow(/IPv4/);
    expect(() => buildPacket({ src: '192.0.2.1', dst: '198.18.0.1', proto: 'tcp', dport: 65536 })).toThrow(/dport/);
    expect(() => buildPacket({ src: '192.0.2.1', dst: '198.18.0.1', proto: 'tcp', srcMac: 'zz:00:00:00:00:00' })).toThrow(/MAC/);
  });

  it('builds other IP protocols with the payload as body', () => {
    const b = buildPacket({ src: '192.0.2.1', dst: '198.18.0.1', proto: 47, payload: Buffer.from('gre!') });
    const p = parsePacket(b);
    expect(p.proto).toBe(47);
    expect(p.payload.toString()).toBe('gre!');
    expect(p.l4ChecksumOk).toBeUndefined();
    expect(verifyChecksums(b)).toBe(true);
  });
});

describe('parsePacket', () => {
  it('round-trips every field', () => {
    const specs: PacketSpec[] = [
      { srcMac: '02:aa:bb:cc:dd:01', dstMac: '02:aa:bb:cc:dd:02', src: '192.0.2.10', dst: '198.19.255.254', proto: 'tcp', sport: 12345, dport: 443, ttl: 17, id: 0xabcd, tcpFlags: TCP_ACK, payload: Buffer.from('odd!!') },
      { src: '198.18.1.2', dst: '192.0.2.200', proto: 'udp', sport: 65535, dport: 1, payload: Buffer.from('0123456789'), ipOptions: Buffer.from('0101010101010100', 'hex') },
      { src: '198.18.1.2', dst: '192.0.2.200', proto: 'udp', sport: 9, dport: 9, udpChecksumZero: true, payload: Buffer.from('z') },
      { src: '198.18.1.2', dst: '192.0.2.200', proto: 'icmp', sport: 77, dport: 3, payload: Buffer.from('abc') },
    ];
    for (const s of specs) {
      const b = buildPacket(s);
      const p = parsePacket(b);
      expect(p.src).toBe(s.src);
      expect(p.dst).toBe(s.dst);
      expect(p.proto).toBe(s.proto === 'tcp' ? IPPROTO_TCP : s.proto === 'udp' ? IPPROTO_UDP : IPPROTO_ICMP);
      expect(p.sport).toBe(s.sport);
      expect(p.dport).toBe(s.dport);
      expect(p.payload.equals(s.payload ?? Buffer.alloc(0))).toBe(true);
      expect(p.ipHeaderLength).toBe(20 + (s.ipOptions?.length ?? 0));
      expect(p.ipOptions.equals(s.ipOptions ?? Buffer.alloc(0))).toBe(true);
      expect(p.ttl).toBe(s.ttl ?? 64);
      expect(p.ipChecksumOk).toBe(true);
      expect(p.l4ChecksumOk).toBe(true);
      expect(p.trailer.length).toBe(0);
      // rebuild from the parsed fields: identical bytes
      const again = buildPacket({
        srcMac: p.srcMac, dstMac: p.dstMac, src: p.src, dst: p.dst, proto: p.proto, sport: p.sport, dport: p.dport, ttl: p.ttl, id: p.id,
        payload: p.payload, ipOptions: p.ipOptions, udpChecksumZero: p.udpChecksum === 0, tcpFlags: p.tcpFlags,
      });
      expect(again.equals(b)).toBe(true);
    }
  });

  it('reports the UDP checksum field', () => {
    const p = parsePacket(Buffer.from(VECTORS[1]!.hex, 'hex'));
    expect(p.udpChecksum).toBe(0x9e33);
    expect(p.l4Checksum).toBe(0x9e33);
  });

  it('detects corruption in the IPv4 header and in the L4 segment', () => {
    for (const v of VECTORS) {
      const ipBad = Buffer.from(v.hex, 'hex');
      ipBad[14 + 8]! ^= 0x01; // ttl
      expect(parsePacket(ipBad).ipChecksumOk, v.name).toBe(false);
      expect(verifyChecksums(ipBad)).toBe(false);

      const l4Bad = Buffer.from(v.hex, 'hex');
      l4Bad[l4Bad.length - 1]! ^= 0x40; // last payload byte
      const p = parsePacket(l4Bad);
      expect(p.ipChecksumOk, v.name).toBe(true);
      expect(p.l4ChecksumOk, v.name).toBe(false);
      expect(verifyChecksums(l4Bad)).toBe(false);
    }
  });

  it('covers the pseudo-header: a rewritten address without checksum fix fails', () => {
    const b = Buffer.from(VECTORS[0]!.hex, 'hex');
    b[14 + 19] = 11; // daddr 198.18.0.11
    fixIpChecksum(b);
    const p = parsePacket(b);
    expect(p.ipChecksumOk).toBe(true);
    expect(p.l4ChecksumOk).toBe(false);
  });

  it('ignores Ethernet padding after the IPv4 datagram', () => {
    const b = Buffer.concat([Buffer.from(VECTORS[2]!.hex, 'hex'), Buffer.alloc(6)]);
    const p = parsePacket(b);
    expect(p.trailer.length).toBe(6);
    expect(p.payload.toString()).toBe('ping');
    expect(verifyChecksums(b)).toBe(true);
  });

  it('throws on non-IPv4 and malformed frames', () => {
    const ok = Buffer.from(VECTORS[0]!.hex, 'hex');
    expect(() => parsePacket(buildFrame({ ethType: ETH_P_ARP, body: Buffer.alloc(28) }))).toThrow(/not IPv4/);
    expect(() => parsePacket(ok.subarray(0, 10))).toThrow(/Ethernet/);
    expect(() => parsePacket(ok.subarray(0, 14 + 10))).toThrow(/truncated IPv4/);
    const ihl4 = Buffer.from(ok);
    ihl4[14] = 0x44;
    expect(() => parsePacket(ihl4)).toThrow(/header length/);
    const long = Buffer.from(ok);
    long.writeUInt16BE(1000, 14 + 2);
    expect(() => parsePacket(long)).toThrow(/exceeds/);
    const shortTcp = Buffer.from(ok.subarray(0, 14 + 20 + 6));
    shortTcp.writeUInt16BE(26, 14 + 2);
    expect(() => parsePacket(fixIpChecksum(shortTcp))).toThrow(/truncated TCP/);
  });
});
