/**
 * @file The in-core side of an inode's block-based records (directory
 * entries or extent records; format in src/format/records.ts): which record
 * block holds which record, which blocks have room, and the index chain.
 *
 * `put` and `remove` touch one record block (plus one index block when a
 * block is added) and report what they touched; the store encodes those
 * blocks into the running transaction. Records are unordered on media: the
 * order that matters (names for lookup, extents by file block) is kept by
 * the in-core index that owns the records (Inode.dirents, BlockMap).
 *
 * A directory's hash index (a set made with a `hash`, FEAT_INCOMPAT_DIRHASH)
 * places each entry by its name hash instead: every record block (leaf)
 * holds the names of one hash range, the leaves in ascending order. A full
 * leaf splits at a hash near its middle (one new leaf, one new index entry,
 * and a new index block when that one overflows), and a leaf that a removal
 * leaves at most half as full as a block, with its neighbour, is merged
 * into it (the emptied block, and an emptied index block, are freed): each
 * operation touches at most three record blocks and three index blocks
 * more than its records' own, so the journal keeps it atomic and the log
 * bound of docs/DESIGN.md ("Bounded operations") holds.
 *
 * A hash index made now has root blocks (FEAT_INCOMPAT_DIRROOT): `roots`
 * list the index blocks in order with the lowest hash of each one's first
 * leaf, as the index blocks list the leaves. An index block that splits
 * adds an entry after its own (the root block splits in two when it
 * overflows); one emptied leaves its root block (freed when emptied); an
 * index block's first hash that changes changes its root entry. That is at
 * most three root blocks more per operation, and one more freed block. A
 * hash index from before the feature gets its roots at its next change
 * (rootIndex). A set rebuilt from its root (adoptIndex) reads an index
 * block only when a change reaches its range (readyLeaf).
 */
import { FsError } from '../errors.js';
import { FormatError } from '../format/layout.js';
import { indexCapacity, recBlockCapacity, type RecKind } from '../format/records.js';

/**
 * A hash index read from its root and index blocks (InodeStore's DirIndex):
 * root blocks and how many index blocks each lists (none before
 * FEAT_INCOMPAT_DIRROOT), the index blocks in hash order with the lowest
 * hash of each one's first leaf, and each one's leaves with their lowest
 * hashes once that index block is read (null until then).
 */
export interface DirIndexShape {
  roots: number[]; rootCounts: number[];
  ixBlocks: number[]; ixLos: number[];
  leaves: Array<{ blocks: number[]; los: number[] } | null>;
}

export type RecKey = string | number;

/** One record block in core: its region block and the encoded records it holds. */
/**
 * A record's encoded bytes: a Buffer, or where they lie in the block image
 * the record block was loaded from (`RecBlock.src`), as offset * 65536 +
 * length. Mount keeps the position instead of a Buffer object per record
 * (a directory of a million entries holds a million records).
 */
export type RecBytes = Buffer | number;
export interface RecBlock {
  block: number;
  /**
   * The block's records by key; null for a block adopted whole from media
   * (RecordSet.adoptUnread) until one of its records is first changed or
   * encoded: `itemsOf` then reads them from `src`.
   */
  items: Map<RecKey, RecBytes> | null;
  used: number;
  /** The image this block was decoded from (never written to), for records held as positions. */
  src: Buffer | null;
  /** For `items` still null: hands every record of `src` (key, byte offset, length) to `add`. */
  unread?: ((add: (key: RecKey, off: number, len: number) => void) => void) | null;
  /** A hash index's leaf: the lowest name hash it holds (its range ends at the next leaf's). */
  lo?: number;
  /** A leaf of a set rebuilt around the leaves a change reads (adoptIndex): not read, nothing of it known but where it is. */
  unloaded?: boolean;
  /**
   * Not a leaf: where the leaves of an index block not yet read stand in
   * `blocks` (adoptIndex), `lo` its first leaf's lowest hash; replaced by
   * them when a change reaches its range (RecordSet.readyLeaf).
   */
  stands?: IndexBlock;
}

