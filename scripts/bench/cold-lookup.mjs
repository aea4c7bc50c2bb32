#!/usr/bin/env node
// Lookups in a large directory right after a mount, in the metadata engine
// alone (no FUSE): one directory is filled with N entries (file-name-0 ..,
// no data), the region unmounted and mounted again, then: a lookup of a name
// that is not there, then 12 lookups of names spread over the directory, and
// one more absent name. With a hash index (FEAT_INCOMPAT_DIRHASH) each reads
// the leaf of its name's hash (the first also the index); an unordered
// directory of an older region would probe its first DEFERRED_PROBES and
// then read everything (docs/DESIGN.md, "Cold lookups probe the record
// blocks"). Then a listing of the whole directory by hash as FUSE readdir
// makes it (replies of 100 entries), a create and an unlink with the entries
// on media (each reads the leaves it changes), the full read of its entries
// into core, and a create with them in core. Prints each
// time in ms, and the entries in core and the heap at the end. The region
// is made by a child process, so the timed mount starts with a small heap,
// as the daemon's does.
// `node --expose-gc scripts/bench/cold-lookup.mjs [N]` (default 1000000)
// after `npm run build`; the region is a file under BENCH_DIR (default the
// OS temp directory). Not in npm test.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { DirStream } from '../../dist/src/fuse/dirstream.js';
import { formatRegion, mountRegion, unmountRegion } from '../../dist/src/vfs/mount.js';
import { ROOT_CALLER } from '../../dist/src/vfs/fs.js';

const log = pino({ level: 'silent' });
const opts = { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 100 };
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

/** The region with /d of n entries, made by a child process so that the timed mount starts with a small heap, as a daemon's does. */
function make(p, n) {
  formatRegion(p, { size: Math.max(256, Math.ceil(n / 1000) * 2) * 2 ** 20, blockSize: 4096, label: 'bench', bytesPerInode: 1024 });
  const m = mountRegion(p, opts, log);
  m.fs.mkdir('/d', 0o755, ROOT_CALLER);
  const d0 = m.fs.resolve('/d');
  for (let i = 0; i < n; i++) { m.fs.mknodAt(d0, `file-name-${i}`, 0o100644, 0, ROOT_CALLER); if (i % 20000 === 0) m.fs.fsync(); }
  m.fs.fsync();
  unmountRegion(m);
}

if (process.argv[2] === '--make') {
  make(process.argv[3], Number(process.argv[4]));
  process.exit(0);
}
const n = Number(process.argv[2] ?? 1_000_000);
if (!(Number.isInteger(n) && n >= 1000)) throw new Error(`usage: cold-lookup.mjs [N >= 1000], got ${process.argv[2]}`);
const dir = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'pmemfs-coldlookup-'));
try {
  const p = path.join(dir, 'r.pmem');
  execFileSync(process.execPath, [new URL(import.meta.url).pathname, '--make', p, String(n)], { stdio: 'inherit' });
  console.error(`cold-lookup: ${n} entries made; mounting`);
  const m = mountRegion(p, opts, log);
  try {
    const d = m.fs.resolve('/d');
    const times = [];
    let t0 = process.hrtime.bigint();
    if (m.fs.lookupOrNull(d, 'absent-name') !== null) throw new Error('an absent name was found');
    times.push(ms(t0));
    for (let k = 1; k <= 12; k++) {
      t0 = process.hrtime.bigint();
      if (!m.fs.lookupOrNull(d, `file-name-${Math.floor((n * k) / 13)}`)) throw new Error(`file-name-${Math.floor((n * k) / 13)} was not found`);
      times.push(ms(t0));
    }
    t0 = process.hrtime.bigint();
    if (m.fs.lookupOrNull(d, 'absent-again') !== null) throw new Error('an absent name was found');
    times.push(ms(t0));
    const inCore = () => (d.direntsInCore ? d.direntsInCore.size : 0);
    console.log(`cold lookups in a directory of ${n} entries after a mount (ms; ${m.fs.store.isHashedDir(d) ? 'a hash index: one leaf each' : 'unordered: probes, then the full read'}):`);
    console.log(`  absent ${times[0].toFixed(2)}; present ${times.slice(1, 13).map((x) => x.toFixed(2)).join(' ')}; absent ${times[13].toFixed(2)}; entries in core after them: ${inCore()}`);
    const listing = m.fs.hashedListing(d);
    if (listing) {
      const stream = new DirStream(d.ino, [], () => [], listing);
      let off = 0, count = 0;
      t0 = process.hrtime.bigint();
      for (;;) {
        let got = 0, next = off;
        stream.read(off, (_name, _ino, nextOff) => { if (got === 100) return false; got++; next = nextOff; return true; });
        if (!got) break;
        count += got; off = next;
      }
      const t = ms(t0);
      if (count !== n) throw new Error(`the listing by hash gave ${count} entries of ${n}`);
      console.log(`  listing by hash, replies of 100: ${t.toFixed(0)} ms (${((t * 1000) / n).toFixed(2)} µs an entry); entries in core after it: ${inCore()}`);
    }
    t0 = process.hrtime.bigint();
    m.fs.mknodAt(d, 'made-on-media', 0o100644, 0, ROOT_CALLER);
    const tc = ms(t0);
    t0 = process.hrtime.bigint();
    m.fs.unlinkAt(d, 'made-on-media');
    console.log(`  a create and an unlink with the entries on media: ${tc.toFixed(2)} / ${ms(t0).toFixed(2)} ms; entries in core after them: ${inCore()}`);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < 2000; i++) m.fs.mknodAt(d, `on-media-${i}`, 0o100644, 0, ROOT_CALLER);
    const tcs = ms(t0);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < 2000; i++) m.fs.unlinkAt(d, `on-media-${i}`);
    globalThis.gc?.();
    const mm = process.memoryUsage();
    console.log(`  2,000 more creates and unlinks on media: ${((tcs * 1000) / 2000).toFixed(1)} / ${((ms(t0) * 1000) / 2000).toFixed(1)} µs each; entries in core after them: ${inCore()}; heap ${(mm.heapUsed / 2 ** 20).toFixed(0)} MiB, buffers ${(mm.arrayBuffers / 2 ** 20).toFixed(0)} MiB, RSS ${(mm.rss / 2 ** 20).toFixed(0)} MiB`);
    t0 = process.hrtime.bigint();
    const size = d.dirents.size;
    console.log(`  full read of the ${size} entries (rmdir's emptiness check, -o check): ${ms(t0).toFixed(0)} ms`);
    t0 = process.hrtime.bigint();
    m.fs.mknodAt(d, 'one-more', 0o100644, 0, ROOT_CALLER);
    console.log(`  a create, entries in core: ${ms(t0).toFixed(2)} ms`);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < 2000; i++) m.fs.mknodAt(d, `in-core-${i}`, 0o100644, 0, ROOT_CALLER);
    const tci = ms(t0);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < 2000; i++) m.fs.unlinkAt(d, `in-core-${i}`);
    console.log(`  2,000 creates and unlinks in core: ${((tci * 1000) / 2000).toFixed(1)} / ${((ms(t0) * 1000) / 2000).toFixed(1)} µs each`);
    globalThis.gc?.();
    const mu = process.memoryUsage();
    console.log(`  entries in core at the end: ${d.direntsInCore ? d.direntsInCore.size : 'none'}; heap used ${(mu.heapUsed / 2 ** 20).toFixed(0)} MiB${globalThis.gc ? ' after a full GC' : ' (node --expose-gc: after a full GC)'}, RSS ${(mu.rss / 2 ** 20).toFixed(0)} MiB`);
  } finally { unmountRegion(m); }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
