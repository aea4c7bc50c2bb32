/**
 * @file pmemfs-io's data commands, xfs_io's subset: pwrite, pread, truncate,
 * fsync, fdatasync, falloc, fpunch, fzero, plus fcollapse, finsert,
 * funshare, reflink and dedupe, which FUSE cannot forward as fallocate
 * modes / FICLONERANGE / FIDEDUPERANGE and so go through pmemfs ioctls. Error labels are xfs_io's perror() names
 * (`ftruncate: Text file busy`, `fallocate: ...`).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as uapi from '../../uapi.js';
import type { CommandDef, IoContext } from './commands.js';
import { hexdump, ioLine, labelled, timingLine } from './format.js';
import { dedupe, errnoError, rangeIoctl, reflink } from './ioctls.js';
import { LabelledError } from './format.js';
import { parseByte, parseNum, parseSeconds, UsageError, type ParsedArgs } from './parse.js';

/** xfs_io's default I/O buffer: one op per 4 KiB, so op counts match. */
const DEFAULT_BS = 4096;

function optValue(a: ParsedArgs, letter: string): string | undefined {
  const v = a.opts.get(letter);
  return typeof v === 'string' ? v : undefined;
}

function blockSizeOpt(a: ParsedArgs): number {
  const s = optValue(a, 'b');
  if (s === undefined) return DEFAULT_BS;
  const bs = parseNum(s, 'block size');
  if (bs <= 0) throw new UsageError(`non-numeric bsize -- ${s}`);
  return bs;
}

