/**
 * @file The emulated persistent-memory region: a file mapped MAP_SHARED
 * through the native addon (mmap-io 1.1.7 casts the file offset to a C int, so
 * it cannot map past 2 GiB). A Node Buffer holds at most 4 GiB, so the region is mapped in
 * fixed windows (1 GiB), each mapped on first touch; every accessor splits a
 * range at window boundaries.
 *
 * Durability: a store (a pwrite, or a copy into the mapping on an in-memory
 * filesystem: StoreMode) reaches the region file's page cache at once (it
 * survives a kill -9 of the daemon) but is durable only after the range is
 * flushed (msync, or fdatasync of the file). Every flush goes through `persist()` or
 * `persistDirty()`, which name the persistence point and count it. The
 * region remembers which 4 KiB pages were stored to since their last flush
 * (the pages a power failure may lose).
 *
 * Power-failure emulation (`recordUnflushed()`, the idea of dm-log-writes and
 * PMDK's pmreorder at page granularity): each page's content as of its last
 * flush is kept when the page is first stored to, so that `crashImage()` can
 * produce what the media would hold had the power gone now — any chosen
 * subset of the unflushed pages lost — and `powerFail()` can make the region
 * file itself that image. Stores by other processes (the DMA emulator, the
 * MAP_DIRECT client) bypass this and count as flushed.
 */
import * as fs from 'node:fs';
import { FsError } from '../errors.js';
import { loadNative } from '../native.js';
import { regionOff, type RegionOff } from '../types.js';

const PAGE_SIZE = 4096;

/** Bytes per mapped window; a multiple of every supported block size and of the page size. */
export const WINDOW_SIZE = 1 << 30;
/** What crashImage() leaves in a lost page that was stored to fresh (its durable content is unknown). */
export const LOST_FRESH_BYTE = 0xdb;
/**
 * persistRanges joins two spans across a gap of clean pages when it can
 * tell the gap is clean in at most this many set lookups (the gap's pages,
 * or the dirty pages if fewer).
 */
const MERGE_CHECK_LIMIT = 4096;

/** Why a range was flushed; counted in .pmemfs/stats. */
export type PersistPoint = 'data' | 'log' | 'commit' | 'superblock' | 'all';

export { PAGE_SIZE };

/**
 * How the daemon's stores reach the region file.
 * - `pwrite`: pwrite(2) on the region file's descriptor. The bytes land in
 *   the same page cache as through any mapping (every mapping of the
 *   region, ours and other processes', sees them at once), but no page is
 *   mapped writable into the daemon. Writing back a page that a process has
 *   mapped writable first write-protects it there (page_mkclean, mm/rmap.c)
 *   and shoots down the TLB of every CPU the process's threads ran on,
 *   which in a VM costs more than the copy (an overwrite's FSYNC 146-258 ->
 *   109-118 µs, interleaved runs of bench:fsync-path); and every page the
 *   daemon stored to would stay in its RSS for as long as it runs (a commit
 *   into a 1M-entry directory mapped 487 MiB of it).
 * - `mapping`: a copy into the MAP_SHARED mapping. For a region in memory
 *   (tmpfs, ramfs, hugetlbfs): nothing is ever written back there, so a
 *   flush write-protects nothing, and a copy is cheaper than a system call
 *   (4 KiB random writes QD16 on tmpfs: 122k IOPS this way, 93k by pwrite).
 * `auto` (Region.open's default) picks `mapping` for a region file on one
 * of those filesystems and `pwrite` for any other.
 */
export type StoreMode = 'pwrite' | 'mapping';

/** statfs(2) f_type of the filesystems whose files are memory only (linux/magic.h). */
const IN_MEMORY_FS = new Set([0x01021994 /* TMPFS_MAGIC */, 0x858458f6 /* RAMFS_MAGIC */, 0x958458f6 /* HUGETLBFS_MAGIC */]);

