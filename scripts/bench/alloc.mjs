#!/usr/bin/env node
// Extent allocator alone, in core: a 64 GiB region of 4 KiB blocks is churned
// to 10%, 50% and 90% full by random allocations (mostly 1-16 blocks, some
// 256-4096) and frees; at each fill OPS alloc+free pairs are timed (commitDone
// every 64 frees; extra frees or allocations keep the fill within 1%) and
// allocations+frees per second, free extent count and longest free extent printed.
// Then the free-space indexes are rebuilt from the 90% bitmap (what mount does).
// Prints numbers, asserts nothing. After building (npx tsc -p tsconfig.json):
//   node scripts/bench/alloc.mjs      env: SEED, OPS (default 200000), GIB (64), DIST (compiled tree)
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.DIST ?? path.join(here, '../../dist');
const { Allocator, TxNeedsCommit } = await import(pathToFileURL(path.join(dist, 'src/alloc/allocator.js')).href);

const SEED = Number(process.env.SEED ?? Date.now() % 1e9) >>> 0;
const OPS = Number(process.env.OPS ?? 200_000);
const GIB = Number(process.env.GIB ?? 64);
const BS = 4096;
const geo = { totalBlocks: GIB * 2 ** 30 / BS, dataStart: 1024, bitmapStart: 1, blockSize: BS };

let st = SEED;
/** mulberry32: uniform integer in [0, n). */
const rnd = (n) => {
  st = (st + 0x6d2b79f5) >>> 0;
  let t = Math.imul(st ^ (st >>> 15), 1 | st);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return (((t ^ (t >>> 14)) >>> 0) % n);
};
const size = () => (rnd(10) < 9 ? 1 + rnd(16) : 256 + rnd(3841));   // blocks

const a = new Allocator(geo);
a.loadFromUsage([]);
const dataBlocks = geo.totalBlocks - geo.dataStart;
const owned = [];            // allocations held (each its runs); freed whole, in random order (swap-remove)
let usedBlocks = 0, frees = 0, lastEnd = 0, runsOut = 0, allocs = 0;

function allocOne() {
  const n = size();
  const goal = rnd(10) < 3 ? lastEnd : 0;        // some requests extend the previous one, like a growing file
  let got;
  try { got = a.alloc(n, goal); } catch (e) {
    if (!(e instanceof TxNeedsCommit)) throw e;
    a.commitDone(); got = a.alloc(n, goal);
  }
  owned.push(got);
  usedBlocks += n; allocs++; runsOut += got.length;
  lastEnd = got[got.length - 1].start + got[got.length - 1].len;
}
function freeOne() {
  const i = rnd(owned.length);
  const runs = owned[i];
  owned[i] = owned[owned.length - 1]; owned.pop();
  for (const r of runs) { a.release(r.start, r.len); usedBlocks -= r.len; }
  if (++frees % 64 === 0) a.commitDone();
}

const rows = [];
for (const fill of [0.1, 0.5, 0.9]) {
  const target = fill * dataBlocks;
  while (usedBlocks < target) { if (owned.length && rnd(10) < 3) freeOne(); else allocOne(); }
  a.commitDone();
  allocs = 0; runsOut = 0;
  const f0 = frees, slack = dataBlocks / 100;      // held within 1% of the fill: a random walk would drift off
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < OPS; i++) {
    allocOne(); freeOne();
    while (usedBlocks > target + slack) freeOne();
    while (usedBlocks < target - slack) allocOne();
  }
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  a.commitDone();
  rows.push({ fill: `${fill * 100}%`, opsPerSec: Math.round((allocs + frees - f0) / sec), runsPerAlloc: (runsOut / allocs).toFixed(3),
    freeExtents: a.freeExtentCount, largestBlocks: a.largestFreeExtent, largestMiB: (a.largestFreeExtent * BS / 2 ** 20).toFixed(1),
    usedPct: (100 * (dataBlocks - a.freeBlocks) / dataBlocks).toFixed(1) });
}

if (process.env.CHECK) a.checkIndexes();
const images = Array.from({ length: a.bitmapBlocks }, (_, i) => a.bitmapImage(i));
const times = [];
let b;
for (let k = 0; k < 5; k++) {
  b = new Allocator(geo);
  const t0 = process.hrtime.bigint();
  b.loadBitmap((i) => images[i]);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((x, y) => x - y);
if (b.freeExtentCount !== a.freeExtentCount || b.freeBlocks !== a.freeBlocks) throw new Error('loadBitmap disagrees with the allocator it was imaged from');

const pad = (s, w) => String(s).padStart(w);
console.log(`allocator bench: ${GIB} GiB region, ${geo.totalBlocks} blocks of ${BS} B, seed ${SEED}, ${OPS} alloc+free pairs per fill`);
console.log(['fill', 'used%', 'ops/s', 'runs/alloc', 'free exts', 'largest blk', 'largest MiB'].map((h) => pad(h, 12)).join(''));
for (const r of rows) console.log([r.fill, r.usedPct, r.opsPerSec, r.runsPerAlloc, r.freeExtents, r.largestBlocks, r.largestMiB].map((v) => pad(v, 12)).join(''));
console.log(`mount index build (loadBitmap, ${a.bitmapBlocks} bitmap blocks, ${b.freeExtentCount} free extents, 90% state): median ${times[2].toFixed(1)} ms (min ${times[0].toFixed(1)}, max ${times[4].toFixed(1)}) over 5`);
