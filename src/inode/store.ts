/**
 * @file The inode store: inode slots, forks and record blocks, between the
 * in-core inodes and the journal's block images. Inodes are read from
 * their slots on demand (`get`, FEAT_INCOMPAT_ICACHE: mount loads the root
 * and the in-core list of orphans and sealed files, `loadLazy`) and leave
 * core when PmemFs evicts them; fsck, `-o check` and an older region load
 * them all (`loadAll`). An operation changes them in core, and at its end
 * (`finish`) the store
 * encodes what changed into block images of the running transaction:
 *
 *  - the inode slot (512 bytes inside an inode-table block);
 *  - changed directory entries / extent records: one record block each
 *    (block-based records, src/inode/records.ts), or the fork when they
 *    still fit inline in the slot;
 *  - the fork (xattrs, symlink target, inline records) when it changed:
 *    inline in the slot, or copied to a new extent with the old one freed
 *    (busy until the transaction is durable);
 *  - the changed reference-count records (shared extents, src/refcount/),
 *    in record blocks owned by the region (owner 0) under `refcountRoot`;
 *  - the superblock (inode high-water mark, generation, refcount root) and
 *    the changed free-space bitmap blocks.
 *
 * A failed operation is undone by restoring the block images (the journal)
 * and reloading the inodes it touched from them (`rollback`).
 */
import { Allocator, type BlockRun } from '../alloc/allocator.js';
import { decodeFork, emptyFork, encodeFork, type ExtentRec, forkSize, type Fork } from '../format/fork.js';
import {
  crc32c, dataEnd, decodeInode, FEAT_INCOMPAT_DIRHASH, FEAT_INCOMPAT_DIRROOT, FEAT_INCOMPAT_ICACHE, FEAT_INCOMPAT_REFCOUNT, encodeInode, encodeSuperblock, FormatError, IFLAG_ORPHAN, IFLAG_SEALED,
  INLINE_FORK_MAX, INODE_SIZE, isFreeSlot, ROOT_INO, SB_SIZE, slotFileType, type InodeRecord, type Superblock,
} from '../format/layout.js';
import {
  type DecodedIndex, decodeIndexBlock, decodeRecordBlock, dirHashSeed, direntHash, encodeDirentRec, encodeExtentRec, encodeIlistRec, encodeIndexBlock,
  encodeRecordBlock, encodeRefcountRec, findDirentRec, forEachDirentRec, recBlockCapacity, recordBlockUsed, REC_KIND_DIRENT, REC_KIND_EXTENT, REC_KIND_ILIST, REC_KIND_REFCOUNT, REFCOUNT_OWNER, RIDX_HASHED, RIDX_ROOT,
  type RecKind, type RefcountRec,
} from '../format/records.js';
import { RefcountIndex } from '../refcount/refcount.js';
import type { Journal } from '../journal/journal.js';
import type { Region } from '../region/region.js';
import { FsError } from '../errors.js';
import { blockCount, regionBlock, regionOff, type Timespec } from '../types.js';
import { type DeferredReader, type DeferredRecords, type DirIndex, Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, TrackedMap } from './inode.js';
import { type IndexBlock, type RecBlock, recordBytes, RecordSet, type RecTouched } from './records.js';

/** A directory entry in a listing by hash: name, inode number, name hash. */
export type HashLeafEntry = [name: string, ino: number, hash: number];
/** One leaf of a directory's hash index as a listing reads it (InodeStore.hashLeaf). */
export interface HashLeaf { lo: number; next: number | null; entries: HashLeafEntry[] }

/** What one operation did to the store, for finish and rollback. */
export interface StoreOp {
  dirty: Set<Inode>;
  dropped: Set<Inode>;
  created: Set<Inode>;
  slotOps: Array<['pop' | 'push', number]>;
  sb: { inodeHwm: number; generation: number; refcountRoot: number; featuresIncompat: number; inodesUsed: number; ilistRoot: number };
  sbDirty: boolean;
  /** Inode numbers this operation put on or took off the in-core list (ilist). */
  ilistChanged: Set<number>;
}

/** Inode flags that keep an inode on the in-core list (loaded at mount, never evicted). */
const ILIST_FLAGS = IFLAG_ORPHAN | IFLAG_SEALED;
/** Inode-table blocks one free-slot search reads at most (allocIno). */
const SLOT_SCAN_BLOCKS = 64;

/** The encoding of an empty fork (encodeFork(emptyFork())), shared by every inode whose fork it is. */
const EMPTY_INLINE_FORK = encodeFork(emptyFork());
const isEmptyFork = (b: Buffer): boolean => b.length === EMPTY_INLINE_FORK.length && b.equals(EMPTY_INLINE_FORK);
const EMPTY_FORK_CRC = crc32c(EMPTY_INLINE_FORK) >>> 0;
const NO_DIRENTS: ReadonlyMap<string, number> = new Map();
/** The timestamps of an inode being loaded, until decoding sets its own. */
const LOADING: Timespec = Object.freeze({ sec: 0, nsec: 0 });
/** What an empty fork decodes to, shared (decode only reads it). */
const EMPTY_FORK: Fork = Object.freeze({ extents: Object.freeze([]) as unknown as ExtentRec[], xattrs: new Map(), dirents: null, symlink: null });

/** Most index blocks one inode may chain (bounds memory and time on hostile images). */
const MAX_INDEX_CHAIN = 1 << 16;
/** Leaves a deferred directory's kept record set may hold read (syncDeferred): about 17 MiB with their keys at 160 names a leaf. */
const PARTIAL_LEAVES = 1024;
/** Bytes of the smallest record (a directory entry with a one-byte name). */
const MIN_REC_BYTES = 10;

/**
 * A directory leaf's records as RecordSet.adoptUnread and loadLeaf list them
 * when a block's map is first needed: each entry's name, byte offset and
 * length in `img` (already checked: forEachDirentRec's walk).
 */
function direntsOf(img: Buffer, ino: number, at: string): NonNullable<RecBlock['unread']> {
  return (add) => { forEachDirentRec(img, ino, at, (name, _child, off, len) => { add(name, off, len); }); };
}

/** Position of the last element of ascending `a` (non-empty, a[0] <= h) at or below h. */
function lastAtOrBelow(a: readonly number[], h: number): number {
  let lo = 0, hi = a.length - 1;
  while (lo < hi) { const m = (lo + hi + 1) >> 1; if (a[m] <= h) lo = m; else hi = m - 1; }
  return lo;
}

/**
 * A fork's sections must fit the inode's type: extents only on a regular
 * file, entries only on a directory, a target exactly on a symlink.
 * @throws FormatError naming the misfit
 */
function checkForkKind(rec: InodeRecord, fork: Fork): void {
  const type = rec.mode & S_IFMT;
  if (fork.extents.length && type !== S_IFREG) throw new FormatError(`inode ${rec.ino}: extents on a file that is not regular`);
  if ((type === S_IFLNK) !== (fork.symlink !== null)) throw new FormatError(`inode ${rec.ino}: ${fork.symlink ? 'a symlink target on a non-symlink' : 'a symlink without a target'}`);
  if (fork.dirents && type !== S_IFDIR) throw new FormatError(`inode ${rec.ino}: directory entries on a non-directory`);
}

export class InodeStore {
  readonly sb: Superblock;
  readonly region: Region;
  readonly alloc: Allocator;
  readonly journal: Journal;
  readonly inodes = new Map<number, Inode>();
  /** Owners of shared region blocks (reflink); empty on a region that never shared a block. */
  readonly refcount = new RefcountIndex();
  /** Where the refcount records live on media (null until the first one is written). */
  private refSet: RecordSet | null = null;
  /** Set by PmemFs: an inode was read on demand (an eviction candidate). */
  onLoad: ((ino: number) => void) | null = null;
  /** Called when a directory's block-based entries are read, or changed by an operation (PmemFs's idle sweep watches large ones). */
  onEntries: ((dir: Inode) => void) | null = null;
  /** Set by the FUSE transport: whether the kernel still holds this inode number. */
  referenced: ((ino: number) => boolean) | null = null;
  private freeSlots: number[] = [];   // inode numbers below the high-water mark, unused
  /**
   * Inodes are read on demand (FEAT_INCOMPAT_ICACHE, after loadLazy): slots
   * at or above `scanNext` were not yet searched for free ones (allocIno).
   */
  private lazy = false;
  private scanNext = 1;
  /** The in-core list (ILIST_FLAGS) as on media, and as a set of inode numbers. */
  private ilistSet: RecordSet | null = null;
  readonly ilist = new Set<number>();
  /** Inodes that failed to decode when read on demand (statfs and the log name them; fsck repairs). */
  readonly damaged = new Map<number, string>();
  private op: StoreOp | null = null;

  /** How a directory's deferred entries are read: all of them, or one name (Inode.entry). */
  private readonly deferredReader: DeferredReader = {
    read: (dir, at) => this.readDeferred(dir, at),
    probe: (dir, at, name) => this.probeDeferred(dir, at, name),
    hashed: (dir, at) => {
      try {
        return this.deferredHashed(dir.ino, at);
      } catch (e) {
        throw this.damage(dir.ino, e, 'read directory');
      }
    },
  };

  /** The region's seed of directory name hashes (dirHashSeed). */
  private readonly hashSeed: number;
  /** A name's hash in a directory's hash index (direntHash with the region's seed). */
  readonly nameHash = (name: string): number => direntHash(name, this.hashSeed);
  /**
   * Entries a directory hash index's index and root blocks take before
   * they split (RecordSet.fanout); undefined: the format's capacity. Set
   * lower only by tests, to split the index and its root in a few hundred
   * names.
   */
  dirIndexFanout: number | undefined = undefined;
  /** A new record set for a directory's hash index (owner `ino`). */
  private hashedSet(ino: number): RecordSet { return new RecordSet(REC_KIND_DIRENT, ino, this.bs, this.nameHash, this.dirIndexFanout); }

  constructor(sb: Superblock, region: Region, alloc: Allocator, journal: Journal) {
    this.sb = sb; this.region = region; this.alloc = alloc; this.journal = journal;
    this.hashSeed = dirHashSeed(sb.uuid);
  }

  get bs(): number { return this.sb.blockSize; }
  private slotBlock(ino: number): number { return this.sb.itableStart + Math.floor((ino - 1) * INODE_SIZE / this.bs); }
  private slotOffInBlock(ino: number): number { return ((ino - 1) * INODE_SIZE) % this.bs; }

