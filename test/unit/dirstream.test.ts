/**
 * DirStream (src/fuse/dirstream.ts): readdir from the live entry map, as
 * the FUSE kernel drives it — replies of a few entries, of which the kernel
 * may consume only part (the caller's getdents buffer filled up) and then
 * asks again from the first one it did not consume; rewinds; entries added
 * and removed while the directory is open.
 */
import { describe, expect, it } from 'vitest';
import { DirStream } from '../../src/fuse/dirstream.js';
import { seededRandom } from '../../src/region/prng.js';
import { listLikeKernel as list } from './helpers.js';

type Listing = Array<[string, number]>;

function dir(n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) m.set(`f${i}`, 100 + i);
  return m;
}

describe('readdir without a snapshot', () => {
  it('lists the head and every entry once, whatever part of each reply the kernel consumes', () => {
    const r = seededRandom(7);
    for (const n of [0, 1, 5, 200, 3000]) {
      const m = dir(n);
      const d = new DirStream(1, [['.', 1], ['..', 1]], () => m);
      const got = list(d, () => 1 + Math.floor(r() * 40), (sent) => (r() < 0.5 ? sent : 1 + Math.floor(r() * sent)));
      expect(got).toEqual([['.', 1], ['..', 1], ...m]);
    }
  });

  it.each([11, 12, 13, 14, 15, 16, 17, 18])('an entry neither added nor removed meanwhile is listed exactly once (seed %i)', (seed) => {
    const r = seededRandom(seed);
    const m = dir(2000);
    const d = new DirStream(1, [['.', 1], ['..', 1]], () => m);
    const removed = new Set<string>(), added = new Set<string>();
    let k = 0;
    const got = list(d, () => 1 + Math.floor(r() * 30), (sent) => 1 + Math.floor(r() * sent), () => {
      const victim = `f${Math.floor(r() * 2000)}`;
      if (m.delete(victim)) removed.add(victim);
      const name = `new${k++}`;
      m.set(name, 10_000 + k); added.add(name);
    });
    const counts = new Map<string, number>();
    for (const [name] of got) counts.set(name, (counts.get(name) ?? 0) + 1);
    for (let i = 0; i < 2000; i++) {
      const name = `f${i}`;
      if (!removed.has(name)) expect(counts.get(name), name).toBe(1);
    }
    for (const [name, c] of counts) expect(c, name).toBeLessThanOrEqual(removed.has(name) || added.has(name) ? 2 : 1);
  });

  it('a rewind (offset 0) or a seek before the last reply walks the map again', () => {
    const m = dir(50);
    const d = new DirStream(1, [['.', 1], ['..', 1]], () => m);
    const take = (off: number, n: number): Listing => {
      const out: Listing = [];
      d.read(off, (name, ino) => { if (out.length >= n) return false; out.push([name, ino]); return true; });
      return out;
    };
    const all: Listing = [['.', 1], ['..', 1], ...m];
    expect(take(0, 10)).toEqual(all.slice(0, 10));
    expect(take(10, 10)).toEqual(all.slice(10, 20));
    expect(take(0, 5)).toEqual(all.slice(0, 5));         // rewinddir
    expect(take(3, 4)).toEqual(all.slice(3, 7));         // inside the last reply
    expect(take(40, 100)).toEqual(all.slice(40));        // a seek forward
    expect(take(60, 10)).toEqual([]);                    // past the end
  });

  it('a source that fails part-way (a damaged block) fails the next request again, not as the end of the listing', () => {
    let fail = true;
    const d = new DirStream(1, [['.', 1], ['..', 1]], function* src() {
      yield ['a', 10] as const; yield ['b', 11] as const;
      if (fail) throw new Error('EIO: damaged block');
      yield ['c', 12] as const;
    });
    const got: string[] = [];
    expect(() => d.read(0, (name) => { got.push(name); return true; })).toThrow(/EIO/);
    expect(got).toEqual(['.', '..', 'a', 'b']);
    expect(() => d.read(4, () => true)).toThrow(/EIO/);          // again, at the entry it could not read
    fail = false;                                                 // mended (fsck -y, say): the walk starts over
    const rest: string[] = [];
    d.read(4, (name) => { rest.push(name); return true; });
    expect(rest).toEqual(['c']);
  });
});
