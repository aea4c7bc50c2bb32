/**
 * @file Sharing blocks between files: clone (FICLONE / FICLONERANGE) and
 * dedupe (FIDEDUPERANGE), reached through pmemfs ioctls because FUSE does
 * not forward the VFS ones, and by copy_file_range over block-aligned
 * ranges. The destination's range is unmapped (its blocks lose an owner),
 * then mapped to the source's region blocks, whose reference counts grow
 * (src/refcount/); holes stay holes, unwritten extents stay unwritten. The
 * first store into a shared block copies it (src/layout/mapping.ts,
 * unshareBlocks).
 *
 * Argument rules and errnos follow the VFS (generic_remap_checks and
 * generic_remap_check_len, linux fs/remap_range.c): block-aligned offsets;
 * a length of 0 means "to the source's EOF"; a length that is not a
 * multiple of the block size only when the range ends at the source's EOF
 * and (clone) at or past the destination's EOF / (dedupe) at both EOFs, so
 * the source's last block is shared whole; no overlap within one file;
 * a request the range rules would shorten is EINVAL, except for dedupe,
 * which may be shortened.
 *
 * Pins: the destination's blocks are re-pointed and the source's become
 * shared, so pins on either range are busy pages (XFS breaks the DAX
 * layouts of both inodes before a remap): ETXTBSY, or a wait under
 * busy=wait. Seals: either side sealed is ETXTBSY, before any range rule
 * (where the VFS refuses swap files and immutable inodes).
 */
import { HOLE } from '../bmap/bmap.js';
import { FsError } from '../errors.js';
import type { Inode } from '../inode/inode.js';
import { unmapBlocks, type DataContext, type OpSteps } from '../layout/mapping.js';
import { MAX_FILE_SIZE, readData } from './data.js';

export interface RemapRequest {
  src: Inode; srcPath: string;
  dst: Inode; dstPath: string;
  srcOff: number;   // bytes, block-aligned
  dstOff: number;   // bytes, block-aligned
  len: number;      // bytes; 0: to the source's EOF
  dedupe: boolean;
  /** Mode bits a clone drops from the destination (file_remove_privs), in the same transaction; 0 for none. */
  dropModeBits?: number;
}

export interface RemapResult {
  /** Bytes now shared (0 when dedupe found the ranges different). */
  bytes: number;
  /** Dedupe only: the contents differed, nothing changed (FILE_DEDUPE_RANGE_DIFFERS). */
  differs: boolean;
}

/** The checked request: byte count reported, blocks remapped. */
interface RemapPlan { count: number; sB0: number; dB0: number; nb: number }

/**
 * Apply the VFS range rules (see the file comment).
 * @returns null when there is nothing to do
 * @throws FsError EINVAL, EISDIR, EFBIG, EBADE (dedupe: unaligned tail before the destination's EOF)
 */
function plan(c: DataContext, r: RemapRequest): RemapPlan | null {
  const op = r.dedupe ? 'dedupe' : 'reflink';
  const bs = c.blockSize;
  const { src, dst, srcOff, dstOff, dedupe } = r;
  if (src.isDir || dst.isDir) throw new FsError('EISDIR', op, r.dstPath);
  if (!src.isReg || !dst.isReg) throw new FsError('EINVAL', op, r.dstPath, 'both files must be regular files');
  for (const [v, what] of [[srcOff, 'source offset'], [dstOff, 'destination offset'], [r.len, 'length']] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new FsError('EINVAL', op, r.dstPath, `${what} ${v}`);
  }
  let len = r.len;
  if (len === 0) {
    if (dedupe || srcOff === src.size) return null;
    if (srcOff > src.size) throw new FsError('EINVAL', op, r.dstPath, `source offset ${srcOff} is past the source's EOF ${src.size}`);
    len = src.size - srcOff;
  }
  if (srcOff % bs || dstOff % bs) throw new FsError('EINVAL', op, r.dstPath, `offsets must be multiples of the block size ${bs}`);
  if (dedupe && (srcOff >= src.size || srcOff + len > src.size || dstOff >= dst.size || dstOff + len > dst.size)) {
    throw new FsError('EINVAL', op, r.dstPath, 'dedupe ranges must lie within both files');
  }
  if (srcOff >= src.size) throw new FsError('EINVAL', op, r.dstPath, `source offset ${srcOff} is at or past the source's EOF ${src.size}`);
  let count = Math.min(len, src.size - srcOff);
  if (dstOff + count > MAX_FILE_SIZE) throw new FsError('EFBIG', op, r.dstPath);
  let bcount: number;
  if (srcOff + count === src.size && (!dedupe || dstOff + count === dst.size)) {
    bcount = Math.ceil(src.size / bs) * bs - srcOff;
  } else {
    count -= count % bs;
    bcount = count;
  }
  if (src === dst && dstOff + bcount > srcOff && dstOff < srcOff + bcount) throw new FsError('EINVAL', op, r.dstPath, 'source and destination ranges overlap in one file');
  if (count !== len && !dedupe) throw new FsError('EINVAL', op, r.dstPath, `the range would have to shrink to ${count} bytes (it passes the source's EOF or is not block-aligned)`);
  // The source's partial last block may not land before the destination's EOF (its zeroes would show).
  if (count % bs && (dedupe || dstOff + count < dst.size)) {
    if (!dedupe) throw new FsError('EINVAL', op, r.dstPath, "the source's partial last block would land before the destination's EOF");
    count -= count % bs;
    bcount = count;
  }
  if (count === 0) return null;
  return { count, sB0: srcOff / bs, dB0: dstOff / bs, nb: bcount / bs };
}

