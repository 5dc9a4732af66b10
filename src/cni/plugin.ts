/**
 * One CNI plugin invocation: environment and stdin in, stdout (result or
 * CNI's error object), stderr and exit code out. No process state is touched,
 * so tests drive it in process as well as exec'd.
 */
import { connectAgent, type Connect } from './agent.js';
import { COMMANDS } from './commands.js';
import { parseEnv, commandOf } from './env.js';
import { CniError, CNI_ERR, fromAgentError } from './errors.js';
import { configVersion, parseNetConf } from './netconf.js';
import { CURRENT_VERSION, SUPPORTED_VERSIONS, versionInfo } from './version.js';

export const USAGE = `bpfnet CNI plugin (CNI spec ${SUPPORTED_VERSIONS.join(', ')}): a thin client of \`bpfnet agent\`.
A container runtime runs it with CNI_COMMAND (ADD, DEL, CHECK, STATUS, GC, VERSION),
CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH (and optional CNI_ARGS) set and
the network config JSON on stdin, e.g.
  {"cniVersion":"1.1.0","name":"mynet","type":"bpfnet","subnet":"10.22.0.0/24",
   "capabilities":{"portMappings":true,"ipRanges":true,"dns":true}}
Installing it and the config's fields: docs/cni.md.
`;

export interface PluginRun {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** One plugin invocation, without touching process state (tests drive this too). */
export async function runCni(env: NodeJS.ProcessEnv, readStdin: () => Promise<string>, connect: Connect = connectAgent): Promise<PluginRun> {
  let stdin = '';
  const errorOut = (e: unknown, stderr = ''): PluginRun => {
    const err = e instanceof CniError ? e : fromAgentError(e, String(env['CNI_COMMAND'] ?? 'bpfnet'));
    const v = configVersion(stdin);
    const version = SUPPORTED_VERSIONS.includes(v) ? v : CURRENT_VERSION;
    return { stdout: `${JSON.stringify(err.toJSON(version))}\n`, stderr, exitCode: 1 };
  };
  try {
    const command = commandOf(env);
    if (!command) return errorOut(new CniError(CNI_ERR.INVALID_ENV, 'CNI_COMMAND is not set: this is a CNI plugin, run by a container runtime (see docs/cni.md)'), USAGE);
    if (command === 'VERSION') return { stdout: `${JSON.stringify(versionInfo())}\n`, stderr: '', exitCode: 0 };
    stdin = await readStdin().catch((e: Error) => {
      throw new CniError(CNI_ERR.IO, `cannot read the network config from stdin: ${e.message}`);
    });
    const cniEnv = parseEnv(env);
    const conf = parseNetConf(stdin, command);
    const out = await COMMANDS[command]({ env: cniEnv, conf, connect });
    return { stdout: out ? `${JSON.stringify(out)}\n` : '', stderr: '', exitCode: 0 };
  } catch (e) {
    return errorOut(e);
  }
}
