import { expect } from 'vitest';
import { BpfnetError, type ErrorCode } from '../../src/util/errors.js';

/** Runs fn, expecting a BpfnetError with this code; returns it for message checks. */
export function fails(fn: () => unknown, code: ErrorCode = 'E_INVALID_ARGUMENT'): BpfnetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BpfnetError);
    expect((e as BpfnetError).code).toBe(code);
    return e as BpfnetError;
  }
  throw new Error(`expected ${code}`);
}