const POS = 65536;
/** Bytes of a record. */
export function recLen(r: RecBytes): number { return typeof r === 'number' ? r % POS : r.length; }

/** A block's records by key, read from its source image first when the block was adopted unread. */
export function itemsOf(rb: RecBlock): Map<RecKey, RecBytes> {
  if (rb.unloaded) throw new Error(`record block ${rb.block} used before it was read`);
  if (rb.items === null) {
    const items = new Map<RecKey, RecBytes>();
    rb.unread!((key, off, len) => { items.set(key, off * POS + len); });
    rb.items = items;
    rb.unread = null;
  }
  return rb.items;
}

/** The records of a block as Buffers (views into its source image for the ones loaded from media). */
export function* recordBytes(rb: RecBlock): Generator<Buffer> {
  for (const r of itemsOf(rb).values()) {
    if (typeof r !== 'number') { yield r; continue; }
    const off = Math.floor(r / POS);
    yield rb.src!.subarray(off, off + (r % POS));
  }
}
/** A record's bytes as a Buffer (a view into its block's source image for a position). */
function recBuf(rb: RecBlock, r: RecBytes): Buffer {
  if (typeof r !== 'number') return r;
  const off = Math.floor(r / POS);
  return rb.src!.subarray(off, off + (r % POS));
}

/**
 * One index block in core: its region block and the record blocks it lists
 * (with a hash index's lowest hashes); `unread` for one of a set rebuilt
 * from its root (adoptIndex) whose list is not read yet: `list` and `los`
 * are then empty and `lo` is its first leaf's lowest hash.
 */
export interface IndexBlock { block: number; list: number[]; los?: number[]; unread?: { lo: number; stand: RecBlock } }

/**
 * Blocks a change touched, to be encoded by the store; `roots`: a hash
 * index's root blocks (IndexBlock entries are then index blocks); `freed`:
 * blocks a hash index let go (merged leaves, emptied index and root blocks).
 */
export interface RecTouched { recs: Set<RecBlock>; index: Set<IndexBlock>; roots?: Set<IndexBlock>; freed?: number[] }

/** Blocks with at least this many free bytes are candidates for new records (a longest dirent is 264). */
const ROOMY = 512;

export class RecordSet {
  readonly kind: RecKind;
  readonly ino: number;
  readonly bs: number;
  readonly index: IndexBlock[] = [];
  readonly blocks: RecBlock[] = [];
  /** A rooted hash index's root blocks, in order (empty: unordered records, or a hash index from before FEAT_INCOMPAT_DIRROOT). */
  readonly roots: IndexBlock[] = [];
  /**
   * Entries a hash index's index block (leaves) and root block (index
   * blocks) take before they split: the format's capacity, less only in
   * tests, for splits of the index and the root in a few hundred names.
   */
  readonly fanout: number;
  private readonly where = new Map<RecKey, RecBlock>();
  private readonly roomy = new Set<RecBlock>();
  private cursor: RecBlock | null = null;

  /** A directory's hash index: the name hash of a key (direntHash); null for unordered records. */
  readonly hash: ((key: string) => number) | null;

  constructor(kind: RecKind, ino: number, bs: number, hash: ((key: string) => number) | null = null, fanout?: number) {
    this.kind = kind; this.ino = ino; this.bs = bs; this.hash = hash;
    const cap = indexCapacity(bs, hash !== null);
    this.fanout = fanout === undefined ? cap : Math.max(2, Math.min(cap, fanout));
  }

  get count(): number { return this.where.size; }

  /** Changes made so far (puts and removals): a listing's cached leaf is stale once this moves. */
  version = 0;

