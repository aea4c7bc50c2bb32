/**
 * @file On-media format of the write-ahead log (the journal area between the
 * inode table and the data area). The log holds one transaction at a time:
 * every commit first makes the previous one's checkpoint durable, so only
 * the newest committed transaction can still be needed at recovery.
 *
 *   block 0..d-1   descriptor blocks: 32-byte header (u32 magic 'PMJD',
 *                  u32 crc, u64 seq, u32 images, u32 d, u32 index, u32 0),
 *                  then the u64 home block of each logged image, in order
 *   block d..d+n-1 the block images
 *   block d+n      commit block: u32 magic 'PMJC', u32 crc, u64 seq,
 *                  u32 images, u32 payload crc (CRC32C over descriptor
 *                  blocks and images), u64 commit time (ms), u32 data
 *                  images (DATALOG: the last ones are file data blocks;
 *                  0 before that feature)
 *
 * A transaction is replayed only when its descriptor and commit blocks agree
 * on the sequence and the payload checksum matches: a torn log (power lost
 * while it was written) is discarded, which is safe because the home
 * locations still hold the previous, durable state. A whole transaction is
 * replayed only when its sequence is newer than the superblock's
 * `journalSeq` checkpoint (Journal.recover): an older one is already home, and
 * replaying it would put older metadata over newer (jbd2 skips transactions
 * older than its superblock's s_sequence the same way).
 */
import { crc32c } from '@node-rs/crc32';
import { FormatError, MAX_COUNTER, readU64, recordChecksum, writeU64 } from './layout.js';

export const JDESC_MAGIC = 0x444a4d50; // 'PMJD'
export const JCOMMIT_MAGIC = 0x434a4d50; // 'PMJC'
export const JDESC_HDR = 32;

/** Home-block numbers one descriptor block holds. */
export const descCapacity = (bs: number): number => (bs - JDESC_HDR) / 8;
/** Log blocks a transaction of n images occupies (descriptors, images, commit). */
export const logBlocksFor = (bs: number, n: number): number => Math.max(1, Math.ceil(n / descCapacity(bs))) + n + 1;

/**
 * One logged transaction. The last `dataImages` images (0 when absent) are
 * blocks of file data the transaction exposed (DATALOG), logged so that
 * one flush makes them durable with the metadata; recovery replays them
 * only while the superblock's `dataSeq` is older than the transaction.
 */
export interface LogTx { seq: number; homes: number[]; images: Buffer[]; dataImages?: number }

/**
 * Encode a transaction into its log blocks, in order (descriptors, images,
 * commit). The commit block is last so the caller can flush it separately.
 */
export function encodeLogTx(bs: number, t: LogTx): { body: Buffer[]; commit: Buffer } {
  const cap = descCapacity(bs);
  const d = Math.max(1, Math.ceil(t.homes.length / cap));
  const body: Buffer[] = [];
  for (let i = 0; i < d; i++) {
    const b = Buffer.alloc(bs);
    b.writeUInt32LE(JDESC_MAGIC, 0);
    writeU64(b, 8, t.seq);
    b.writeUInt32LE(t.homes.length, 16);
    b.writeUInt32LE(d, 20);
    b.writeUInt32LE(i, 24);
    const part = t.homes.slice(i * cap, (i + 1) * cap);
    for (let j = 0; j < part.length; j++) writeU64(b, JDESC_HDR + j * 8, part[j]);
    b.writeUInt32LE(recordChecksum(b, 4), 4);
    body.push(b);
  }
  let crc = 0;
  for (const b of body) crc = crc32c(b, crc);
  for (const img of t.images) {
    if (img.length !== bs) throw new FormatError(`log image of ${img.length} bytes, block size ${bs}`);
    crc = crc32c(img, crc);
    body.push(img);
  }
  const c = Buffer.alloc(bs);
  c.writeUInt32LE(JCOMMIT_MAGIC, 0);
  writeU64(c, 8, t.seq);
  c.writeUInt32LE(t.homes.length, 16);
  c.writeUInt32LE(crc >>> 0, 20);
  writeU64(c, 24, Date.now());
  const data = t.dataImages ?? 0;
  if (!(Number.isSafeInteger(data) && data >= 0 && data <= t.homes.length)) throw new FormatError(`log: ${data} data images of ${t.homes.length}`);
  c.writeUInt32LE(data, 32);
  c.writeUInt32LE(recordChecksum(c, 4), 4);
  return { body, commit: c };
}