/** StoreMode `auto` for a region file at `path`: `mapping` on an in-memory filesystem, else `pwrite`. */
export function storeModeFor(path: string): StoreMode {
  let type: number;
  try { type = Number(fs.statfsSync(path).type); } catch { return 'pwrite'; }
  return IN_MEMORY_FS.has(type) ? 'mapping' : 'pwrite';
}

let zeroBuf: Buffer | null = null;
/** A shared buffer of zeroes, at most 1 MiB (never written). */
function zeroes(len: number): Buffer {
  if (!zeroBuf || (zeroBuf.length < len && zeroBuf.length < 1 << 20)) zeroBuf = Buffer.alloc(Math.min(1 << 20, Math.max(len, 65536)));
  return zeroBuf;
}

/**
 * Pre-images of unflushed pages, kept in 16 MiB slabs (no allocation per
 * page: a page's first store costs one 4 KiB copy). Slabs stay for reuse.
 */
class PreImages {
  private static readonly PER_SLAB = 4096;
  /** Pages per fill at most (1 MiB): the scratch buffer's size. */
  private static readonly RUN_PAGES = 256;
  private readonly runSlots = new Array<number>(PreImages.RUN_PAGES);
  private scratch: Buffer | null = null;
  private readonly slot = new Map<number, number>();   // page → slot
  private readonly free: number[] = [];
  private readonly slabs: Buffer[] = [];
  private next = 0;

  get size(): number { return this.slot.size; }

  private view(s: number): Buffer {
    const off = (s % PreImages.PER_SLAB) * PAGE_SIZE;
    return this.slab(s).subarray(off, off + PAGE_SIZE);
  }

  /** The slab holding slot s (made on first use). */
  private slab(s: number): Buffer {
    const i = Math.floor(s / PreImages.PER_SLAB);
    while (this.slabs.length <= i) this.slabs.push(Buffer.allocUnsafe(PreImages.PER_SLAB * PAGE_SIZE));
    return this.slabs[i];
  }

  /**
   * Keep src[srcOff, srcOff + 4 KiB) as page p's pre-image (keepRun of one
   * page): a page whose failed write-back left the media's content in hand.
   */
  keep(p: number, src: Buffer, srcOff: number): void {
    this.keepRun(p, 1, (dst) => { src.copy(dst, 0, srcOff, srcOff + PAGE_SIZE); });
  }

