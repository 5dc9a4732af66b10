/**
 * Podman 4.3 with its CNI backend drives the bpfnet plugin: a real CNI
 * runtime (libcni) making the namespace, calling ADD with portMappings,
 * DEL on `podman rm`. The agent runs in an AgentLab node namespace; the
 * containers' namespaces are podman's (/run/netns/cni-*), the agent plumbs
 * into them.
 *
 * Nothing machine-global changes: CONTAINERS_CONF points at a temp
 * containers.conf (network_backend "cni", plugin dirs bin/cni + /usr/lib/cni),
 * --network-config-dir at a temp dir holding the conflist, and
 * --root/--runroot/--tmpdir at temp storage (vfs: no overlay mounts to undo).
 * The image is a busybox rootfs tar made here and `podman import`ed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { AgentLab } from '../../src/lab/agentlab.js';
import { probe } from '../../src/lab/lab.js';
import { UPLINK } from '../../src/lab/topology.js';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { execPlugin, sandboxNames } from './cni-helpers.js';

const SUBNET = '10.233.0.0/24';
const BUSYBOX = '/bin/busybox';
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

/** Why podman cannot run here (then the suite is skipped, saying so), or undefined. */
function unavailable(): string | undefined {
  try {
    const v = execFileSync('podman', ['--version'], { encoding: 'utf8' });
    if (!/podman version [4-9]\./.test(v)) return `podman 4+ needed, found ${v.trim()}`;
  } catch {
    return 'podman is not installed (apt-get install podman; scripts/install-deps.sh does it)';
  }
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (apt-get install busybox-static)`;
  if (!existsSync('/usr/lib/cni/loopback')) return '/usr/lib/cni is missing (apt-get install containernetworking-plugins)';
  return undefined;
}

const skip = unavailable();
if (skip) console.warn(`cni-podman: skipped: ${skip}`);

describe.skipIf(!!skip)('bpfnet CNI plugin under podman 4.3 (CNI backend)', () => {
  let lab: AgentLab;
  let dir: string;
  const id = randomBytes(3).toString('hex');
  const net = `bpfpod-${id}`;
  // A host port podman also reserves (binds) in the root namespace: pick an unusual one.
  const hostPort = 20000 + Math.floor(Math.random() * 20000);

  const podman = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    const r = await execa(
      'podman',
      ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp'), '--network-config-dir', join(dir, 'net'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', ...args],
      { env: { CONTAINERS_CONF: join(dir, 'containers.conf') }, reject: false, timeout: 60_000 },
    );
    return { code: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const ok = async (...args: string[]): Promise<string> => {
    const r = await podman(...args);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}\nagent log tail:\n${lab.agentLog.slice(-3000)}`);
    return r.stdout.trim();
  };

  beforeAll(async () => {
    lab = await AgentLab.create({ defaultSubnet: '10.234.0.0/24' });
    dir = mkdtempSync(join(tmpdir(), `bpfnet-podman-${id}-`));
    for (const d of ['root', 'runroot', 'tmp', 'net', 'rootfs/bin']) mkdirSync(join(dir, d), { recursive: true });
    await lab.start();

    // busybox rootfs: the binary, its applets, and a one-line TCP server reply.
    const fs = join(dir, 'rootfs');
    copyFileSync(BUSYBOX, join(fs, 'bin', 'busybox'));
    for (const a of ['sh', 'ip', 'ping', 'nc', 'sleep', 'cat', 'hostname', 'echo']) symlinkSync('busybox', join(fs, 'bin', a));
    // Reads the probe's 2-byte message first: closing with unread data would reset the connection.
    writeFileSync(join(fs, 'bin', 'hello'), '#!/bin/sh\nread -r -n 2 msg\necho "hello from $(hostname): $msg"\n');
    chmodSync(join(fs, 'bin', 'hello'), 0o755);

    writeFileSync(
      join(dir, 'containers.conf'),
      [
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${join(PACKAGE_ROOT, 'bin', 'cni')}", "/usr/lib/cni"]`,
        `network_config_dir = "${join(dir, 'net')}"`,
        '[engine]',
        'events_logger = "none"',
        '',
      ].join('\n'),
    );
    // podman 4.3's libcni speaks CNI up to 1.0.0.
    writeFileSync(
      join(dir, 'net', `${net}.conflist`),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: net,
        plugins: [{ type: 'bpfnet', subnet: SUBNET, agentSocket: lab.socket, capabilities: { portMappings: true, ipRanges: true, dns: true } }],
      }),
    );
    await execa('sh', ['-c', `tar -C ${fs} -c . | podman --root ${join(dir, 'root')} --runroot ${join(dir, 'runroot')} --tmpdir ${join(dir, 'tmp')} --storage-driver vfs import - bb:latest`], {
      env: { CONTAINERS_CONF: join(dir, 'containers.conf') },
    });
  });

  afterAll(async () => {
    if (dir) {
      await podman('rm', '-af', '-t', '0').catch(() => undefined);
      await podman('rmi', '-af').catch(() => undefined);
    }
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The container's eth0 address, as the container sees it. */
  const addressOf = async (name: string): Promise<string> => {
    const out = await ok('exec', name, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0');
    const m = /inet (\d+\.\d+\.\d+\.\d+\/\d+)/.exec(out);
    if (!m) throw new Error(`no address on eth0 in ${name}: ${out}`);
    return m[1]!;
  };

  it('podman sees the network and runs containers on it', async () => {
    const ls = await ok('network', 'ls', '--format', '{{.Name}} {{.Driver}}');
    expect(ls).toContain(`${net} bpfnet`);
    await ok('run', '-d', '--name', 'c1', '--network', net, '-p', `${hostPort}:80`, ...ULIMITS, 'bb', 'nc', '-ll', '-p', '80', '-e', '/bin/hello');
    await ok('run', '-d', '--name', 'c2', '--network', net, ...ULIMITS, 'bb', 'sleep', '600');
    expect(await addressOf('c1')).toBe('10.233.0.2/24');
    expect(await addressOf('c2')).toBe('10.233.0.3/24');
    const route = await ok('exec', 'c1', 'ip', 'route', 'show', 'default');
    expect(route).toContain('default via 10.233.0.1 dev eth0');
    // podman took the address from the plugin's result.
    const ip = await ok('inspect', 'c1', '--format', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`);
    expect(ip).toBe('10.233.0.2');
    // The agent holds one sandbox per container, in podman's namespace.
    const names = await sandboxNames(lab.host);
    expect(names.filter((n) => n.startsWith('cni-'))).toHaveLength(2);
  });

  it('containers reach each other and the gateway', async () => {
    expect((await podman('exec', 'c2', 'ping', '-c1', '-W2', '10.233.0.2')).code).toBe(0);
    expect((await podman('exec', 'c1', 'ping', '-c1', '-W2', '10.233.0.1')).code).toBe(0);
    // A fresh `podman run --rm` on the network: ADD, traffic, DEL.
    const r = await podman('run', '--rm', '--network', net, ...ULIMITS, 'bb', 'ping', '-c1', '-W2', '10.233.0.3');
    expect(r.code, r.stderr).toBe(0);
  });

  it('-p HOST:CPORT is reachable from the client namespace', async () => {
    const reply = await probe(lab.client, 'tcp', UPLINK.nodeIp, hostPort, 'hi');
    expect(reply).toMatch(/^hello from [0-9a-f]{12}: hi$/);
  });

  it('podman rm -f runs DEL: the sandbox is gone, the port closed, the address free again', async () => {
    await ok('rm', '-f', '-t', '0', 'c1');
    const names = await sandboxNames(lab.host);
    expect(names.filter((n) => n.startsWith('cni-'))).toHaveLength(1);
    await expect(probe(lab.client, 'tcp', UPLINK.nodeIp, hostPort, 'x')).rejects.toThrow();
    await ok('run', '-d', '--name', 'c3', '--network', net, ...ULIMITS, 'bb', 'sleep', '600');
    expect(await addressOf('c3')).toBe('10.233.0.2/24');
  });

  it('CHECK as libcni runs it (podman\'s cached ADD result as prevResult) finds a broken endpoint; DEL stays idempotent', async () => {
    const cid = await ok('inspect', 'c2', '--format', '{{.Id}}');
    const netns = await ok('inspect', 'c2', '--format', '{{.NetworkSettings.SandboxKey}}');
    // libcni caches each ADD's result; CHECK and DEL get it as prevResult.
    const cache = JSON.parse(readFileSync(`/var/lib/cni/results/${net}-${cid}-eth0`, 'utf8')) as { result: Record<string, unknown> };
    const conf = { cniVersion: '1.0.0', name: net, type: 'bpfnet', subnet: SUBNET, agentSocket: lab.socket, prevResult: cache.result };
    const call = { containerId: cid, netns, ifName: 'eth0', conf };
    expect(await execPlugin({ command: 'CHECK', ...call })).toMatchObject({ code: 0, stdout: '' });
    const hostIf = (cache.result['interfaces'] as { name: string }[])[0]!.name;
    await lab.node.ip('link', 'del', hostIf);
    const broken = await execPlugin({ command: 'CHECK', ...call });
    expect(broken.json).toMatchObject({ cniVersion: '1.0.0', code: 103, msg: expect.stringContaining(`host-side veth ${hostIf} is missing`) });
    expect(broken.json!['msg']).toContain(`interface eth0 does not exist in ${netns}`);
    // podman's DEL of the broken attachment succeeds; a second DEL does too.
    await ok('rm', '-f', '-t', '0', 'c2', 'c3');
    expect(await execPlugin({ command: 'DEL', ...call, netns: '' })).toMatchObject({ code: 0, stdout: '' });
    expect((await sandboxNames(lab.host)).filter((n) => n.startsWith('cni-'))).toEqual([]);
    expect(existsSync(netns)).toBe(false);
  });
});
