/**
 * @file A structure-aware editor of region images, for the hostile-image
 * tests: it decodes the superblock, inode slots, forks, record chains and
 * the journal with the real decoders, and writes every change back with the
 * real encoders, so checksums are recomputed and a forged value reaches the
 * checks behind them (a flipped bit only proves the CRC works).
 *
 * Blocks are read as a mount will see them: a block the log's committed
 * transaction holds is read from the log, and a change to it is made to the
 * log image too (the transaction is re-encoded with a fresh payload
 * checksum), so replay cannot undo an edit.
 */
import * as fs from 'node:fs';
import { decodeFork, encodeFork, type Fork } from '../../src/format/fork.js';
import { encodeLogTx, JDESC_MAGIC, scanLog, type LogTx } from '../../src/format/journal.js';
import {
  BITMAP_HDR, crc32c, decodeInode, decodeSuperblock, encodeBitmapBlock, encodeInode, encodeSuperblock, FEAT_INCOMPAT_LOG2, INLINE_FORK_MAX, INODE_SIZE, isFreeSlot,
  SB_SIZE, type InodeRecord, type Superblock,
} from '../../src/format/layout.js';
import {
  decodeIndexBlock, decodeRecordBlock, encodeIndexBlock, encodeRecordBlock, type DecodedRecords, type RecKind,
} from '../../src/format/records.js';

/** One record block of a chain, decoded, with the index block that lists it. */
export interface ChainBlock { block: number; index: number; recs: DecodedRecords }
/** One index block of a chain: where it is, its next pointer and its list (a root block: its index blocks). */
export interface ChainIndex { block: number; next: number; blocks: number[]; los?: number[] }

export class ImageEditor {
  readonly fd: number;
  readonly sb: Superblock;
  readonly bs: number;
  /** The log's newest committed transaction (null: none, or torn); with two log areas, the newer area's. */
  log: LogTx | null;
  /** First block of the log area `log` was found in (where close() writes it back). */
  private logStart: number;
  private logBlocks: number;
  private logDirty = false;

  /** @throws FormatError when the primary superblock does not decode */
  constructor(readonly path: string) {
    this.fd = fs.openSync(path, 'r+');
    const raw = Buffer.alloc(SB_SIZE);
    fs.readSync(this.fd, raw, 0, SB_SIZE, 0);
    this.sb = decodeSuperblock(raw);
    this.bs = this.sb.blockSize;
    const { journalStart, journalBlocks } = this.sb;
    const two = (this.sb.featuresIncompat & FEAT_INCOMPAT_LOG2) !== 0;
    this.logBlocks = two ? Math.floor(journalBlocks / 2) : journalBlocks;
    this.log = null; this.logStart = journalStart;
    for (const start of two ? [journalStart, journalStart + this.logBlocks] : [journalStart]) {
      const s = scanLog(this.bs, this.logBlocks, (i) => this.home(start + i), () => true);
      if (s.state === 'committed' && (!this.log || s.tx.seq > this.log.seq)) { this.log = s.tx; this.logStart = start; }
    }
  }

  /** A block as it is in the file. */
  home(b: number): Buffer {
    const buf = Buffer.alloc(this.bs);
    fs.readSync(this.fd, buf, 0, this.bs, b * this.bs);
    return buf;
  }

  /** A block as a mount sees it (the log's image when the log holds it). */
  read(b: number): Buffer {
    const i = this.log ? this.log.homes.indexOf(b) : -1;
    return i >= 0 ? Buffer.from(this.log!.images[i]) : this.home(b);
  }

  /** Write a block home, and into the log's image of it if there is one. */
  write(b: number, img: Buffer): void {
    fs.writeSync(this.fd, img, 0, this.bs, b * this.bs);
    const i = this.log ? this.log.homes.indexOf(b) : -1;
    if (i >= 0) { this.log!.images[i] = Buffer.from(img); this.logDirty = true; }
  }

  /** The log transaction was changed by the caller: write it again at close. */
  touchLog(): void { this.logDirty = true; }