function offLen(a: ParsedArgs): [number, number] {
  return [parseNum(a.rest[0], 'offset'), parseNum(a.rest[1], 'length')];
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

function report(ctx: IoContext, a: ParsedArgs, verb: string, done: number, asked: number, off: number, ops: number, t0: bigint): void {
  if (a.opts.has('q')) return;
  ctx.out(ioLine(verb, done, asked, off) + timingLine(done, ops, seconds(t0)));
}

const pwrite: CommandDef = {
  name: 'pwrite', usage: '[-S seed] [-b bs] [-q] off len', help: 'writes a number of bytes at a specified offset',
  opts: { S: 'value', b: 'value', q: 'flag' }, args: [2, 2],
  run(ctx, a) {
    const seedArg = optValue(a, 'S');
    const seed = seedArg === undefined ? 0xcd : parseByte(seedArg);
    const bs = blockSizeOpt(a);
    const [off, len] = offLen(a);
    const buf = Buffer.alloc(Math.max(1, Math.min(bs, len)), seed);
    const t0 = process.hrtime.bigint();
    let done = 0, ops = 0;
    while (done < len) {
      const n = fs.writeSync(ctx.fd, buf, 0, Math.min(buf.length, len - done), off + done);
      ops++;
      if (n === 0) break;
      done += n;
    }
    report(ctx, a, 'wrote', done, len, off, ops, t0);
  },
};

const pread: CommandDef = {
  name: 'pread', usage: '[-b bs] [-qv] off len', help: 'reads a number of bytes at a specified offset',
  opts: { b: 'value', q: 'flag', v: 'flag' }, args: [2, 2],
  run(ctx, a) {
    const bs = blockSizeOpt(a);
    const [off, len] = offLen(a);
    const buf = Buffer.alloc(Math.max(1, Math.min(bs, len)));
    const t0 = process.hrtime.bigint();
    let done = 0, ops = 0;
    while (done < len) {
      const n = fs.readSync(ctx.fd, buf, 0, Math.min(buf.length, len - done), off + done);
      if (n === 0) break;
      ops++;
      if (a.opts.has('v')) ctx.out(hexdump(buf.subarray(0, n), off + done));
      done += n;
    }
    report(ctx, a, 'read', done, len, off, ops, t0);
  },
};

const truncate: CommandDef = {
  name: 'truncate', usage: 'off', help: 'truncates the current file at the given offset',
  args: [1, 1], label: 'ftruncate',
  run(ctx, a) { fs.ftruncateSync(ctx.fd, parseNum(a.rest[0], 'truncate')); },
};

const fsync: CommandDef = {
  name: 'fsync', usage: '', help: 'calls fsync(2) to flush all in-core file state to disk',
  args: [0, 0], run(ctx) { fs.fsyncSync(ctx.fd); },
};

const fdatasync: CommandDef = {
  name: 'fdatasync', usage: '', help: 'calls fdatasync(2) to flush the files in-core data to disk',
  args: [0, 0], run(ctx) { fs.fdatasyncSync(ctx.fd); },
};

const falloc: CommandDef = {
  name: 'falloc', usage: '[-k] off len', help: 'allocates space associated with part of a file via fallocate',
  opts: { k: 'flag' }, args: [2, 2], label: 'fallocate',
  run(ctx, a) {
    const [off, len] = offLen(a);
    ctx.sys.fallocate(ctx.fd, a.opts.has('k') ? uapi.FALLOC_FL_KEEP_SIZE : 0, off, len);
  },
};

const fpunch: CommandDef = {
  name: 'fpunch', usage: 'off len', help: 'de-allocates space associated with part of a file via fallocate',
  args: [2, 2], label: 'fallocate',
  run(ctx, a) {
    const [off, len] = offLen(a);
    ctx.sys.fallocate(ctx.fd, uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE, off, len);
  },
};

const fzero: CommandDef = {
  name: 'fzero', usage: '[-k] off len', help: 'zeroes space and eliminates holes by preallocating',
  opts: { k: 'flag' }, args: [2, 2], label: 'fallocate',
  run(ctx, a) {
    const [off, len] = offLen(a);
    ctx.sys.fallocate(ctx.fd, uapi.FALLOC_FL_ZERO_RANGE | (a.opts.has('k') ? uapi.FALLOC_FL_KEEP_SIZE : 0), off, len);
  },
};

const fcollapse: CommandDef = {
  name: 'fcollapse', usage: 'off len', help: 'de-allocates space and eliminates the hole by shifting extents (PMEMFS_IOC_FCOLLAPSE)',
  args: [2, 2], label: 'fallocate',
  run(ctx, a) { rangeIoctl(ctx.sys, ctx.fd, uapi.PMEMFS_IOC_FCOLLAPSE, ...offLen(a)); },
};

const finsert: CommandDef = {
  name: 'finsert', usage: 'off len', help: 'creates new space for writing within file by shifting extents (PMEMFS_IOC_FINSERT)',
  args: [2, 2], label: 'fallocate',
  run(ctx, a) { rangeIoctl(ctx.sys, ctx.fd, uapi.PMEMFS_IOC_FINSERT, ...offLen(a)); },
};

/** Run fn with SRC open for reading (the clone source goes by descriptor, as FICLONE's src_fd); closed after. */
function withSourceFd<T>(src: string, fn: (fd: number) => T): T {
  const fd = labelled(src, () => fs.openSync(src, 'r'));
  try { return fn(fd); } finally { fs.closeSync(fd); }
}

const reflinkCmd: CommandDef = {
  name: 'reflink', usage: 'infile [src_off dst_off len]', help: 'reflinks an entire file, or a number of bytes at a specified offset',
  args: [1, 4],
  run(ctx, a) {
    if (a.rest.length !== 1 && a.rest.length !== 4) throw new UsageError(`bad argument count ${a.rest.length} to reflink, expected 1 or 4 arguments`);
    const src = a.rest[0];
    const st = labelled(src, () => fs.statSync(src, { bigint: true }));
    const [srcOff, dstOff, len] = a.rest.length === 4
      ? [parseNum(a.rest[1], 'src offset'), parseNum(a.rest[2], 'dst offset'), parseNum(a.rest[3], 'length')]
      : [0, 0, 0];
    const t0 = process.hrtime.bigint();
    withSourceFd(src, (srcFd) => reflink(ctx.sys, ctx.fd, { srcFd, srcOff, dstOff, len }));
    const shown = len === 0 ? Number(st.size) : len;
    report(ctx, a, 'linked', shown, shown, dstOff, 1, t0);
  },
};

const funshare: CommandDef = {
  name: 'funshare', usage: 'off len', help: 'unshares shared blocks within the range (PMEMFS_IOC_FUNSHARE, FALLOC_FL_UNSHARE_RANGE)',
  args: [2, 2], label: 'fallocate',
  run(ctx, a) { rangeIoctl(ctx.sys, ctx.fd, uapi.PMEMFS_IOC_FUNSHARE, ...offLen(a)); },
};

/** errno name of a positive errno number (a dedupe status). */
function errnoName(n: number): string {
  return Object.entries(os.constants.errno).find(([, v]) => v === n)?.[0] ?? 'EIO';
}

const dedupeCmd: CommandDef = {
  name: 'dedupe', usage: 'infile src_off dst_off len', help: 'dedupes a number of bytes at a specified offset (PMEMFS_IOC_DEDUPE, FIDEDUPERANGE)',
  args: [4, 4],
  run(ctx, a) {
    const src = a.rest[0];
    const [srcOff, dstOff, len] = [parseNum(a.rest[1], 'src offset'), parseNum(a.rest[2], 'dst offset'), parseNum(a.rest[3], 'length')];
    const t0 = process.hrtime.bigint();
    const r = withSourceFd(src, (srcFd) => dedupe(ctx.sys, ctx.fd, { srcFd, srcOff, dstOff, len }));
    // xfs_io's words for the two per-range failures.
    if (r.status === uapi.FILE_DEDUPE_RANGE_DIFFERS) throw new LabelledError('XFS_IOC_FILE_EXTENT_SAME', new Error('Extents did not match.'));
    if (r.status < 0) throw new LabelledError('XFS_IOC_FILE_EXTENT_SAME', errnoError(errnoName(-r.status), 'ioctl', 'dedupe failed'));
    report(ctx, a, 'deduped', r.bytes, len, dstOff, 1, t0);
  },
};

const sleep: CommandDef = {
  name: 'sleep', usage: 'seconds', help: 'waits (fractional seconds allowed), e.g. while holding a lease or pins',
  args: [1, 1], needsFile: false,
  async run(ctx, a) { await ctx.sleep(parseSeconds(a.rest[0]) * 1000); },
};

export const dataCommands: readonly CommandDef[] = [
  pwrite, pread, truncate, fsync, fdatasync, falloc, fpunch, fzero, fcollapse, finsert, funshare, reflinkCmd, dedupeCmd, sleep,
];
