/**
 * @file ioctl decoding: payload bytes ↔ calls. Numbers and layouts come from
 * src/uapi.ts (the ABI). Unknown commands get ENOTTY; a payload of the wrong
 * size, or with values out of range, gets EINVAL and changes nothing.
 * Commands are registered by the subsystem that owns them (seals, pins);
 * who may issue each one is decided before its handler runs, by the one
 * permission table (src/op/permissions.ts), so a handler never sees a
 * request its rule refuses.
 */
import { FsError } from '../errors.js';
import * as uapi from '../uapi.js';
import type { Inode } from '../inode/inode.js';
import type { Caller, Handle } from './fs.js';
import { authorize, IOCTL_RULES } from '../op/permissions.js';

export interface IoctlRequest {
  caller: Caller;
  /** The inode the ioctl was issued on (the FUSE node id). */
  inode: Inode;
  /** A label for messages and logs ("inode N"). */
  path: string;
  cmd: number;
  /**
   * The handle the ioctl came through, when it is an open file handle on
   * `inode` (a directory handle, or none, is null): the caller's proven access.
   */
  handle: Handle | null;
  input: Buffer | null;
  outSize: number;
}

/** A handler returns the output payload (null for none). */
export type IoctlHandler = (req: IoctlRequest) => Buffer | null | Promise<Buffer | null>;

export class IoctlDispatcher {
  private readonly table = new Map<number, { name: string; fn: IoctlHandler }>();

  /** Add a command's handler; its name and rule come from IOCTL_RULES (a command without a rule cannot be registered). */
  register(cmd: number, fn: IoctlHandler): void {
    const rule = IOCTL_RULES.get(cmd >>> 0);
    if (!rule) throw new Error(`ioctl 0x${cmd.toString(16)} has no rule in src/op/permissions.ts`);
    if (this.table.has(cmd)) throw new Error(`ioctl 0x${cmd.toString(16)} registered twice`);
    this.table.set(cmd >>> 0, { name: rule.name, fn });
  }

  /** Whether `cmd` is a known command (the transport answers ENOTTY to others without building a request). */
  knows(cmd: number): boolean { return this.table.has(cmd >>> 0); }

  /**
   * Check the payload and the caller's rights (IOCTL_RULES), then run the handler.
   * @throws FsError ENOTTY for an unknown command, EINVAL for a malformed payload, and authorize()'s errnos
   */
  dispatch(req: IoctlRequest): Buffer | null | Promise<Buffer | null> {
    const cmd = req.cmd >>> 0;
    const h = this.table.get(cmd);
    if (!h) throw new FsError('ENOTTY', 'ioctl', req.path, `unknown ioctl 0x${cmd.toString(16)}`);
    if (req.handle && req.handle.inode !== req.inode) throw new Error('ioctl: a handle of another inode reached dispatch');
    authorize(IOCTL_RULES.get(cmd)!, req);
    const size = uapi.iocSize(cmd);
    const dir = uapi.iocDir(cmd);
    if (dir & 1 /* write: input expected */ && (!req.input || req.input.length !== size)) {
      throw new FsError('EINVAL', h.name, req.path, `payload of ${req.input?.length ?? 0} bytes, expected ${size}`);
    }
    return h.fn(req);
  }
}

/** Read a u64 payload field as a safe JS number. @throws FsError EINVAL beyond 2^53 */
export function u64Field(buf: Buffer, off: number, what: string, op: string): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FsError('EINVAL', op, undefined, `${what} ${v} out of range`);
  return Number(v);
}