  /** Whether [start, start+len) lies inside the data area. */
  inData(start: number, len: number): boolean {
    return Number.isSafeInteger(start) && Number.isSafeInteger(len) && len > 0 && start >= this.sb.dataStart && start + len <= dataEnd(this.sb);
  }

  /** Inode slots in use: the superblock's count (FEAT_INCOMPAT_ICACHE), or the loaded inodes on an older region. */
  get inodesInUse(): number {
    return this.sb.featuresIncompat & FEAT_INCOMPAT_ICACHE ? this.sb.inodesUsed : this.inodes.size;
  }

  /** Whether inodes are read on demand (FEAT_INCOMPAT_ICACHE and loadLazy). */
  get onDemand(): boolean { return this.lazy; }

  /**
   * Mount without the full scan (FEAT_INCOMPAT_ICACHE): load the in-core
   * list and the root; every other inode is read when first named (get).
   * Reads O(orphans + sealed files) blocks, whatever the file count.
   * @returns the listed inodes that do not decode, with why
   * @throws FormatError for a damaged list chain
   */
  loadLazy(): Array<{ ino: number; message: string }> {
    this.lazy = true;
    this.scanNext = 2;
    const problems: Array<{ ino: number; message: string }> = [];
    for (const ino of [ROOT_INO, ...this.ilist]) {
      try {
        if (!this.loadSlot(ino)) problems.push({ ino, message: `inode ${ino}: ${ino === ROOT_INO ? 'the root' : 'listed in the in-core list'} but its slot is free` });
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        problems.push({ ino, message: e.message });
      }
    }
    return problems;
  }

  /**
   * The in-core inode `ino`, read from its slot on first use when inodes
   * are read on demand (the running transaction's view of the slot).
   * @returns undefined for a free slot or a number outside 1..inodeHwm
   * @throws FsError EIO for a slot that does not decode (logged once in
   *   `damaged`; fsck.pmemfs repairs it), as XFS's read verifiers return
   *   EFSCORRUPTED
   */
  get(ino: number): Inode | undefined {
    const hit = this.inodes.get(ino);
    if (hit || !this.lazy) return hit;
    if (!Number.isSafeInteger(ino) || ino < 1 || ino > this.sb.inodeHwm) return undefined;
    try {
      return this.loadSlot(ino) ?? undefined;
    } catch (e) {
      throw this.damage(ino, e, 'read inode');
    }
  }

  /**
   * What a read of inode `ino` that met damaged metadata throws: FsError EIO
   * with the reason and the repair, the reason noted in `damaged` (the
   * first one stays; `.pmemfs/stats` counts them). Anything but a
   * FormatError is returned as it is (a bug, not damage).
   */
  private damage(ino: number, e: unknown, op: string): unknown {
    if (!(e instanceof FormatError)) return e;
    if (!this.damaged.has(ino)) this.damaged.set(ino, e.message);
    return new FsError('EIO', op, undefined, `${e.message} (unmount and run fsck.pmemfs -y)`);
  }

  /**
   * The file type (mode & S_IFMT) of `ino` without loading it, for a plain
   * directory listing's d_type (ext4 keeps it in the entry; here it is in
   * the slot): the in-core inode's, else its slot's when the slot checks
   * (slotFileType), else 0 (DT_UNKNOWN: the caller stats it). Children
   * numbered in a row share table blocks, read once (tableBlock).
   */
  peekType(ino: number): number {
    const hit = this.inodes.get(ino);
    if (hit) return hit.mode & S_IFMT;
    if (!this.lazy || !Number.isSafeInteger(ino) || ino < 1 || ino > this.sb.inodeHwm) return 0;
    return slotFileType(this.tableBlock(this.slotBlock(ino)).subarray(this.slotOffInBlock(ino)), ino);
  }

  /** The last inode-table block read from the region, and the journal sequence it was read at. */
  private lastTable: { block: number; seq: number; buf: Buffer } | null = null;

  /**
   * An inode-table block as the running transaction sees it (Journal.readScan).
   * The last one read from the region is kept until the next commit moves
   * the journal's sequence (only a commit writes table blocks home): a listing
   * and the lookups after it read the 8-128 slots of one block in a row.
   * Callers only read the buffer, and only until the next call.
   */
  private tableBlock(block: number): Buffer {
    const j = this.journal, t = this.lastTable;
    if (j.hasImage(block)) return j.readScan(block);
    if (t && t.block === block && t.seq === j.seq) return t.buf;
    // One buffer for every table block read (valid until the next read): a listing by hash names its
    // children in no order of their slots, and a Buffer per child made a `find` of a million entries
    // leave hundreds of MiB of freed buffers in the daemon's RSS.
    const buf = j.readScanInto(block, (this.tableScratch ??= Buffer.allocUnsafe(this.bs)));
    this.lastTable = buf === this.tableScratch ? { block, seq: j.seq, buf } : null;
    return buf;
  }
  private tableScratch: Buffer | null = null;

  /** Read one slot into the cache; null when the slot is free. @throws FormatError */
  private loadSlot(ino: number): Inode | null {
    // pread, not the mapping: a find over a large tree leaves the table in the host's page cache, not in our RSS.
    const blk = this.tableBlock(this.slotBlock(ino));
    // A copy of the slot: the table block is a buffer the next read reuses.
    const raw = Buffer.from(blk.subarray(this.slotOffInBlock(ino), this.slotOffInBlock(ino) + INODE_SIZE));
    if (isFreeSlot(raw)) return null;
    const inode = this.decode(raw, ino, new Inode(ino, 0, 0, 0, LOADING));
    // What the full scan's cross-check would catch first: data the bitmap calls free.
    for (const r of InodeStore.usedRuns(inode)) {
      if (!this.alloc.isAllocated(r.start, r.len)) throw new FormatError(`inode ${ino}: blocks [${r.start}, +${r.len}) are free in the free-space bitmap`);
    }
    if (((inode.flags & ILIST_FLAGS) !== 0) !== this.ilist.has(ino) && this.sb.featuresIncompat & FEAT_INCOMPAT_ICACHE) {
      throw new FormatError(`inode ${ino}: flags 0x${inode.flags.toString(16)} disagree with the in-core list`);
    }
    this.inodes.set(ino, inode);
    this.onLoad?.(ino);
    return inode;
  }

  /**
   * Drop a clean in-core inode (the cache is over its limit and nothing
   * holds it: the caller checked kernel references, handles, pins and
   * leases). Never inside an operation, never an inode on the in-core list.
   * @returns whether it was dropped
   */
  evict(inode: Inode): boolean {
    if (!this.lazy || this.op || this.ilist.has(inode.ino) || inode.ino === ROOT_INO) return false;
    if (this.inodes.get(inode.ino) !== inode || inode.bmap.hasChanges || inode.forkDirty) return false;
    this.inodes.delete(inode.ino);
    return true;
  }

  /**
   * Load every used slot below the high-water mark (as the running
   * transaction sees it: after a dry-run replay, fsck -n sees the replayed state).
   * @returns the inodes that do not decode, with why (they are not loaded)
   */
  loadAll(onProgress?: (done: number, total: number) => void): Array<{ ino: number; message: string }> {
    const problems: Array<{ ino: number; message: string }> = [];
    const n = this.sb.inodeHwm;
    const perBlock = this.bs / INODE_SIZE;
    this.lazy = false;
    this.freeSlots = [];
    for (let first = 1; first <= n; first += perBlock) {
      const blk = this.journal.readScan(this.slotBlock(first));
      for (let ino = first; ino < first + perBlock && ino <= n; ino++) {
        const raw = blk.subarray(this.slotOffInBlock(ino), this.slotOffInBlock(ino) + INODE_SIZE);
        if (isFreeSlot(raw)) { if (ino > 1) this.freeSlots.push(ino); continue; }
        try {
          this.inodes.set(ino, this.decode(raw, ino, new Inode(ino, 0, 0, 0, LOADING)));
        } catch (e) {
          if (!(e instanceof FormatError)) throw e;
          problems.push({ ino, message: e.message });
        }
      }
      if (onProgress && (first - 1) % (perBlock * 4096) === 0) onProgress(first - 1, n);
    }
    this.freeSlots.reverse(); // pop() hands out the lowest number first
    return problems;
  }

