/**
 * src/cni/plugin.ts against a fake agent: what reaches stdout and the exit
 * code for each command, without an agent, and that a failing ADD undoes
 * what it made. (test/integration/cni-*.test.ts run it against a real agent.)
 */
import { describe, expect, it } from 'vitest';
import type { AgentApi, Connect } from '../../src/cni/agent.js';
import { runCni, USAGE } from '../../src/cni/plugin.js';
import { BpfnetError } from '../../src/util/errors.js';

const noAgent: Connect = () => Promise.reject(new BpfnetError('E_UNAVAILABLE', 'cannot reach the bpfnet agent at unix:///nowhere (ENOENT)'));

/** An agent that answers from a table and records every call. */
function fakeAgent(answers: Record<string, (req: Record<string, unknown>) => unknown>): { connect: Connect; calls: [string, Record<string, unknown>][] } {
  const calls: [string, Record<string, unknown>][] = [];
  const api: AgentApi = {
    call: async (m, req) => {
      calls.push([m, req as Record<string, unknown>]);
      const f = answers[m];
      if (!f) throw new Error(`unexpected call ${m}`);
      return f(req as Record<string, unknown>) as never;
    },
    close: () => undefined,
  };
  return { connect: async () => api, calls };
}

const notFound = (): never => {
  throw new BpfnetError('E_NOT_FOUND', 'no such thing');
};

const env = (command: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/proc/self/ns/net',
  CNI_IFNAME: 'cnitest9',
  CNI_PATH: '/opt/cni/bin',
  ...extra,
});

const config = (o: Record<string, unknown> = {}): string => JSON.stringify({ cniVersion: '1.0.0', name: 'mynet', type: 'bpfnet', agentSocket: '/nowhere', ...o });
const stdin = (s: string) => () => Promise.resolve(s);