  /**
   * Keep pages [first, first + count) as pre-images, their content filled
   * by `fill(dst, page)` (dst: the content of pages [page, page +
   * dst.length / 4 KiB)): one call per chunk of at most RUN_PAGES pages,
   * instead of one read or copy per page. A chunk whose slots lie side by
   * side in one slab (after a full flush the slots are handed out in
   * order) is filled in the slab itself; one whose slots do not (slots
   * recycled after ranged flushes, fsync's path) is filled into a scratch
   * buffer and copied from there page by page: a 4 KiB copy costs far less
   * than the pread(2) per page it saves.
   * @returns the number of `fill` calls made
   */
  keepRun(first: number, count: number, fill: (dst: Buffer, page: number) => void): number {
    let calls = 0;
    const slots = this.runSlots;
    for (let i = 0; i < count; calls++) {
      const n = Math.min(count - i, PreImages.RUN_PAGES);
      let sideBySide = true;
      for (let k = 0; k < n; k++) {
        const s = this.free.pop() ?? this.next++;
        slots[k] = s;
        this.slot.set(first + i + k, s);
        if (k > 0 && (s !== slots[0] + k || s % PreImages.PER_SLAB === 0)) sideBySide = false;
      }
      if (sideBySide) {
        const at = (slots[0] % PreImages.PER_SLAB) * PAGE_SIZE;
        fill(this.slab(slots[0]).subarray(at, at + n * PAGE_SIZE), first + i);
      } else {
        this.scratch ??= Buffer.allocUnsafe(PreImages.RUN_PAGES * PAGE_SIZE);
        fill(this.scratch.subarray(0, n * PAGE_SIZE), first + i);
        for (let k = 0; k < n; k++) this.scratch.copy(this.view(slots[k]), 0, k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
      }
      i += n;
    }
    return calls;
  }

  /** Page p's pre-image, or undefined when none is kept. */
  get(p: number): Buffer | undefined {
    const s = this.slot.get(p);
    return s === undefined ? undefined : this.view(s);
  }

  delete(p: number): void {
    const s = this.slot.get(p);
    if (s === undefined) return;
    this.slot.delete(p);
    this.free.push(s);
  }

  clear(): void { this.slot.clear(); this.free.length = 0; this.next = 0; }

  *entries(): IterableIterator<[number, Buffer]> { for (const [p, s] of this.slot) yield [p, this.view(s)]; }

  has(p: number): boolean { return this.slot.has(p); }
}

export class Region {
  readonly path: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly fd: number;
  private readonly windows: (Buffer | undefined)[];
  readonly persistCounts = new Map<PersistPoint, number>();
  /** Incremented by every flush of all unflushed pages: a record of dirty pages taken at an older generation is clean. */
  flushGen = 0;
  /** Pages stored to since their last flush. */
  private readonly dirtyPages = new Set<number>();
  /** With recording on: each unflushed page's content as of its last flush. */
  private preImages: PreImages | null = null;
  /** Called at the start of every persistence point, before anything is flushed (crash harnesses). */
  onPersist: ((point: PersistPoint, seq: number) => void) | null = null;
  /** Persistence points so far (the N of "crash at the Nth persistence point"). */
  persistSeq = 0;
  /** Reads (preads, or copies from the mapping) that took recording's pre-images: its cost in system calls. */
  preImageReads = 0;
  /** Set by powerFail(): the media is gone; every further store or flush throws. */
  halted = false;
  /**
   * Fault injection (flush_fail_at=N, the flush-failure harness): asked at
   * every persistence point after onPersist; true makes that flush fail as a
   * medium error would (EIO), before anything of it reaches the media.
   */
  flushFault: ((point: PersistPoint, seq: number) => boolean) | null = null;
  /**
   * The first failed flush (a medium error or an injected one), after which
   * every persistence point fails with EIO: the region is shut down (the
   * filesystem's shutdown, xfs_force_shutdown, builds on it). Null while healthy.
   */
  failed: { point: PersistPoint; seq: number; message: string } | null = null;
  /**
   * Pages whose write-back failed, with the content the media still holds
   * (recording only). Like Linux after a failed writeback, the page is no
   * longer dirty in memory; crashImage() shows the media's old content.
   */
  private readonly lostWriteback = new Map<number, Buffer>();

  /** How stores reach the region file (StoreMode). */
  readonly stores: StoreMode;

  private constructor(path: string, fd: number, size: number, readOnly: boolean, stores: StoreMode) {
    this.path = path; this.fd = fd; this.size = size; this.readOnly = readOnly; this.stores = stores;
    this.windows = new Array(Math.ceil(size / WINDOW_SIZE));
  }