  /** Decode slot `raw` of inode `ino` (and its fork and records) into `inode`. @throws FormatError */
  private decode(raw: Buffer, ino: number, inode: Inode): Inode {
    const { rec, inlineFork: forkView } = decodeInode(raw, ino);
    // The inode keeps its inline fork (attribute changes re-encode the slot without the fork); an empty
    // fork (most files of a large tree) is one shared buffer, which nothing writes into.
    const inlineFork = forkView === null ? null : isEmptyFork(forkView) ? EMPTY_INLINE_FORK : Buffer.from(forkView);
    let forkBuf = inlineFork;
    if (!forkBuf) {
      // forkLen is bounded by decodeInode; the extent must be exactly what it needs, so a
      // forged forkBlocks cannot make mount read more than MAX_FORK_BYTES before the CRC check.
      if (rec.forkBlocks !== Math.ceil(rec.forkLen / this.bs)) {
        throw new FormatError(`inode ${ino}: fork extent of ${rec.forkBlocks} blocks for a ${rec.forkLen}-byte fork`);
      }
      if (!this.inData(rec.forkBlock, rec.forkBlocks)) {
        throw new FormatError(`inode ${ino}: fork extent [${rec.forkBlock}, +${rec.forkBlocks}) outside the data area`);
      }
      const parts: Buffer[] = [];
      for (let i = 0; i < rec.forkBlocks; i++) parts.push(this.journal.read(rec.forkBlock + i));
      forkBuf = Buffer.concat(parts).subarray(0, rec.forkLen);
    }
    const empty = forkBuf === EMPTY_INLINE_FORK;
    if ((empty ? EMPTY_FORK_CRC : crc32c(forkBuf) >>> 0) !== rec.forkCrc) throw new FormatError(`inode ${ino}: fork checksum mismatch`);
    const fork = empty ? EMPTY_FORK : decodeFork(forkBuf, `inode ${ino}`);
    checkForkKind(rec, fork);
    inode.mode = rec.mode; inode.uid = rec.uid; inode.gid = rec.gid;
    inode.nlink = rec.nlink; inode.size = rec.size;
    inode.atime = rec.atime; inode.mtime = rec.mtime; inode.ctime = rec.ctime; inode.btime = rec.btime;
    inode.flags = rec.flags; inode.generation = rec.generation;
    // A directory's rdev field holds its parent (FEAT_INCOMPAT_ICACHE; 0 on an older region).
    if ((rec.mode & S_IFMT) === S_IFDIR) {
      // Checked where it is used (PmemFs.parentOf) and by fsck, so a wrong parent never costs the directory.
      inode.parent = rec.rdev; inode.rdev = 0;
    } else {
      inode.rdev = rec.rdev;
    }
    inode.forkBlock = rec.forkBlock; inode.forkBlocks = rec.forkBlocks;
    inode.loadXattrs(fork.xattrs);
    inode.symlink = fork.symlink;
    inode.forkDirty = false;
    inode.forkLen = rec.forkLen; inode.forkCrc = rec.forkCrc; inode.inlineFork = inlineFork;
    inode.records = null;
    const kind = this.kindOf(inode);
    let extents = fork.extents;
    const dirents: ReadonlyMap<string, number> = fork.dirents ?? NO_DIRENTS;
    let recordMap: TrackedMap<number> | null = null;
    if (rec.recIndex && kind === REC_KIND_DIRENT && this.lazy) {
      inode.bmap.reset([]);
      this.checkRecordCounts(ino, rec);
      inode.deferRecords(rec.recIndex, rec.recBlocks, rec.recCount, this.deferredReader);
      return inode;
    }
    if (rec.recIndex) {
      if (!kind) throw new FormatError(`inode ${ino}: records on an inode that cannot have them`);
      const loaded = this.loadRecords(inode, kind, rec);
      extents = loaded.extents; recordMap = loaded.dirents;
    }
    if (kind === REC_KIND_EXTENT && extents.length) {
      try { inode.bmap.reset(extents); } catch (e) { throw new FormatError(`inode ${ino}: ${(e as Error).message}`); }
    } else if (inode.bmap.count) {
      inode.bmap.reset([]);
    } else {
      inode.bmap.clearChanges();
    }
    if (inode.bmap.count) for (const e of inode.bmap.extents) {
      if (!this.inData(e.regionBlock, e.len)) throw new FormatError(`inode ${ino}: extent [${e.regionBlock}, +${e.len}) outside the data area`);
      if (e.fileBlock + e.len > 2 ** 52 / 4096) throw new FormatError(`inode ${ino}: extent at file block ${e.fileBlock} beyond the maximum file size`);
    }
    if (inode.isDir) {
      inode.dirents = recordMap ?? this.entryMap(ino, dirents);
    } else {
      inode.dirents = null;
      if (dirents.size) throw new FormatError(`inode ${ino}: directory entries on a non-directory`);
    }
    return inode;
  }

  /** A directory's decoded entries (its fork's) as its in-core map. @throws FormatError as loadEntry */
  private entryMap(ino: number, dirents: Iterable<[string, number]>): TrackedMap<number> {
    const map = new TrackedMap<number>();
    for (const [name, child] of dirents) this.loadEntry(map, ino, name, child);
    return map;
  }

  /** Add one decoded entry of directory `ino` to its map. @throws FormatError for an inode number out of range or a name twice */
  private loadEntry(map: TrackedMap<number>, ino: number, name: string, child: number): void {
    this.checkEntryIno(ino, name, child);
    const n = map.size;
    map.loadOne(name, child);
    if (map.size === n) throw new FormatError(`directory ${ino}: entry '${name}' appears twice`);   // the map is dropped with the error
  }

  /** @throws FormatError when directory `dir`'s entry `name` names an inode number outside the table */
  private checkEntryIno(dir: number, name: string, child: number): void {
    if (!(child >= 1 && child <= this.sb.inodeCount)) throw new FormatError(`directory ${dir}: entry '${name}' names inode ${child}, outside 1..${this.sb.inodeCount}`);
  }

  /** @throws FormatError when inode `ino`'s record block `b` is free in the free-space bitmap (a forged chain) */
  private checkRecordBlockInUse(ino: number, b: number): void {
    if (!this.alloc.isAllocated(regionBlock(b), blockCount(1))) throw new FormatError(`inode ${ino}: record block ${b} is free in the free-space bitmap`);
  }

  /**
   * Read a deferred directory's entries (Inode.deferRecords) from its record
   * chain, as the running transaction sees it, and check its blocks against
   * the free-space bitmap as loadSlot checks the slot's.
   * @throws FsError EIO when they do not decode (noted in `damaged`, as get)
   */
  private readDeferred(dir: Inode, p: DeferredRecords): void {
    try {
      const { set, dirents } = this.readRecordChain(dir.ino, REC_KIND_DIRENT, p);
      const map = dirents!;
      for (const b of set.allBlocks()) this.checkRecordBlockInUse(dir.ino, b);
      dir.records = set;
      dir.dirents = map;
      this.onEntries?.(dir);
    } catch (e) {
      throw this.damage(dir.ino, e, 'read directory');
    }
  }

  /**
   * One name among a deferred directory's entries, without reading them into
   * core (DeferredReader.probe, Inode.entry): the record chain is walked as
   * readChain walks it (bounded, loop-proof, every block inside the data
   * area and allocated), and each record block is checked as the full read
   * checks it — header, checksum, record bounds; not the names' validity,
   * which takes a string per record — while its names are compared as bytes
   * (findDirentRec). Blocks are read with pread, as the running transaction
   * sees them, and nothing of them is kept.
   * @returns the entry's inode number; null when no entry has the name;
   *   undefined when the chain or a block is damaged (the caller reads the
   *   whole directory, which reports it as EIO and notes it in `damaged`)
   */
  private probeDeferred(dir: Inode, p: DeferredRecords, name: string): number | null | undefined {
    const want = Buffer.from(name, 'utf8');
    if (want.length === 0 || want.length > 255) return null;        // a record's name length is one byte, never 0
    let found: number | null = null;
    try {
      if (this.deferredHashed(dir.ino, p)) {
        // A hash index: the one leaf whose range holds the name's hash.
        const { block: b } = this.deferredLeaf(dir.ino, p, direntHash(want, this.hashSeed));
        const img = this.journal.readScanInto(b, (this.probeScratch ??= Buffer.allocUnsafe(this.bs)));
        const child = findDirentRec(img, dir.ino, `inode ${dir.ino} block ${b}`, want);
        if (child !== null) this.checkEntryIno(dir.ino, name, child);
        return child;
      }
      this.readChain(null, dir.ino, p.recIndex, `inode ${dir.ino}`, (b, img, at) => {
        this.checkRecordBlockInUse(dir.ino, b);
        const child = findDirentRec(img, dir.ino, at, want);
        if (child === null) return false;
        this.checkEntryIno(dir.ino, name, child);
        found = child;
        return true;
      }, p.recBlocks, false);
    } catch (e) {
      if (e instanceof FormatError) return undefined;
      throw e;
    }
    return found;
  }

  /** A buffer of one block for a probe's leaf (never kept past the probe). */
  private probeScratch: Buffer | null = null;

  /**
   * A deferred directory's hash index, read for its probes (kept in
   * DeferredRecords until the directory is read into core). A rooted one
   * (FEAT_INCOMPAT_DIRROOT): its root blocks only, the index blocks' leaves
   * read when a probe needs them (dirIndexLeaves); one from before the
   * feature: every index block, checked as the full read checks them (chain
   * bounded and loop-free, blocks in the data area and in use, hashes
   * ascending from 0, no more leaves than the slot says).
   * @returns null for an unordered chain (a directory from before FEAT_INCOMPAT_DIRHASH)
   * @throws FormatError for a damaged index
   */
  private readDirIndex(ino: number, p: DeferredRecords): DirIndex | null {
    const where = `inode ${ino}`;
    if (!this.hashedChain(REC_KIND_DIRENT, p.recIndex, where)) return null;
    const rooted = this.readRoots(ino, p.recIndex, where);
    if (rooted) {
      for (const b of [...rooted.roots, ...rooted.ixBlocks]) this.checkRecordBlockInUse(ino, b);
      if (rooted.ixBlocks.length > p.recBlocks) throw new FormatError(`${where}: hash index has ${rooted.ixBlocks.length} index blocks for the ${p.recBlocks} record blocks the inode says`);
      return { ...rooted, leaves: rooted.ixBlocks.map(() => null) };
    }
    const out: DirIndex = { roots: [], rootCounts: [], ixBlocks: [], ixLos: [], leaves: [] };
    let leaves = 0;
    for (const [ib, ix] of this.indexChain(ino, p.recIndex, where, () => p.recBlocks, true)) {
      this.checkRecordBlockInUse(ino, ib);
      for (const b of ix.blocks) this.checkRecordBlockInUse(ino, b);
      // Probes search the index blocks by their first hash: an empty one (never written: a block emptied goes) has none.
      if (ix.blocks.length === 0) throw new FormatError(`${where}: hash index block ${ib} lists no record block`);
      out.ixBlocks.push(ib); out.ixLos.push(ix.los![0]); out.leaves.push({ blocks: ix.blocks, los: ix.los! });
      leaves += ix.blocks.length;
    }
    if (leaves !== p.recBlocks) throw new FormatError(`${where}: hash index lists ${leaves} record blocks, the inode says ${p.recBlocks}`);
    return out;
  }

  /**
   * The root blocks of a rooted hash index from block `first` (null when
   * `first` is not a root block: an index from before FEAT_INCOMPAT_DIRROOT):
   * the root blocks in chain order and how many index blocks each lists,
   * and the index blocks in hash order with the lowest hash of each one's
   * first leaf. Checked: the chain bounded (MAX_INDEX_CHAIN blocks in all)
   * and loop-free, every block in the data area and listed once, every
   * root block a root, no empty one, hashes ascending from 0 across the
   * chain. Whether the blocks are in use is the caller's to check.
   * @throws FormatError for a damaged root
   */
  private readRoots(ino: number, first: number, where: string): Omit<DirIndex, 'leaves'> | null {
    if (!this.inData(first, 1) || (this.journal.readScan(first).readUInt32LE(28) & RIDX_ROOT) === 0) return null;
    const out: Omit<DirIndex, 'leaves'> = { roots: [], rootCounts: [], ixBlocks: [], ixLos: [] };
    const seen = new Set<number>();
    let lastLo = -1;
    for (let next = first; next;) {
      if (!this.inData(next, 1) || seen.has(next) || seen.size >= MAX_INDEX_CHAIN) throw new FormatError(`${where}: hash index root chain is broken at block ${next}`);
      seen.add(next);
      const rt = decodeIndexBlock(this.journal.readScan(next), ino, where);
      if (!rt.root) throw new FormatError(`${where}: block ${next} in the hash index's root chain is not a root block`);
      if (rt.blocks.length === 0) throw new FormatError(`${where}: hash index root block ${next} lists no index block`);
      out.roots.push(next); out.rootCounts.push(rt.blocks.length);
      for (let i = 0; i < rt.blocks.length; i++) {
        const b = rt.blocks[i], lo = rt.los![i];
        if (!this.inData(b, 1) || seen.has(b)) throw new FormatError(`${where}: hash index root lists block ${b}, outside the data area or listed twice`);
        if (lastLo < 0 ? lo !== 0 : lo <= lastLo) throw new FormatError(`${where}: hash index root lists index block ${b} from hash ${lo} after ${lastLo < 0 ? 'nothing (the first starts at 0)' : lastLo}`);
        seen.add(b); lastLo = lo;
        out.ixBlocks.push(b); out.ixLos.push(lo);
      }
      next = rt.next;
    }
    return out;
  }

