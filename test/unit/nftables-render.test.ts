import { describe, expect, it } from 'vitest';
import { planShape, planState } from '../../src/dataplane/netfilter/plan.js';
import { diffPorts, renderFull, renderPortDiff, renderRemoval } from '../../src/dataplane/nftables/render.js';
import type { DataplaneNetwork, DesiredState, PublishedPort } from '../../src/dataplane/types.js';

const net = (over: Partial<DataplaneNetwork> = {}): DataplaneNetwork => ({
  id: 1, subnet: '192.0.2.0/24', gateway: '192.0.2.1', bridge: 'br1', driver: 'bridge', internal: false, icc: true, masquerade: true, gatewayMode: 'nat', ...over,
});
const net2 = (over: Partial<DataplaneNetwork> = {}) => net({ id: 2, subnet: '198.51.100.0/24', gateway: '198.51.100.1', bridge: 'br2', ...over });
const p8080: PublishedPort = { hostIp: '0.0.0.0', hostPort: 8080, proto: 'tcp', containerIp: '192.0.2.2', containerPort: 80 };
const p53: PublishedPort = { hostIp: '203.0.113.1', hostPort: 53, proto: 'udp', containerIp: '192.0.2.2', containerPort: 5353 };

function state(over: Partial<DesiredState> = {}): DesiredState {
  return {
    uplinks: ['eth0'],
    nodeAddresses: ['203.0.113.1'],
    endpoints: [
      { hostDev: 'bpv1', ip: '192.0.2.2', mac: '02:42:c0:00:02:02', networkId: 1 },
      { hostDev: 'bpv2', ip: '198.51.100.2', networkId: 2 },
    ],
    ports: [p8080, p53],
    networks: [net(), net2()],
    ...over,
  };
}

