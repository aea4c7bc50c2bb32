/**
 * @file One open directory's readdir position, without a snapshot of the
 * directory: its entries are read from the live entry map — or, while they
 * are still on media, from the directory's record blocks
 * (InodeStore.listEntries) — as the kernel asks for them, so opening a
 * directory of a million entries costs nothing and a listing uses memory
 * for one reply at a time.
 *
 * Offsets: entry k of the listing ('.' is 0, '..' is 1, then the entries in
 * the map's order) is handed to the kernel with cookie k + 1, and a READDIR
 * at offset k resumes at entry k (fuse_lowlevel.h, readdir: "off" is the
 * cookie of the last entry the kernel consumed).
 *
 * The kernel does not always resume where the last reply ended: entries of
 * a reply that did not fit the caller's getdents buffer are asked for again
 * (fs/fuse/readdir.c, fuse_readdir_uncached stops at the first dir_emit
 * that fails, and the next call starts at that entry's position). So the
 * entries of the last reply are kept (`window`) and served again from
 * there; an offset before the window (rewinddir, a seek) walks the map from
 * its start. A JavaScript Map iterates in insertion order and goes on past
 * deletions and insertions, so an entry neither added nor removed while the
 * directory is open is listed exactly once (POSIX leaves entries added or
 * removed meanwhile unspecified).
 *
 * A directory whose entries are a hash index (FEAT_INCOMPAT_DIRHASH) is
 * listed by hash instead (`hashed`): leaf by leaf in ascending hash order,
 * each leaf's entries sorted by hash then name, and an entry's cookie is
 * its hash and its rank among the names of that hash (ext4's major and
 * minor hash): cookie = HEAD + 1 + hash * RANKS + rank, after the head's
 * cookies 1 .. HEAD. A READDIR at a cookie goes on with the first entry
 * past it, from the leaf that holds its hash now — so splits and merges of
 * leaves meanwhile, a remount or the directory leaving core change
 * nothing: an entry neither added nor removed is listed exactly once, and
 * a cookie stays valid as long as the names of its hash do not change
 * (ext4's limit too). Only the leaf last read is kept, while nothing
 * changed (`stamp`).
 */

type Entry = readonly [name: string, ino: number];

/** A leaf of a hash index as a listing reads it: entries [name, ino, hash] sorted by hash then name; its range's lowest hash and the next leaf's (null after the last). */
export interface HashedLeaf { lo: number; next: number | null; entries: ReadonlyArray<readonly [string, number, number]> }

/** Where a hash-ordered listing reads its entries. */
export interface HashedEntries {
  /** Something that differs whenever the entries may have changed since the last call (a cached leaf is then read again). */
  stamp(): readonly unknown[];
  /** The leaf whose range holds hash h. @throws FsError EIO for a damaged leaf */
  leaf(h: number): HashedLeaf;
}

/** Ranks of names sharing one hash a cookie can tell apart (a leaf holds fewer names than this). */
const RANKS = 65536;

export class DirStream {
  private iter: Iterator<Entry> | null = null;
  /** Offset of the entry `iter` yields next. */
  private next = 0;
  /** The entries of the last reply (the one that did not fit included), from offset `windowStart`. */
  private window: Entry[] = [];
  private windowStart = 0;
  /** The directory listed (null for a control directory): its `dirStreams` counts this stream while it is open. */
  dir: { dirStreams: number } | null = null;

  /**
   * @param ino the directory's node id
   * @param head entries listed first ('.' and '..'; or a control directory's whole listing)
   * @param entries the live entries after the head (called again on a rewind)
   */
  constructor(readonly ino: number, private readonly head: readonly Entry[], private readonly entries: () => Iterable<Entry>,
    private readonly hashed: HashedEntries | null = null) {}

  /** The leaf last read by a hash-ordered listing, and the stamp it was read under. */
  private cached: { leaf: HashedLeaf; stamp: readonly unknown[] } | null = null;

  /**
   * Hand entries from offset `off` to `emit` (name, node id, the cookie of
   * the entry after it) until it returns false (the reply is full) or the
   * listing ends.
   */
  read(off: number, emit: (name: string, ino: number, nextOff: number) => boolean): void {
    if (this.hashed) { this.readHashed(off, emit); return; }
    const win: Entry[] = [];
    for (let pos = off; ; pos++) {
      const e = this.at(pos);
      if (!e) break;
      win.push(e);
      if (!emit(e[0], e[1], pos + 1)) break;
    }
    // Stopped inside the last window: keep its rest, which the iterator is already past.
    const end = off + win.length, oldEnd = this.windowStart + this.window.length;
    if (off >= this.windowStart && end < oldEnd) for (let p = end; p < oldEnd; p++) win.push(this.window[p - this.windowStart]);
    this.window = win;
    this.windowStart = off;
  }

  /** read() of a hash-ordered listing: the head by position, then the entries past the cookie `off`. */
  private readHashed(off: number, emit: (name: string, ino: number, nextOff: number) => boolean): void {
    const head = this.head, base = head.length + 1;
    for (let pos = off; pos < head.length; pos++) if (!emit(head[pos][0], head[pos][1], pos + 1)) return;
    // Past (h, r): hash h's names of rank r and below were listed. off <= head.length: nothing yet.
    let h = 0, r = -1;
    if (off >= base) { h = Math.floor((off - base) / RANKS); r = (off - base) % RANKS; }
    for (;;) {
      const leaf = this.leafOf(h);
      let rank = -1, prev = -1;
      for (const [name, ino, eh] of leaf.entries) {
        rank = eh === prev ? rank + 1 : 0;
        prev = eh;
        if (eh < h || (eh === h && rank <= r)) continue;
        if (!emit(name, ino, base + eh * RANKS + rank)) return;
      }
      if (leaf.next === null) return;
      h = leaf.next; r = -1;
    }
  }

  /** The leaf of hash h: the cached one while nothing changed, else read again. */
  private leafOf(h: number): HashedLeaf {
    const src = this.hashed!;
    const stamp = src.stamp();
    const c = this.cached;
    if (c && c.leaf.lo <= h && (c.leaf.next === null || h < c.leaf.next) && c.stamp.length === stamp.length && c.stamp.every((x, i) => x === stamp[i])) return c.leaf;
    this.cached = null;
    const leaf = src.leaf(h);
    this.cached = { leaf, stamp };
    return leaf;
  }

  /** Entry `pos`: from the last reply's window, the iterator, or a walk from the start. */
  private at(pos: number): Entry | undefined {
    if (pos >= this.windowStart && pos < this.windowStart + this.window.length) return this.window[pos - this.windowStart];
    if (!this.iter || pos !== this.next) this.seek(pos);
    let r: IteratorResult<Entry>;
    try {
      r = this.iter!.next();
    } catch (e) {
      this.iter = null;   // a failed read (a damaged block) fails again at the next request, not as an end
      throw e;
    }
    if (r.done) return undefined;
    this.next++;
    return r.value;
  }

  private seek(pos: number): void {
    const head = this.head, entries = this.entries;
    this.iter = (function* all(): Generator<Entry> { yield* head; yield* entries(); })();
    this.next = 0;
    while (this.next < pos && !this.iter.next().done) this.next++;
  }
}
