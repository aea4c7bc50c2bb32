/**
 * @file FsError: the one error type the engine throws. It carries a Linux
 * errno name, the operation and the path, shaped like Node's own fs errors
 * (code, syscall, path). Only the FUSE transport turns it into a negative errno.
 */
import { constants } from 'node:os';

export type ErrnoCode = keyof typeof constants.errno;

export class FsError extends Error {
  readonly code: ErrnoCode;
  readonly errno: number;
  readonly syscall: string;
  readonly path: string | undefined;

  /**
   * @param code   errno name, e.g. 'ETXTBSY'
   * @param syscall the operation that failed, e.g. 'truncate'
   * @param path   the file concerned, if any
   * @param reason a human explanation, logged and shown by the CLIs
   */
  constructor(code: ErrnoCode, syscall: string, path?: string, reason?: string) {
    // ENOENT and ENODATA answer most lookups and getxattrs (every create looks
    // its name up first; cp -a asks for ACLs): ordinary answers, not faults,
    // so they skip the stack capture (about 80 µs of JS per create in a
    // profile of 2000 creates, where the whole request costs ~2.7 ms).
    const limit = Error.stackTraceLimit;
    if (code === 'ENOENT' || code === 'ENODATA') Error.stackTraceLimit = 0;
    super(`${syscall}${path ? ` '${path}'` : ''}: ${code}${reason ? ` (${reason})` : ''}`);
    Error.stackTraceLimit = limit;
    this.name = 'FsError';
    this.code = code;
    this.errno = constants.errno[code];
    this.syscall = syscall;
    this.path = path;
  }
}

/** Negative errno for FUSE from anything thrown; unknown errors become -EIO. */
export function toNegErrno(err: unknown): number {
  if (err instanceof FsError) return -err.errno;
  const e = err as { code?: string };
  if (e && typeof e.code === 'string' && e.code in constants.errno) {
    return -constants.errno[e.code as ErrnoCode];
  }
  return -constants.errno.EIO;
}

export const errnoOf = (code: ErrnoCode): number => constants.errno[code];
