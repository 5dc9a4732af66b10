/** src/model/names.ts: names, device names, hostnames, k=v, DNS servers, MTU, bridge options. */
import { describe, expect, it } from 'vitest';
import {
  KNOWN_BRIDGE_OPTIONS,
  parseBool,
  parseBridgeOptions,
  parseKeyValue,
  parseKeyValues,
  validateDeviceName,
  validateDnsServer,
  validateDnsServers,
  validateHostname,
  validateMtu,
  validateName,
} from '../../src/model/names.js';
import { fails } from '../harness/errors.js';


describe('validateName', () => {
  it.each(['mybridge', 'my-net', 'my_net.1', 'A1', 'box3', '0abc', 'bridge'])('accepts %j', (n) => {
    expect(validateName(n)).toBe(n);
    expect(validateName(n, 'sandbox')).toBe(n);
  });

  it.each([
    ['', 'it is empty'],
    ['a', 'it is one character long (at least two are needed)'],
    ['-net', 'it must start with a letter or digit'],
    ['.net', 'it must start with a letter or digit'],
    ['_net', 'it must start with a letter or digit'],
    ['my net', 'it contains characters other than letters, digits'],
    ['my/net', 'it contains characters other than'],
    ['név', 'it contains characters other than'],
    ['net:1', 'it contains characters other than'],
  ])('refuses %j', (n, why) => {
    const e = fails(() => validateName(n, 'network'));
    expect(e.message).toContain(`invalid network name "${n}": ${why}`);
    expect(e.message).toContain('only [a-zA-Z0-9][a-zA-Z0-9_.-]+ is allowed, e.g. "my-network"');
  });

  it('names the kind', () => {
    expect(fails(() => validateName('x', 'sandbox')).message).toContain('invalid sandbox name "x"');
  });
});

describe('validateDeviceName', () => {
  it.each(['eth0', 'docker0', 'bn-0123456789ab', 'bpv01234567', 'a', 'br.1', 'x'.repeat(15)])('accepts %j', (n) => {
    expect(validateDeviceName(n)).toBe(n);
  });

  it.each([
    ['', 'it is empty'],
    ['x'.repeat(16), 'it is 16 bytes long; Linux allows at most 15'],
    ['ééééééééé', 'it is 18 bytes long'],
    ['.', 'it cannot be "."'],
    ['..', 'it cannot be ".."'],
    ['br/0', 'it contains "/"'],
    ['br:0', 'it contains ":"'],
    ['br 0', 'it contains whitespace'],
    ['br\t0', 'it contains whitespace'],
  ])('refuses %j', (n, why) => {
    const e = fails(() => validateDeviceName(n, 'bridge name'));
    expect(e.message).toContain(`invalid bridge name "${n}": ${why}`);
    expect(e.message).toContain('use up to 15 characters');
  });
});

describe('validateHostname', () => {
  it.each(['web', 'web-1', 'web.example.com', '2d7ce63d7e3f', 'A', 'x'.repeat(63), `${'a'.repeat(62)}.b`])('accepts %j', (h) => {
    expect(validateHostname(h)).toBe(h);
  });

  it.each([
    ['', 'is empty'],
    ['x'.repeat(65), 'is 65 characters long; the kernel allows at most 64'],
    [`${'a'.repeat(64)}`, 'has a label of 64 characters'],
    ['-web', 'starts or ends with "-"'],
    ['web-', 'starts or ends with "-"'],
    ['web..x', 'has an empty label'],
    ['.web', 'has an empty label'],
    ['web.', 'has an empty label'],
    ['web_1', 'has characters other than letters, digits and "-" in "web_1"'],
    ['web 1', 'has characters other than'],
  ])('refuses %j', (h, why) => {
    const e = fails(() => validateHostname(h));
    expect(e.message).toContain(why);
    expect(e.message).toContain('e.g. "web-1"');
  });
});

describe('k=v', () => {
  it.each<[string, [string, string]]>([
    ['a=b', ['a', 'b']],
    ['a=', ['a', '']],
    ['a', ['a', '']],
    ['a=b=c', ['a', 'b=c']],
    ['com.example.team=web', ['com.example.team', 'web']],
    ['k= spaced value ', ['k', ' spaced value ']],
  ])('%j', (item, want) => {
    expect(parseKeyValue(item)).toEqual(want);
  });

  it.each([
    ['=b', 'the key is empty'],
    ['', 'the key is empty'],
    [' =b', 'the key is empty'],
    ['a b=c', 'the key "a b" contains whitespace'],
  ])('refuses %j', (item, why) => {
    expect(fails(() => parseKeyValue(item, 'option')).message).toContain(`invalid option "${item}": ${why}`);
  });

  it('parseKeyValues: later keys win', () => {
    expect(parseKeyValues(['a=1', 'b', 'a=2'])).toEqual({ a: '2', b: '' });
    expect(parseKeyValues([])).toEqual({});
  });
});

describe('DNS servers', () => {
  it.each([
    ['8.8.8.8', '8.8.8.8'],
    ['127.0.0.53', '127.0.0.53'],
    ['2001:4860:4860::8888', '2001:4860:4860::8888'],
    ['FE80::1', 'fe80::1'],
  ])('%s', (a, want) => {
    expect(validateDnsServer(a)).toBe(want);
  });

  it.each(['dns.google', '8.8.8', '', '8.8.8.8:53', '08.8.8.8'])('refuses %j', (a) => {
    expect(fails(() => validateDnsServer(a)).message).toBe(`invalid DNS server "${a}": give an IP address such as 1.1.1.1 (not a hostname)`);
  });

  it('validateDnsServers', () => {
    expect(validateDnsServers(['1.1.1.1', '9.9.9.9'])).toEqual(['1.1.1.1', '9.9.9.9']);
    fails(() => validateDnsServers(['1.1.1.1', 'x']));
  });
});

