import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Store } from '../../src/state/store.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../../src/model/types.js';
import { PACKAGE_ROOT } from '../../src/util/paths.js';

const net = (id: string, name: string): NetworkRecord => ({
  id, name, driver: 'bridge', created: 'now', internal: false, attachable: false, labels: {}, options: {},
  ipam: { subnet: '10.9.0.0/24', gateway: '10.9.0.1', auxAddresses: {} }, bridgeName: `bn-${id}`, mtu: 1500, icc: true,
  masquerade: true, hostBindingIpv4: '0.0.0.0', predefined: false,
});
const sb = (id: string, name: string, ports: SandboxRecord['ports'] = []): SandboxRecord => ({
  id, name, created: 'now', mode: { kind: 'bridge', network: 'n1' }, hostname: id, dns: [], netnsPath: `/x/${id}`, ports, exposed: [], labels: {},
});
const ep = (id: string, sandboxId: string, ipv4: string): EndpointRecord => ({
  id, networkId: 'n1', sandboxId, ifName: 'eth0', hostIfName: `bpv${id}`, mac: '02:42:00:00:00:00', ipv4, prefixLen: 24, aliases: [], created: 'now',
});

describe('store', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bpfnet-store-'));
    store = Store.open(dir);
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps records across reopen', () => {
    store.tx(() => {
      store.putNetwork(net('n1', 'one'));
      store.putSandbox(sb('s1', 'web', [{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp' }]));
      store.putEndpoint(ep('e1', 's1', '10.9.0.2'));
    });
    store.close();
    store = Store.open(dir);
    expect(store.networks().map((n) => n.name)).toEqual(['one']);
    expect(store.sandbox('s1')?.ports).toHaveLength(1);
    expect(store.ports()).toEqual([{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp', sandboxId: 's1' }]);
    expect([...store.usedAddresses('n1')]).toEqual(['10.9.0.2']);
  });

  it('a failed transaction leaves nothing behind', () => {
    store.tx(() => store.putNetwork(net('n1', 'one')));
    expect(() =>
      store.tx(() => {
        store.putSandbox(sb('s1', 'web'));
        store.putEndpoint(ep('e1', 's1', '10.9.0.2'));
        store.putEndpoint(ep('e2', 's1', '10.9.0.2')); // same address: UNIQUE fails
      }),
    ).toThrow();
    expect(store.sandboxes()).toEqual([]);
    expect(store.endpoints()).toEqual([]);
    expect(store.usedAddresses('n1').size).toBe(0);
  });

  it('enforces unique names, host ports and addresses in the schema', () => {
    store.tx(() => store.putNetwork(net('n1', 'one')));
    expect(() => store.tx(() => store.putNetwork(net('n2', 'one')))).toThrow(/UNIQUE/);
    store.tx(() => store.putSandbox(sb('s1', 'a', [{ hostIp: '0.0.0.0', hostPort: 80, containerPort: 80, proto: 'tcp' }])));
    expect(() => store.tx(() => store.putSandbox(sb('s2', 'b', [{ hostIp: '0.0.0.0', hostPort: 80, containerPort: 81, proto: 'tcp' }])))).toThrow(/UNIQUE/);
    expect(store.sandbox('s2')).toBeUndefined();
  });

  it('releases addresses and ports with their owners', () => {
    store.tx(() => {
      store.putNetwork(net('n1', 'one'));
      store.putSandbox(sb('s1', 'a', [{ hostIp: '0.0.0.0', hostPort: 80, containerPort: 80, proto: 'tcp' }]));
      store.putEndpoint(ep('e1', 's1', '10.9.0.2'));
    });
    store.tx(() => {
      store.deleteEndpoint('e1');
      store.deleteSandbox('s1');
    });
    expect(store.ports()).toEqual([]);
    expect(store.usedAddresses('n1').size).toBe(0);
  });

  it('survives kill -9 of a writer at any point: every commit is whole', () => {
    // A child commits numbered transactions (network + sandbox + endpoint each)
    // as fast as it can; we SIGKILL it mid-stream and check consistency.
    const script = `
      import { Store } from '${join(PACKAGE_ROOT, 'dist/src/state/store.js')}';
      const s = Store.open(process.argv[1]);
      s.tx(() => s.putNetwork(${JSON.stringify(net('n1', 'one'))}));
      for (let i = 0; ; i++) {
        s.tx(() => {
          s.putSandbox({ ...${JSON.stringify(sb('x', 'x'))}, id: 's' + i, name: 'sb' + i, ports: [{ hostIp: '0.0.0.0', hostPort: 1000 + (i % 60000), containerPort: 80, proto: 'tcp' }] });
          s.putEndpoint({ ...${JSON.stringify(ep('x', 'x', '0'))}, id: 'e' + i, sandboxId: 's' + i, hostIfName: 'h' + i, ipv4: '10.' + (i >> 16 & 255) + '.' + (i >> 8 & 255) + '.' + (i & 255) });
        });
      }`;
    for (const delayMs of [30, 80, 150]) {
      const d = mkdtempSync(join(tmpdir(), 'bpfnet-kill-'));
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, d], { encoding: 'utf8', timeout: 250 + delayMs, killSignal: 'SIGKILL' });
      expect(r.signal, r.stderr).toBe('SIGKILL');
      const s = Store.open(d);
      const sbs = s.sandboxes();
      const eps = s.endpoints();
      // Every sandbox has exactly its endpoint and port: no torn transaction.
      expect(eps.length).toBe(sbs.length);
      expect(s.ports().length).toBe(sbs.length);
      expect(s.usedAddresses('n1').size).toBe(sbs.length);
      if (delayMs === 150) expect(sbs.length).toBeGreaterThan(0);
      s.close();
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('says what to do when the state dir cannot be used', () => {
    expect(() => Store.open('/etc/hostname/bpfnet')).toThrow(/cannot open state .*--state-dir/);
  });
  it('publishes and withdraws ports incrementally, indexed for conflicts, across reopen', () => {
    const p = (hostPort: number, hostIp = '0.0.0.0'): SandboxRecord['ports'][number] => ({ hostIp, hostPort, containerPort: 80, proto: 'tcp' });
    store.tx(() => {
      store.putNetwork(net('n1', 'one'));
      store.putSandbox(sb('s1', 'web', [p(8080)]));
    });
    store.tx(() => store.addPorts('s1', [p(8081), p(8082, '127.0.0.1')]));
    expect(store.portTaken('10.0.0.1', 'tcp', 8081)).toBe(true); // 0.0.0.0 covers every address
    expect(store.portTaken('0.0.0.0', 'tcp', 8082)).toBe(true); // and every address covers 0.0.0.0
    expect(store.portTaken('10.0.0.1', 'tcp', 8082)).toBe(false);
    expect(store.portTaken('0.0.0.0', 'udp', 8081)).toBe(false);
    store.tx(() => store.removePorts('s1', [p(8081)]));
    expect(store.portTaken('0.0.0.0', 'tcp', 8081)).toBe(false);
    // A taken port is refused by the schema and the memory follows the rollback.
    expect(() => store.tx(() => store.addPorts('s1', [p(9000), p(8080)]))).toThrow();
    expect(store.portTaken('0.0.0.0', 'tcp', 9000)).toBe(false);
    expect(store.sandbox('s1')?.ports.map((m) => m.hostPort)).toEqual([8080, 8082]);
    expect(store.ports()).toHaveLength(2);
    store.close();
    store = Store.open(dir);
    expect(store.sandbox('s1')?.ports.map((m) => m.hostPort)).toEqual([8080, 8082]);
    expect(store.portTaken('1.2.3.4', 'tcp', 8080)).toBe(true);
  });

  it('hands out frozen records: a caller cannot change the store by accident', () => {
    store.tx(() => store.putSandbox(sb('s1', 'web', [{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp' }])));
    const s = store.sandbox('s1')!;
    expect(() => {
      (s as { name: string }).name = 'x';
    }).toThrow(TypeError);
    expect(() => (s.ports as unknown[]).push(1)).toThrow(TypeError);
  });
});