describe('renderFull', () => {
  const text = renderFull(planState(state()));

  it('replaces both tables in one script: add+delete first, so it works whether or not they exist', () => {
    expect(text.split('\n').slice(0, 4)).toEqual(['table ip bpfnet', 'delete table ip bpfnet', 'table bridge bpfnet', 'delete table bridge bpfnet']);
    expect(text).toContain('table ip bpfnet {');
    expect(text).toContain('table bridge bpfnet {');
    expect(text).not.toMatch(/table (ip|inet|bridge) (?!bpfnet)/);
  });

  it('published ports are map elements looked up once: exact frontend, then wildcard', () => {
    expect(text).toContain('map ports_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; elements = { 203.0.113.1 . udp . 53 : 192.0.2.2 . 5353 } }');
    expect(text).toContain('map ports_any { type inet_proto . inet_service : ipv4_addr . inet_service; elements = { tcp . 8080 : 192.0.2.2 . 80 } }');
    const exact = text.indexOf('dnat ip to ip daddr . meta l4proto . th dport map @ports_addr');
    expect(exact).toBeGreaterThan(0);
    expect(text.indexOf('dnat ip to meta l4proto . th dport map @ports_any')).toBeGreaterThan(exact);
  });

  it('loopback is a frontend for node-local clients only', () => {
    expect(text).toContain('ip daddr != 127.0.0.0/8 fib daddr type local jump publish');
    expect(text).toMatch(/chain natout \{\n\s+type nat hook output priority -100; policy accept;\n\s+fib daddr type local jump publish/);
    expect(text).toContain('iifname "br1" ip daddr 127.0.0.0/8 drop');
  });

  it('masquerade, hairpin and loopback sources', () => {
    expect(text).toContain('ip saddr 192.0.2.0/24 oifname != "br1" masquerade');
    expect(text).toContain('set hairpin { type ipv4_addr . ipv4_addr; elements = { 192.0.2.2 . 192.0.2.2, 198.51.100.2 . 198.51.100.2 } }');
    expect(text).toContain('ip saddr 127.0.0.0/8 oifname "br1" masquerade');
  });

  it("Docker's forward policy: CT, then per-network chains through a verdict map", () => {
    expect(text).toContain('oifname "br1" ct state established,related accept');
    expect(text).toContain('map to_net { type ifname : verdict; elements = { "br1" : jump net1, "br2" : jump net2 } }');
    expect(text).toContain('oifname vmap @to_net');
    expect(text).toMatch(/chain net1 \{\n\s+ct status dnat accept\n\s+iifname != "br1" drop\n\s+\}/);
    expect(text).toContain('iifname != "br1" ip daddr { 192.0.2.2 } drop');
  });

  it('anti-spoofing per bridge port in the bridge table (address always, MAC when known)', () => {
    expect(text).toContain('set ep_ip { type ifname . ipv4_addr; elements = { "bpv1" . 192.0.2.2, "bpv2" . 198.51.100.2 } }');
    expect(text).toContain('set ep_mac { type ifname . ether_addr; elements = { "bpv1" . 02:42:c0:00:02:02 } }');
    expect(text).toContain('iifname @ip_ports iifname . ip saddr != @ep_ip drop');
  });

  it('ICC off, internal, isolated, SNAT, unprotected', () => {
    const t = renderFull(planState(state({ networks: [net({ icc: false, snatIp: '203.0.113.9', gatewayMode: 'nat-unprotected' }), net2({ gatewayMode: 'isolated' })] })));
    expect(t).toContain('iifname "br1" oifname "br1" drop');
    expect(t).toContain('ip saddr 192.0.2.0/24 oifname != "br1" snat to 203.0.113.9');
    expect(t).toMatch(/chain net1 \{\n\s+ct status dnat accept\n\s+iifname "br2" drop\n\s+accept\n\s+iifname != "br1" drop/);
    expect(t).toContain('ip saddr != 198.51.100.0/24 oifname "br2" drop');
    expect(t).toContain('ip daddr != 198.51.100.0/24 iifname "br2" drop');
    expect(t).toMatch(/chain filterin \{\n.*\n\s+iifname "br2" drop/);
    expect(t).not.toContain('ip saddr 198.51.100.0/24 oifname != "br2" masquerade');
  });

  it('an empty state renders empty maps (no "elements" clause nft would reject)', () => {
    const t = renderFull(planState({ uplinks: [], nodeAddresses: [], endpoints: [], ports: [] }));
    expect(t).not.toContain('elements = {  }');
    expect(t).toContain('map ports_any { type inet_proto . inet_service : ipv4_addr . inet_service; }');
  });
});

describe('port updates are O(change)', () => {
  it('the plan shape ignores ports, so a port change is recognised as one', () => {
    expect(planShape(planState(state()))).toBe(planShape(planState(state({ ports: [p8080] }))));
    expect(planShape(planState(state()))).not.toBe(planShape(planState(state({ networks: [net({ icc: false }), net2()] }))));
  });

  it('adds and deletes only the elements that differ; a moved backend is delete + add', () => {
    const moved = { ...p8080, containerIp: '192.0.2.3' };
    const p9 = { ...p8080, hostPort: 9000 };
    const d = diffPorts([p8080, p53], [moved, p53, p9]);
    expect(d).toEqual({ add: [moved, p9], remove: [p8080] });
    expect(renderPortDiff(d)).toBe(
      'delete element ip bpfnet ports_any { tcp . 8080 }\nadd element ip bpfnet ports_any { tcp . 8080 : 192.0.2.3 . 80, tcp . 9000 : 192.0.2.2 . 80 }\n',
    );
    expect(renderPortDiff(diffPorts([p53], []))).toBe('delete element ip bpfnet ports_addr { 203.0.113.1 . udp . 53 }\n');
    expect(renderPortDiff(diffPorts([p8080, p53], [p53, p8080]))).toBe('');
  });
});

it('removal deletes exactly our two tables, present or not', () => {
  expect(renderRemoval()).toBe('table ip bpfnet\ndelete table ip bpfnet\ntable bridge bpfnet\ndelete table bridge bpfnet\n');
});
