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
 */

type Entry = readonly [name: string, ino: number];

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
  constructor(readonly ino: number, private readonly head: readonly Entry[], private readonly entries: () => Iterable<Entry>) {}

  /**
   * Hand entries from offset `off` to `emit` (name, node id, the cookie of
   * the entry after it) until it returns false (the reply is full) or the
   * listing ends.
   */
  read(off: number, emit: (name: string, ino: number, nextOff: number) => boolean): void {
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