  /** Re-encode the log (when changed) and close the file. */
  close(): void {
    if (this.log && this.logDirty) {
      const { body, commit } = encodeLogTx(this.bs, this.log);
      const all = Buffer.concat([...body, commit]);
      if (all.length <= this.logBlocks * this.bs) fs.writeSync(this.fd, all, 0, all.length, this.logStart * this.bs);
    } else if (this.log === null && this.logDirty) {
      fs.writeSync(this.fd, Buffer.alloc(this.bs), 0, this.bs, this.logStart * this.bs);
    }
    fs.closeSync(this.fd);
  }

  /** The superblock as a mount sees it after replay (the log's image of block 0, else home). */
  superblock(): Superblock { return decodeSuperblock(this.read(0)); }

  /** Write a superblock (checksum recomputed) into block 0, home and log. */
  writeSuperblock(sb: Superblock): void {
    const blk = this.read(0);
    encodeSuperblock(sb).copy(blk, 0);
    this.write(0, blk);
  }

  private slot(ino: number): { block: number; off: number } {
    return { block: this.sb.itableStart + Math.floor((ino - 1) * INODE_SIZE / this.bs), off: ((ino - 1) * INODE_SIZE) % this.bs };
  }

  /** Inode numbers of used slots below the high-water mark (as the mount sees them). */
  usedInos(): number[] {
    const out: number[] = [];
    const hwm = this.superblock().inodeHwm;
    for (let ino = 1; ino <= hwm; ino++) {
      const { block, off } = this.slot(ino);
      if (!isFreeSlot(this.read(block).subarray(off, off + INODE_SIZE))) out.push(ino);
    }
    return out;
  }

  /** Decode inode `ino` and its fork, or null when the slot or fork does not decode. */
  inode(ino: number): { rec: InodeRecord; fork: Fork } | null {
    const { block, off } = this.slot(ino);
    try {
      const { rec, inlineFork } = decodeInode(this.read(block).subarray(off, off + INODE_SIZE), ino);
      let buf = inlineFork;
      if (!buf) {
        if (rec.forkBlocks > 64) return null;
        const parts: Buffer[] = [];
        for (let i = 0; i < rec.forkBlocks; i++) parts.push(this.read(rec.forkBlock + i));
        buf = Buffer.concat(parts).subarray(0, rec.forkLen);
      }
      return { rec, fork: decodeFork(buf, `inode ${ino}`) };
    } catch { return null; }
  }

  /**
   * Write an inode record as given (only its checksum recomputed) into slot
   * `slotIno` (default: the record's own number, which a forgery may change);
   * inlineFork for an inline fork.
   */
  writeInodeRaw(rec: InodeRecord, inlineFork: Buffer | null, slotIno = rec.ino): void {
    const { block, off } = this.slot(slotIno);
    const img = this.read(block);
    encodeInode(rec, inlineFork).copy(img, off);
    this.write(block, img);
  }

  /**
   * Write an inode with a (changed) fork: encoded, its length and CRC set;
   * inline when it fits, else into the inode's fork extent (grown in place
   * past its end when it needs more blocks, which a forgery may do).
   */
  writeInode(rec: InodeRecord, fork: Fork): void {
    const buf = encodeFork(fork);
    rec.forkLen = buf.length;
    rec.forkCrc = crc32c(buf) >>> 0;
    if (buf.length <= INLINE_FORK_MAX && rec.forkBlock === 0) { this.writeInodeRaw(rec, buf); return; }
    // A new fork extent goes at the end of the data area, clear of what mkfs put at its start.
    if (rec.forkBlock === 0) rec.forkBlock = this.sb.totalBlocks - 2 - Math.ceil(buf.length / this.bs);
    rec.forkBlocks = Math.ceil(buf.length / this.bs);
    for (let i = 0; i < rec.forkBlocks; i++) {
      const img = Buffer.alloc(this.bs);
      buf.copy(img, 0, i * this.bs, Math.min(buf.length, (i + 1) * this.bs));
      this.write(rec.forkBlock + i, img);
    }
    this.writeInodeRaw(rec, null);
  }

