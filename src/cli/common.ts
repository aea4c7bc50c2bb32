/**
 * @file What every pmemfs command shares: size parsing with k/m/g/t
 * suffixes, the package version, one-line fatal errors with an exit code,
 * and the region lock (flock on the region file: exclusive while mounted or
 * repaired, so a second mount or a writing fsck is refused, not corrupting).
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../native.js';

// Every command: a reader that went away (`pmemfs-io --help | head -1`) stops it quietly, as a
// C tool dies of SIGPIPE, instead of an unhandled EPIPE with a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw e; });

/** Package root, found from this file whether it runs from src/ or dist/src/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('pmemfs: cannot find package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

export function version(): string {
  return JSON.parse(fs.readFileSync(join(packageRoot(), 'package.json'), 'utf8')).version;
}

/** A user-facing failure: one line on stderr, then the exit code. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) { super(message); this.name = 'CliError'; }
}

/**
 * Run a command's main: CliError → its message and code; anything else → the
 * error and code 1 (or `unexpectedCode`).
 */
export async function runMain(prog: string, fn: () => Promise<number | void> | number | void, unexpectedCode = 1): Promise<void> {
  try {
    const code = await fn();
    process.exitCode = typeof code === 'number' ? code : 0;
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`${prog}: ${e.message}\n`);
      process.exitCode = e.exitCode;
    } else {
      const err = e as Error;
      process.stderr.write(`${prog}: ${err?.message ?? String(e)}\n`);
      if (process.env.PMEMFS_DEBUG) process.stderr.write(`${err?.stack}\n`);
      process.exitCode = unexpectedCode;
    }
  }
}

const SUFFIX: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/**
 * Parse "64g", "4096", "1.5m", "0x1000" into bytes (binary suffixes).
 * @throws CliError naming the bad value
 */
export function parseSize(s: string, what = 'size'): number {
  const m = /^\s*(0x[0-9a-f]+|\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(s);
  if (!m) throw new CliError(`invalid ${what} '${s}': use a number with an optional k, m, g or t suffix`);
  const v = Math.floor((m[1].startsWith('0x') ? parseInt(m[1], 16) : Number(m[1])) * SUFFIX[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(v)) throw new CliError(`${what} '${s}' is too large`);
  return v;
}

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;

/**
 * Take the region lock on an open fd, without waiting.
 * @throws CliError (exit `code`) when someone else holds it
 */
export function lockRegion(fd: number, path: string, mode: 'exclusive' | 'shared', code = 1): void {
  try {
    loadNative().flock(fd, (mode === 'exclusive' ? LOCK_EX : LOCK_SH) | LOCK_NB);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'EWOULDBLOCK' || c === 'EAGAIN') {
      throw new CliError(`${path} is locked: it is mounted by pmemfs or being repaired by fsck.pmemfs (unmount it first)`, code);
    }
    throw e;
  }
}