  /**
   * A hash index's leaf whose range holds hash h, with its range's end (the
   * next leaf's lowest hash; null for the last), null for an empty index.
   */
  leafOf(h: number): { rb: RecBlock; next: number | null } | null {
    if (!this.hash || this.blocks.length === 0) return null;
    const i = this.readyLeaf(h, false);
    return { rb: this.blocks[i], next: this.blocks[i + 1]?.lo ?? null };
  }

  /**
   * A directory's hash index from its root and index blocks alone
   * (DirIndex), every leaf unloaded, and the index blocks whose leaves were
   * not read yet each standing in `blocks` for its leaves: the caller
   * readies the leaves a change needs (readyLeaf, which reads those index
   * blocks through `indexLoader`, then loadLeaf) before changing them. The
   * set's `count` then counts the loaded leaves' records only; `leafCount`
   * starts at `leaves`, the slot's count of record blocks.
   */
  adoptIndex(ix: DirIndexShape, leaves: number): void {
    let k = 0;
    ix.roots.forEach((block, r) => {
      const n = ix.rootCounts[r];
      this.roots.push({ block, list: ix.ixBlocks.slice(k, k + n), los: ix.ixLos.slice(k, k + n) });
      k += n;
    });
    this.unreadLeaves = leaves;
    ix.ixBlocks.forEach((block, j) => {
      const l = ix.leaves[j];
      if (!l) {
        const stand: RecBlock = { block: 0, items: null, used: 0, src: null, lo: ix.ixLos[j], unloaded: true };
        const ib: IndexBlock = { block, list: [], los: [], unread: { lo: ix.ixLos[j], stand } };
        stand.stands = ib;
        this.index.push(ib); this.blocks.push(stand);
        return;
      }
      this.index.push({ block, list: [...l.blocks], los: [...l.los] });
      for (let i = 0; i < l.blocks.length; i++) this.blocks.push({ block: l.blocks[i], items: null, used: 0, src: null, lo: l.los[i], unloaded: true });
      this.unreadLeaves -= l.blocks.length;
    });
  }

  /**
   * Leaves in the index blocks of adoptIndex not read yet (the slot's count
   * less the leaves listed by those read); 0 for a set read whole.
   */
  private unreadLeaves = 0;

  /** Leaves (record blocks) of the set, read or not. */
  get leafCount(): number {
    let stands = 0;
    for (const ix of this.index) if (ix.unread) stands++;
    return this.blocks.length - stands + this.unreadLeaves;
  }

  /**
   * For a set of adoptIndex: reads an index block whose leaves are not in
   * `blocks` yet, checked (RecordSet.readyLeaf): its leaves and their
   * lowest hashes. @throws what the reader throws for a damaged block
   */
  indexLoader: ((ix: IndexBlock) => { blocks: number[]; los: number[] }) | null = null;

  /** Put the leaves of index block ix (of adoptIndex, not read yet) in `blocks` in place of what stands for them. */
  private readIndex(ix: IndexBlock): void {
    const u = ix.unread;
    if (!u) return;
    const l = this.indexLoader!(ix);
    if (l.blocks.length === 0 || l.los[0] !== u.lo) throw new Error(`record set of inode ${this.ino}: index block ${ix.block} does not fit its root (the loader checks it)`);
    if (l.blocks.length > this.unreadLeaves) throw new FormatError(`inode ${this.ino}: its hash index lists more record blocks than the inode says`);
    const leaves: RecBlock[] = l.blocks.map((block, i) => ({ block, items: null, used: 0, src: null, lo: l.los[i], unloaded: true }));
    this.blocks.splice(this.blocks.indexOf(u.stand), 1, ...leaves);
    ix.list = [...l.blocks]; ix.los = [...l.los]; ix.unread = undefined;
    this.unreadLeaves -= leaves.length;
  }

