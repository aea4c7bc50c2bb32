/**
 * The per-file block map (src/bmap/bmap.ts): mapping queries with holes,
 * insert with merging, remove with splitting, unwritten conversion, the
 * allocation goal and shifting. Mutators need a LayoutPermit, which only the
 * layout guard hands out; the test forges one.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { BlockMap, HOLE, SMALL_MAP_MAX } from '../../src/bmap/bmap.js';
import { PinRegistry } from '../../src/layout/busy.js';
import { LayoutGuard } from '../../src/layout/guard.js';
import { Inode } from '../../src/inode/inode.js';
import { EXT_UNWRITTEN, type ExtentRec } from '../../src/format/fork.js';

const P = new LayoutGuard(new PinRegistry(), { busy: 'refuse', busyTimeoutMs: 0 }, pino({ level: 'silent' })).internalPermit(new Inode(1, 0o100644, 0, 0));
const U = EXT_UNWRITTEN;
const e = (fileBlock: number, regionBlock: number, len: number, flags = 0): ExtentRec => ({ fileBlock, regionBlock, len, flags });
const recs = (m: BlockMap) => m.extents.map((x) => [x.fileBlock, x.regionBlock, x.len, x.flags]);

describe('BlockMap.map', () => {
  const m = new BlockMap([e(10, 500, 5), e(2, 100, 3, U)]);   // given out of order

  it('sorts its records and counts mapped blocks', () => {
    expect(recs(m)).toEqual([[2, 100, 3, U], [10, 500, 5, 0]]);
    expect(m.count).toBe(2);
    expect(m.mappedBlocks()).toBe(8);
  });

  it('describes a range as pieces and holes, clipped to the range', () => {
    expect(m.map(0, 20)).toEqual([
      { fileBlock: 0, len: 2, regionBlock: HOLE, flags: 0 },
      { fileBlock: 2, len: 3, regionBlock: 100, flags: U },
      { fileBlock: 5, len: 5, regionBlock: HOLE, flags: 0 },
      { fileBlock: 10, len: 5, regionBlock: 500, flags: 0 },
      { fileBlock: 15, len: 5, regionBlock: HOLE, flags: 0 },
    ]);
    expect(m.map(3, 9)).toEqual([
      { fileBlock: 3, len: 2, regionBlock: 101, flags: U },
      { fileBlock: 5, len: 5, regionBlock: HOLE, flags: 0 },
      { fileBlock: 10, len: 2, regionBlock: 500, flags: 0 },
    ]);
    expect(m.map(12, 1)).toEqual([{ fileBlock: 12, len: 1, regionBlock: 502, flags: 0 }]);
  });

  it('reports an all-hole range as one hole, and an empty range as nothing', () => {
    expect(m.map(100, 7)).toEqual([{ fileBlock: 100, len: 7, regionBlock: HOLE, flags: 0 }]);
    expect(new BlockMap().map(0, 3)).toEqual([{ fileBlock: 0, len: 3, regionBlock: HOLE, flags: 0 }]);
    expect(m.map(4, 0)).toEqual([]);
  });

  it('copies the records it is given', () => {
    const src = [e(0, 1, 1)];
    const b = new BlockMap(src);
    src[0].len = 99;
    expect(b.mappedBlocks()).toBe(1);
    const out = b.toRecords();
    out[0].len = 50;
    expect(b.mappedBlocks()).toBe(1);
  });
});

describe('BlockMap.insert', () => {
  it('merges with neighbours contiguous in file and region with equal flags', () => {
    const m = new BlockMap();
    m.insert(P, e(0, 100, 2));
    m.insert(P, e(4, 104, 2));
    expect(m.count).toBe(2);
    m.insert(P, e(2, 102, 2));          // fills the gap exactly: all three merge
    expect(recs(m)).toEqual([[0, 100, 6, 0]]);
  });

  it('keeps extents apart when the region, or the flags, are not contiguous', () => {
    const m = new BlockMap([e(0, 100, 2)]);
    m.insert(P, e(2, 200, 2));          // file-contiguous, region not
    m.insert(P, e(4, 202, 2, U));       // region-contiguous, flags differ
    expect(recs(m)).toEqual([[0, 100, 2, 0], [2, 200, 2, 0], [4, 202, 2, U]]);
  });

  it('refuses to insert over a mapped block and leaves the map alone', () => {
    const m = new BlockMap([e(4, 100, 4)]);
    expect(() => m.insert(P, e(2, 50, 3))).toThrow(/insert over mapped block 4/);
    expect(() => m.insert(P, e(7, 50, 1))).toThrow(/insert over mapped block/);
    expect(recs(m)).toEqual([[4, 100, 4, 0]]);
  });
});

describe('BlockMap.remove', () => {
  it('splits at both ends and returns the removed runs', () => {
    const m = new BlockMap([e(0, 100, 10)]);
    expect(m.remove(P, 3, 4)).toEqual([e(3, 103, 4)]);
    expect(recs(m)).toEqual([[0, 100, 3, 0], [7, 107, 3, 0]]);
  });

  it('removes across holes and several extents, keeping flags', () => {
    const m = new BlockMap([e(0, 100, 2), e(5, 200, 3, U), e(10, 300, 4)]);
    expect(m.remove(P, 1, 11)).toEqual([e(1, 101, 1), e(5, 200, 3, U), e(10, 300, 2)]);
    expect(recs(m)).toEqual([[0, 100, 1, 0], [12, 302, 2, 0]]);
    expect(m.mappedBlocks()).toBe(3);
  });

  it('returns nothing for a hole or an empty range', () => {
    const m = new BlockMap([e(5, 100, 2)]);
    expect(m.remove(P, 0, 5)).toEqual([]);
    expect(m.remove(P, 5, 0)).toEqual([]);
    expect(recs(m)).toEqual([[5, 100, 2, 0]]);
  });
});

describe('BlockMap unwritten conversion', () => {
  it('convertWritten splits an unwritten extent in three', () => {
    const m = new BlockMap([e(0, 100, 10, U)]);
    m.convertWritten(P, 3, 4);
    expect(recs(m)).toEqual([[0, 100, 3, U], [3, 103, 4, 0], [7, 107, 3, U]]);
  });

  it('convertWritten merges the converted piece with written neighbours', () => {
    const m = new BlockMap([e(0, 100, 10, U)]);
    m.convertWritten(P, 3, 4);
    m.convertWritten(P, 0, 3);
    expect(recs(m)).toEqual([[0, 100, 7, 0], [7, 107, 3, U]]);
    m.convertWritten(P, 7, 3);
    expect(recs(m)).toEqual([[0, 100, 10, 0]]);
  });

  it('convertUnwritten is the mirror image', () => {
    const m = new BlockMap([e(0, 100, 10)]);
    m.convertUnwritten(P, 2, 2);
    expect(recs(m)).toEqual([[0, 100, 2, 0], [2, 102, 2, U], [4, 104, 6, 0]]);
    m.convertUnwritten(P, 4, 6);
    expect(recs(m)).toEqual([[0, 100, 2, 0], [2, 102, 8, U]]);
    m.convertWritten(P, 0, 10);
    expect(recs(m)).toEqual([[0, 100, 10, 0]]);
  });

  it('conversion over holes touches only mapped blocks and does not merge across a region gap', () => {
    const m = new BlockMap([e(0, 100, 2, U), e(5, 102, 2, U)]);
    m.convertWritten(P, 0, 10);
    expect(recs(m)).toEqual([[0, 100, 2, 0], [5, 102, 2, 0]]);
  });
});

describe('BlockMap.goalFor', () => {
  const m = new BlockMap([e(0, 100, 10), e(20, 500, 10)]);

  it('is 0 for an empty map', () => {
    expect(new BlockMap().goalFor(7)).toBe(0);
  });

  it('follows the previous extent for a block in a hole or past the end', () => {
    expect(m.goalFor(10)).toBe(110);
    expect(m.goalFor(15)).toBe(110);
    expect(m.goalFor(30)).toBe(510);
    expect(m.goalFor(99)).toBe(510);
  });

  it('is the region block that would continue the extent containing a mapped block', () => {
    // A write starting inside a mapped extent and running into a hole (an
    // unaligned append) wants its new blocks right after that extent's region
    // blocks: the block mapped at fileBlock, or the extent's end; never 0
    // (start of the region) or the end of an earlier extent.
    for (const [fb, lo] of [[5, 100], [25, 500]]) {
      const g = m.goalFor(fb);
      expect(g, `goalFor(${fb})`).toBeGreaterThanOrEqual(lo + 5);
      expect(g, `goalFor(${fb})`).toBeLessThanOrEqual(lo + 10);
    }
  });
});

describe('BlockMap.shift', () => {
  it('moves every extent at or after the block, splitting the one that straddles it', () => {
    const m = new BlockMap([e(0, 100, 10), e(20, 500, 2)]);
    m.shift(P, 5, 3);
    expect(recs(m)).toEqual([[0, 100, 5, 0], [8, 105, 5, 0], [23, 500, 2, 0]]);
  });

  it('merges pieces a negative shift brings back together', () => {
    const m = new BlockMap([e(0, 100, 5), e(8, 105, 5), e(23, 500, 2)]);
    m.shift(P, 8, -3);
    expect(recs(m)).toEqual([[0, 100, 10, 0], [20, 500, 2, 0]]);
  });

  it('leaves extents before the block where they are', () => {
    const m = new BlockMap([e(0, 100, 2), e(10, 200, 2)]);
    m.shift(P, 10, 100);
    expect(recs(m)).toEqual([[0, 100, 2, 0], [110, 200, 2, 0]]);
  });
});

describe('layout permits', () => {
  it('cannot be forged: a look-alike object is refused, and the mint cannot be taken twice', async () => {
    const m = new BlockMap();
    expect(() => m.insert({ ino: 1 }, { fileBlock: 0, regionBlock: 100, len: 1, flags: 0 })).toThrow(/without a permit/);
    const { takePermitMint } = await import('../../src/bmap/bmap.js');
    expect(() => takePermitMint()).toThrow(/already taken/);
    m.insert(P, { fileBlock: 0, regionBlock: 100, len: 1, flags: 0 });
    expect(m.count).toBe(1);
  });
});

describe('BlockMap: small maps (a sorted array) and large ones (a B+tree) behave alike', () => {
  // A plain model: one entry per mapped file block (region block and flags), checked after every step.
  type Cell = [number, number];
  const modelMap = (model: Map<number, Cell>, start: number, count: number) => {
    const out: Array<[number, number, number]> = [];
    for (let b = start; b < start + count; b++) {
      const c = model.get(b);
      out.push(c ? [b, c[0], c[1]] : [b, HOLE, 0]);
    }
    return out;
  };
  const mapCells = (m: BlockMap, start: number, count: number) => {
    const out: Array<[number, number, number]> = [];
    for (const s of m.map(start, count)) for (let i = 0; i < s.len; i++) out.push([s.fileBlock + i, s.regionBlock === HOLE ? HOLE : s.regionBlock + i, s.regionBlock === HOLE ? 0 : s.flags]);
    return out;
  };
  let seed = 0x9e3779b9;
  const rnd = (n: number) => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n; };   // xorshift32

  it('random inserts and removals across the size where the array becomes a tree', () => {
    let most = 0;
    for (let round = 0; round < 40; round++) {
      const m = new BlockMap();
      const model = new Map<number, Cell>();
      let region = 1000;
      for (let step = 0; step < 60; step++) {
        const start = rnd(64), len = 1 + rnd(4);
        if (rnd(5) > 0) {
          let free = true;
          for (let b = start; b < start + len; b++) if (model.has(b)) free = false;
          if (!free) continue;
          const flags = rnd(2) ? U : 0;
          region += 3 + rnd(5);   // not contiguous with the last insert, so records stay apart more often
          m.insert(P, e(start, region, len, flags));
          for (let i = 0; i < len; i++) model.set(start + i, [region + i, flags]);
          region += len;
        } else {
          m.remove(P, start, len);
          for (let b = start; b < start + len; b++) model.delete(b);
        }
        expect(mapCells(m, 0, 72)).toEqual(modelMap(model, 0, 72));
        expect(m.mappedBlocks()).toBe(model.size);
        const ext = m.extents;
        for (let i = 1; i < ext.length; i++) expect(ext[i - 1].fileBlock + ext[i - 1].len).toBeLessThanOrEqual(ext[i].fileBlock);
        expect(m.lastExtent()).toEqual(ext[ext.length - 1]);
        expect(m.firstExtent()).toEqual(ext[0]);
        most = Math.max(most, m.count);
      }
    }
    expect(most).toBeGreaterThan(SMALL_MAP_MAX * 2);   // the tree form was exercised too
  });

  it('a map loaded with more records than the array holds, then emptied', () => {
    const recsIn = Array.from({ length: 20 }, (_, i) => e(i * 10, 5000 + i * 100, 5, i % 2 ? U : 0));
    const m = new BlockMap(recsIn);
    expect(m.count).toBe(20);
    expect(recs(m)).toEqual(recsIn.map((x) => [x.fileBlock, x.regionBlock, x.len, x.flags]));
    m.remove(P, 0, 200);
    expect(m.count).toBe(0);
    expect(m.map(0, 10)).toEqual([{ fileBlock: 0, len: 10, regionBlock: HOLE, flags: 0 }]);
    m.insert(P, e(3, 77, 2));
    expect(recs(m)).toEqual([[3, 77, 2, 0]]);
  });
});
