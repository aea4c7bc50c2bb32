import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadNative, setNativeBinding } from '../../src/native.js';
import { LOST_FRESH_BYTE, Region, storeModeFor, WINDOW_SIZE } from '../../src/region/region.js';
import { regionOff } from '../../src/types.js';

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmemfs-region-')); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

describe('Region windows', () => {
  it('maps the right file bytes past 2 GiB and 4 GiB (no offset truncation), across a window boundary', () => {
    const p = path.join(dir, 'r.img');
    fs.writeFileSync(p, '');
    fs.truncateSync(p, 9 * 2 ** 30);               // sparse
    const r = Region.open(p);
    const at = [2 ** 31 + 4096, 2 ** 32 + 8192, 8 * 2 ** 30 + 12288, 3 * WINDOW_SIZE - 3];
    at.forEach((off, i) => r.write(regionOff(off), Buffer.from(`mark-${i}`), 0, 6));
    r.persistAll();
    const fd = fs.openSync(p, 'r');
    try {
      at.forEach((off, i) => {
        const b = Buffer.alloc(6);
        fs.readSync(fd, b, 0, 6, off);
        expect(b.toString()).toBe(`mark-${i}`);
        expect(r.readBuf(regionOff(off), 6).toString()).toBe(`mark-${i}`);
      });
      // Nothing landed at the start of the file (what an int-truncated offset would hit).
      const head = Buffer.alloc(16384);
      fs.readSync(fd, head, 0, head.length, 0);
      expect(head.every((x) => x === 0)).toBe(true);
    } finally {
      fs.closeSync(fd);
      r.close();
    }
  });

  it('refuses access outside the region', () => {
    const p = path.join(dir, 's.img');
    fs.writeFileSync(p, Buffer.alloc(8192));
    const r = Region.open(p);
    expect(() => r.readBuf(regionOff(8190), 4)).toThrow(RangeError);
    r.close();
  });
});

