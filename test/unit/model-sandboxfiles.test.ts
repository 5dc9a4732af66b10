/** src/model/sandboxfiles.ts: /etc/hostname, /etc/hosts, /etc/resolv.conf as Docker writes them. */
import { describe, expect, it } from 'vitest';
import {
  parseExtraHost,
  parseResolvConf,
  renderHostname,
  renderHosts,
  renderResolvConf,
  resolvModeFor,
  upstreamNameservers,
} from '../../src/model/sandboxfiles.js';
import { fails } from '../harness/errors.js';


const HEAD = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', 'fe00::\tip6-localnet', 'ff00::\tip6-mcastprefix', 'ff02::1\tip6-allnodes', 'ff02::2\tip6-allrouters'];
const lines = (...l: string[]) => `${l.join('\n')}\n`;

describe('/etc/hostname', () => {
  it('is the name and a newline', () => {
    expect(renderHostname('2d7ce63d7e3f')).toBe('2d7ce63d7e3f\n');
  });
});

describe('/etc/hosts', () => {
  it.each<[string, Parameters<typeof renderHosts>[0], string]>([
    ['one address (seed: box3 on mybridge)', { hostname: '2d7ce63d7e3f', addresses: ['172.18.0.2'] }, lines(...HEAD, '172.18.0.2\t2d7ce63d7e3f')],
    ['no address (none mode)', { hostname: 'box', addresses: [] }, lines(...HEAD)],
    ['two networks: one line per address', { hostname: 'box', addresses: ['172.18.0.2', '10.1.0.5'] }, lines(...HEAD, '172.18.0.2\tbox', '10.1.0.5\tbox')],
    ['FQDN hostname: fqdn then short name', { hostname: 'web.example.com', addresses: ['10.1.0.2'] }, lines(...HEAD, '10.1.0.2\tweb.example.com web')],
    ['--domainname', { hostname: 'web', domainname: 'example.com', addresses: ['10.1.0.2'] }, lines(...HEAD, '10.1.0.2\tweb.example.com web')],
    [
      'extra hosts come before the own addresses (Docker adds own lines on join)',
      { hostname: 'box', addresses: ['10.1.0.2'], extraHosts: ['db:192.0.2.10', { name: 'cache', ip: '192.0.2.11' }, 'v6=2001:db8::1'] },
      lines(...HEAD, '192.0.2.10\tdb', '192.0.2.11\tcache', '2001:db8::1\tv6', '10.1.0.2\tbox'),
    ],
    ['host-gateway resolved', { hostname: 'box', addresses: [], extraHosts: ['host.docker.internal:host-gateway'], hostGateway: '172.17.0.1' }, lines(...HEAD, '172.17.0.1\thost.docker.internal')],
    ['without IPv6 lines', { hostname: 'box', addresses: ['10.1.0.2'], ipv6: false }, lines('127.0.0.1\tlocalhost', '10.1.0.2\tbox')],
    ['host mode: the host file verbatim', { hostname: 'node', addresses: ['10.0.0.1'], hostEtcHosts: '127.0.0.1 localhost\n10.0.0.1 node\n' }, '127.0.0.1 localhost\n10.0.0.1 node\n'],
    ['host mode with --add-host: defaults and extra hosts only', { hostname: 'node', addresses: ['10.0.0.1'], hostEtcHosts: 'ignored', extraHosts: ['db:192.0.2.10'] }, lines(...HEAD, '192.0.2.10\tdb')],
  ])('%s', (_n, input, want) => {
    expect(renderHosts(input)).toBe(want);
  });

  it('host-gateway without an address is an error', () => {
    expect(fails(() => renderHosts({ hostname: 'b', addresses: [], extraHosts: ['h:host-gateway'] })).message).toContain('extra host "h:host-gateway" needs the host gateway address');
  });

  it.each([
    ['db:192.0.2.10', { name: 'db', ip: '192.0.2.10' }],
    ['db=192.0.2.10', { name: 'db', ip: '192.0.2.10' }],
    ['db:::1', { name: 'db', ip: '::1' }],
    ['db=[::1]', { name: 'db', ip: '::1' }],
    ['gw:host-gateway', { name: 'gw', ip: 'host-gateway' }],
  ])('parseExtraHost %j', (spec, want) => {
    expect(parseExtraHost(spec)).toEqual(want);
  });

  it.each([
    ['db', 'expected NAME:IP or NAME=IP'],
    [':1.2.3.4', 'expected NAME:IP or NAME=IP'],
    ['db:nowhere', '"nowhere" is not an IP address; expected NAME:IP, e.g. db:192.0.2.10'],
    ['d b:1.2.3.4', 'the name contains whitespace'],
  ])('parseExtraHost refuses %j', (spec, msg) => {
    expect(fails(() => parseExtraHost(spec)).message).toContain(msg);
  });
});