  /** A hash index's root chain from `first` (owner `ino`), empty when `first` is no root block; stops quietly at damage. */
  roots(first: number, ino: number): ChainIndex[] {
    const roots: ChainIndex[] = [];
    const seen = new Set<number>();
    for (let next = first; next && !seen.has(next) && next < this.sb.totalBlocks && roots.length < 64;) {
      seen.add(next);
      try {
        const rt = decodeIndexBlock(this.read(next), ino, 'edit');
        if (!rt.root) break;
        roots.push({ block: next, next: rt.next, blocks: rt.blocks, los: rt.los });
        next = rt.next;
      } catch { break; }
    }
    return roots;
  }

  /**
   * Read the chain of index and record blocks from `first` (owner `ino`;
   * a hash index's root: from its first index block, the roots in `roots`);
   * stops quietly at damage.
   */
  chain(first: number, ino: number, kind: RecKind): { index: ChainIndex[]; blocks: ChainBlock[]; roots: ChainIndex[] } {
    const index: ChainIndex[] = [];
    const blocks: ChainBlock[] = [];
    const seen = new Set<number>();
    const roots = this.roots(first, ino);
    if (roots.length) first = roots[0].blocks[0] ?? 0;
    for (let next = first; next && !seen.has(next) && next < this.sb.totalBlocks && index.length < 64;) {
      seen.add(next);
      try {
        const ix = decodeIndexBlock(this.read(next), ino, 'edit');
        index.push({ block: next, next: ix.next, blocks: ix.blocks, ...(ix.los ? { los: ix.los } : {}) });
        for (const b of ix.blocks) {
          if (b >= this.sb.totalBlocks) continue;
          try { blocks.push({ block: b, index: next, recs: decodeRecordBlock(this.read(b), ino, kind, 'edit') }); } catch { /* skip */ }
        }
        next = ix.next;
      } catch { break; }
    }
    return { index, blocks, roots };
  }

  /** Write a record block of `ino`'s `kind` holding the given encoded records. */
  writeRecordBlock(block: number, ino: number, kind: RecKind, recs: Buffer[]): void {
    this.write(block, encodeRecordBlock(this.bs, ino, kind, recs));
  }

  /** Write an index block of `ino` listing `blocks` (with `los`: a directory's hash index). */
  writeIndexBlock(block: number, ino: number, next: number, blocks: number[], los: number[] | null = null): void {
    this.write(block, encodeIndexBlock(this.bs, ino, next, blocks, los));
  }

  /**
   * Turn directory `ino`'s hash index (chain from `first`) into an unordered
   * chain as a pmemfs before FEAT_INCOMPAT_DIRHASH wrote them: the same
   * blocks in the same order, without the lowest hashes.
   */
  unhash(first: number, ino: number): void {
    for (const ix of this.chain(this.unroot(ino) ?? first, ino, 1).index) this.writeIndexBlock(ix.block, ino, ix.next, ix.blocks);
  }

  /**
   * Take directory `ino`'s hash index back to what a pmemfs before
   * FEAT_INCOMPAT_DIRROOT wrote: the slot points to the first index block,
   * the root blocks are free in the bitmap (its first block: small images).
   * @returns the first index block; null when the index has no root
   */
  unroot(ino: number): number | null {
    const x = this.inode(ino)!;
    const roots = this.roots(x.rec.recIndex, ino);
    if (!roots.length) return null;
    x.rec.recIndex = roots[0].blocks[0];
    this.writeInodeRaw(x.rec, x.rec.forkBlock ? null : encodeFork(x.fork));
    const bits = Buffer.from(this.read(this.sb.bitmapStart).subarray(BITMAP_HDR));
    for (const { block } of roots) {
      if (block >> 3 >= bits.length) throw new Error(`root block ${block} is past the first bitmap block`);
      bits[block >> 3] &= ~(1 << (block & 7));
    }
    this.write(this.sb.bitmapStart, encodeBitmapBlock(this.bs, 0, bits));
    return x.rec.recIndex;
  }

  /** Whether the log area of `log` starts with a descriptor (a transaction was logged at all). */
  logHasDescriptor(): boolean { return this.home(this.logStart).readUInt32LE(0) === JDESC_MAGIC; }
}
