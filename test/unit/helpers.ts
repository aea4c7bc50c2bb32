/**
 * @file Shared by the engine unit tests: errno-code capture for sync and
 * async calls (the assertion that the error is an FsError included).
 */
import { expect } from 'vitest';
import { FsError } from '../../src/errors.js';
import { FormatError } from '../../src/format/layout.js';

/** The FsError code fn throws, or 'no error'. */
export function code(fn: () => unknown): string {
  try { fn(); } catch (e) { expect(e).toBeInstanceOf(FsError); return (e as FsError).code; }
  return 'no error';
}

/** The FsError code p rejects with, or 'no error'. */
export async function acode(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e) { expect(e).toBeInstanceOf(FsError); return (e as FsError).code; }
  return 'no error';
}

/** The FormatError a call throws (fails the test if it throws nothing or something else). */
export function formatError(fn: () => unknown): FormatError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    return e as FormatError;
  }
  throw new Error('expected a FormatError, nothing was thrown');
}
