/**
 * Typed errors with stable codes. Scripts match on `code`; people read
 * `message`, which always says what to do next.
 */
export type ErrorCode =
  | 'E_TOOL_MISSING'
  | 'E_COMMAND_FAILED'
  | 'E_VERIFIER'
  | 'E_BPFFS'
  | 'E_MAP_SCHEMA'
  | 'E_MAP_MIGRATE'
  | 'E_DATAPLANE_APPLY'
  | 'E_MAP_FULL'
  | 'E_INVALID_ARGUMENT'
  | 'E_NOT_FOUND'
  | 'E_NETNS'
  | 'E_TIMEOUT'
  /** An rtnetlink request failed (errno in details). */
  | 'E_NETLINK'
  /** The thing exists already or is in use (name taken, address taken, endpoints attached). */
  | 'E_CONFLICT'
  /** No free resource left (address pool, IP, port). */
  | 'E_EXHAUSTED'
  /** The state store cannot be opened or written. */
  | 'E_STATE'
  /** The agent cannot be reached on its socket. */
  | 'E_UNAVAILABLE';

export class BpfnetError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BpfnetError';
    this.code = code;
    this.details = details;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.details };
  }
}

/** An external command exited non-zero (or could not start). */
export class CommandError extends BpfnetError {
  readonly command: string;
  readonly exitCode: number | undefined;
  readonly stderr: string;

  constructor(code: ErrorCode, message: string, command: string, exitCode: number | undefined, stderr: string) {
    super(code, message, { command, exitCode, stderr });
    this.name = 'CommandError';
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export function invalidArgument(message: string, details: Record<string, unknown> = {}): BpfnetError {
  return new BpfnetError('E_INVALID_ARGUMENT', message, details);
}