  /**
   * The leaves of a deferred hash index's index block `j` (DirIndex order),
   * read once and kept: checked as the full read checks an index block
   * (owner, checksum, a hash index block, not a root; its leaves in the
   * data area, in use, none listed twice in it; its hashes ascending from
   * the root's entry for it and below the next one's). What only the whole
   * index tells (a leaf listed by two index blocks, the `next` chain) is the
   * full read's (readRecordChain) and fsck's to find.
   * @throws FormatError for a damaged index block
   */
  private dirIndexLeaves(ino: number, ix: DirIndex, j: number): { blocks: number[]; los: number[] } {
    const have = ix.leaves[j];
    if (have) return have;
    const out = this.readIndexLeaves(ino, ix.ixBlocks[j], ix.ixLos[j], ix.ixLos[j + 1]);
    ix.leaves[j] = out;
    return out;
  }

  /**
   * The leaves of index block `ib` of a rooted hash index (owner `ino`),
   * whose root entry says its first leaf starts at hash `lo` and the next
   * index block's at `end` (undefined: the last): dirIndexLeaves' checks.
   * @throws FormatError for a damaged index block
   */
  private readIndexLeaves(ino: number, ib: number, lo: number, end: number | undefined): { blocks: number[]; los: number[] } {
    const where = `inode ${ino}`;
    const d = decodeIndexBlock(this.journal.readScan(ib), ino, where);
    if (!d.los || d.root) throw new FormatError(`${where}: the hash index root lists block ${ib}, which is not an index block of it`);
    if (d.blocks.length === 0 || d.los[0] !== lo) throw new FormatError(`${where}: index block ${ib} starts at hash ${d.los[0] ?? 'nothing'}, its root entry says ${lo}`);
    if (end !== undefined && d.los[d.los.length - 1] >= end) throw new FormatError(`${where}: index block ${ib} lists hash ${d.los[d.los.length - 1]}, past the next index block's ${end}`);
    const seen = new Set<number>([ib]);
    for (const b of d.blocks) {
      if (!this.inData(b, 1) || seen.has(b)) throw new FormatError(`${where}: record block ${b} outside the data area or listed twice`);
      seen.add(b);
      this.checkRecordBlockInUse(ino, b);
    }
    return { blocks: d.blocks, los: d.los };
  }

  /**
   * Whether a deferred directory's entries are a hash index: its set kept by
   * syncDeferred, or its index read (readDirIndex, once, then kept).
   * @throws FormatError for a damaged index
   */
  private deferredHashed(ino: number, p: DeferredRecords): boolean {
    if (p.partial) return true;
    if (p.dirIndex === undefined) p.dirIndex = this.readDirIndex(ino, p);
    return p.dirIndex !== null;
  }

  /** The leaf of a deferred hash index (deferredHashed) whose range holds hash h: its block and range [lo, next), next null for the last. */
  private deferredLeaf(ino: number, p: DeferredRecords, h: number): { block: number; lo: number; next: number | null } {
    if (p.partial) {
      const set = p.partial, i = set.readyLeaf(h, false);
      return { block: set.blocks[i].block, lo: set.blocks[i].lo!, next: set.blocks[i + 1]?.lo ?? null };
    }
    const ix = p.dirIndex!;
    const j = lastAtOrBelow(ix.ixLos, h);
    const l = this.dirIndexLeaves(ino, ix, j);
    const a = lastAtOrBelow(l.los, h);
    return { block: l.blocks[a], lo: l.los[a], next: l.los[a + 1] ?? ix.ixLos[j + 1] ?? null };
  }

  /**
   * Whether the record chain from index block `first` is a directory's hash
   * index (RIDX_HASHED in its first block's flags; indexChain checks every
   * block agrees), which only a directory on a FEAT_INCOMPAT_DIRHASH
   * region may have.
   * @throws FormatError for a hash index anywhere else
   */
  private hashedChain(kind: RecKind, first: number, where: string): boolean {
    if (!this.inData(first, 1)) return false;   // indexChain reports it
    const flags = this.journal.readScan(first).readUInt32LE(28);
    if ((flags & RIDX_HASHED) === 0) return false;
    if (kind !== REC_KIND_DIRENT) throw new FormatError(`${where}: a hash index over records that are not directory entries`);
    if (!(this.sb.featuresIncompat & FEAT_INCOMPAT_DIRHASH)) throw new FormatError(`${where}: a directory hash index on a region without FEAT_INCOMPAT_DIRHASH`);
    if ((flags & RIDX_ROOT) && !(this.sb.featuresIncompat & FEAT_INCOMPAT_DIRROOT)) throw new FormatError(`${where}: a hash index root on a region without FEAT_INCOMPAT_DIRROOT`);
    return true;
  }

  private kindOf(inode: Inode): RecKind | null {
    return inode.isDir ? REC_KIND_DIRENT : inode.isReg ? REC_KIND_EXTENT : null;
  }

  /**
   * Read a record chain of owner `owner` from index block `first`: each
   * record block is handed to `onBlock` (a private copy with `copy`, else a
   * view valid until the next block: not to be kept or changed) with, for
   * a hash index (`hashed`), the lowest hash of its range (else -1); it
   * registers the block with the set, or returns true to stop the walk
   * there (a probe). The index blocks go to `set` (null: none kept). See
   * chainBlocks.
   * @throws FormatError for a broken chain, a block outside the data area or listed twice, a damaged block
   */
  private readChain(set: RecordSet | null, owner: number, first: number, where: string,
    onBlock: (block: number, img: Buffer, where: string, lo: number) => boolean | void, maxRecBlocks = Infinity, copy = true, hashed = false): void {
    for (const [b, img, at, lo] of this.chainBlocks(set, owner, first, where, () => maxRecBlocks, copy, hashed)) {
      if (onBlock(b, img, at, lo) === true) return;
    }
  }

  /**
   * The index blocks of a chain of owner `owner` from block `first`, each
   * decoded when the walk reaches it: its number and its entries. Bounded
   * (MAX_INDEX_CHAIN index blocks, `maxRecBlocks()` record blocks, asked as
   * the walk goes) and loop-proof (no block twice, index or record); every
   * block inside the data area; a hash index's blocks all hashed and its
   * lowest hashes ascending from 0 across the chain, any other chain's
   * blocks none.
   * @throws FormatError for a broken chain, a block outside the data area or listed twice, too many blocks, a damaged or misordered index block
   */
  private *indexChain(owner: number, first: number, where: string, maxRecBlocks: () => number, hashed: boolean, roots: IndexBlock[] | null = null): Generator<[number, DecodedIndex]> {
    const seen = new Set<number>();
    // A rooted hash index: its index blocks are the root's, in its order, and chain so too.
    const rooted = hashed ? this.readRoots(owner, first, where) : null;
    if (rooted) {
      let k = 0;
      rooted.roots.forEach((block, r) => {
        seen.add(block);
        const n = rooted.rootCounts[r];
        roots?.push({ block, list: rooted.ixBlocks.slice(k, k + n), los: rooted.ixLos.slice(k, k + n) });
        k += n;
      });
    }
    let next = rooted ? rooted.ixBlocks[0] : first;
    let recBlocks = 0, lastLo = -1, j = 0;
    while (next) {
      if (!this.inData(next, 1) || seen.has(next) || seen.size >= MAX_INDEX_CHAIN) throw new FormatError(`${where}: record index chain is broken at block ${next}`);
      seen.add(next);
      const ix = decodeIndexBlock(this.journal.readScan(next), owner, where);
      if ((ix.los !== undefined) !== hashed || ix.root) throw new FormatError(`${where}: record index block ${next} ${hashed ? 'is not part of the hash index its chain starts' : 'is a hash index block in an unordered chain'}`);
      if (rooted) {
        if (ix.los![0] !== rooted.ixLos[j]) throw new FormatError(`${where}: index block ${next} starts at hash ${ix.los![0] ?? 'nothing'}, its root entry says ${rooted.ixLos[j]}`);
        if (ix.next !== (rooted.ixBlocks[j + 1] ?? 0)) throw new FormatError(`${where}: index block ${next} chains to block ${ix.next}, the root lists ${rooted.ixBlocks[j + 1] ?? 'nothing'} after it`);
        j++;
      }
      recBlocks += ix.blocks.length;
      const max = maxRecBlocks();
      if (recBlocks > max) throw new FormatError(`${where}: record index lists more than the ${max} record blocks the inode says`);
      for (let i = 0; i < ix.blocks.length; i++) {
        const b = ix.blocks[i];
        if (!this.inData(b, 1) || seen.has(b)) throw new FormatError(`${where}: record block ${b} outside the data area or listed twice`);
        seen.add(b);
        if (ix.los) {
          const lo = ix.los[i];
          if (lastLo < 0 ? lo !== 0 : lo <= lastLo) throw new FormatError(`${where}: hash index lists record block ${b} from hash ${lo} after ${lastLo < 0 ? 'nothing (the first starts at 0)' : lastLo}`);
          lastLo = lo;
        }
      }
      yield [next, ix];
      next = ix.next;
    }
  }