  /**
   * Open and map a region file. `size` is the file's length (bytes).
   * `stores`: how stores reach the file (StoreMode; default `auto`, by the
   * filesystem it is on: storeModeFor).
   * @throws Node fs errors (ENOENT, EACCES...) with code/syscall/path
   */
  static open(path: string, opts: { readOnly?: boolean; stores?: StoreMode | 'auto' } = {}): Region {
    const ro = !!opts.readOnly;
    const fd = fs.openSync(path, ro ? 'r' : 'r+');
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' });
      const stores = !opts.stores || opts.stores === 'auto' ? storeModeFor(path) : opts.stores;
      return new Region(path, fd, st.size, ro, stores);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private window(i: number): Buffer {
    let w = this.windows[i];
    if (!w) {
      const base = i * WINDOW_SIZE;
      const len = Math.min(WINDOW_SIZE, this.size - base);
      w = loadNative().mmap(this.fd, base, len, !this.readOnly);
      this.windows[i] = w;
    }
    return w;
  }

  private check(off: number, len: number): void {
    if (!(off >= 0 && len >= 0 && off + len <= this.size)) {
      throw new RangeError(`region access [${off}, +${len}) outside the region (${this.size} bytes)`);
    }
  }

  /** Call fn for each window piece of [off, off+len): (window buffer, offset in window, bytes done so far, piece length). */
  private each(off: number, len: number, fn: (w: Buffer, wOff: number, done: number, n: number) => void): void {
    this.check(off, len);
    let done = 0;
    while (done < len) {
      const abs = off + done;
      const wi = Math.floor(abs / WINDOW_SIZE);
      const wOff = abs - wi * WINDOW_SIZE;
      const n = Math.min(len - done, WINDOW_SIZE - wOff);
      fn(this.window(wi), wOff, done, n);
      done += n;
    }
  }

  /**
   * A copy of [off, off+len) read with pread(2), not through the mapping:
   * for scans that read all the metadata once (mount, fsck), so the pages
   * they read stay in the host's page cache without being mapped into this
   * process, where they would count in its RSS for as long as it runs (an
   * XFS mount reads its metadata into the buffer cache, not into a
   * process). The bytes are the mapping's: one page cache serves both.
   * @throws RangeError outside the region; Error on a short read (the file shrank)
   */
  preadBuf(off: RegionOff, len: number): Buffer {
    return this.preadInto(off, Buffer.allocUnsafe(len));
  }

  /**
   * preadBuf into `dst` (its whole length), for a scan that looks at one
   * block at a time and keeps nothing (a cold lookup's probe).
   * @returns dst
   * @throws RangeError outside the region; Error on a short read
   */
  preadInto(off: RegionOff, dst: Buffer): Buffer {
    const len = dst.length;
    this.check(off, len);
    for (let done = 0; done < len;) {
      const n = fs.readSync(this.fd, dst, done, len - done, off + done);
      if (n <= 0) throw new Error(`region: read of [${off}, +${len}) ended at ${done} bytes (the region file is shorter than its superblock says)`);
      done += n;
    }
    return dst;
  }

  /** Copy len bytes at region offset off into dst[dstOff..]. */
  read(off: RegionOff, dst: Buffer, dstOff: number, len: number): void {
    this.each(off, len, (w, wOff, done, n) => { w.copy(dst, dstOff + done, wOff, wOff + n); });
  }

  /**
   * Copy len bytes from src[srcOff..] to region offset off. `fresh`: the
   * bytes land in blocks allocated by the running transaction (free in the
   * durable state, so what a power cut leaves in them is never read): the
   * pages are dirty but no pre-image is kept — recording costs nothing for
   * them (a sequential write into a new file).
   */
  write(off: RegionOff, src: Buffer, srcOff: number, len: number, fresh = false): void {
    if (this.readOnly) throw new Error('write to a read-only region');
    this.check(off, len);
    this.noteStore(off, len, fresh);
    if (this.stores === 'pwrite') { this.pwriteAll(src, srcOff, len, off); return; }
    this.each(off, len, (w, wOff, done, n) => { src.copy(w, wOff, srcOff + done, srcOff + done + n); });
  }

  /** Store zeroes over [off, off+len) (`fresh` as for write). */
  zero(off: RegionOff, len: number, fresh = false): void {
    if (this.readOnly) throw new Error('write to a read-only region');
    this.check(off, len);
    this.noteStore(off, len, fresh);
    if (this.stores === 'mapping') { this.each(off, len, (w, wOff, _done, n) => { w.fill(0, wOff, wOff + n); }); return; }
    const z = zeroes(len);
    for (let done = 0; done < len; done += z.length) this.pwriteAll(z, 0, Math.min(z.length, len - done), off + done);
  }

  /** pwrite(2) of src[srcOff, +len) at region offset off (the `pwrite` store mode, see StoreMode). */
  private pwriteAll(src: Buffer, srcOff: number, len: number, off: number): void {
    for (let done = 0; done < len;) {
      const n = fs.writeSync(this.fd, src, srcOff + done, len - done, off + done);
      if (n <= 0) throw new Error(`region: write of [${off}, +${len}) ended at ${done} bytes`);
      done += n;
    }
  }

  /** Remember the pages of a store (and, recording, their flushed content) before it happens. */
  private noteStore(off: number, len: number, fresh = false): void {
    if (this.halted) throw new Error('region: store after an emulated power failure');
    if (len <= 0) return;
    const last = Math.floor((off + len - 1) / PAGE_SIZE);
    // Pages whose pre-image is their current content, read in runs of consecutive pages (one pread or copy a run).
    let run = -1;
    for (let p = Math.floor(off / PAGE_SIZE); p <= last; p++) {
      if (this.dirtyPages.has(p)) { run = this.keepFlushed(run, p); continue; }
      this.dirtyPages.add(p);
      if (!this.preImages || (fresh && !this.lostWriteback.has(p))) { run = this.keepFlushed(run, p); continue; }
      const media = this.lostWriteback.size ? this.lostWriteback.get(p) : undefined;
      if (media) { run = this.keepFlushed(run, p); this.preImages.keep(p, media, 0); this.lostWriteback.delete(p); continue; }
      if (run < 0) run = p;
    }
    this.keepFlushed(run, last + 1);
  }

  /**
   * noteStore: keep the current (flushed) content of pages [first, end) as
   * their pre-images, read in one pread (or copied from the mapping, by the
   * store mode) per 1 MiB of the run (PreImages.keepRun).
   * @returns -1 (no run open), for the caller's `run`
   */
  private keepFlushed(first: number, end: number): number {
    if (first < 0 || end <= first) return -1;
    this.preImageReads += this.preImages!.keepRun(first, end - first, (dst, page) => {
      if (this.stores === 'pwrite') this.preadInto(regionOff(page * PAGE_SIZE), dst);
      else this.read(regionOff(page * PAGE_SIZE), dst, 0, dst.length);
    });
    return -1;
  }

  /** Unflushed pages (stored to since their last flush). */
  get unflushedPages(): number { return this.dirtyPages.size; }

  /** Start keeping pre-images of unflushed pages (power-failure emulation). */
  recordUnflushed(): void { if (!this.preImages) this.preImages = new PreImages(); }
  get recording(): boolean { return this.preImages !== null; }

  /**
   * Write to `dst` the region as the media would hold it after a power
   * failure now: every unflushed page for which `lost(page)` is true gets its
   * last flushed content back; one stored to as `fresh` (no pre-image: a
   * block free in the durable state, whose old content nothing may read)
   * gets LOST_FRESH_BYTE in every byte instead, so that a test sees it if
   * recovery does read it. Needs recordUnflushed().
   * @returns the numbers of the pages lost
   */
  crashImage(dst: string, lost: (page: number) => boolean): number[] {
    if (!this.preImages) throw new Error('crashImage needs recordUnflushed() from the start');
    fs.copyFileSync(this.path, dst);
    const fd = fs.openSync(dst, 'r+');
    const gone: number[] = [];
    try {
      for (const [p, img] of this.preImages.entries()) if (lost(p)) { fs.writeSync(fd, img, 0, img.length, p * PAGE_SIZE); gone.push(p); }
      const garbage = Buffer.alloc(PAGE_SIZE, LOST_FRESH_BYTE);
      for (const p of this.dirtyPages) {
        if (this.preImages.has(p) || this.lostWriteback.has(p) || !lost(p)) continue;
        fs.writeSync(fd, garbage, 0, Math.min(PAGE_SIZE, this.size - p * PAGE_SIZE), p * PAGE_SIZE); gone.push(p);
      }
      for (const [p, img] of this.lostWriteback) { fs.writeSync(fd, img, 0, img.length, p * PAGE_SIZE); gone.push(p); }
    } finally { fs.closeSync(fd); }
    return gone;
  }

  /**
   * Make the region file what the media would hold after a power failure now
   * (unflushed pages for which `lost(page)` is true revert to their flushed
   * content), then flush it. The caller must stop using the region and exit
   * without any further persistence point.
   * @returns pages lost
   */
  powerFail(lost: (page: number) => boolean): number {
    if (!this.preImages) throw new Error('powerFail needs recordUnflushed() from the start');
    let n = 0;
    for (const [p, img] of this.preImages.entries()) {
      if (!lost(p)) continue;
      this.each(p * PAGE_SIZE, img.length, (w, wOff, done, len) => { img.copy(w, wOff, done, done + len); });
      n++;
    }
    this.preImages.clear(); this.dirtyPages.clear();
    for (const w of this.windows) if (w) loadNative().msync(w, 0, w.length);
    fs.fsyncSync(this.fd);
    this.halted = true;
    return n;
  }

  private flushed(firstPage: number, lastPage: number): void {
    const pages: number[] = [];
    this.dirtyIn(firstPage, lastPage + 1, pages);
    for (const p of pages) { this.dirtyPages.delete(p); this.preImages?.delete(p); }
  }

  /**
   * One persistence point: count it, tell onPersist, then flush `pages`
   * (the dirty pages the flush covers) with doFlush. A flush that fails —
   * msync/fsync errors, or flushFault — shuts the region down: the pages
   * are taken as lost (no longer dirty, the media keeps their old content)
   * and this and every later point throw EIO.
   * @throws FsError EIO (this flush failed, or the region is shut down)
   */
  private flushPoint(point: PersistPoint, pages: () => number[], doFlush: () => void): void {
    if (this.halted) throw new Error('region: flush after an emulated power failure');
    if (this.failed) throw new FsError('EIO', 'persist', undefined, `the region is shut down since persistence point ${this.failed.seq} (${this.failed.point}) failed: ${this.failed.message}`);
    this.persistCounts.set(point, (this.persistCounts.get(point) ?? 0) + 1);
    this.persistSeq++;
    this.onPersist?.(point, this.persistSeq);
    try {
      if (this.flushFault?.(point, this.persistSeq)) throw new Error('injected flush failure');
      doFlush();
    } catch (e) {
      const message = (e as Error).message;
      this.failed = { point, seq: this.persistSeq, message };
      for (const p of pages()) {
        if (this.preImages) { const img = this.preImages.get(p); if (img) this.lostWriteback.set(p, Buffer.from(img)); }
        this.preImages?.delete(p);
        this.dirtyPages.delete(p);
      }
      throw new FsError('EIO', 'persist', undefined, `flush at persistence point ${this.persistSeq} (${point}) failed: ${message}`);
    }
  }

  /** A copy of [off, off+len). */
  readBuf(off: RegionOff, len: number): Buffer {
    const b = Buffer.allocUnsafe(len);
    this.read(off, b, 0, len);
    return b;
  }

  /** Copy len bytes within the region (ranges may not overlap). */
  copyWithin(dst: RegionOff, src: RegionOff, len: number): void {
    const chunk = Buffer.allocUnsafe(Math.min(len, 1 << 20));
    for (let done = 0; done < len; done += chunk.length) {
      const n = Math.min(chunk.length, len - done);
      this.read(regionOff(src + done), chunk, 0, n);
      this.write(regionOff(dst + done), chunk, 0, n);
    }
  }

  /**
   * A persistence point: msync [off, off+len) synchronously (rounded out to
   * pages) and count it under `point`.
   */
  persist(point: PersistPoint, off: RegionOff, len: number): void {
    if (this.readOnly || len === 0) return;
    const page = PAGE_SIZE;
    const start = Math.floor(off / page) * page;
    const end = Math.min(this.size, Math.ceil((off + len) / page) * page);
    const covered = () => [...this.dirtyPages].filter((p) => p >= start / page && p < end / page);
    this.flushPoint(point, covered, () => { this.each(start, end - start, (w, wOff, _d, n) => { loadNative().msync(w, wOff, n); }); });
    this.flushed(start / page, end / page - 1);
  }

  /**
   * A persistence point for every unflushed page: one fdatasync of the
   * region file, which writes back every dirty page of it — stores through
   * our mapping and those other processes made through theirs (the DMA
   * emulator, MAP_DIRECT clients) — and flushes the device cache once. (An
   * msync per run of dirty pages would flush the device once per run.)
   */
  persistDirty(point: PersistPoint): void {
    if (this.readOnly) return;
    this.flushPoint(point, () => [...this.dirtyPages], () => { fs.fdatasyncSync(this.fd); });
    this.dirtyPages.clear();
    this.preImages?.clear();
    this.flushGen++;
  }

  /**
   * A persistence point for byte ranges of the region only (a file's dirty
   * data: fdatasync's path), as page-aligned spans (`coalesce`): write-back
   * of each span without a flush (sync_file_range), then one device cache
   * flush — an msync of one page of the first span, whose fsync of that
   * page flushes the device cache on ext4 and XFS; a single span within one
   * window is one msync of it (measured on the VM's disk: an overwrite's
   * fdatasync p50 184 -> 170 µs in the engine). Dirty pages outside the
   * ranges stay dirty, except those of `along` that lie between two spans
   * the flush joins.
   * @param ranges [offset, length] pairs in bytes, inside the region
   * @param along [offset, length] pairs in bytes whose dirty pages may go
   *   with this flush when that joins two spans into one call: the caller
   *   says writing them early is safe (a checkpoint of a durable commit)
   * @throws FsError EIO (the flush failed, or the region is shut down)
   */
  persistRanges(point: PersistPoint, ranges: ReadonlyArray<readonly [number, number]>, along: ReadonlyArray<readonly [number, number]> = []): void {
    if (this.readOnly || ranges.length === 0) return;
    for (const [off, len] of ranges) this.check(off, len);
    const spans = this.coalesce(ranges, along);
    if (spans.length === 0) return;                      // only empty ranges: nothing of theirs to flush
    const pages: number[] = [];
    for (const [start, len] of spans) this.dirtyIn(start / PAGE_SIZE, (start + len) / PAGE_SIZE, pages);
    this.flushPoint(point, () => pages, () => {
      const n = loadNative();
      // One span inside one window (an overwrite's fdatasync, or a file's pages with only clean ones
      // between them): one msync writes it back, waits and flushes the device cache
      // (vfs_fsync_range over the span), where the general path takes 2 calls a span and one more.
      const [start, len] = spans[0];
      if (spans.length === 1 && Math.floor(start / WINDOW_SIZE) === Math.floor((start + len - 1) / WINDOW_SIZE)) {
        this.each(start, len, (w, wOff, _d, k) => { n.msync(w, wOff, k); });
        return;
      }
      for (const [off, l] of spans) n.writeback(this.fd, off, l, false);
      for (const [off, l] of spans) n.writeback(this.fd, off, l, true);
      this.each(start, PAGE_SIZE, (w, wOff, _d, k) => { n.msync(w, wOff, k); });
    });
    for (const p of pages) { this.dirtyPages.delete(p); this.preImages?.delete(p); }
  }

  /**
   * Byte ranges as page-aligned spans for a flush: sorted, overlapping and
   * adjacent ones merged (a page stored to twice is written back once), and
   * two spans in one window joined across a gap when no page of the gap is
   * dirty — the host's write-back looks up dirty pages by tag (clean pages
   * cost it nothing), so the joined span writes nothing more and is one
   * call: a commit's log, checkpoint and data homes, thousands of pages
   * apart, become one msync when nothing else is unflushed between them.
   * A gap with a dirty page (another file's data) keeps the spans apart:
   * that page is not this flush's, unless it is one of `along`'s. Joining
   * is skipped when telling would take more than MERGE_CHECK_LIMIT set
   * lookups.
   * @param ranges [offset, length] pairs in bytes (checked by the caller)
   * @param along [offset, length] pairs in bytes whose dirty pages do not keep spans apart
   * @returns [offset, length] pairs in bytes, page-aligned, ascending, inside the region
   */
  private coalesce(ranges: ReadonlyArray<readonly [number, number]>, along: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
    const sorted = ranges.map(([off, len]): [number, number] => [Math.floor(off / PAGE_SIZE), Math.ceil((off + len) / PAGE_SIZE)])
      .filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
    const out: Array<[number, number]> = [];   // [first page, end page)
    const window = (page: number) => Math.floor(page * PAGE_SIZE / WINDOW_SIZE);
    for (const [a, b] of sorted) {
      const last = out[out.length - 1];
      if (last && a <= last[1]) { last[1] = Math.max(last[1], b); continue; }
      if (last && window(last[0]) === window(b - 1) && this.cleanGap(last[1], a, along)) { last[1] = b; continue; }
      out.push([a, b]);
    }
    return out.map(([a, b]) => [a * PAGE_SIZE, Math.min(this.size, b * PAGE_SIZE) - a * PAGE_SIZE]);
  }

  /**
   * Whether no page of [first, end) is dirty but those inside `along`'s
   * byte ranges, told in at most MERGE_CHECK_LIMIT lookups (false when it
   * would take more).
   */
  private cleanGap(first: number, end: number, along: ReadonlyArray<readonly [number, number]>): boolean {
    const foreign = (p: number) => !along.some(([off, len]) => p * PAGE_SIZE < off + len && off < (p + 1) * PAGE_SIZE);
    if (end - first <= this.dirtyPages.size) {
      if (end - first > MERGE_CHECK_LIMIT) return false;
      for (let p = first; p < end; p++) if (this.dirtyPages.has(p) && foreign(p)) return false;
      return true;
    }
    if (this.dirtyPages.size > MERGE_CHECK_LIMIT) return false;
    for (const p of this.dirtyPages) if (p >= first && p < end && foreign(p)) return false;
    return true;
  }

  /** Append the dirty pages of [first, end) to `out`, by whichever is shorter: the range or the dirty set. */
  private dirtyIn(first: number, end: number, out: number[]): void {
    if (end - first <= this.dirtyPages.size) {
      for (let p = first; p < end; p++) if (this.dirtyPages.has(p)) out.push(p);
    } else {
      for (const p of this.dirtyPages) if (p >= first && p < end) out.push(p);
    }
  }

  /** Flush every mapped window. */
  persistAll(): void {
    if (this.readOnly) return;
    this.flushPoint('all', () => [...this.dirtyPages], () => {
      for (const w of this.windows) if (w) loadNative().msync(w, 0, w.length);
      fs.fsyncSync(this.fd);
    });
    this.dirtyPages.clear();
    this.preImages?.clear();
    this.flushGen++;
  }

  /**
   * After a failed flush (recording only): the pages whose write-back
   * failed get the media's content back in the region file, so the next
   * mount sees what a failed medium would hold, not what the host's page
   * cache happened to write later.
   */
  private revertLostWriteback(): void {
    for (const [p, img] of this.lostWriteback) this.each(p * PAGE_SIZE, img.length, (w, wOff, done, n) => { img.copy(w, wOff, done, done + n); });
    if (this.lostWriteback.size) { for (const w of this.windows) if (w) loadNative().msync(w, 0, w.length); fs.fsyncSync(this.fd); }
    this.lostWriteback.clear();
  }

  /** Flush and drop the mappings; the fd is closed. The Region is unusable afterwards. */
  close(): void {
    if (!this.readOnly && !this.halted && !this.failed) this.persistAll();
    if (this.failed) this.revertLostWriteback();
    this.windows.fill(undefined);
    fs.closeSync(this.fd);
  }
}