/** Region runs mapped at file blocks [b0, b0+n) of inode. */
function mappedRuns(inode: Inode, b0: number, n: number): Array<{ start: number; len: number }> {
  return inode.bmap.map(b0, n).filter((s) => s.regionBlock !== HOLE).map((s) => ({ start: s.regionBlock, len: s.len }));
}

/** Whether file bytes [aOff, +n) of a and [bOff, +n) of b are equal (dedupe's comparison). */
function sameBytes(c: DataContext, a: Inode, aOff: number, b: Inode, bOff: number, n: number): boolean {
  const step = 1 << 20;
  const x = Buffer.allocUnsafe(Math.min(step, n)), y = Buffer.allocUnsafe(Math.min(step, n));
  for (let done = 0; done < n; done += step) {
    const k = Math.min(step, n - done);
    readData(c, a, x, k, aOff + done);
    readData(c, b, y, k, bOff + done);
    if (x.compare(y, 0, k, 0, k) !== 0) return false;
  }
  return true;
}

/**
 * Clone or dedupe: make the destination range map the source range's region
 * blocks (one transaction: all or nothing).
 * @returns bytes shared, and for dedupe whether the contents differed
 * @throws FsError EINVAL, EISDIR, EFBIG, EBADE (see plan); ETXTBSY (sealed, or busy pages); ENOSPC (metadata)
 */
export async function remapRange(c: DataContext, steps: OpSteps, r: RemapRequest): Promise<RemapResult> {
  const op = r.dedupe ? 'dedupe' : 'reflink';
  // Sealed first, as the VFS checks swap files and immutable inodes before any range rule.
  c.guard.assertNotSealed({ op, path: r.srcPath, inode: r.src });
  c.guard.assertNotSealed({ op, path: r.dstPath, inode: r.dst });
  let p = plan(c, r);
  if (!p) return { bytes: 0, differs: false };
  const first = p;
  const permit = await c.guard.assertLayoutMutable({
    op, path: r.dstPath, inode: r.dst, breaks: { start: first.dB0, count: first.nb },
    runs: () => mappedRuns(r.src, first.sB0, first.nb),
  });
  // Sizes may have changed while the guard waited: the rules again, and the pins of what they give now.
  p = plan(c, r);
  if (!p) return { bytes: 0, differs: false };
  c.guard.assertNotSealed({ op, path: r.srcPath, inode: r.src });
  const plan2 = p;
  if (c.guard.pinnedIn([...mappedRuns(r.src, plan2.sB0, plan2.nb), ...mappedRuns(r.dst, plan2.dB0, plan2.nb)])) {
    throw new FsError('ETXTBSY', op, r.dstPath, 'pages pinned');
  }
  return steps.apply((tx) => {
    const { src, dst } = r;
    if (r.dedupe && !sameBytes(c, src, r.srcOff, dst, r.dstOff, plan2.count)) return { bytes: 0, differs: true };
    tx.markDirty(dst);
    const segs = src.bmap.map(plan2.sB0, plan2.nb).filter((s) => s.regionBlock !== HOLE);
    // Count the new owners first: the destination may already map some of these blocks.
    for (const s of segs) tx.refcount.increment(s.regionBlock, s.len);
    unmapBlocks(tx, dst, permit, plan2.dB0, plan2.nb);
    for (const s of segs) dst.bmap.insert(permit, { fileBlock: plan2.dB0 + (s.fileBlock - plan2.sB0), regionBlock: s.regionBlock, len: s.len, flags: s.flags });
    if (!r.dedupe) {
      if (r.dstOff + plan2.count > dst.size) dst.size = r.dstOff + plan2.count;
      dst.mode &= ~(r.dropModeBits ?? 0);
      dst.touchMtime();
    }
    return { bytes: plan2.count, differs: false };
  });
}
