/**
 * Shared by the CNI integration tests: exec the bpfnet CNI plugin exactly as
 * libcni's invoke package does (the launcher from bin/cni, CNI_* added to
 * the environment, the network config on stdin, the result or the error
 * object on stdout), and snapshot the agent's state to show that a refused
 * request changed nothing.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Client } from '../../src/api/client.js';
import { PACKAGE_ROOT } from '../../src/util/paths.js';

export const LAUNCHER = join(PACKAGE_ROOT, 'bin', 'cni', 'bpfnet');

export interface PluginCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: string;
  /** The network config (an object is JSON-encoded; a string is sent as is). */
  conf: unknown;
  /** Replace the CNI_* variables entirely (for missing-variable cases). */
  env?: Record<string, string>;
}

export interface PluginReply {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed (undefined when empty). */
  json: Record<string, unknown> | undefined;
}

export function execPlugin(c: PluginCall): Promise<PluginReply> {
  const cni: Record<string, string> = c.env ?? {
    CNI_COMMAND: c.command,
    CNI_CONTAINERID: c.containerId ?? '',
    CNI_NETNS: c.netns ?? '',
    CNI_IFNAME: c.ifName ?? 'eth0',
    CNI_PATH: join(PACKAGE_ROOT, 'bin', 'cni'),
    ...(c.args ? { CNI_ARGS: c.args } : {}),
  };
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CNI_'))) as Record<string, string>;
  return new Promise((resolve, reject) => {
    const child = spawn(LAUNCHER, [], { env: { ...base, ...cni }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString();
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? 1, stdout, stderr: Buffer.concat(err).toString(), json });
    });
    child.stdin.end(typeof c.conf === 'string' ? c.conf : JSON.stringify(c.conf));
  });
}

/** Throws with the plugin's output unless it succeeded. */
export async function pluginOk(c: PluginCall): Promise<Record<string, unknown> | undefined> {
  const r = await execPlugin(c);
  if (r.code !== 0) throw new Error(`CNI ${c.command} ${c.containerId ?? ''} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return r.json;
}

/** Networks, sandboxes and published ports as the agent has them (ids, names, addresses). */
export async function agentState(host: string): Promise<string> {
  const c = await Client.connect(host);
  try {
    const nets = (await c.call('NetworkList', {})).value.networks.map((n) => `${n.name} ${n.id} ${n.ipam?.subnet ?? ''}`).sort();
    const sbs = (await c.call('SandboxList', {})).value.sandboxes.map((s) => `${s.name} ${s.id} ${s.netnsPath} ${s.ports.map((p) => `${p.hostPort}:${p.containerPort}`).join(',')}`).sort();
    return JSON.stringify({ nets, sbs });
  } finally {
    c.close();
  }
}

export async function sandboxNames(host: string): Promise<string[]> {
  const c = await Client.connect(host);
  try {
    return (await c.call('SandboxList', {})).value.sandboxes.map((s) => s.name);
  } finally {
    c.close();
  }
}