  /**
   * Ready the leaf of hash h for a change (a set of adoptIndex): the index
   * block that lists it read, and with `neighbours` those of the leaves
   * before and after it too (a removal may merge with either).
   * @returns its position in `blocks`
   * @throws what indexLoader throws
   */
  readyLeaf(h: number, neighbours: boolean): number {
    let i = this.leafFor(h);
    if (this.blocks[i].stands) { this.readIndex(this.blocks[i].stands!); i = this.leafFor(h); }
    if (!neighbours) return i;
    if (this.blocks[i - 1]?.stands) { this.readIndex(this.blocks[i - 1].stands!); i = this.leafFor(h); }
    if (this.blocks[i + 1]?.stands) this.readIndex(this.blocks[i + 1].stands!);
    return this.leafFor(h);
  }

  /** Leaf rb of adoptIndex read: its image and records as adoptUnread and adoptKey take them. */
  loadLeaf(rb: RecBlock, src: Buffer, unread: NonNullable<RecBlock['unread']>, keys: ReadonlyArray<readonly [string, number]>): void {
    rb.unloaded = false; rb.src = src; rb.unread = unread; rb.used = 0;
    this.loadedLeaves++;
    for (const [key, len] of keys) this.adoptKey(rb, key, len);
    this.noteAdopted(rb);
  }

  /**
   * For a set of adoptIndex: reads an unloaded leaf (loadLeaf) when a merge
   * is about to move its records. An unloaded leaf's `used` may have been
   * set from its header before (a neighbour's size, for the merge decision).
   */
  loader: ((rb: RecBlock) => void) | null = null;

  /** Leaves of adoptIndex read so far (loadLeaf). */
  loadedLeaves = 0;

  /** The hash index as DirIndex: root blocks, index blocks with their lowest hashes, the leaves of every index block read. */
  toDirIndex(): DirIndexShape {
    return {
      roots: this.roots.map((r) => r.block), rootCounts: this.roots.map((r) => r.list.length),
      ixBlocks: this.index.map((ix) => ix.block), ixLos: this.index.map((ix) => ix.unread?.lo ?? ix.los![0]),
      leaves: this.index.map((ix) => (ix.unread ? null : { blocks: [...ix.list], los: [...ix.los!] })),
    };
  }

  /** The keys of block rb's records, without making its map when it was adopted unread. */
  keysOf(rb: RecBlock): RecKey[] {
    if (rb.items) return [...rb.items.keys()];
    const keys: RecKey[] = [];
    rb.unread!((key) => { keys.push(key); });
    return keys;
  }
  /** The block the owner points to (the slot's `recIndex`, a superblock root): the first root block of a rooted hash index, else the first index block; 0 for none. */
  get headBlock(): number { return this.roots[0]?.block ?? this.index[0]?.block ?? 0; }

  /**
   * Register a decoded record block (mount, reload). With `src`, the image
   * the records were decoded from (a private copy nothing writes to),
   * records that are views into it are kept as positions, not Buffers.
   */
  adopt(block: number, items: Array<[RecKey, Buffer]>, src: Buffer | null = null): RecBlock {
    const map = new Map<RecKey, RecBytes>();
    const rb: RecBlock = { block, items: map, used: 0, src };
    for (const [k, r] of items) {
      const inSrc = src !== null && r.buffer === src.buffer && r.byteOffset >= src.byteOffset && r.byteOffset + r.length <= src.byteOffset + src.length;
      map.set(k, inSrc && r.length < POS ? (r.byteOffset - src.byteOffset) * POS + r.length : r);
      rb.used += r.length; this.where.set(k, rb);
    }
    this.blocks.push(rb);
    this.noteRoom(rb);
    return rb;
  }

  /**
   * Register a record block read from media, `src` the image it was decoded
   * from (a private copy nothing writes to), without a map of its records:
   * its keys are then added one at a time (adoptKey), and `unread` lists its
   * records (key, offset, length in `src`) when one of them is first changed
   * or the block encoded (itemsOf). A directory of a million entries read
   * into core makes a million keys, not a million keys twice.
   */
  adoptUnread(block: number, src: Buffer, unread: NonNullable<RecBlock['unread']>, lo?: number): RecBlock {
    const rb: RecBlock = { block, items: null, used: 0, src, unread, lo };
    this.blocks.push(rb);
    return rb;
  }

