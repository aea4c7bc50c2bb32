/**
 * @file The client side of the pmemfs ioctls: payload encoding and decoding
 * from the layouts in src/uapi.ts, and the loops the ABI asks callers to run
 * (GETBMAP while BMAP_MORE, PIN while done < len). It talks to the kernel
 * through an injected `IoShim` (the native binding's ioctl/fallocate), so it
 * is testable with a fake and shared by pmemfs-io and src/mapdirect.ts.
 */
import * as uapi from '../../uapi.js';
import { fileOff, regionOff, type FileOff, type RegionOff } from '../../types.js';

/** The two native calls a client needs; the real binding's shape is a superset. */
export interface IoShim {
  ioctl(fd: number, cmd: number, buf: Buffer | null): number;
  fallocate(fd: number, mode: number, offset: number, length: number): void;
}

/** An errno-carrying error, shaped like the native binding's and Node's own. */
export function errnoError(code: string, syscall: string, message: string): Error & { code: string; syscall: string } {
  return Object.assign(new Error(`${syscall}: ${message}`), { code, syscall });
}

function u64(buf: Buffer, off: number): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw errnoError('EOVERFLOW', 'ioctl', `field value ${v} beyond 2^53`);
  return Number(v);
}

// ---------------------------------------------------------------- GETBMAP

export interface BmapRecord {
  fileOff: FileOff;
  len: number;
  /** null for a hole */
  phys: RegionOff | null;
  /** BMAP_F_* bits */
  flags: number;
}

export interface BmapReply { records: BmapRecord[]; more: boolean; fsize: number; next: number }

export function encodeBmapRequest(start: number): Buffer {
  const buf = Buffer.alloc(uapi.BMAP.size);
  buf.writeBigUInt64LE(BigInt(start), uapi.BMAP.start);
  return buf;
}

export function decodeBmapReply(buf: Buffer): BmapReply {
  const count = Math.min(buf.readUInt32LE(uapi.BMAP.count), uapi.BMAP_MAX_RECS);
  const records: BmapRecord[] = [];
  for (let i = 0; i < count; i++) {
    const o = uapi.BMAP.recs + i * uapi.BMAP_REC.size;
    const rawPhys = buf.readBigUInt64LE(o + uapi.BMAP_REC.phys);
    const flags = buf.readUInt32LE(o + uapi.BMAP_REC.flags);
    const hole = rawPhys === uapi.BMAP_PHYS_NONE || (flags & uapi.BMAP_F_HOLE) !== 0;
    records.push({
      fileOff: fileOff(u64(buf, o + uapi.BMAP_REC.fileOff)),
      len: u64(buf, o + uapi.BMAP_REC.len),
      phys: hole ? null : regionOff(Number(rawPhys)),
      flags: hole ? flags | uapi.BMAP_F_HOLE : flags,
    });
  }
  return {
    records,
    more: (buf.readUInt32LE(uapi.BMAP.flags) & uapi.BMAP_MORE) !== 0,
    fsize: u64(buf, uapi.BMAP.fsize),
    next: u64(buf, uapi.BMAP.next),
  };
}

/**
 * The block map from `start` to EOF (or until `end` is covered), holes
 * included, by repeating GETBMAP from each reply's `next`.
 * @throws the ioctl's error; EIO if the daemon stops making progress
 */
export function getBmap(sys: IoShim, fd: number, start = 0, end = Infinity): { records: BmapRecord[]; fsize: number } {
  const records: BmapRecord[] = [];
  let fsize = 0;
  for (let at = start; ;) {
    const buf = encodeBmapRequest(at);
    sys.ioctl(fd, uapi.PMEMFS_IOC_GETBMAP, buf);
    const reply = decodeBmapReply(buf);
    records.push(...reply.records);
    fsize = reply.fsize;
    if (!reply.more || reply.next >= end) break;
    if (reply.next <= at) throw errnoError('EIO', 'getbmap', `no progress at offset ${at}`);
    at = reply.next;
  }
  return { records, fsize };
}

// ---------------------------------------------------------------- PIN / UNPIN

export interface PinRecord { id: number; fileOff: FileOff; phys: RegionOff; len: number }

export function encodePinRequest(off: number, len: number): Buffer {
  const buf = Buffer.alloc(uapi.PIN.size);
  buf.writeBigUInt64LE(BigInt(off), uapi.PIN.off);
  buf.writeBigUInt64LE(BigInt(len), uapi.PIN.len);
  return buf;
}

export function decodePinReply(buf: Buffer): { done: number; records: PinRecord[] } {
  const count = Math.min(buf.readUInt32LE(uapi.PIN.count), uapi.PIN_MAX_RECS);
  const records: PinRecord[] = [];
  for (let i = 0; i < count; i++) {
    const o = uapi.PIN.recs + i * uapi.PIN_REC.size;
    records.push({
      id: u64(buf, o + uapi.PIN_REC.id),
      fileOff: fileOff(u64(buf, o + uapi.PIN_REC.fileOff)),
      phys: regionOff(u64(buf, o + uapi.PIN_REC.phys)),
      len: u64(buf, o + uapi.PIN_REC.len),
    });
  }
  return { done: u64(buf, uapi.PIN.done), records };
}

/**
 * Pin [off, off+len): one PIN call covers at most PIN_MAX_RECS physical
 * extents, so continue from off+done until the range is covered. All or
 * nothing: if a later call fails, the pins already taken are dropped.
 */