export type LogScan =
  | { state: 'empty' }                               // nothing that looks like a transaction
  | { state: 'torn'; seq: number; why: string }       // a transaction began but did not commit whole
  | { state: 'stale'; seq: number; why: string }      // whole, but not newer than the superblock's checkpoint (Journal.recover)
  | { state: 'committed'; tx: LogTx };

/**
 * The sequence a log area's first block claims, whatever the state of the
 * rest: what scanLog reports as the sequence of a committed or torn
 * transaction, read from one block (mount after a clean unmount needs only
 * this, to number the next transaction past everything in the log).
 * @param d0 the area's first block
 * @returns null when the block is no descriptor (an empty area); -1 when its sequence field is unreadable
 */
export function logSeq(d0: Buffer): number | null {
  return d0.readUInt32LE(0) === JDESC_MAGIC ? safeU64(d0, 8) : null;
}

/**
 * Read the log. `read(i)` returns log block i (0-based) or throws.
 * Never throws for damaged contents: that is what a torn log looks like.
 * @param homeOk validates a home block number (inside the metadata or data area)
 */
export function scanLog(bs: number, logBlocks: number, read: (i: number) => Buffer, homeOk: (b: number) => boolean): LogScan {
  const d0 = read(0);
  const seq = logSeq(d0);
  if (seq === null) return { state: 'empty' };
  if (d0.readUInt32LE(4) !== recordChecksum(d0, 4) || seq < 0) return { state: 'torn', seq, why: 'descriptor checksum mismatch' };
  if (seq > MAX_COUNTER) return { state: 'torn', seq, why: `sequence ${seq} beyond ${MAX_COUNTER}` };
  const n = d0.readUInt32LE(16), d = d0.readUInt32LE(20);
  const cap = descCapacity(bs);
  if (d !== Math.max(1, Math.ceil(n / cap)) || d + n + 1 > logBlocks) return { state: 'torn', seq, why: `descriptor claims ${n} images in ${d} blocks` };
  // The commit block first: without one, nothing of the images is read (a forged count costs nothing).
  const c = read(d + n);
  if (c.readUInt32LE(0) !== JCOMMIT_MAGIC || c.readUInt32LE(4) !== recordChecksum(c, 4)) return { state: 'torn', seq, why: 'no valid commit block' };
  if (safeU64(c, 8) !== seq || c.readUInt32LE(16) !== n) return { state: 'torn', seq, why: 'commit block of another transaction' };
  const payloadCrc = c.readUInt32LE(20);
  const dataImages = c.readUInt32LE(32);
  if (dataImages > n) return { state: 'torn', seq, why: `commit block claims ${dataImages} data images of ${n}` };
  const homes: number[] = [];
  let crc = 0;
  for (let i = 0; i < d; i++) {
    const b = i === 0 ? d0 : read(i);
    if (b.readUInt32LE(0) !== JDESC_MAGIC || b.readUInt32LE(4) !== recordChecksum(b, 4) || safeU64(b, 8) !== seq || b.readUInt32LE(24) !== i) {
      return { state: 'torn', seq, why: `descriptor block ${i} does not belong to transaction ${seq}` };
    }
    crc = crc32c(b, crc);
    const cnt = Math.min(cap, n - i * cap);
    for (let j = 0; j < cnt; j++) {
      const h = safeU64(b, JDESC_HDR + j * 8);
      if (!homeOk(h)) return { state: 'torn', seq, why: `image ${homes.length} aims at block ${h}, outside the region's metadata and data` };
      homes.push(h);
    }
  }
  const images: Buffer[] = [];
  for (let i = 0; i < n; i++) { const img = Buffer.from(read(d + i)); crc = crc32c(img, crc); images.push(img); }
  if (payloadCrc !== (crc >>> 0)) return { state: 'torn', seq, why: 'payload checksum mismatch' };
  return { state: 'committed', tx: { seq, homes, images, dataImages } };
}

function safeU64(b: Buffer, off: number): number {
  try { return readU64(b, off); } catch { return -1; }
}