  /** One record of a block registered by adoptUnread: its key and length. Call noteAdopted when the block is done. */
  adoptKey(rb: RecBlock, key: RecKey, len: number): void {
    rb.used += len;
    this.where.set(key, rb);
  }

  /** A block registered by adoptUnread has all its records. */
  noteAdopted(rb: RecBlock): void { this.noteRoom(rb); }

  has(key: RecKey): boolean { return this.where.has(key); }

  private noteRoom(rb: RecBlock): void {
    if (recBlockCapacity(this.bs) - rb.used >= ROOMY) this.roomy.add(rb); else this.roomy.delete(rb);
  }

  /**
   * Store (or replace) the record for key. Allocates a record block, and an
   * index block when the last is full, through `allocBlock` (may throw); a
   * hash index splits the leaf of the key's hash when it is full.
   * @throws FsError ENOSPC (hash index) when a full leaf holds only names of one hash
   */
  put(key: RecKey, rec: Buffer, t: RecTouched, allocBlock: (goal: number) => number): void {
    this.version++;
    const cur = this.where.get(key);
    if (cur) {
      const items = itemsOf(cur);
      const old = recLen(items.get(key)!);
      if (recBlockCapacity(this.bs) - cur.used + old >= rec.length) {
        items.set(key, rec); cur.used += rec.length - old;
        this.noteRoom(cur); t.recs.add(cur);
        return;
      }
      if (this.hash) { items.delete(key); cur.used -= old; this.where.delete(key); t.recs.add(cur); }
      else this.remove(key, t);
    }
    const rb = this.hash ? this.leafWithRoom(this.hash(key as string), rec.length, t, allocBlock) : this.blockWithRoom(rec.length, t, allocBlock);
    itemsOf(rb).set(key, rec); rb.used += rec.length;
    this.where.set(key, rb);
    this.noteRoom(rb); t.recs.add(rb);
    this.cursor = rb;
  }

  /** Drop the record for key, if present (a hash index then merges a leaf left at most half full with a neighbour). */
  remove(key: RecKey, t: RecTouched): void {
    const rb = this.where.get(key);
    if (!rb) return;
    this.version++;
    const items = itemsOf(rb);
    rb.used -= recLen(items.get(key)!);
    items.delete(key);
    this.where.delete(key);
    this.noteRoom(rb); t.recs.add(rb);
    if (this.hash) this.mergeLeaf(rb, t);
  }

  /** Position of leaf rb in `blocks` (a hash index: ascending lowest hashes). */
  private leafPos(rb: RecBlock): number {
    const i = this.leafFor(rb.lo!);
    if (this.blocks[i] !== rb) throw new Error(`record set of inode ${this.ino}: leaf ${rb.block} out of order`);
    return i;
  }

  /** Position in `blocks` of the leaf whose range holds hash h (the last with lo <= h). */
  private leafFor(h: number): number {
    let a = 0, b = this.blocks.length - 1;
    while (a < b) {
      const m = (a + b + 1) >> 1;
      if (this.blocks[m].lo! <= h) a = m; else b = m - 1;
    }
    return a;
  }

  /** The index block listing record block `block`, and its position there. */
  private entryOf(block: number): [IndexBlock, number] {
    for (const ix of this.index) {
      const k = ix.list.indexOf(block);
      if (k >= 0) return [ix, k];
    }
    throw new Error(`record set of inode ${this.ino}: block ${block} is in no index block`);
  }