describe('Region.persistRanges', () => {
  const PAGE = 4096;
  /** A 1 MiB region with pages 0..15 written and flushed, recording on; then `dirty` pages stored to again. */
  function setup(dirty: number[]): Region {
    const p = path.join(dir, 'f.img');
    fs.writeFileSync(p, Buffer.alloc(1 << 20));
    const r = Region.open(p);
    r.recordUnflushed();
    for (let pg = 0; pg < 16; pg++) r.write(regionOff(pg * PAGE), Buffer.alloc(PAGE, 0x11), 0, PAGE);
    r.persistAll();
    for (const pg of dirty) r.write(regionOff(pg * PAGE), Buffer.alloc(PAGE, 0x22), 0, PAGE);
    return r;
  }
  /** An 8 MiB region of zeroes (file `name`), recording on, with `dirty` pages stored to and not flushed. */
  function dirtyRegion(name: string, dirty: number[]): Region {
    const p = path.join(dir, name);
    if (!fs.existsSync(p)) fs.writeFileSync(p, Buffer.alloc(8 << 20));
    const r = Region.open(p);
    r.recordUnflushed();
    for (const pg of dirty) r.write(regionOff(pg * PAGE), Buffer.alloc(PAGE, 0x33), 0, PAGE);
    return r;
  }
  /** Count the addon's write-back and msync calls (msync: [offset, length] in its window) until setNativeBinding(null). */
  function countFlushCalls(): { writeback: number; msync: Array<[number, number]> } {
    const real = loadNative();
    const calls = { writeback: 0, msync: [] as Array<[number, number]> };
    setNativeBinding({
      ...real,
      writeback: (...a: Parameters<typeof real.writeback>) => { calls.writeback++; return real.writeback(...a); },
      msync: (w: Buffer, off: number, len: number) => { calls.msync.push([off, len]); return real.msync(w, off, len); },
    });
    return calls;
  }
  /** The pages a power cut losing every unflushed page would show the old content of. */
  function unflushed(r: Region): number[] {
    const gone = r.crashImage(path.join(dir, 'crash.img'), () => true);
    return [...gone].sort((a, b) => a - b);
  }

  it('flushes the pages of every range, repeated and overlapping ones included, across a clean gap', () => {
    const r = setup([2, 3, 6]);
    // page 3 twice, page 6 after a gap of clean pages 4 and 5: one span
    r.persistRanges('data', [[6 * PAGE, PAGE], [3 * PAGE, PAGE], [2 * PAGE, 2 * PAGE], [3 * PAGE + 100, 50]]);
    expect(r.unflushedPages).toBe(0);
    expect(unflushed(r)).toEqual([]);
    r.close();
  });

  it('takes empty ranges as nothing to flush', () => {
    const r = setup([5]);
    expect(() => r.persistRanges('data', [[3 * PAGE, 0], [9 * PAGE, 0]])).not.toThrow();
    expect(unflushed(r)).toEqual([5]);
    r.close();
  });

  it('leaves a dirty page between two ranges dirty (another file\'s data is not this flush\'s)', () => {
    const r = setup([2, 4, 6]);
    r.persistRanges('data', [[2 * PAGE, PAGE], [6 * PAGE, PAGE]]);
    expect(r.unflushedPages).toBe(1);
    expect(unflushed(r)).toEqual([4]);
    r.close();
  });

  it('flushes ranges with a dirty page between them by write-back of each and one device flush, that page left dirty', () => {
    const r = dirtyRegion('g.img', [1, 300, 600]);
    const calls = countFlushCalls();
    try {
      r.persistRanges('data', [[600 * PAGE, PAGE], [PAGE, PAGE]]);
    } finally { setNativeBinding(null); }
    expect(calls.writeback).toBe(4);                             // two spans: started, then waited on
    expect(calls.msync.length).toBe(1);                          // one device flush
    expect(unflushed(r)).toEqual([300]);
    r.close();
  });

  it('joins ranges hundreds of pages apart into one msync when no page between them is dirty', () => {
    const r = dirtyRegion('h.img', [0, 700, 1900, 1950]);
    const calls = countFlushCalls();
    try {
      r.persistRanges('data', [[1900 * PAGE, PAGE], [0, 512], [700 * PAGE + 8, 100]]);
    } finally { setNativeBinding(null); }
    expect(calls.writeback).toBe(0);
    expect(calls.msync).toEqual([[0, 1901 * PAGE]]);             // [page 0, page 1901): one span, one call
    expect(unflushed(r)).toEqual([1950]);                        // not a range's, so not flushed
    r.close();
  });

  it('joins across dirty pages the caller lets go along (a durable commit\'s checkpoint), not across others', () => {
    const r = dirtyRegion('k.img', [0, 300, 301, 900, 1500]);
    const calls = countFlushCalls();
    try {
      r.persistRanges('data', [[0, 512], [900 * PAGE, PAGE]], [[300 * PAGE, 2 * PAGE]]);
      r.persistRanges('data', [[1500 * PAGE, PAGE]], []);
    } finally { setNativeBinding(null); }
    expect(calls.writeback).toBe(0);
    expect(calls.msync).toEqual([[0, 901 * PAGE], [1500 * PAGE, PAGE]]);
    expect(unflushed(r)).toEqual([]);
    r.close();
    const q = dirtyRegion('k.img', [0, 300, 301, 900]);
    q.persistRanges('data', [[0, 512], [900 * PAGE, PAGE]], [[300 * PAGE, PAGE]]);   // 301 is not the caller's
    expect(unflushed(q)).toEqual([300, 301]);
    q.close();
  });
});