  /**
   * The record blocks of a chain of owner `owner` from index block `first`,
   * in chain order (a hash index: ascending hash ranges), each read when
   * the walk reaches it, as the running transaction sees it then: its
   * number, its image (a private copy with `copy`, else a view valid until
   * the next one: not to be kept or changed), a label for messages, and its
   * range's lowest hash (-1 unless `hashed`). Index blocks go to `set`
   * (null: none kept). The chain's checks are indexChain's.
   * @throws FormatError as indexChain
   */
  private *chainBlocks(set: RecordSet | null, owner: number, first: number, where: string,
    maxRecBlocks: () => number, copy: boolean, hashed = false): Generator<[number, Buffer, string, number]> {
    const scratch = copy ? null : Buffer.allocUnsafe(this.bs);
    for (const [ib, ix] of this.indexChain(owner, first, where, maxRecBlocks, hashed, set?.roots ?? null)) {
      set?.index.push(ix.los ? { block: ib, list: ix.blocks, los: ix.los } : { block: ib, list: ix.blocks });
      for (let i = 0; i < ix.blocks.length; i++) {
        const b = ix.blocks[i];
        yield [b, scratch ? this.journal.readScanInto(b, scratch) : this.journal.readCopy(b), `${where} block ${b}`, ix.los ? ix.los[i] : -1];
      }
    }
  }

  /**
   * A directory's entries (name, inode number) for a listing (FUSE readdir,
   * src/fuse/dirstream.ts): the entry map when it is in core; else streamed
   * from the record chain without reading the entries into core, each record
   * block read and checked as the full read checks it (header, checksum,
   * records, names, inode numbers in range, the block in use) when the
   * listing reaches it, as the running transaction sees it then, and the
   * slot's counts checked at the end. A directory of a million entries
   * listed so builds no map of them. A directory read into core while it
   * is listed goes on being listed from its blocks (the chain and its
   * blocks as changed meanwhile): in an unordered chain a record never
   * moves between blocks, so an entry neither added nor removed is listed
   * once; a hash index moves records when leaves split and merge, so FUSE
   * lists those by hash instead (hashLeaf, src/fuse/dirstream.ts) and this
   * walk serves them only unchanged (fsck-like walks, tests).
   * What the full read also refuses, a name twice, is not seen here. A
   * directory removed while it is listed (emptied, then rmdir) ends the
   * listing: its blocks were freed with it.
   * @throws FsError EIO, when the listing reaches a damaged chain or block (noted in `damaged`, as the full read does)
   */
  *listEntries(dir: Inode): Generator<readonly [string, number]> {
    const p = dir.pendingRecords;
    if (!p) { yield* dir.dirents!; return; }
    const where = `inode ${dir.ino}`;
    // While the directory is still the deferred one, the slot's counts bound the walk; once read into core, its record set.
    const limit = () => (dir.pendingRecords === p ? p.recBlocks : dir.recordsInCore?.blocks.length ?? p.recBlocks);
    let blocks = 0, count = 0;
    try {
      const hashed = this.hashedChain(REC_KIND_DIRENT, p.recIndex, where);
      for (const [b, img, at] of this.chainBlocks(null, dir.ino, p.recIndex, where, limit, false, hashed)) {
        if (dir.nlink === 0) return;   // removed (emptied, rmdir) while listed: its blocks are free, the listing ends as Linux's does
        this.checkRecordBlockInUse(dir.ino, b);
        const out: Array<[string, number]> = [];
        forEachDirentRec(img, dir.ino, at, (name, child) => { this.checkEntryIno(dir.ino, name, child); out.push([name, child]); });
        blocks++; count += out.length;
        yield* out;
      }
      if (dir.pendingRecords === p && (blocks !== p.recBlocks || count !== p.recCount)) {
        throw new FormatError(`${where}: ${blocks} record blocks with ${count} records, the inode says ${p.recBlocks} and ${p.recCount}`);
      }
    } catch (e) {
      throw this.damage(dir.ino, e, 'readdir');
    }
  }

  /**
   * Whether directory `dir`'s entries are a hash index (FEAT_INCOMPAT_DIRHASH),
   * so that a listing goes by hash (hashLeaf) with cookies that stay valid
   * whatever changes meanwhile; false for entries inline in the fork and an
   * unordered chain (positional listings, listEntries).
   * @throws FsError EIO for a damaged index of entries on media (noted in `damaged`)
   */
  isHashedDir(dir: Inode): boolean {
    const p = dir.deferred;
    if (!p) return dir.recordsInCore?.hash != null;
    try {
      return this.deferredHashed(dir.ino, p);
    } catch (e) {
      throw this.damage(dir.ino, e, 'opendir');
    }
  }

  /**
   * One leaf of a hashed directory (isHashedDir) for a listing: the entries
   * of the leaf whose range holds hash `h`, as [name, inode number, hash]
   * sorted by hash then name, its range's lowest hash and the next leaf's
   * (null after the last). From the record set when the entries are in
   * core; else read from the leaf's block (the index as the probes read
   * it), checked as the full read checks it: header, checksum, records,
   * names, inode numbers in range, every name's hash inside the range. A
   * directory removed meanwhile (nlink 0) has no entries left.
   * @throws FsError EIO for a damaged leaf or index (noted in `damaged`, as the full read does)
   */
  hashLeaf(dir: Inode, h: number): HashLeaf {
    const none: HashLeaf = { lo: 0, next: null, entries: [] };
    if (dir.nlink === 0) return none;
    const byHash = (a: HashLeafEntry, b: HashLeafEntry) => a[2] - b[2] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const p = dir.deferred;
    if (!p) {
      const set = dir.recordsInCore, map = dir.direntsInCore;
      const l = set?.leafOf(h);
      if (!l || !map) return none;
      const entries: HashLeafEntry[] = [];
      for (const k of set!.keysOf(l.rb)) {
        const child = map.get(k as string);
        if (child !== undefined) entries.push([k as string, child, this.nameHash(k as string)]);
      }
      return { lo: l.rb.lo!, next: l.next, entries: entries.sort(byHash) };
    }
    const where = `inode ${dir.ino}`;
    try {
      if (!this.deferredHashed(dir.ino, p)) throw new Error(`${where}: hashLeaf of a directory without a hash index`);
      const { block: b, lo, next } = this.deferredLeaf(dir.ino, p, h);
      const img = this.journal.readScanInto(b, (this.probeScratch ??= Buffer.allocUnsafe(this.bs)));
      const at = `${where} block ${b}`;
      const entries: HashLeafEntry[] = [];
      forEachDirentRec(img, dir.ino, at, (name, child, off, len) => {
        this.checkEntryIno(dir.ino, name, child);
        const eh = direntHash(img.subarray(off + 9, off + len), this.hashSeed);
        if (eh < lo || (next !== null && eh >= next)) throw new FormatError(`${at}: entry '${name}' of hash ${eh} lies outside the block's range [${lo}, ${next ?? 2 ** 32})`);
        entries.push([name, child, eh]);
      });
      return { lo, next, entries: entries.sort(byHash) };
    } catch (e) {
      throw this.damage(dir.ino, e, 'readdir');
    }
  }

  /**
   * Bound a slot's record counts before anything follows its chain: a forged
   * chain is never followed further than the inode itself allows (both counts
   * are checked against the chain once it is read).
   * @throws FormatError
   */
  private checkRecordCounts(ino: number, rec: { recBlocks: number; recCount: number }): void {
    const dataBlocks = dataEnd(this.sb) - this.sb.dataStart;
    if (rec.recBlocks > dataBlocks || rec.recCount > rec.recBlocks * Math.floor(recBlockCapacity(this.bs) / MIN_REC_BYTES)) {
      throw new FormatError(`inode ${ino}: ${rec.recBlocks} record blocks with ${rec.recCount} records is impossible in a region of ${dataBlocks} data blocks`);
    }
  }

  private loadRecords(inode: Inode, kind: RecKind, rec: InodeRecord): { extents: ExtentRec[]; dirents: TrackedMap<number> | null } {
    this.checkRecordCounts(inode.ino, rec);
    const loaded = this.readRecordChain(inode.ino, kind, rec);
    inode.records = loaded.set;
    return loaded;
  }

  /**
   * Read an inode's record chain into a new record set, checked against the
   * slot's counts: a file's extent records, or a directory's entries as its
   * in-core map (each entry checked by loadEntry; records kept as positions
   * in their block images, no Buffer per record). A directory's hash index
   * (hashedChain) makes a hashed set, each name checked to hash into its
   * leaf's range.
   * @throws FormatError
   */
  private readRecordChain(ino: number, kind: RecKind, rec: { recIndex: number; recBlocks: number; recCount: number }): { set: RecordSet; extents: ExtentRec[]; dirents: TrackedMap<number> | null } {
    const where = `inode ${ino}`;
    const extents: ExtentRec[] = [];
    const map = kind === REC_KIND_DIRENT ? new TrackedMap<number>() : null;
    const hashed = this.hashedChain(kind, rec.recIndex, where);
    const set = hashed ? this.hashedSet(ino) : new RecordSet(kind, ino, this.bs);
    const seed = this.hashSeed;
    let prevMax = -1;
    this.readChain(set, set.ino, rec.recIndex, where, (b, img, at, lo) => {
      if (map) {
        // The block's own map of records is made only if one of them changes (RecordSet.adoptUnread).
        const rb = set.adoptUnread(b, img, direntsOf(img, ino, at), hashed ? lo : undefined);
        let max = -1;
        if (hashed && prevMax >= lo) throw new FormatError(`${where}: the leaf before block ${b} holds a name of hash ${prevMax}, inside block ${b}'s range from ${lo}`);
        forEachDirentRec(img, ino, at, (name, child, off, len) => {
          if (hashed) {
            const h = direntHash(img.subarray(off + 9, off + len), seed);
            if (h < lo) throw new FormatError(`${at}: entry '${name}' of hash ${h} lies below the block's range from ${lo}`);
            if (h > max) max = h;
          }
          this.loadEntry(map, ino, name, child);
          set.adoptKey(rb, name, len);
        });
        prevMax = max;
        set.noteAdopted(rb);
      } else {
        const d = decodeRecordBlock(img, ino, kind, at);
        set.adopt(b, d.extents.map(([e, raw]) => [e.fileBlock, raw]), img);
        for (const [e] of d.extents) extents.push(e);
      }
    }, rec.recBlocks, true, hashed);
    if (set.blocks.length !== rec.recBlocks || set.count !== rec.recCount) {
      throw new FormatError(`${where}: ${set.blocks.length} record blocks with ${set.count} records, the inode says ${rec.recBlocks} and ${rec.recCount}`);
    }
    return { set, extents, dirents: map };
  }

