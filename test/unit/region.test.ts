import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Region, WINDOW_SIZE } from '../../src/region/region.js';
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

  it('flushes ranges farther apart than the join limit by write-back of each and one device flush, a dirty page between them left dirty', () => {
    const p = path.join(dir, 'g.img');
    fs.writeFileSync(p, Buffer.alloc(4 << 20));
    const r = Region.open(p);
    r.recordUnflushed();
    for (const pg of [1, 600]) r.write(regionOff(pg * PAGE), Buffer.alloc(PAGE, 0x33), 0, PAGE);
    r.write(regionOff(300 * PAGE), Buffer.alloc(PAGE, 0x44), 0, PAGE);
    r.persistRanges('data', [[600 * PAGE, PAGE], [PAGE, PAGE]]);
    expect(unflushed(r)).toEqual([300]);
    r.close();
  });
});
