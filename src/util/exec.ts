/**
 * Running the system tools bpfnet drives (clang, bpftool, tc, ip, iptables,
 * nft). One place maps "not installed" and "failed" to typed errors that carry
 * the command line, exit code and stderr.
 */
import { execa } from 'execa';
import { CommandError } from './errors.js';

/** Debian package that provides each tool, for "install X" hints. */
const PACKAGE_OF: Record<string, string> = {
  clang: 'clang',
  'llvm-strip': 'llvm',
  bpftool: 'bpftool',
  tc: 'iproute2',
  ip: 'iproute2',
  iptables: 'iptables',
  'iptables-save': 'iptables',
  nft: 'nftables',
  nsenter: 'util-linux',
  mount: 'mount',
  ping: 'iputils-ping',
};

export interface RunOptions {
  /** Run inside this network namespace (a path such as /run/netns/NAME or /proc/PID/ns/net). */
  netns?: string | undefined;
  input?: string;
  /** Milliseconds; default 60 s. */
  timeout?: number;
  env?: Record<string, string>;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/**
 * Network namespaces are entered with nsenter, never `ip netns exec`: the
 * latter remounts /sys, which hides bpffs pins from the command.
 */
export function wrapNetns(file: string, args: readonly string[], netns: string | undefined): [string, string[]] {
  if (!netns) return [file, [...args]];
  return ['nsenter', [`--net=${netns}`, '--', file, ...args]];
}

export function commandLine(file: string, args: readonly string[]): string {
  return [file, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, argv] = wrapNetns(file, args, opts.netns);
  const line = commandLine(file, args) + (opts.netns ? ` (in netns ${opts.netns})` : '');
  try {
    const r = await execa(cmd, argv, {
      input: opts.input,
      timeout: opts.timeout ?? 60_000,
      env: opts.env,
      reject: false,
      stripFinalNewline: true,
    });
    if (r.failed) {
      const stderr = String(r.stderr ?? '');
      if ((r as { code?: string }).code === 'ENOENT' || /nsenter: failed to execute .*: No such file/.test(stderr)) {
        throw missingTool(cmd === 'nsenter' && !stderr ? 'nsenter' : file, line);
      }
      if (r.timedOut) {
        throw new CommandError('E_TIMEOUT', `${line} timed out after ${opts.timeout ?? 60_000} ms`, line, undefined, stderr);
      }
      // bpftool -j reports errors as JSON on stdout, with stderr empty.
      const out = stderr || String(r.stdout ?? '');
      let first = out.split('\n').find((l) => l.trim()) ?? `exit code ${r.exitCode}`;
      try {
        first = (JSON.parse(out) as { error?: string }).error ?? first;
      } catch {
        // not JSON
      }
      throw new CommandError('E_COMMAND_FAILED', `${line} failed: ${first}`, line, r.exitCode, out);
    }
    return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  } catch (e) {
    if (e instanceof CommandError) throw e;
    if ((e as { code?: string }).code === 'ENOENT') throw missingTool(cmd, line);
    throw e;
  }
}

function missingTool(tool: string, line: string): CommandError {
  const pkg = PACKAGE_OF[tool] ?? tool;
  return new CommandError('E_TOOL_MISSING', `${tool} not found: install the ${pkg} package (apt-get install ${pkg})`, line, undefined, '');
}

/** Like run(), but returns null instead of throwing when the tool is missing or fails. */
export async function tryRun(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult | null> {
  try {
    return await run(file, args, opts);
  } catch (e) {
    if (e instanceof CommandError) return null;
    throw e;
  }
}