  /**
   * Load the reference-count index from the record chain at the superblock's
   * `refcountRoot` (as the running transaction sees it). Mount and fsck call
   * it after the journal is replayed; rollback calls it to undo an
   * operation's refcount changes.
   * @throws FormatError for a damaged chain, record block or overlapping records
   */
  loadRefcounts(): void {
    const where = 'refcount index';
    const set = new RecordSet(REC_KIND_REFCOUNT, REFCOUNT_OWNER, this.bs);
    const recs: RefcountRec[] = [];
    this.readChain(set, set.ino, this.sb.refcountRoot, where, (b, img, at) => {
      const d = decodeRecordBlock(img, REFCOUNT_OWNER, REC_KIND_REFCOUNT, at);
      set.adopt(b, d.refcounts.map(([r, raw]) => [r.start, raw]), img);
      for (const [r] of d.refcounts) {
        if (!this.inData(r.start, r.len)) throw new FormatError(`${where}: record [${r.start}, +${r.len}) outside the data area`);
        recs.push(r);
      }
    });
    try { this.refcount.reset(recs); } catch (e) { throw new FormatError(`${where}: ${(e as Error).message}`); }
    this.refSet = this.sb.refcountRoot ? set : null;
  }

  /**
   * Load the in-core list (FEAT_INCOMPAT_ICACHE) from the record chain at
   * the superblock's `ilistRoot`, as the running transaction sees it.
   * @throws FormatError for a damaged chain or an inode number out of range
   */
  loadIlist(): void {
    const where = 'in-core inode list';
    const set = new RecordSet(REC_KIND_ILIST, REFCOUNT_OWNER, this.bs);
    this.ilist.clear();
    this.readChain(set, set.ino, this.sb.ilistRoot, where, (b, img, at) => {
      const d = decodeRecordBlock(img, REFCOUNT_OWNER, REC_KIND_ILIST, at);
      set.adopt(b, d.ilist.map(([ino, raw]) => [ino, raw]), img);
      for (const [ino] of d.ilist) {
        if (ino > this.sb.inodeHwm) throw new FormatError(`${where}: inode ${ino} above the high-water mark ${this.sb.inodeHwm}`);
        if (this.ilist.has(ino)) throw new FormatError(`${where}: inode ${ino} listed twice`);
        this.ilist.add(ino);
      }
    });
    this.ilistSet = this.sb.ilistRoot ? set : null;
  }

  /**
   * Give the in-core list its chain (an index block and an empty record
   * block) in the running operation, if it has none: mkfs, the conversion
   * of an older region, fsck -y.
   */
  ensureIlist(): void {
    const op = this.needOp();
    if (this.ilistSet) return;
    const set = new RecordSet(REC_KIND_ILIST, REFCOUNT_OWNER, this.bs);
    const t: RecTouched = { recs: new Set(), index: new Set() };
    set.put(ROOT_INO, encodeIlistRec(ROOT_INO), t, (g) => this.allocMeta(g));
    set.remove(ROOT_INO, t);
    this.putTouched(set, t);
    this.ilistSet = set;
    this.ilist.clear();   // what a broken chain held is not on the new one (rebuildIlist puts it back)
    this.sb.ilistRoot = set.headBlock;
    op.sbDirty = true;
  }

  /** Region blocks of the in-core list itself: metadata, owned by the region. */
  ilistBlocks(): number[] { return this.ilistSet?.allBlocks() ?? []; }

  /**
   * fsck -y, and the conversion of an older region: the in-core list
   * becomes exactly the loaded inodes flagged ILIST_FLAGS, in the running
   * operation (the old chain's blocks are freed with it).
   */
  rebuildIlist(): void {
    const op = this.needOp();
    const want = new Set<number>();
    for (const inode of this.inodes.values()) if (inode.flags & ILIST_FLAGS) want.add(inode.ino);
    for (const ino of this.ilist) if (!want.has(ino)) { this.ilist.delete(ino); op.ilistChanged.add(ino); }
    for (const ino of want) if (!this.ilist.has(ino)) { this.ilist.add(ino); op.ilistChanged.add(ino); }
  }

  /**
   * Replace the refcount index with `recs`, written to a fresh chain in the
   * running operation (fsck -y, from the owners it counted). The old chain's
   * blocks are left unreferenced (fsck rebuilds the bitmap afterwards).
   */
  rebuildRefcounts(recs: RefcountRec[]): void {
    const op = this.needOp();
    this.refSet = null;
    this.sb.refcountRoot = 0;
    op.sbDirty = true;
    this.refcount.replaceAll(recs);
  }

  /** Region blocks of the refcount index itself (record and index blocks): metadata, owned by the region. */
  refcountBlocks(): number[] { return this.refSet?.allBlocks() ?? []; }

  /**
   * Drop one owner of data blocks [run.start, +run.len): the blocks whose
   * last owner this was are released (busy until the transaction is durable).
   */
  freeData(run: BlockRun): void {
    if (run.len <= 0) return;
    if (this.refcount.empty) { this.alloc.release(run.start, run.len); return; }
    for (const r of this.refcount.decrement(run.start, run.len)) this.alloc.release(r.start, r.len);
  }

  // --- operations ---------------------------------------------------------------

  /** Start an operation (the transaction layer calls this). */
  beginOp(): StoreOp {
    const sb = this.sb;
    this.op = {
      dirty: new Set(), dropped: new Set(), created: new Set(), slotOps: [],
      sb: { inodeHwm: sb.inodeHwm, generation: sb.generation, refcountRoot: sb.refcountRoot, featuresIncompat: sb.featuresIncompat, inodesUsed: sb.inodesUsed, ilistRoot: sb.ilistRoot },
      sbDirty: false, ilistChanged: new Set(),
    };
    this.refcount.touched = false;
    return this.op;
  }

  private needOp(): StoreOp {
    if (!this.op) throw new Error('inode store: change outside a transaction');
    return this.op;
  }

  markDirty(inode: Inode): void { this.needOp().dirty.add(inode); inode.metaSeq = inode.dataSeq = this.journal.seq; }
  drop(inode: Inode): void { const op = this.needOp(); op.dropped.add(inode); op.dirty.delete(inode); }

  /**
   * Claim an unused inode number for `inode`-to-be.
   * @throws FsError ENOSPC when the inode table is full
   */
  allocIno(): number {
    const op = this.needOp();
    // A number the kernel still references (FUSE lookup count) is skipped, so a
    // node id names one inode until the kernel forgets it (fuse_lowlevel.h, forget).
    if (this.lazy && !this.freeSlots.length) this.scanSlots();
    for (let i = this.freeSlots.length - 1; i >= 0 && i >= this.freeSlots.length - 64; i--) {
      const slot = this.freeSlots[i];
      if (this.referenced?.(slot)) continue;
      this.freeSlots.splice(i, 1);
      op.slotOps.push(['pop', slot]);
      return slot;
    }
    if (this.sb.inodeHwm >= this.sb.inodeCount) throw new FsError('ENOSPC', 'create', undefined, `all ${this.sb.inodeCount} inodes in use`);
    this.sb.inodeHwm += 1;
    op.sbDirty = true;
    return this.sb.inodeHwm;
  }

  /**
   * Inodes read on demand: search the inode table from `scanNext` for free
   * slots below the high-water mark (at most SLOT_SCAN_BLOCKS blocks a
   * call, and only while the superblock's count says some are free), as
   * ext4 reads an inode bitmap block when it needs one. Slots freed at or
   * above `scanNext` during this mount are found here, not pushed.
   */
  private scanSlots(): void {
    const n = this.sb.inodeHwm;
    if (this.sb.inodesUsed >= n) { this.scanNext = n + 1; return; }
    const perBlock = this.bs / INODE_SIZE;
    let blocks = 0;
    while (this.scanNext <= n && blocks < SLOT_SCAN_BLOCKS && this.freeSlots.length < 64) {
      const first = this.scanNext;
      const blk = this.journal.read(this.slotBlock(first));
      const last = Math.min(n, first - ((first - 1) % perBlock) + perBlock - 1);
      const found: number[] = [];
      for (let ino = first; ino <= last; ino++) {
        if (ino === ROOT_INO || this.inodes.has(ino)) continue;
        const off = this.slotOffInBlock(ino);
        if (isFreeSlot(blk.subarray(off, off + INODE_SIZE))) found.push(ino);
      }
      this.scanNext = last + 1;
      blocks++;
      for (let i = found.length - 1; i >= 0; i--) this.freeSlots.unshift(found[i]);
    }
  }

  /** Register a new in-core inode (created by this operation). */
  add(inode: Inode): void {
    const op = this.needOp();
    this.sb.inodesUsed += 1;
    op.sbDirty = true;
    this.inodes.set(inode.ino, inode);
    inode.forkDirty = true;
    op.created.add(inode);
    op.dirty.add(inode);
  }

  nextGeneration(): number {
    this.needOp().sbDirty = true;
    return (this.sb.generation = (this.sb.generation + 1) >>> 0);
  }

  /** Runs of region blocks an inode references: data extents, fork extent, record and index blocks. */
  static usedRuns(inode: Inode): BlockRun[] {
    const data: BlockRun[] = inode.bmap.extents.map((e) => ({ start: regionBlock(e.regionBlock), len: blockCount(e.len) }));
    return data.concat(InodeStore.metaRuns(inode));
  }

  /**
   * Metadata blocks of an inode (fork extent, record and index blocks); a
   * directory's deferred record blocks are not included (checked when read:
   * readDeferred).
   */
  static metaRuns(inode: Inode): BlockRun[] {
    const runs: BlockRun[] = [];
    if (inode.forkBlock) runs.push({ start: regionBlock(inode.forkBlock), len: blockCount(inode.forkBlocks) });
    if (inode.recordsInCore) for (const b of inode.recordsInCore.allBlocks()) runs.push({ start: regionBlock(b), len: blockCount(1) });
    return runs;
  }

  /**
   * End of an operation: encode everything it changed into block images.
   * May allocate (record blocks, fork extents) and so throw ENOSPC or
   * TxNeedsCommit; the caller then rolls the operation back.
   */
  finish(): void {
    const op = this.needOp();
    for (const inode of op.dirty) if (!op.dropped.has(inode)) this.writeInode(inode);
    for (const inode of op.dropped) this.clearInode(inode, op);
    if (op.ilistChanged.size) this.syncIlist(op);
    if (this.refcount.changed.size) this.syncRefcounts(op);
    if (op.sbDirty) this.writeSuperblockImage();
    for (const { index, image } of this.alloc.takeDirtyBitmap()) this.journal.put(this.sb.bitmapStart + index, image);
    this.op = null;
  }