export function pinRange(sys: IoShim, fd: number, off: number, len: number): PinRecord[] {
  const all: PinRecord[] = [];
  try {
    // At least one call, so the daemon judges an empty range (EINVAL), not us.
    let done = 0;
    do {
      const buf = encodePinRequest(off + done, len - done);
      sys.ioctl(fd, uapi.PMEMFS_IOC_PIN, buf);
      const reply = decodePinReply(buf);
      all.push(...reply.records);
      if (reply.done <= 0 && len > 0) throw errnoError('EIO', 'pin', `no progress at offset ${off + done}`);
      done += reply.done;
    } while (done < len);
  } catch (e) {
    unpinAll(sys, fd, all.map((r) => r.id));
    throw e;
  }
  return all;
}

export function unpin(sys: IoShim, fd: number, id: number): void {
  const buf = Buffer.alloc(uapi.UNPIN.size);
  buf.writeBigUInt64LE(BigInt(id), uapi.UNPIN.id);
  sys.ioctl(fd, uapi.PMEMFS_IOC_UNPIN, buf);
}

/** Best effort: drop every id, report the first failure after trying them all. */
export function unpinAll(sys: IoShim, fd: number, ids: readonly number[]): void {
  let first: unknown;
  for (const id of ids) {
    try { unpin(sys, fd, id); } catch (e) { first ??= e; }
  }
  if (first !== undefined) throw first;
}

// ---------------------------------------------------------------- REGION

export interface RegionInfo { regionSize: number; dataStart: number; blockSize: number; dax: boolean; path: string }

export function decodeRegion(buf: Buffer): RegionInfo {
  const raw = buf.subarray(uapi.REGION.path, uapi.REGION.path + uapi.REGION.pathMax);
  const nul = raw.indexOf(0);
  return {
    regionSize: u64(buf, uapi.REGION.regionSize),
    dataStart: u64(buf, uapi.REGION.dataStart),
    blockSize: buf.readUInt32LE(uapi.REGION.blockSize),
    dax: (buf.readUInt32LE(uapi.REGION.flags) & uapi.REGION_F_DAX) !== 0,
    path: raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8'),
  };
}

export function regionInfo(sys: IoShim, fd: number): RegionInfo {
  const buf = Buffer.alloc(uapi.REGION.size);
  sys.ioctl(fd, uapi.PMEMFS_IOC_REGION, buf);
  return decodeRegion(buf);
}

// ---------------------------------------------------------------- ranges, reflink, fsxattr

/** PMEMFS_IOC_FCOLLAPSE / PMEMFS_IOC_FINSERT / PMEMFS_IOC_FUNSHARE. */
export function rangeIoctl(sys: IoShim, fd: number, cmd: number, off: number, len: number): void {
  const buf = Buffer.alloc(uapi.RANGE.size);
  buf.writeBigUInt64LE(BigInt(off), uapi.RANGE.off);
  buf.writeBigUInt64LE(BigInt(len), uapi.RANGE.len);
  sys.ioctl(fd, cmd, buf);
}

/** Clone/dedupe arguments: srcFd is a descriptor of this process open for reading on the same mount; bytes. */
export interface ReflinkArgs { srcFd: number; srcOff: number; dstOff: number; len: number }

export function encodeReflink(a: ReflinkArgs): Buffer {
  const buf = Buffer.alloc(uapi.REFLINK.size);
  buf.writeBigInt64LE(BigInt(a.srcFd), uapi.REFLINK.srcFd);
  buf.writeBigUInt64LE(BigInt(a.srcOff), uapi.REFLINK.srcOff);
  buf.writeBigUInt64LE(BigInt(a.dstOff), uapi.REFLINK.dstOff);
  buf.writeBigUInt64LE(BigInt(a.len), uapi.REFLINK.len);
  return buf;
}

export function reflink(sys: IoShim, fd: number, a: ReflinkArgs): void {
  sys.ioctl(fd, uapi.PMEMFS_IOC_REFLINK, encodeReflink(a));
}

export interface DedupeResult { bytes: number; status: number }

/** PMEMFS_IOC_DEDUPE (FIDEDUPERANGE for one destination: the file fd is open on). */
export function dedupe(sys: IoShim, fd: number, a: ReflinkArgs): DedupeResult {
  const buf = Buffer.alloc(uapi.DEDUPE.size);
  encodeReflink(a).copy(buf, 0);
  sys.ioctl(fd, uapi.PMEMFS_IOC_DEDUPE, buf);
  return { bytes: Number(buf.readBigUInt64LE(uapi.DEDUPE.bytesDeduped)), status: buf.readInt32LE(uapi.DEDUPE.status) };
}

export interface FsXattr { xflags: number; extsize: number; nextents: number; projid: number; cowextsize: number }

export function fsGetXattr(sys: IoShim, fd: number): FsXattr {
  const buf = Buffer.alloc(uapi.FSXATTR.size);
  sys.ioctl(fd, uapi.FS_IOC_FSGETXATTR, buf);
  return {
    xflags: buf.readUInt32LE(uapi.FSXATTR.xflags),
    extsize: buf.readUInt32LE(uapi.FSXATTR.extsize),
    nextents: buf.readUInt32LE(uapi.FSXATTR.nextents),
    projid: buf.readUInt32LE(uapi.FSXATTR.projid),
    cowextsize: buf.readUInt32LE(uapi.FSXATTR.cowextsize),
  };
}
