#!/usr/bin/env node
// Fragmentation report of the whole engine in-process (no FUSE): a region
// (default 2 GiB in BENCH_DIR, default /dev/shm) is filled to 90% by several
// files growing at once through interleaved appends of 64 KiB-1 MiB, to final
// sizes of 4-64 KiB (small) or 2-64 MiB (large), with random deletions;
// PREALLOC percent of the large files are first preallocated to their final
// size with one fallocate (as PMDK creates its pools), the rest only grow. Then
// prints extents per file (small and large apart), free extents, the longest
// free extent, and the share of large files' extents of 2 MiB or more that
// start at a 2 MiB-aligned region offset, for preallocated and growing
// large files apart. Prints numbers, asserts nothing. A FUSE write carries at
// most 1 MiB, so only fallocate (and unshare) asks for 2 MiB or more at once:
// growing files are placed near their goal, preallocated ones aligned.
//   node scripts/bench/frag.mjs    env: SEED, SIZE_MIB (2048), WRITERS (8), PREALLOC (50), BENCH_DIR, DIST (compiled tree)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.DIST ?? path.join(here, '../../dist');
const load = (m) => import(pathToFileURL(path.join(dist, m)).href);
const { formatRegion, mountRegion, unmountRegion } = await load('src/vfs/mount.js');
const { ROOT_CALLER } = await load('src/vfs/fs.js');

const SEED = Number(process.env.SEED ?? Date.now() % 1e9) >>> 0;
const SIZE = Number(process.env.SIZE_MIB ?? 2048) * 2 ** 20;
const WRITERS = Number(process.env.WRITERS ?? 8);
const PREALLOC = Number(process.env.PREALLOC ?? 50);
const FILL = 0.9;
const BS = 4096, KiB = 1024, MiB = 2 ** 20, HUGE = 2 * MiB;
const O_RDWR = fs.constants.O_RDWR;

let st = SEED;
/** mulberry32: uniform integer in [lo, hi]. */
const rnd = (lo, hi) => {
  st = (st + 0x6d2b79f5) >>> 0;
  let t = Math.imul(st ^ (st >>> 15), 1 | st);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return lo + (((t ^ (t >>> 14)) >>> 0) % (hi - lo + 1));
};
const blocks = (lo, hi) => rnd(lo / BS, hi / BS) * BS;     // a byte size, whole blocks

const dir = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? '/dev/shm', 'pmemfs-frag-'));
const region = path.join(dir, 'frag.pmem');
const buf = Buffer.alloc(MiB, 0x5a);
let m = null;
try {
  formatRegion(region, { size: SIZE, blockSize: BS, label: 'frag', bytesPerInode: 16384 });
  m = mountRegion(region, { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 100 }, pino({ level: 'silent' }));
  const f = m.fs, alloc = f.store.alloc;
  const total = f.statfs().blocks;
  const kind = new Map();          // path → 'small' | 'large' | 'prealloc'
  const done = [];                 // finished paths, candidates for deletion
  let next = 0, writes = 0, deletes = 0;
  const open = async () => {
    const p = `/f${next++}`;
    const large = rnd(1, 100) <= 40;
    const pre = large && rnd(1, 100) <= PREALLOC;
    kind.set(p, pre ? 'prealloc' : large ? 'large' : 'small');
    const w = { p, h: f.create(p, 0o644, O_RDWR, ROOT_CALLER), size: 0, target: large ? blocks(HUGE, 64 * MiB) : blocks(4 * KiB, 64 * KiB) };
    if (pre) await f.fallocate(p, 0, 0, w.target);
    return w;
  };
  const writers = [];
  for (let i = 0; i < WRITERS; i++) writers.push(await open());
  full: while ((total - alloc.freeBlocks) / total < FILL) {
    const w = writers[rnd(0, writers.length - 1)];
    const n = Math.min(blocks(64 * KiB, MiB), w.target - w.size);
    try { f.write(w.h.fh, w.p, buf, n, w.size, ROOT_CALLER); } catch (e) { if (e.code === 'ENOSPC') break full; throw e; }
    w.size += n;
    if (++writes % 256 === 0) f.fsync();
    if (w.size < w.target) continue;
    f.release(w.h.fh);
    done.push(w.p);
    try { writers[writers.indexOf(w)] = await open(); } catch (e) { if (e.code === 'ENOSPC') break full; throw e; }
    if (rnd(1, 100) <= 35) {        // delete a random finished file
      const p = done.splice(rnd(0, done.length - 1), 1)[0];
      f.unlink(p); kind.delete(p); deletes++;
    }
  }
  for (const w of writers) f.release(w.h.fh);
  f.fsync();

  const byKind = { small: [], large: [], prealloc: [] };
  const big = { large: 0, prealloc: 0 }, bigAligned = { large: 0, prealloc: 0 };
  for (const [p, k] of kind) {
    const ino = f.getattr(p).ino;
    const ext = f.store.inodes.get(ino)?.bmap.extents ?? [];
    if (ext.length === 0) continue;
    byKind[k].push(ext.length);
    if (k === 'small') continue;
    for (const e of ext) if (e.len * BS >= HUGE) { big[k]++; if ((e.regionBlock * BS) % HUGE === 0) bigAligned[k]++; }
  }
  let freeExts = 0, largest = 0;
  for (const r of alloc.freeRuns()) { freeExts++; largest = Math.max(largest, r.len); }

  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
    return { n: s.length, mean: (s.reduce((a, b) => a + b, 0) / s.length).toFixed(2), p50: q(0.5), p99: q(0.99), max: s[s.length - 1] };
  };
  console.log(`fragmentation: ${SIZE / MiB} MiB region, ${BS} B blocks, seed ${SEED}, ${WRITERS} writers, ${writes} appends, ${deletes} deletions, ` +
    `${(100 * (total - alloc.freeBlocks) / total).toFixed(1)}% used`);
  console.log('extents per file      files     mean      p50      p99      max');
  for (const k of ['small', 'large', 'prealloc']) {
    if (!byKind[k].length) continue;
    const s = stats(byKind[k]);
    console.log(`  ${k.padEnd(18)}${[s.n, s.mean, s.p50, s.p99, s.max].map((v) => String(v).padStart(9)).join('')}`);
  }
  console.log(`free extents: ${freeExts}; largest free extent: ${(largest * BS / MiB).toFixed(1)} MiB`);
  for (const k of ['large', 'prealloc']) {
    console.log(`${k === 'large' ? 'growing' : 'preallocated'} large files' extents >= 2 MiB: ${big[k]}, starting 2 MiB-aligned: ${bigAligned[k]} (${big[k] ? (100 * bigAligned[k] / big[k]).toFixed(1) : '-'}%)`);
  }
} finally {
  if (m) try { unmountRegion(m); } catch (e) { console.error(`unmount: ${e.message}`); }
  fs.rmSync(dir, { recursive: true, force: true });
}
