/**
 * @file The emulated persistent-memory region: a file mapped MAP_SHARED
 * through the native shim (mmap-io 1.1.7 casts the file offset to a C int, so
 * it cannot map past 2 GiB). A Node Buffer holds at most 4 GiB, so the region is mapped in
 * fixed windows (1 GiB), each mapped on first touch; every accessor splits a
 * range at window boundaries.
 *
 * Durability: a store into the mapping reaches the region file's page cache at
 * once (it survives a kill -9 of the daemon) but is durable only after the
 * range is flushed (msync). Every flush goes through `persist()`, which names
 * the persistence point and counts it, so a future journal and crash tests
 * can find, reorder and batch them (design/direction.md, step 2).
 */
import * as fs from 'node:fs';
import { loadShim } from '../native.js';
import { regionOff, type RegionOff } from '../types.js';

const PAGE_SIZE = 4096;

/** Bytes per mapped window; a multiple of every supported block size and of the page size. */
export const WINDOW_SIZE = 1 << 30;

/** Why a range was flushed; counted in .pmemfs/stats. */
export type PersistPoint = 'data' | 'inode' | 'fork' | 'bitmap' | 'superblock' | 'all';

export class Region {
  readonly path: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly fd: number;
  private readonly windows: (Buffer | undefined)[];
  readonly persistCounts = new Map<PersistPoint, number>();

  private constructor(path: string, fd: number, size: number, readOnly: boolean) {
    this.path = path; this.fd = fd; this.size = size; this.readOnly = readOnly;
    this.windows = new Array(Math.ceil(size / WINDOW_SIZE));
  }

  /**
   * Open and map a region file. `size` is the file's length (bytes).
   * @throws Node fs errors (ENOENT, EACCES...) with code/syscall/path
   */
  static open(path: string, opts: { readOnly?: boolean } = {}): Region {
    const ro = !!opts.readOnly;
    const fd = fs.openSync(path, ro ? 'r' : 'r+');
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' });
      return new Region(path, fd, st.size, ro);
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
      w = loadShim().mmap(this.fd, base, len, !this.readOnly);
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

  /** Copy len bytes at region offset off into dst[dstOff..]. */
  read(off: RegionOff, dst: Buffer, dstOff: number, len: number): void {
    this.each(off, len, (w, wOff, done, n) => { w.copy(dst, dstOff + done, wOff, wOff + n); });
  }

  /** Copy len bytes from src[srcOff..] to region offset off. */
  write(off: RegionOff, src: Buffer, srcOff: number, len: number): void {
    if (this.readOnly) throw new Error('write to a read-only region');
    this.each(off, len, (w, wOff, done, n) => { src.copy(w, wOff, srcOff + done, srcOff + done + n); });
  }

  /** Store zeroes over [off, off+len). */
  zero(off: RegionOff, len: number): void {
    if (this.readOnly) throw new Error('write to a read-only region');
    this.each(off, len, (w, wOff, _done, n) => { w.fill(0, wOff, wOff + n); });
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
    this.persistCounts.set(point, (this.persistCounts.get(point) ?? 0) + 1);
    if (this.readOnly || len === 0) return;
    const page = PAGE_SIZE;
    const start = Math.floor(off / page) * page;
    const end = Math.min(this.size, Math.ceil((off + len) / page) * page);
    this.each(start, end - start, (w, wOff, _d, n) => { loadShim().msync(w, wOff, n); });
  }

  /** Flush every mapped window. */
  persistAll(): void {
    this.persistCounts.set('all', (this.persistCounts.get('all') ?? 0) + 1);
    if (this.readOnly) return;
    for (const w of this.windows) if (w) loadShim().msync(w, 0, w.length);
    fs.fsyncSync(this.fd);
  }

  /** Flush and drop the mappings; the fd is closed. The Region is unusable afterwards. */
  close(): void {
    if (!this.readOnly) this.persistAll();
    this.windows.fill(undefined);
    fs.closeSync(this.fd);
  }
}