  /**
   * The leaf for hash h with room for `len` more bytes: the first leaf and
   * index block of an empty index, or the leaf of h split first when full.
   * @throws FsError ENOSPC when the leaf cannot be split (one hash fills it)
   */
  private leafWithRoom(h: number, len: number, t: RecTouched, allocBlock: (goal: number) => number): RecBlock {
    const cap = recBlockCapacity(this.bs);
    if (this.blocks.length === 0) {
      const block = allocBlock(0), ib = allocBlock(block + 1), rtb = allocBlock(ib + 1);
      const rb: RecBlock = { block, items: new Map(), used: 0, src: null, lo: 0 };
      const ix: IndexBlock = { block: ib, list: [block], los: [0] };
      const rt: IndexBlock = { block: rtb, list: [ib], los: [0] };
      this.blocks.push(rb); this.index.push(ix); t.index.add(ix);
      this.roots.push(rt); (t.roots ??= new Set()).add(rt);
      return rb;
    }
    const rb = this.blocks[this.leafFor(h)];
    if (cap - rb.used >= len) return rb;
    this.splitLeaf(rb, t, allocBlock);
    const to = this.blocks[this.leafFor(h)];
    if (cap - to.used < len) throw new FsError('ENOSPC', 'create', undefined, `directory inode ${this.ino}: a leaf of its hash index is full of names of one hash`);
    return to;
  }

  /**
   * Split leaf rb at a hash boundary near the middle of its bytes: the
   * records from that hash on move to a new leaf listed right after it
   * (the index block that lists it splits in two when it overflows).
   * @throws FsError ENOSPC when every record of rb has the same hash
   */
  private splitLeaf(rb: RecBlock, t: RecTouched, allocBlock: (goal: number) => number): void {
    const hash = this.hash!;
    const recs = [...itemsOf(rb)].map(([k, r]) => ({ k, r, h: hash(k as string), len: recLen(r) })).sort((x, y) => x.h - y.h);
    // A leaf read without its names' hashes checked (InodeStore.syncDeferred): one outside its range is damage,
    // which a split must not spread into the index.
    const end = this.blocks[this.leafPos(rb) + 1]?.lo ?? 2 ** 32;
    if (recs.length && (recs[0].h < rb.lo! || recs[recs.length - 1].h >= end)) {
      throw new FsError('EIO', 'create', undefined, `directory inode ${this.ino}: record block ${rb.block} holds a name outside its hash range (unmount and run fsck.pmemfs -y)`);
    }
    let k = 0;
    for (let acc = 0; k < recs.length - 1 && acc + recs[k].len <= rb.used / 2; k++) acc += recs[k].len;
    if (k === 0) k = 1;
    let fwd = k, back = k;
    while (fwd < recs.length && recs[fwd].h === recs[fwd - 1]?.h) fwd++;
    while (back > 0 && recs[back].h === recs[back - 1].h) back--;
    const at = back > 0 && (fwd >= recs.length || k - back <= fwd - k) ? back : fwd;
    if (at <= 0 || at >= recs.length) throw new FsError('ENOSPC', 'create', undefined, `directory inode ${this.ino}: a leaf of its hash index is full of names of one hash`);
    const [ix, pos] = this.entryOf(rb.block);
    const splitIndex = ix.list.length + 1 > this.fanout;
    const [rt, rp] = splitIndex && this.roots.length ? this.rootEntryOf(ix.block) : [null, -1];
    const splitRoot = rt !== null && rt.list.length + 1 > this.fanout;
    const block = allocBlock(rb.block + 1);
    const ib = splitIndex ? allocBlock(block + 1) : 0;
    const rtb = splitRoot ? allocBlock(ib + 1) : 0;
    const nb: RecBlock = { block, items: new Map(), used: 0, src: null, lo: recs[at].h };
    const from = itemsOf(rb), to = nb.items!;
    for (let i = at; i < recs.length; i++) {
      const { k: key, r, len } = recs[i];
      to.set(key, recBuf(rb, r)); from.delete(key);
      rb.used -= len; nb.used += len;
      this.where.set(key, nb);
    }
    this.blocks.splice(this.leafPos(rb) + 1, 0, nb);
    ix.list.splice(pos + 1, 0, block); ix.los!.splice(pos + 1, 0, nb.lo!);
    t.recs.add(rb); t.recs.add(nb); t.index.add(ix);
    if (splitIndex) {
      const half = Math.ceil(ix.list.length / 2);
      const nix: IndexBlock = { block: ib, list: ix.list.splice(half), los: ix.los!.splice(half) };
      this.index.splice(this.index.indexOf(ix) + 1, 0, nix);
      t.index.add(nix);
      if (rt) {
        const roots = (t.roots ??= new Set());
        rt.list.splice(rp + 1, 0, ib); rt.los!.splice(rp + 1, 0, nix.los![0]);
        roots.add(rt);
        if (splitRoot) {
          const rhalf = Math.ceil(rt.list.length / 2);
          const nrt: IndexBlock = { block: rtb, list: rt.list.splice(rhalf), los: rt.los!.splice(rhalf) };
          this.roots.splice(this.roots.indexOf(rt) + 1, 0, nrt);
          roots.add(nrt);
        }
      }
    }
  }

