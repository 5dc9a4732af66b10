/**
 * The one error a netfilter dataplane raises when the kernel refused a
 * ruleset: E_DATAPLANE_APPLY, with the tool's own message and whether the
 * previous ruleset is back in place.
 */
import { BpfnetError, CommandError } from '../../util/errors.js';

export function applyError(mode: 'iptables' | 'nftables', cause: unknown, rollback: 'not-needed' | 'restored' | 'failed'): BpfnetError {
  const stderr = cause instanceof CommandError ? cause.stderr : '';
  const tool = (stderr.split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 3).join('; ') || (cause instanceof Error ? cause.message : String(cause))).trim();
  const state =
    rollback === 'failed'
      ? 'and restoring the previous ruleset failed too: run `bpfnet doctor` and re-apply'
      : 'the previous ruleset is in place (nothing changed)';
  return new BpfnetError('E_DATAPLANE_APPLY', `${mode} dataplane: the kernel refused the new ruleset: ${tool}; ${state}`, {
    mode,
    rollback,
    ...(cause instanceof CommandError ? { command: cause.command, exitCode: cause.exitCode, stderr: cause.stderr } : {}),
  }, { cause });
}