  /**
   * Undo a failed operation's in-core effects. The journal has already
   * restored the block images; the allocator its own state.
   */
  rollback(): void {
    const op = this.op;
    this.op = null;
    if (!op) return;
    Object.assign(this.sb, op.sb);
    for (let i = op.slotOps.length - 1; i >= 0; i--) {
      const [kind, ino] = op.slotOps[i];
      if (kind === 'pop') this.freeSlots.push(ino);
      else { const j = this.freeSlots.lastIndexOf(ino); if (j >= 0) this.freeSlots.splice(j, 1); }
    }
    for (const inode of op.created) this.inodes.delete(inode.ino);
    if (op.ilistChanged.size) this.loadIlist();
    for (const inode of [...op.dirty, ...op.dropped]) {
      if (op.created.has(inode)) continue;
      this.reload(inode);
    }
    this.alloc.takeDirtyBitmap();
    // The journal restored the refcount blocks and the superblock image: read the index back.
    if (this.refcount.touched) this.loadRefcounts();
  }

  /** Re-read an inode from the block images (after a rollback). */
  private reload(inode: Inode): void {
    const blk = this.journal.read(this.slotBlock(inode.ino));
    const raw = Buffer.from(blk.subarray(this.slotOffInBlock(inode.ino), this.slotOffInBlock(inode.ino) + INODE_SIZE));
    this.decode(raw, inode.ino, inode);
    this.inodes.set(inode.ino, inode);
  }

  /**
   * Write the in-core list's changed records (ilistChanged), as
   * syncRefcounts does for reference counts. The chain keeps its blocks
   * when the list empties (mkfs makes it, ensureIlist), so an unlink that
   * leaves an orphan costs no block: statfs does not move while a pinned
   * or open file waits to be freed.
   */
  private syncIlist(op: StoreOp): void {
    const set = this.ilistSet ?? new RecordSet(REC_KIND_ILIST, REFCOUNT_OWNER, this.bs);
    this.ilistSet = set;
    const t: RecTouched = { recs: new Set(), index: new Set() };
    for (const ino of op.ilistChanged) {
      if (this.ilist.has(ino)) set.put(ino, encodeIlistRec(ino), t, (g) => this.allocMeta(g));
      else if (set.has(ino)) set.remove(ino, t);
    }
    if (set.count === 0 && set.blocks.length > 1) {
      // Emptied after a crowd of orphans: back to one record block.
      for (const b of set.allBlocks()) this.freeMeta({ start: regionBlock(b), len: blockCount(1) });
      this.ilistSet = null;
      this.ensureIlist();
      return;
    }
    this.putTouched(set, t);
    if (this.sb.ilistRoot !== set.headBlock) { this.sb.ilistRoot = set.headBlock; op.sbDirty = true; }
  }

  private allocMeta(goal: number): number {
    return this.alloc.allocContig(1, goal || this.sb.dataStart, true).start;
  }

  /**
   * Write the changed refcount records into record blocks (one block per
   * change, as for extent records), creating the chain on first use; the
   * superblock follows when the chain's root changes; an index left empty
   * frees its chain (root 0 again); and the first shared
   * extent sets FEAT_INCOMPAT_REFCOUNT (an older pmemfs would free shared
   * blocks it cannot count, so it must refuse the region).
   */
  private syncRefcounts(op: StoreOp): void {
    const set = this.refSet ?? new RecordSet(REC_KIND_REFCOUNT, REFCOUNT_OWNER, this.bs);
    this.refSet = set;
    const t: RecTouched = { recs: new Set(), index: new Set() };
    const alloc = (g: number) => this.allocMeta(g);
    for (const key of this.refcount.changed) {
      const r = this.refcount.recordAt(key);
      if (!r) set.remove(key, t);
      else set.put(key, encodeRefcountRec(r), t, alloc);
    }
    this.refcount.changed.clear();
    if (set.count === 0) {
      // Nothing shared any more: the chain's blocks go back too.
      for (const b of set.allBlocks()) this.freeMeta({ start: regionBlock(b), len: blockCount(1) });
      this.refSet = null;
      if (this.sb.refcountRoot !== 0) { this.sb.refcountRoot = 0; op.sbDirty = true; }
      return;
    }
    this.putTouched(set, t);
    if (this.sb.refcountRoot !== set.headBlock) { this.sb.refcountRoot = set.headBlock; op.sbDirty = true; }
    if (set.count > 0 && !(this.sb.featuresIncompat & FEAT_INCOMPAT_REFCOUNT)) { this.sb.featuresIncompat |= FEAT_INCOMPAT_REFCOUNT; op.sbDirty = true; }
  }

  /** Encode one inode: its changed records, its fork if changed, its slot. */
  private writeInode(inode: Inode): void {
    // A directory whose entries are still on media: its changes (a hash index) go into the leaves they
    // belong to (syncDeferred); the slot points at its records as they are then.
    const deferred = inode.pendingRecords !== null;
    if (deferred && inode.deferred!.changes?.size) this.syncDeferred(inode);
    let forkDirty = inode.forkDirty || inode.xattrsChanged;
    if (!deferred) {
      const kind = this.kindOf(inode);
      const recsChanged = inode.bmap.hasChanges || (inode.dirents?.changed.size ?? 0) > 0;
      if (recsChanged && !inode.records) forkDirty = true;
      if (kind && !inode.records && forkDirty && forkSize(this.forkOf(inode, true)) > INLINE_FORK_MAX) {
        this.migrateRecords(inode, kind);
        if (inode.isDir) this.onEntries?.(inode);
      } else if (inode.records && recsChanged) {
        this.syncRecords(inode);
        if (inode.isDir) this.onEntries?.(inode);
      }
      inode.bmap.clearChanges();
      inode.dirents?.changed.clear();
    }
    inode.clearXattrChanges();
    if (forkDirty) this.writeFork(inode);
    inode.forkDirty = false;
    this.writeSlot(inode);
    this.noteIlist(inode.ino, (inode.flags & ILIST_FLAGS) !== 0);
  }

  private noteIlist(ino: number, want: boolean): void {
    if (want === this.ilist.has(ino)) return;
    if (want) this.ilist.add(ino); else this.ilist.delete(ino);
    this.needOp().ilistChanged.add(ino);
  }

  private forkOf(inode: Inode, withRecords: boolean): Fork {
    return {
      extents: withRecords && inode.isReg ? inode.bmap.toRecords() : [],
      xattrs: inode.xattrView as Map<string, Buffer>,   // encodeFork only reads it
      dirents: inode.isDir ? (withRecords ? inode.dirents : new Map()) : null,
      symlink: inode.symlink,
    };
  }

  /** Move an inode's records out of its fork into record blocks. */
  private migrateRecords(inode: Inode, kind: RecKind): void {
    // A directory's entries leaving its fork make a hash index; the region then needs a pmemfs that knows them.
    const hashed = kind === REC_KIND_DIRENT;
    if (hashed && !(this.sb.featuresIncompat & FEAT_INCOMPAT_DIRHASH)) { this.sb.featuresIncompat |= FEAT_INCOMPAT_DIRHASH; this.needOp().sbDirty = true; }
    const set = hashed ? this.hashedSet(inode.ino) : new RecordSet(kind, inode.ino, this.bs);
    inode.records = set;
    const t: RecTouched = { recs: new Set(), index: new Set() };
    if (kind === REC_KIND_DIRENT) for (const [n, c] of inode.dirents!) set.put(n, encodeDirentRec(n, c), t, (g) => this.allocMeta(g));
    else for (const e of inode.bmap.extents) set.put(e.fileBlock, encodeExtentRec(e), t, (g) => this.allocMeta(g));
    this.encodeTouched(inode, t);
  }

  private syncRecords(inode: Inode): void {
    const set = inode.records!;
    const t: RecTouched = { recs: new Set(), index: new Set() };
    const alloc = (g: number) => this.allocMeta(g);
    set.rootIndex(t, alloc);   // a hash index from before FEAT_INCOMPAT_DIRROOT gets its root
    if (inode.dirents) {
      for (const name of inode.dirents.changed) {
        const child = inode.dirents.get(name);
        if (child === undefined) set.remove(name, t);
        else set.put(name, encodeDirentRec(name, child), t, alloc);
      }
    } else {
      for (const key of inode.bmap.changed) {
        const e = inode.bmap.recordAt(key);
        if (!e) set.remove(key, t);
        else set.put(key, encodeExtentRec(e), t, alloc);
      }
    }
    this.encodeTouched(inode, t);
  }

  private encodeTouched(inode: Inode, t: RecTouched): void { this.putTouched(inode.records!, t); }

