/**
 * @file Shared by the engine unit tests: errno-code capture for sync and
 * async calls (the assertion that the error is an FsError included).
 */
import { expect } from 'vitest';
import { FsError } from '../../src/errors.js';
import { FormatError } from '../../src/format/layout.js';
import type { DirStream } from '../../src/fuse/dirstream.js';

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

/**
 * A listing as the FUSE kernel drives a DirStream (src/fuse/dirstream.ts):
 * READDIR at `off`, a reply of at most `cap` entries, of which `consume`
 * says how many the caller took; the next READDIR starts at the cookie of
 * the last one taken. `between` runs between requests.
 */
export function listLikeKernel(d: DirStream, cap: () => number, consume: (sent: number) => number, between: (round: number) => void = () => {}): Array<[string, number]> {
  const got: Array<[string, number]> = [];
  let off = 0;
  for (let round = 0; round < 100_000; round++) {
    const sent: Array<[string, number, number]> = [];
    const room = cap();
    d.read(off, (name, ino, next) => { if (sent.length >= room) return false; sent.push([name, ino, next]); return true; });
    if (!sent.length) return got;
    const took = sent.slice(0, Math.max(1, consume(sent.length)));
    for (const [name, ino] of took) got.push([name, ino]);
    off = took[took.length - 1][2];
    between(round);
  }
  throw new Error('listing did not end');
}