  /**
   * After a removal from leaf rb: an empty rb goes (its range to the leaf
   * before it, or to the next for the first leaf); else rb and a neighbour
   * that together fill at most half a block become one. Never the last leaf.
   */
  private mergeLeaf(rb: RecBlock, t: RecTouched): void {
    if (this.blocks.length <= 1) return;
    const i = this.leafPos(rb), prev = this.blocks[i - 1], next = this.blocks[i + 1];
    const half = recBlockCapacity(this.bs) / 2;
    if (rb.used === 0) this.absorb(prev ?? next, rb, t);
    else if (next && rb.used + next.used <= half) this.absorb(rb, next, t);
    else if (prev && prev.used + rb.used <= half) this.absorb(prev, rb, t);
  }

  /** Move leaf `drop`'s records into its neighbour `keep`, which takes over its range; drop (and an index block it empties) is freed. */
  private absorb(keep: RecBlock, drop: RecBlock, t: RecTouched): void {
    for (const rb of [keep, drop]) if (rb.unloaded) this.loader!(rb);
    {
      // An index block this empties goes, and the one before it chains past it: that one is read first.
      const [dx] = this.entryOf(drop.block), j = this.index.indexOf(dx);
      if (dx.list.length === 1 && j > 0) this.readIndex(this.index[j - 1]);
    }
    const into = itemsOf(keep);
    for (const [key, r] of itemsOf(drop)) { into.set(key, recBuf(drop, r)); this.where.set(key, keep); }
    keep.used += drop.used;
    const freed = t.freed ??= [];
    if (drop.lo! < keep.lo!) {
      keep.lo = drop.lo;
      const [kx, kp] = this.entryOf(keep.block);
      kx.los![kp] = drop.lo!; t.index.add(kx);
      if (kp === 0) this.rootLoChanged(kx, t);
    }
    this.blocks.splice(this.blocks.indexOf(drop), 1);
    const [dx, dp] = this.entryOf(drop.block);
    dx.list.splice(dp, 1); dx.los!.splice(dp, 1);
    t.index.add(dx);
    if (dx.list.length === 0) {
      const j = this.index.indexOf(dx);
      this.index.splice(j, 1);
      if (j > 0) t.index.add(this.index[j - 1]);   // its next pointer changes
      t.index.delete(dx);
      freed.push(dx.block);
      if (this.roots.length) this.rootDrop(dx.block, t);
    } else if (dp === 0) this.rootLoChanged(dx, t);
    t.recs.delete(drop); t.recs.add(keep);
    freed.push(drop.block);
  }

