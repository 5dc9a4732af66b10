/**
 * CNI's error object (spec "Error"): `{cniVersion, code, msg, details}` on
 * stdout with a non-zero exit. Codes 1-99 are the spec's; bpfnet's own start
 * at 100 (the spec reserves that range for plugins).
 */
import { BpfnetError } from '../util/errors.js';

export const CNI_ERR = {
  /** 1: the config's cniVersion is not one this plugin speaks. */
  INCOMPATIBLE_VERSION: 1,
  /** 2: a field the plugin does not support (e.g. an ipam section, sctp). */
  UNSUPPORTED_FIELD: 2,
  /** 3: the container (attachment) does not exist or is unknown. */
  UNKNOWN_CONTAINER: 3,
  /** 4: a CNI_* environment variable is missing or invalid. */
  INVALID_ENV: 4,
  /** 5: I/O failure (stdin, the namespace). */
  IO: 5,
  /** 6: stdin is not decodable (malformed JSON). */
  DECODE: 6,
  /** 7: the network config is invalid (values, unknown network). */
  INVALID_NETCONF: 7,
  /** 11: transient; the runtime should retry (agent not reachable). */
  TRY_AGAIN_LATER: 11,
  /** 50 (STATUS): the plugin cannot serve ADDs now. */
  NOT_AVAILABLE: 50,
  /** 51 (STATUS): not available, and existing attachments may be broken. */
  NOT_AVAILABLE_DAMAGED: 51,
  // ---- bpfnet's own (100+) ----
  /** The agent refused: something is taken (host port, address, name). */
  CONFLICT: 100,
  /** The agent has no free resource left (addresses in the subnet/range, ports). */
  EXHAUSTED: 101,
  /** The agent failed while changing the kernel or its state (netlink, dataplane, store). */
  AGENT_FAILED: 102,
  /** CHECK found the attachment not as ADD left it (details say what). */
  CHECK_FAILED: 103,
} as const;

export type CniErrorCode = (typeof CNI_ERR)[keyof typeof CNI_ERR];

export class CniError extends Error {
  constructor(
    readonly code: CniErrorCode,
    msg: string,
    readonly details = '',
  ) {
    super(msg);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** What an agent error means to a CNI runtime. */
export function fromAgentError(e: unknown, what: string): CniError {
  if (e instanceof CniError) return e;
  if (!(e instanceof BpfnetError)) return new CniError(CNI_ERR.AGENT_FAILED, `${what}: ${(e as Error)?.message ?? String(e)}`);
  const details = `bpfnet ${e.code}`;
  switch (e.code) {
    case 'E_UNAVAILABLE':
      return new CniError(CNI_ERR.TRY_AGAIN_LATER, `${what}: ${e.message}`, details);
    case 'E_INVALID_ARGUMENT':
    case 'E_NOT_FOUND':
      return new CniError(CNI_ERR.INVALID_NETCONF, `${what}: ${e.message}`, details);
    case 'E_CONFLICT':
      return new CniError(CNI_ERR.CONFLICT, `${what}: ${e.message}`, details);
    case 'E_EXHAUSTED':
      return new CniError(CNI_ERR.EXHAUSTED, `${what}: ${e.message}`, details);
    case 'E_NETNS':
      return new CniError(CNI_ERR.IO, `${what}: ${e.message}`, details);
    default:
      return new CniError(CNI_ERR.AGENT_FAILED, `${what}: ${e.message}`, details);
  }
}