describe('plugin invocation', () => {
  it('without CNI_COMMAND: usage on stderr and error 4', async () => {
    const r = await runCni({}, stdin(''), noAgent);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(USAGE);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.1.0', code: 4, msg: expect.stringContaining('CNI_COMMAND is not set') });
  });

  it('VERSION lists the supported versions', async () => {
    const r = await runCni({ CNI_COMMAND: 'VERSION' }, stdin('{"cniVersion":"0.4.0"}'), noAgent);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('errors carry the config\'s cniVersion when it is a supported one', async () => {
    const bad = await runCni(env('ADD'), stdin('{"cniVersion":"0.4.0","name":"n1","type":"bpfnet","subnet":"x"}'), noAgent);
    expect(JSON.parse(bad.stdout)).toMatchObject({ cniVersion: '0.4.0', code: 7 });
    const garbled = await runCni(env('ADD'), stdin('{nope'), noAgent);
    expect(JSON.parse(garbled.stdout)).toMatchObject({ cniVersion: '1.1.0', code: 6 });
  });

  describe('without an agent', () => {
    it('ADD and CHECK: try again later (11), saying the agent is needed', async () => {
      const add = await runCni(env('ADD'), stdin(config()), noAgent);
      expect(add.exitCode).toBe(1);
      expect(JSON.parse(add.stdout)).toMatchObject({ cniVersion: '1.0.0', code: 11, msg: expect.stringMatching(/agent is not reachable at \/nowhere.*needs a running `bpfnet agent`/) });
      const chk = await runCni(env('CHECK'), stdin(config({ prevResult: { cniVersion: '1.0.0', ips: [] } })), noAgent);
      expect(JSON.parse(chk.stdout)).toMatchObject({ code: 11 });
    });

    it('DEL succeeds with no output', async () => {
      expect(await runCni(env('DEL', { CNI_NETNS: '' }), stdin(config()), noAgent)).toEqual({ stdout: '', stderr: '', exitCode: 0 });
    });

    it('STATUS: plugin not available (50)', async () => {
      const r = await runCni({ CNI_COMMAND: 'STATUS', CNI_PATH: '/x' }, stdin(config({ cniVersion: '1.1.0' })), noAgent);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 50, msg: expect.stringContaining('not reachable') });
    });

    it('a malformed config is still refused on DEL (6)', async () => {
      const r = await runCni(env('DEL'), stdin('{"cniVersion":'), noAgent);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 6 });
    });
  });

  describe('with an agent', () => {
    it('ADD of an unknown network without a subnet: code 7, nothing created', async () => {
      const a = fakeAgent({ SandboxInspect: notFound, NetworkInspect: notFound });
      const r = await runCni(env('ADD'), stdin(config()), a.connect);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('unknown bpfnet network "mynet"') });
      expect(a.calls.map((c) => c[0])).toEqual(['SandboxInspect', 'NetworkInspect']);
    });

    it('a failing ADD removes the network it created on first use', async () => {
      const a = fakeAgent({
        SandboxInspect: notFound,
        NetworkInspect: notFound,
        NetworkCreate: (req) => ({ id: 'n1', name: req['name'], driver: 'bridge', ipam: { subnet: '10.22.0.0/24', gateway: '10.22.0.1' } }),
        SandboxCreate: () => {
          throw new BpfnetError('E_CONFLICT', 'host port 8080/tcp is already allocated', { hostPort: 8080 });
        },
        NetworkRemove: () => ({ ids: ['n1'], names: ['mynet'] }),
      });
      const r = await runCni(env('ADD'), stdin(config({ subnet: '10.22.0.0/24', runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] } })), a.connect);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 100, msg: 'ADD: host port 8080/tcp is already allocated', details: 'bpfnet E_CONFLICT' });
      expect(a.calls.map((c) => c[0])).toEqual(['SandboxInspect', 'NetworkInspect', 'NetworkCreate', 'SandboxCreate', 'NetworkRemove']);
      const create = a.calls[3]![1];
      expect(create).toMatchObject({ network: 'mynet', netnsPath: '/proc/self/ns/net', ifName: 'cnitest9', publish: ['8080:80/tcp'], labels: { 'cni.containerid': 'c0ffee', 'cni.ifname': 'cnitest9', 'cni.network': 'mynet' } });
    });

    it('an existing network with another subnet: code 7', async () => {
      const a = fakeAgent({ SandboxInspect: notFound, NetworkInspect: () => ({ network: { id: 'n1', name: 'mynet', driver: 'bridge', ipam: { subnet: '10.9.0.0/24', gateway: '10.9.0.1' } }, endpoints: [] }) });
      const r = await runCni(env('ADD'), stdin(config({ subnet: '10.22.0.0/24' })), a.connect);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 7, msg: expect.stringContaining('exists with subnet 10.9.0.0/24') });
    });

    it('GC removes only this network\'s attachments that are not listed', async () => {
      const sb = (id: string, cid: string, net = 'mynet') => ({ id, name: id, labels: { 'cni.containerid': cid, 'cni.ifname': 'eth0', 'cni.network': net } });
      const a = fakeAgent({
        SandboxList: () => ({ sandboxes: [sb('s1', 'keep'), sb('s2', 'stray'), sb('s3', 'stray', 'othernet'), { id: 's4', name: 'plain', labels: {} }] }),
        SandboxRemove: (req) => ({ ids: [req['ref']], names: [] }),
      });
      const r = await runCni({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, stdin(config({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }] })), a.connect);
      expect(r).toEqual({ stdout: '', stderr: '', exitCode: 0 });
      expect(a.calls.filter((c) => c[0] === 'SandboxRemove').map((c) => c[1]['ref'])).toEqual(['s2']);
    });

    it('CHECK of an unknown attachment: code 3', async () => {
      const a = fakeAgent({ SandboxInspect: notFound });
      const r = await runCni(env('CHECK'), stdin(config({ prevResult: { cniVersion: '1.0.0', ips: [] } })), a.connect);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 3, msg: expect.stringContaining('no bpfnet attachment for container c0ffee') });
    });
  });
});