describe('validateMtu', () => {
  it.each<[number | string, number]>([
    [68, 68],
    [1500, 1500],
    ['9000', 9000],
    [' 1450 ', 1450],
    [65535, 65535],
  ])('%j', (v, want) => {
    expect(validateMtu(v)).toBe(want);
  });

  it.each([67, 65536, 0, -1, 1500.5, '1.5k', '', 'jumbo', Number.NaN])('refuses %j', (v) => {
    expect(fails(() => validateMtu(v)).message).toBe(`invalid MTU "${v}": it must be a whole number 68-65535, e.g. 1500`);
  });
});

describe('parseBool', () => {
  it.each(['1', 't', 'T', 'TRUE', 'true', 'True'])('%s is true', (v) => expect(parseBool(v, 'x')).toBe(true));
  it.each(['0', 'f', 'F', 'FALSE', 'false', 'False'])('%s is false', (v) => expect(parseBool(v, 'x')).toBe(false));
  it.each(['yes', 'no', 'on', '', 'tRuE', '2'])('refuses %j', (v) => {
    expect(fails(() => parseBool(v, 'com.docker.network.bridge.enable_icc')).message).toBe(
      `invalid value "${v}" for com.docker.network.bridge.enable_icc: expected true or false (also 1/0, t/f, TRUE/FALSE, True/False)`,
    );
  });
});

describe('parseBridgeOptions', () => {
  it('defaults', () => {
    expect(parseBridgeOptions({})).toEqual({ icc: true, masquerade: true, hostBindingIpv4: '0.0.0.0', gatewayModeIpv4: 'nat', defaultBridge: false, opaque: {} });
  });

  it("every option, with Docker's default-bridge options from seed 002", () => {
    expect(
      parseBridgeOptions({
        'com.docker.network.bridge.default_bridge': 'true',
        'com.docker.network.bridge.enable_icc': 'false',
        'com.docker.network.bridge.enable_ip_masquerade': '0',
        'com.docker.network.bridge.host_binding_ipv4': '198.18.0.1',
        'com.docker.network.bridge.name': 'docker0',
        'com.docker.network.driver.mtu': '1450',
        'com.docker.network.bridge.gateway_mode_ipv4': 'routed',
        'com.docker.network.host_ipv4': '192.0.2.10',
        'com.example.vendor': 'kept',
        foo: '',
      }),
    ).toEqual({
      bridgeName: 'docker0',
      icc: false,
      masquerade: false,
      hostBindingIpv4: '198.18.0.1',
      gatewayModeIpv4: 'routed',
      mtu: 1450,
      hostIpv4: '192.0.2.10',
      defaultBridge: true,
      opaque: { 'com.example.vendor': 'kept', foo: '' },
    });
  });

  it.each(['nat', 'nat-unprotected', 'routed', 'isolated'])('gateway mode %s', (m) => {
    expect(parseBridgeOptions({ 'com.docker.network.bridge.gateway_mode_ipv4': m }).gatewayModeIpv4).toBe(m);
  });

  it.each([
    [{ 'com.docker.network.bridge.enable_icc': 'yes' }, 'invalid value "yes" for com.docker.network.bridge.enable_icc: expected true or false'],
    [{ 'com.docker.network.bridge.enable_ip_masquerade': '' }, 'invalid value "" for com.docker.network.bridge.enable_ip_masquerade'],
    [{ 'com.docker.network.bridge.name': 'a-very-long-bridge-name' }, 'invalid bridge name (com.docker.network.bridge.name) "a-very-long-bridge-name": it is 23 bytes long'],
    [{ 'com.docker.network.bridge.host_binding_ipv4': '::' }, 'com.docker.network.bridge.host_binding_ipv4=::: IPv6 is not supported: bpfnet forwards IPv4 only'],
    [{ 'com.docker.network.bridge.host_binding_ipv4': 'any' }, 'com.docker.network.bridge.host_binding_ipv4=any: not an IPv4 address; give one such as 0.0.0.0'],
    [{ 'com.docker.network.host_ipv4': '1.2.3' }, 'com.docker.network.host_ipv4=1.2.3: not an IPv4 address'],
    [{ 'com.docker.network.bridge.gateway_mode_ipv4': 'bridged' }, 'com.docker.network.bridge.gateway_mode_ipv4=bridged: unknown gateway mode; use one of nat, nat-unprotected, routed, isolated'],
    [{ 'com.docker.network.driver.mtu': '40' }, 'com.docker.network.driver.mtu=40: invalid MTU; it must be a whole number 68-65535, e.g. 1500'],
    [{ 'com.docker.network.driver.mtu': 'big' }, 'com.docker.network.driver.mtu=big: invalid MTU'],
  ])('refuses %j', (opts, msg) => {
    expect(fails(() => parseBridgeOptions(opts)).message).toContain(msg);
  });

  it('unknown com.docker.network.* option lists the known ones', () => {
    const e = fails(() => parseBridgeOptions({ 'com.docker.network.bridge.inhibit_ipv4': 'true' }));
    expect(e.message).toBe(`unknown bridge driver option "com.docker.network.bridge.inhibit_ipv4"; bpfnet knows ${KNOWN_BRIDGE_OPTIONS.join(', ')}`);
    for (const k of [
      'com.docker.network.bridge.name',
      'com.docker.network.bridge.enable_icc',
      'com.docker.network.bridge.enable_ip_masquerade',
      'com.docker.network.bridge.host_binding_ipv4',
      'com.docker.network.bridge.gateway_mode_ipv4',
      'com.docker.network.driver.mtu',
      'com.docker.network.host_ipv4',
    ]) {
      expect(e.message).toContain(k);
    }
  });
});