  /**
   * Write the entries an operation added to or removed from a directory
   * whose hash index stays on media (DeferredRecords.changes, Inode.setEntry)
   * into its leaves, reading only the leaves they touch: the set the last
   * such write kept (`partial`, up to PARTIAL_LEAVES leaves read), else one
   * rebuilt from the index (kept since the first probe: the root, and the
   * index blocks probes read) with every leaf unread and the index blocks
   * not read yet standing for their leaves; before each change the index
   * block and leaf of its hash (and for a removal its two neighbours, one
   * of which it may merge with) are read and checked as a probe and the
   * full read check them, but for the names' hashes, which a split checks
   * for the records it moves. The splits and merges are the in-core set's;
   * the slot's record fields and the kept index follow them. A create or
   * unlink in a directory of a million entries then reads its root, one
   * to three index blocks and one to three leaves, not a million entries.
   * A hash index from before FEAT_INCOMPAT_DIRROOT gets its root here.
   * @throws FsError EIO for a damaged leaf or index block (noted in `damaged`); ENOSPC from allocation
   */
  private syncDeferred(inode: Inode): void {
    const p = inode.deferred!;
    if (!this.deferredReader.hashed(inode, p)) throw new Error(`inode ${inode.ino}: deferred entry changes without a hash index`);
    let set = p.partial;
    const where = `inode ${inode.ino}`;
    if (!set) {
      set = this.hashedSet(inode.ino);
      set.adoptIndex(p.dirIndex!, p.recBlocks);
      const ino = inode.ino, index = set.index;
      // An index block is read when a change reaches its range (RecordSet.readyLeaf), checked as a probe checks it.
      set.indexLoader = (ix) => {
        const j = index.indexOf(ix);
        return this.readIndexLeaves(ino, ix.block, ix.unread!.lo, index[j + 1] ? index[j + 1].unread?.lo ?? index[j + 1].los![0] : undefined);
      };
    }
    const load = (i: number): void => {
      const rb = set.blocks[i];
      if (!rb?.unloaded) return;
      const img = this.journal.readCopy(rb.block);
      const at = `${where} block ${rb.block}`;
      const keys: Array<[string, number]> = [];
      try {
        // Names are not hashed here (a split hashes those it moves and checks them: RecordSet.splitLeaf).
        forEachDirentRec(img, inode.ino, at, (name, child, _off, len) => {
          this.checkEntryIno(inode.ino, name, child);
          keys.push([name, len]);
        });
      } catch (e) {
        throw this.damage(inode.ino, e, 'write directory');
      }
      set.loadLeaf(rb, img, direntsOf(img, inode.ino, at), keys);
    };
    /** An unloaded leaf's used bytes from its header (checked), for mergeLeaf; the leaf itself is read only if it merges (set.loader). */
    const sized = new Set<RecBlock>();
    const sizeOf = (i: number): void => {
      const rb = set.blocks[i];
      if (!rb?.unloaded || sized.has(rb)) return;
      try {
        rb.used = recordBlockUsed(this.journal.readScanInto(rb.block, (this.probeScratch ??= Buffer.allocUnsafe(this.bs))), inode.ino, REC_KIND_DIRENT, `${where} block ${rb.block}`);
      } catch (e) {
        throw this.damage(inode.ino, e, 'write directory');
      }
      sized.add(rb);
    };
    set.loader = (rb) => load(set.blocks.indexOf(rb));
    const t: RecTouched = { recs: new Set(), index: new Set() };
    const alloc = (g: number) => this.allocMeta(g);
    set.rootIndex(t, alloc);   // a hash index from before FEAT_INCOMPAT_DIRROOT gets its root
    let count = p.recCount;
    for (const [name, child] of p.changes!) {
      let i: number;
      try {
        i = set.readyLeaf(this.nameHash(name), child === null);
      } catch (e) {
        throw this.damage(inode.ino, e, 'write directory');
      }
      load(i);
      if (child === null) { sizeOf(i - 1); sizeOf(i + 1); }   // a removal may merge the leaf with a neighbour: its size, from its header
      const had = set.has(name);
      if (child === null) {
        if (had) { set.remove(name, t); count--; }
      } else {
        set.put(name, encodeDirentRec(name, child), t, alloc);
        if (!had) count++;
      }
    }
    set.loader = null;
    for (const rb of sized) if (rb.unloaded) rb.used = 0;   // a header read now may be stale at the next change
    this.putTouched(set, t);
    p.recIndex = set.headBlock; p.recBlocks = set.leafCount; p.recCount = count;
    p.changes = undefined;
    p.written = (p.written ?? 0) + 1;
    // Kept for the next change (rebuilding it is O(leaves): 2-4 ms at a million entries), until it holds
    // PARTIAL_LEAVES leaves' records; then only its index, as the probes read it.
    if (set.loadedLeaves > PARTIAL_LEAVES) { p.partial = undefined; p.dirIndex = set.toDirIndex(); } else { p.partial = set; p.dirIndex = undefined; }
  }

  /**
   * The record, index and root blocks an update of `set` touched, encoded
   * (owner and kind from the set) into the running transaction; the first
   * root block written sets FEAT_INCOMPAT_DIRROOT.
   */
  private putTouched(set: RecordSet, t: RecTouched): void {
    for (const rb of t.recs) this.journal.put(rb.block, encodeRecordBlock(this.bs, set.ino, set.kind, recordBytes(rb)));
    for (const ix of t.index) this.journal.put(ix.block, encodeIndexBlock(this.bs, set.ino, set.nextOf(ix), ix.list, ix.los ?? null));
    if (t.roots?.size && !(this.sb.featuresIncompat & FEAT_INCOMPAT_DIRROOT)) { this.sb.featuresIncompat |= FEAT_INCOMPAT_DIRROOT; this.needOp().sbDirty = true; }
    for (const rt of t.roots ?? []) this.journal.put(rt.block, encodeIndexBlock(this.bs, set.ino, set.nextRootOf(rt), rt.list, rt.los!, true));
    for (const b of t.freed ?? []) this.freeMeta({ start: regionBlock(b), len: blockCount(1) });
  }

  /** Encode the fork: inline, or copy-on-write to a new extent (the old one freed). */
  private writeFork(inode: Inode): void {
    const buf = encodeFork(this.forkOf(inode, !inode.pendingRecords && !inode.records));
    const old = inode.forkBlock ? { start: regionBlock(inode.forkBlock), len: blockCount(inode.forkBlocks) } : null;
    if (buf.length > INLINE_FORK_MAX) {
      const bs = this.bs;
      const nblk = Math.ceil(buf.length / bs);
      const run = this.alloc.allocContig(nblk, old ? old.start + old.len : this.sb.dataStart, true);
      for (let i = 0; i < nblk; i++) {
        const img = Buffer.alloc(bs);
        buf.copy(img, 0, i * bs, Math.min(buf.length, (i + 1) * bs));
        this.journal.put(run.start + i, img);
      }
      inode.forkBlock = run.start; inode.forkBlocks = nblk;
    } else {
      inode.forkBlock = 0; inode.forkBlocks = 0;
    }
    inode.inlineFork = buf.length > INLINE_FORK_MAX ? null : buf;
    inode.forkLen = buf.length; inode.forkCrc = crc32c(buf) >>> 0;
    if (old) this.freeMeta(old);
  }

  private freeMeta(r: BlockRun): void {
    for (let b = r.start; b < r.start + r.len; b++) this.journal.forget(b);
    this.alloc.release(r.start, r.len);
  }

  private writeSlot(inode: Inode): void {
    if (inode.forkLen === undefined) this.writeFork(inode);
    const rec: InodeRecord = {
      ino: inode.ino, mode: inode.mode, uid: inode.uid, gid: inode.gid, nlink: inode.nlink, size: inode.size,
      atime: inode.atime, mtime: inode.mtime, ctime: inode.ctime, btime: inode.btime, flags: inode.flags,
      generation: inode.generation, rdev: inode.isDir ? inode.parent : inode.rdev, forkLen: inode.forkLen!, forkCrc: inode.forkCrc!,
      forkBlock: inode.forkBlock, forkBlocks: inode.forkBlocks,
      ...(inode.pendingRecords ? InodeStore.recFields(inode.pendingRecords)
        : { recIndex: inode.records?.headBlock ?? 0, recBlocks: inode.records?.blocks.length ?? 0, recCount: inode.records?.count ?? 0 }),
    };
    const slot = encodeInode(rec, inode.forkBlock ? null : inode.inlineFork ?? null);
    const off = this.slotOffInBlock(inode.ino);
    this.journal.modify(this.slotBlock(inode.ino), (img) => slot.copy(img, off));
  }

  private static recFields(p: { recIndex: number; recBlocks: number; recCount: number }): { recIndex: number; recBlocks: number; recCount: number } {
    return { recIndex: p.recIndex, recBlocks: p.recBlocks, recCount: p.recCount };
  }

  /**
   * Put a directory's entries back on media: its entry map and record set
   * leave core, and its next use reads them again (Inode.deferRecords), as
   * if it had just been read from its slot. For a large directory the
   * kernel keeps (the root, a working directory) that nothing has searched
   * for a while; the kernel's dcache keeps the names it still uses.
   * @returns false when it may not: inodes not read on demand, inside an
   *   operation, entries not read or inline in the fork, changes to them
   *   not yet encoded
   */
  unreadEntries(dir: Inode): boolean {
    const map = dir.direntsInCore, set = dir.recordsInCore;
    if (!this.lazy || this.op || !map || !set || set.kind !== REC_KIND_DIRENT || map.changed.size) return false;
    if (this.inodes.get(dir.ino) !== dir) return false;
    dir.deferRecords(set.headBlock, set.blocks.length, set.count, this.deferredReader);
    return true;
  }

  /** The inode is gone: zero its slot, free its metadata blocks. */
  private clearInode(inode: Inode, op: StoreOp): void {
    const off = this.slotOffInBlock(inode.ino);
    inode.readDeferred();   // its record blocks are freed with it
    this.journal.modify(this.slotBlock(inode.ino), (img) => img.fill(0, off, off + INODE_SIZE));
    for (const r of InodeStore.metaRuns(inode)) this.freeMeta(r);
    inode.forkBlock = 0; inode.forkBlocks = 0; inode.records = null;
    this.inodes.delete(inode.ino);
    this.noteIlist(inode.ino, false);
    this.sb.inodesUsed = Math.max(0, this.sb.inodesUsed - 1);
    op.sbDirty = true;
    this.pushFreeSlot(inode.ino, op);
  }

  /** A slot became free: hand it out again, unless the on-demand search has yet to reach it. */
  private pushFreeSlot(ino: number, op: StoreOp): void {
    if (this.lazy && ino >= this.scanNext) return;
    this.freeSlots.push(ino);
    op.slotOps.push(['push', ino]);
  }

  /** fsck: zero the slot of an inode that could not be loaded (its blocks become unreferenced). */
  clearSlot(ino: number): void {
    const op = this.needOp();
    const off = this.slotOffInBlock(ino);
    this.journal.modify(this.slotBlock(ino), (img) => img.fill(0, off, off + INODE_SIZE));
    this.noteIlist(ino, false);
    this.pushFreeSlot(ino, op);
  }

  /** Put the superblock into the running transaction (block 0). */
  writeSuperblockImage(): void {
    const enc = encodeSuperblock(this.sb);
    this.journal.modify(0, (img) => enc.copy(img, 0));
  }

  /**
   * The data images of transactions up to `seq` are home and durable
   * (DATALOG): write the superblock in place with that `dataSeq`, unflushed;
   * the next commit carries it, or an earlier data-only flush that takes one
   * of the logged blocks (Journal.dataFlushNeedsSb). Only
   * between transactions, when the in-core superblock is the committed one.
   */
  writeDataCheckpoint(seq: number): void {
    this.sb.dataSeq = seq;
    this.writeSuperblockHome();
    this.journal.dataSeqUnflushed = true;
  }

  /** The in-core superblock written to its home sector, unflushed. */
  private writeSuperblockHome(): void {
    this.region.write(regionOff(0), encodeSuperblock(this.sb), 0, SB_SIZE);
  }

  /** Write the superblock in place and flush it (mount state changes; never inside a transaction). */
  persistSuperblock(): void {
    this.writeSuperblockHome();
    this.region.persist('superblock', regionOff(0), SB_SIZE);
  }

  /** Write the backup superblock (last block) in place and flush it. */
  persistBackupSuperblock(): void {
    const off = (this.sb.totalBlocks - 1) * this.bs;
    this.region.write(regionOff(off), encodeSuperblock(this.sb), 0, SB_SIZE);
    this.region.persist('superblock', regionOff(off), SB_SIZE);
  }
}