describe('Region store modes (StoreMode)', () => {
  const PAGE = 4096;
  /** Resident kB of this process's mappings of `file` (/proc/self/smaps), 0 when it has none. */
  function mappedKb(file: string): number {
    let kb = 0, ours = false;
    for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) ours = line.endsWith(` ${file}`);
      else if (ours && line.startsWith('Rss:')) kb += Number(/(\d+) kB/.exec(line)![1]);
    }
    return kb;
  }

  for (const stores of ['pwrite', 'mapping'] as const) {
    it(`${stores}: stores, zeroes and copies are what the file, the mapping and a crash image hold`, () => {
      const p = path.join(dir, `m-${stores}.img`);
      fs.writeFileSync(p, Buffer.alloc(1 << 20, 0x5a));
      const r = Region.open(p, { stores });
      expect(r.stores).toBe(stores);
      r.recordUnflushed();
      r.write(regionOff(PAGE - 3), Buffer.from('across-a-page'), 0, 13);
      r.zero(regionOff(3 * PAGE + 10), PAGE);
      r.copyWithin(regionOff(10 * PAGE), regionOff(PAGE - 3), 13);
      const want = Buffer.alloc(1 << 20, 0x5a);
      want.write('across-a-page', PAGE - 3); want.fill(0, 3 * PAGE + 10, 4 * PAGE + 10); want.write('across-a-page', 10 * PAGE);
      expect(fs.readFileSync(p).equals(want)).toBe(true);
      expect(r.readBuf(regionOff(0), 1 << 20).equals(want)).toBe(true);
      // Pre-images: a crash losing every unflushed page shows the flushed content back.
      const crash = path.join(dir, `c-${stores}.img`);
      expect(r.crashImage(crash, () => true).sort((a, b) => a - b)).toEqual([0, 1, 3, 4, 10]);
      expect(fs.readFileSync(crash).equals(Buffer.alloc(1 << 20, 0x5a))).toBe(true);
      r.persistRanges('data', [[0, 2 * PAGE], [3 * PAGE, 2 * PAGE], [10 * PAGE, PAGE]]);
      expect(r.unflushedPages).toBe(0);
      r.close();
    });
  }

  it('pwrite: stores map nothing of the region into the process; mapping: every page stored to is resident', () => {
    const size = 16 << 20;
    const resident = (stores: 'pwrite' | 'mapping'): number => {
      const p = path.join(dir, `rss-${stores}.img`);
      fs.writeFileSync(p, '');
      fs.truncateSync(p, size);
      const r = Region.open(p, { stores });
      for (let off = 0; off < size; off += 1 << 20) r.write(regionOff(off), Buffer.alloc(1 << 20, 1), 0, 1 << 20);
      const kb = mappedKb(p);
      r.close();
      return kb;
    };
    expect(resident('pwrite')).toBe(0);
    expect(resident('mapping')).toBeGreaterThanOrEqual(size / 1024);
  });

  it('auto: mapping for a file on tmpfs, pwrite for one on a disk filesystem', () => {
    expect(Number(fs.statfsSync('/dev/shm').type), '/dev/shm is expected to be a tmpfs (Linux, Debian)').toBe(0x01021994);
    expect(storeModeFor('/dev/shm')).toBe('mapping');
    const tmpType = Number(fs.statfsSync(dir).type);
    expect(storeModeFor(dir)).toBe([0x01021994, 0x858458f6, 0x958458f6].includes(tmpType) ? 'mapping' : 'pwrite');
    expect(storeModeFor('/proc')).toBe('pwrite');   // procfs: not memory
    expect(storeModeFor(path.join(dir, 'absent', 'x'))).toBe('pwrite');   // statfs fails: the general case
  });
});