  private blockWithRoom(len: number, t: RecTouched, allocBlock: (goal: number) => number): RecBlock {
    const cap = recBlockCapacity(this.bs);
    if (this.cursor && cap - this.cursor.used >= len) return this.cursor;
    for (const rb of this.roomy) if (cap - rb.used >= len) return rb;
    const last = this.blocks[this.blocks.length - 1];
    const block = allocBlock(last ? last.block + 1 : 0);
    let ix = this.index[this.index.length - 1];
    if (!ix || ix.list.length >= indexCapacity(this.bs)) {
      const ib = allocBlock(block + 1);
      if (ix) t.index.add(ix);   // its next pointer changes
      ix = { block: ib, list: [] };
      this.index.push(ix);
    }
    ix.list.push(block);
    t.index.add(ix);
    const rb: RecBlock = { block, items: new Map(), used: 0, src: null };
    this.blocks.push(rb);
    return rb;
  }

  /** The root block listing index block `block`, and its position there. */
  private rootEntryOf(block: number): [IndexBlock, number] {
    for (const rt of this.roots) {
      const k = rt.list.indexOf(block);
      if (k >= 0) return [rt, k];
    }
    throw new Error(`record set of inode ${this.ino}: index block ${block} is in no root block`);
  }

  /** Index block ix's first leaf's lowest hash changed: so does its root entry (a rooted index). */
  private rootLoChanged(ix: IndexBlock, t: RecTouched): void {
    if (!this.roots.length) return;
    const [rt, k] = this.rootEntryOf(ix.block);
    rt.los![k] = ix.los![0];
    (t.roots ??= new Set()).add(rt);
  }

  /** Index block `block` was emptied and freed: its root entry goes, and a root block it empties (never the last) is freed. */
  private rootDrop(block: number, t: RecTouched): void {
    const [rt, k] = this.rootEntryOf(block);
    const roots = (t.roots ??= new Set());
    rt.list.splice(k, 1); rt.los!.splice(k, 1);
    roots.add(rt);
    if (rt.list.length > 0) return;
    const j = this.roots.indexOf(rt);
    this.roots.splice(j, 1);
    if (j > 0) roots.add(this.roots[j - 1]);   // its next pointer changes
    roots.delete(rt);
    t.freed!.push(rt.block);
  }

  /**
   * Give a hash index from before FEAT_INCOMPAT_DIRROOT its root blocks
   * (as many as its index blocks fill, `fanout` to a block) through
   * `allocBlock` (may throw, before anything changes); nothing for one that
   * has them, or unordered records.
   */
  rootIndex(t: RecTouched, allocBlock: (goal: number) => number): void {
    if (!this.hash || this.roots.length || !this.index.length) return;
    const n = Math.ceil(this.index.length / this.fanout);
    const got: number[] = [];
    for (let i = 0; i < n; i++) got.push(allocBlock(got[i - 1] !== undefined ? got[i - 1] + 1 : this.index[0].block + 1));
    const roots = (t.roots ??= new Set());
    for (let i = 0; i < n; i++) {
      const part = this.index.slice(i * this.fanout, (i + 1) * this.fanout);
      const rt: IndexBlock = { block: got[i], list: part.map((ix) => ix.block), los: part.map((ix) => ix.los![0]) };
      this.roots.push(rt); roots.add(rt);
    }
  }

  /**
   * Region blocks this set occupies (root, index and record blocks).
   * @throws Error for a set of adoptIndex with index blocks not read (their leaves unknown)
   */
  allBlocks(): number[] {
    if (this.index.some((ix) => ix.unread)) throw new Error(`record set of inode ${this.ino}: blocks asked of an index not read whole`);
    return [...this.roots.map((r) => r.block), ...this.index.map((i) => i.block), ...this.blocks.map((b) => b.block)];
  }

  /** Region block of the root block after rt (0 for the last). */
  nextRootOf(rt: IndexBlock): number {
    const i = this.roots.indexOf(rt);
    return this.roots[i + 1]?.block ?? 0;
  }

  /** Region block of the index block after ix (0 for the last). */
  nextOf(ix: IndexBlock): number {
    const i = this.index.indexOf(ix);
    return this.index[i + 1]?.block ?? 0;
  }
}