const SYSTEMD = lines('# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).', 'nameserver 127.0.0.53', 'options edns0 trust-ad', 'search lan example.com');
const MIXED = lines('nameserver 192.168.1.1', 'nameserver 127.0.0.1', 'nameserver ::1', 'nameserver 2001:db8::53', 'nameserver bogus', 'search a.example', 'search b.example c.example', '; comment', 'options timeout:2', 'options attempts:3', 'sortlist 130.155.160.0/255.255.240.0');

describe('parseResolvConf', () => {
  it('like moby: last search wins, options accumulate, unknown lines kept, bad servers set aside', () => {
    expect(parseResolvConf(MIXED)).toEqual({
      nameservers: ['192.168.1.1', '127.0.0.1', '::1', '2001:db8::53'],
      search: ['b.example', 'c.example'],
      options: ['timeout:2', 'attempts:3'],
      other: ['sortlist 130.155.160.0/255.255.240.0'],
      invalidNameservers: ['bogus'],
    });
    expect(parseResolvConf('domain corp.example\r\n')).toMatchObject({ search: ['corp.example'] });
    expect(parseResolvConf('')).toEqual({ nameservers: [], search: [], options: [], other: [], invalidNameservers: [] });
  });
});

describe('/etc/resolv.conf', () => {
  it.each<[string, Parameters<typeof renderResolvConf>[0], string]>([
    ['user-defined network behind systemd-resolved', { mode: 'internal', hostResolvConf: SYSTEMD }, lines('nameserver 127.0.0.11', 'search lan example.com', 'options edns0 trust-ad ndots:0')],
    ['user-defined network, no host file', { mode: 'internal', hostResolvConf: '' }, lines('nameserver 127.0.0.11', 'options ndots:0')],
    ['user-defined network keeps a valid host ndots', { mode: 'internal', hostResolvConf: 'nameserver 1.1.1.1\noptions ndots:2\n' }, lines('nameserver 127.0.0.11', 'options ndots:2')],
    ['user-defined network drops an invalid ndots', { mode: 'internal', hostResolvConf: 'nameserver 1.1.1.1\noptions ndots:x rotate\n' }, lines('nameserver 127.0.0.11', 'options rotate ndots:0')],
    ['user-defined network with --dns: still 127.0.0.11', { mode: 'internal', hostResolvConf: SYSTEMD, dns: ['1.1.1.1'] }, lines('nameserver 127.0.0.11', 'search lan example.com', 'options edns0 trust-ad ndots:0')],
    ['user-defined network with --dns-search and --dns-option', { mode: 'internal', hostResolvConf: SYSTEMD, dnsSearch: ['corp'], dnsOptions: ['ndots:3'] }, lines('nameserver 127.0.0.11', 'search corp', 'options ndots:3')],
    ['default bridge: loopback servers removed, fallback to Google', { mode: 'legacy', hostResolvConf: SYSTEMD }, lines('nameserver 8.8.8.8', 'nameserver 8.8.4.4', 'search lan example.com', 'options edns0 trust-ad')],
    [
      'default bridge: loopback and IPv6 removed, other lines kept',
      { mode: 'legacy', hostResolvConf: MIXED },
      lines('nameserver 192.168.1.1', 'search b.example c.example', 'options timeout:2 attempts:3', 'sortlist 130.155.160.0/255.255.240.0'),
    ],
    ['default bridge with --dns: the given servers, unfiltered', { mode: 'legacy', hostResolvConf: SYSTEMD, dns: ['127.0.0.1', '9.9.9.9'] }, lines('nameserver 127.0.0.1', 'nameserver 9.9.9.9', 'search lan example.com', 'options edns0 trust-ad')],
    ['default bridge, --dns-search "." removes the search list', { mode: 'legacy', hostResolvConf: 'nameserver 1.1.1.1\nsearch x\n', dnsSearch: ['.'] }, lines('nameserver 1.1.1.1')],
    ['none mode (legacy), no host file', { mode: 'legacy', hostResolvConf: '' }, lines('nameserver 8.8.8.8', 'nameserver 8.8.4.4')],
    ['host mode: the host file verbatim', { mode: 'host', hostResolvConf: SYSTEMD }, SYSTEMD],
    ['host mode with --dns: the host file with the servers replaced, not filtered', { mode: 'host', hostResolvConf: SYSTEMD, dns: ['127.0.0.1'] }, lines('nameserver 127.0.0.1', 'search lan example.com', 'options edns0 trust-ad')],
  ])('%s', (_n, input, want) => {
    expect(renderResolvConf(input)).toBe(want);
  });

  it("Docker's comment block (internal resolver)", () => {
    expect(renderResolvConf({ mode: 'internal', hostResolvConf: SYSTEMD, comments: true })).toBe(
      lines(
        'nameserver 127.0.0.11',
        'search lan example.com',
        'options edns0 trust-ad ndots:0',
        '',
        "# Based on host file: '/etc/resolv.conf' (internal resolver)",
        '# ExtServers: [host(127.0.0.53)]',
        '# Overrides: []',
        '# Option ndots from: internal',
      ),
    );
  });

  it("Docker's comment block (legacy, defaults used, overrides, invalid servers)", () => {
    expect(renderResolvConf({ mode: 'legacy', hostResolvConf: 'nameserver 127.0.0.1\nnameserver what\noptions ndots:1\n', comments: true, sourcePath: '/run/resolv.conf' })).toBe(
      lines('nameserver 8.8.8.8', 'nameserver 8.8.4.4', 'options ndots:1', '', "# Based on host file: '/run/resolv.conf' (legacy)", '# Used default nameservers.', '# Invalid nameservers: [what]', '# Overrides: []', '# Option ndots from: host'),
    );
    expect(renderResolvConf({ mode: 'internal', hostResolvConf: '', dns: ['1.1.1.1'], dnsSearch: ['x'], comments: true })).toBe(
      lines('nameserver 127.0.0.11', 'search x', 'options ndots:0', '', "# Based on host file: '/etc/resolv.conf' (internal resolver)", '# ExtServers: [1.1.1.1]', '# Overrides: [nameservers search]', '# Option ndots from: internal'),
    );
  });

  it('refuses a bad --dns', () => {
    expect(fails(() => renderResolvConf({ mode: 'legacy', hostResolvConf: '', dns: ['dns.google'] })).message).toContain('invalid DNS server "dns.google"');
  });

  it('upstreams for the embedded server: at most 3, loopback ones queried from the host', () => {
    expect(upstreamNameservers(SYSTEMD)).toEqual([{ addr: '127.0.0.53', hostLoopback: true }]);
    expect(upstreamNameservers(MIXED)).toEqual([
      { addr: '192.168.1.1', hostLoopback: false },
      { addr: '127.0.0.1', hostLoopback: true },
      { addr: '::1', hostLoopback: true },
    ]);
    expect(upstreamNameservers(SYSTEMD, ['127.0.0.1'])).toEqual([{ addr: '127.0.0.1', hostLoopback: false }]);
    expect(upstreamNameservers('')).toEqual([
      { addr: '8.8.8.8', hostLoopback: false },
      { addr: '8.8.4.4', hostLoopback: false },
    ]);
  });
});

describe('resolvModeFor', () => {
  const bridge = { predefined: true, driver: 'bridge' as const };
  const user = { predefined: false, driver: 'bridge' as const };
  it.each<[string, Parameters<typeof resolvModeFor>[0], Parameters<typeof resolvModeFor>[1], string]>([
    ['default bridge only', { kind: 'bridge', network: 'bridge' }, [bridge], 'legacy'],
    ['a user-defined network', { kind: 'bridge', network: 'mybridge' }, [user], 'internal'],
    ['both', { kind: 'bridge', network: 'bridge' }, [bridge, user], 'internal'],
    ['host', { kind: 'host' }, [], 'host'],
    ['none', { kind: 'none' }, [], 'legacy'],
  ])('%s -> %s', (_n, mode, nets, want) => {
    expect(resolvModeFor(mode, nets)).toBe(want);
  });

  it('container mode: render for the joined sandbox', () => {
    expect(fails(() => resolvModeFor({ kind: 'container', sandboxId: 'abc' }, [])).message).toContain("shares sandbox abc's /etc/resolv.conf");
  });
});
