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
 */
import { indexCapacity, recBlockCapacity, type RecKind } from '../format/records.js';

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
}

const POS = 65536;
/** Bytes of a record. */
export function recLen(r: RecBytes): number { return typeof r === 'number' ? r % POS : r.length; }

/** A block's records by key, read from its source image first when the block was adopted unread. */
export function itemsOf(rb: RecBlock): Map<RecKey, RecBytes> {
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
/** One index block in core: its region block and the record blocks it lists. */
export interface IndexBlock { block: number; list: number[] }

/** Blocks a change touched, to be encoded by the store. */
export interface RecTouched { recs: Set<RecBlock>; index: Set<IndexBlock> }

/** Blocks with at least this many free bytes are candidates for new records (a longest dirent is 264). */
const ROOMY = 512;

export class RecordSet {
  readonly kind: RecKind;
  readonly ino: number;
  readonly bs: number;
  readonly index: IndexBlock[] = [];
  readonly blocks: RecBlock[] = [];
  private readonly where = new Map<RecKey, RecBlock>();
  private readonly roomy = new Set<RecBlock>();
  private cursor: RecBlock | null = null;

  constructor(kind: RecKind, ino: number, bs: number) { this.kind = kind; this.ino = ino; this.bs = bs; }

  get count(): number { return this.where.size; }
  get firstIndexBlock(): number { return this.index[0]?.block ?? 0; }

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
  adoptUnread(block: number, src: Buffer, unread: NonNullable<RecBlock['unread']>): RecBlock {
    const rb: RecBlock = { block, items: null, used: 0, src, unread };
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
   * index block when the last is full, through `allocBlock` (may throw).
   */
  put(key: RecKey, rec: Buffer, t: RecTouched, allocBlock: (goal: number) => number): void {
    const cur = this.where.get(key);
    if (cur) {
      const items = itemsOf(cur);
      const old = recLen(items.get(key)!);
      if (recBlockCapacity(this.bs) - cur.used + old >= rec.length) {
        items.set(key, rec); cur.used += rec.length - old;
        this.noteRoom(cur); t.recs.add(cur);
        return;
      }
      this.remove(key, t);
    }
    const rb = this.blockWithRoom(rec.length, t, allocBlock);
    itemsOf(rb).set(key, rec); rb.used += rec.length;
    this.where.set(key, rb);
    this.noteRoom(rb); t.recs.add(rb);
    this.cursor = rb;
  }

  /** Drop the record for key, if present. */
  remove(key: RecKey, t: RecTouched): void {
    const rb = this.where.get(key);
    if (!rb) return;
    const items = itemsOf(rb);
    rb.used -= recLen(items.get(key)!);
    items.delete(key);
    this.where.delete(key);
    this.noteRoom(rb); t.recs.add(rb);
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

  /** Region blocks this set occupies (record and index blocks). */
  allBlocks(): number[] {
    return [...this.index.map((i) => i.block), ...this.blocks.map((b) => b.block)];
  }

  /** Region block of the index block after ix (0 for the last). */
  nextOf(ix: IndexBlock): number {
    const i = this.index.indexOf(ix);
    return this.index[i + 1]?.block ?? 0;
  }
}
