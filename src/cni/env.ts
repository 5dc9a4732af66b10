/**
 * The CNI_* environment, validated per command as libcni's skel does:
 * missing or invalid values are code 4 (CNI_CONTAINERID missing is code 4
 * too: skel checks presence before content).
 */
import { existsSync } from 'node:fs';
import { CniError, CNI_ERR } from './errors.js';
import { CNI_COMMANDS, type CniCommand, type CniEnv } from './types.js';

const env4 = (msg: string): CniError => new CniError(CNI_ERR.INVALID_ENV, msg);

/** Which variables each command needs (the spec's table). */
const REQUIRED: Record<string, readonly CniCommand[]> = {
  CNI_CONTAINERID: ['ADD', 'DEL', 'CHECK'],
  CNI_NETNS: ['ADD', 'CHECK'],
  CNI_IFNAME: ['ADD', 'DEL', 'CHECK'],
};

/** libcni utils: container IDs and network names. */
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function validateIfName(name: string): void {
  let why: string | undefined;
  if (name === '') why = 'is empty';
  else if (Buffer.byteLength(name) > 15) why = 'is longer than 15 bytes';
  else if (name === '.' || name === '..') why = `cannot be "${name}"`;
  else if (/[/:\s]/.test(name)) why = 'contains "/", ":" or whitespace';
  if (why) throw env4(`invalid CNI_IFNAME "${name}": the interface name ${why}`);
}

export function parseCniArgs(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw env4(`invalid CNI_ARGS "${raw}": "${pair}" is not KEY=VALUE (pairs are separated by ";")`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Just the command (for dispatch before stdin is read); undefined when unset. */
export function commandOf(env: NodeJS.ProcessEnv): CniCommand | undefined {
  const c = env['CNI_COMMAND'];
  if (c === undefined || c === '') return undefined;
  if (!(CNI_COMMANDS as readonly string[]).includes(c)) throw env4(`unknown CNI_COMMAND "${c}": expected one of ${CNI_COMMANDS.join(', ')}`);
  return c as CniCommand;
}

export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = commandOf(env);
  if (!command) throw env4('CNI_COMMAND is not set: this is a CNI plugin, run by a container runtime');
  const missing = Object.entries(REQUIRED)
    .filter(([k, cmds]) => cmds.includes(command) && !env[k])
    .map(([k]) => k);
  if (missing.length) throw env4(`required env variables [${missing.join(',')}] missing for ${command}`);
  const containerId = env['CNI_CONTAINERID'] ?? '';
  if (containerId && !CONTAINER_ID.test(containerId)) throw env4(`invalid characters in CNI_CONTAINERID "${containerId}": use letters, digits, "_", "." and "-"`);
  const ifName = env['CNI_IFNAME'] ?? '';
  if (REQUIRED['CNI_IFNAME']!.includes(command)) validateIfName(ifName);
  const netns = env['CNI_NETNS'] ?? '';
  if (netns && (command === 'ADD' || command === 'CHECK')) {
    if (!netns.startsWith('/')) throw env4(`CNI_NETNS "${netns}" must be an absolute path to a network namespace (e.g. /run/netns/NAME)`);
    if (!existsSync(netns)) throw env4(`CNI_NETNS ${netns} does not exist`);
  }
  return {
    command,
    containerId,
    netns,
    ifName,
    args: parseCniArgs(env['CNI_ARGS'] ?? ''),
    path: (env['CNI_PATH'] ?? '').split(':').filter(Boolean),
  };
}