describe('Region pre-images (recording), against a model of the flushed content', () => {
  const PAGE = 4096;
  for (const stores of ['pwrite', 'mapping'] as const) {
    it(`${stores}: a store's run of pages takes its pre-images in one read when ranged flushes left the slots apart`, () => {
      const p = path.join(dir, `run-${stores}.img`);
      const start = Buffer.alloc(64 * PAGE);
      for (let pg = 0; pg < 64; pg++) start.fill(`<page ${pg}>`, pg * PAGE, pg * PAGE + PAGE);
      fs.writeFileSync(p, start);
      const r = Region.open(p, { stores });
      r.recordUnflushed();
      r.write(regionOff(0), Buffer.alloc(16 * PAGE, 1), 0, 16 * PAGE);
      expect(r.preImageReads).toBe(1);                 // 16 pages, slots handed out in order
      // fsync's path: ranged flushes of every other page recycle slots that are not side by side.
      for (let pg = 0; pg < 16; pg += 2) r.persistRanges('data', [[pg * PAGE, PAGE]]);
      r.write(regionOff(32 * PAGE), Buffer.alloc(10 * PAGE, 2), 0, 10 * PAGE);   // 8 recycled slots, then 2 new ones
      expect(r.preImageReads).toBe(2);
      // Each page lost in a crash shows its own flushed content, not a neighbour's.
      const crash = path.join(dir, `run-${stores}-crash.img`);
      r.crashImage(crash, () => true);
      const img = fs.readFileSync(crash);
      for (let pg = 0; pg < 64; pg++) {
        const flushed = pg < 16 && pg % 2 === 0 ? Buffer.alloc(PAGE, 1) : start.subarray(pg * PAGE, pg * PAGE + PAGE);
        expect(img.subarray(pg * PAGE, pg * PAGE + PAGE).equals(flushed), `page ${pg}`).toBe(true);
      }
      r.close();
    });
  }

  for (const stores of ['pwrite', 'mapping'] as const) {
    it(`${stores}: random stores, fresh stores, range and full flushes; a crash losing every unflushed page shows the flushed content`, () => {
      const pages = 6144;                               // 24 MiB: a long store's run crosses the 16 MiB slab boundary
      const freshZone = 5632;                           // pages from here on take fresh stores only (blocks a transaction allocated)
      const p = path.join(dir, `pre-${stores}.img`);
      // Every page starts with its own content (its number), so a pre-image read from the wrong page shows.
      const start = Buffer.alloc(pages * PAGE);
      for (let pg = 0; pg < pages; pg++) start.fill(`<page ${pg}>`, pg * PAGE, pg * PAGE + PAGE);
      fs.writeFileSync(p, start);
      const r = Region.open(p, { stores });
      r.recordUnflushed();
      const flushed = Buffer.from(start);              // the model: each page's content as of its last flush
      const now = Buffer.from(start);                  // what the region holds
      const withPre = new Set<number>();                // unflushed pages whose first store since their flush kept a pre-image
      const noPre = new Set<number>();                  // unflushed pages first stored fresh (no pre-image)
      const written = new Set<number>();                // fresh-zone pages flushed with content: no longer fresh
      let seed = 7, freshStores = 0;
      // The high bits of an LCG: its low bits cycle with short periods.
      const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return Math.floor(seed / 65536) % n; };
      const store = (off: number, len: number, fresh: boolean) => {
        const b = Buffer.alloc(len, 1 + rnd(250));
        r.write(regionOff(off), b, 0, len, fresh);
        b.copy(now, off);
        for (let pg = Math.floor(off / PAGE); pg <= Math.floor((off + len - 1) / PAGE); pg++) {
          if (!withPre.has(pg) && !noPre.has(pg)) (fresh ? noPre : withPre).add(pg);
        }
      };
      const flushedNow = (pg: number) => {
        now.copy(flushed, pg * PAGE, pg * PAGE, pg * PAGE + PAGE);
        if (pg >= freshZone) written.add(pg);
        withPre.delete(pg); noPre.delete(pg);
      };
      const check = (when: string) => {
        const crash = path.join(dir, `pc-${stores}.img`);
        const lost = r.crashImage(crash, () => true);
        expect(lost.sort((x, y) => x - y)).toEqual([...withPre, ...noPre].sort((x, y) => x - y));
        const img = fs.readFileSync(crash);
        for (const pg of withPre) {
          if (!img.subarray(pg * PAGE, pg * PAGE + PAGE).equals(flushed.subarray(pg * PAGE, pg * PAGE + PAGE))) {
            throw new Error(`${when}: page ${pg}'s crash content is not its flushed content`);
          }
        }
        const garbage = Buffer.alloc(PAGE, LOST_FRESH_BYTE);            // a fresh page lost: content unknown, never its new bytes
        for (const pg of noPre) if (!img.subarray(pg * PAGE, pg * PAGE + PAGE).equals(garbage)) throw new Error(`${when}: fresh page ${pg} lost shows other bytes`);
        expect(r.unflushedPages).toBe(withPre.size + noPre.size);
        expect(r.readBuf(regionOff(0), pages * PAGE).equals(now)).toBe(true);
        fs.rmSync(crash);
      };
      store(0, 20 << 20, false);                       // one run of 5,120 pages over the slab boundary
      check('the first store');
      let longStores = 0;
      for (let step = 0; step < 400; step++) {
        const k = rnd(20);
        if (k < 8) { const len = 1 + rnd(64 * PAGE); store(rnd(freshZone * PAGE - len), len, false); }
        else if (k < 10) { const len = (300 + rnd(1200)) * PAGE + rnd(PAGE); store(rnd(freshZone * PAGE - len), len, false); longStores++; }
        else if (k < 12) {
          const pg = freshZone + rnd(pages - freshZone - 8);
          if ([...Array(8).keys()].every((i) => !written.has(pg + i) && !withPre.has(pg + i))) { store(pg * PAGE, 8 * PAGE, true); freshStores++; }
        } else if (k < 19) {
          const len = 1 + rnd(128 * PAGE), off = rnd(pages * PAGE - len);
          r.persistRanges('data', [[off, len]]);
          for (let pg = Math.floor(off / PAGE); pg <= Math.floor((off + len - 1) / PAGE); pg++) if (withPre.has(pg) || noPre.has(pg)) flushedNow(pg);
        } else { r.persistDirty('commit'); for (const pg of [...withPre, ...noPre]) flushedNow(pg); }
        if (step % 10 === 9) check(`step ${step}`);
      }
      expect(longStores).toBeGreaterThan(20);
      expect(freshStores).toBeGreaterThan(5);
      r.close();
    });
  }
});
