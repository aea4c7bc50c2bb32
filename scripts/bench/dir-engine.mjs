#!/usr/bin/env node
// Directory scaling of the metadata engine alone (no FUSE): one directory is
// filled to N entries, then 1000 creates, 1000 lookups and 1000 unlinks are
// timed at that size, for each N in SIZES (default 1000,10000,100000); then
// the region is unmounted and the mount time measured. Prints µs/op and the
// ratio against the smallest size: flat means O(1) per operation.
// `node scripts/bench/dir-engine.mjs` after `npm run build`; not in npm test.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { formatRegion, mountRegion, unmountRegion } from '../../dist/src/vfs/mount.js';
import { ROOT_CALLER } from '../../dist/src/vfs/fs.js';

const SIZES = (process.env.SIZES ?? '1000,10000,100000').split(',').map(Number);
const K = 1000;
const log = pino({ level: 'silent' });
const opts = { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 100 };
const dir = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'pmemfs-dirbench-'));
const us = (t0, n) => (Number(process.hrtime.bigint() - t0) / 1000 / n).toFixed(1);
const rows = [];
try {
  for (const n of SIZES) {
    const p = path.join(dir, `r${n}.pmem`);
    formatRegion(p, { size: Math.max(256, Math.ceil(n / 1000) * 16) << 20, blockSize: 4096, label: 'bench', bytesPerInode: 2048 });
    let m = mountRegion(p, opts, log);
    const f = m.fs;
    f.mkdir('/d', 0o755, ROOT_CALLER);
    for (let i = 0; i < n; i++) { f.mknod(`/d/file-${i}`, 0o644, 0, ROOT_CALLER); if (i % 20000 === 0) f.fsync(); }
    f.fsync();
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < K; i++) f.mknod(`/d/extra-${i}`, 0o644, 0, ROOT_CALLER);
    const create = us(t0, K);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < K; i++) f.getattr(`/d/file-${(i * 7919) % n}`);
    const lookup = us(t0, K);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < K; i++) f.unlink(`/d/extra-${i}`);
    const unlink = us(t0, K);
    t0 = process.hrtime.bigint();
    f.fsync();
    const commit = us(t0, 1);
    unmountRegion(m);
    t0 = process.hrtime.bigint();
    m = mountRegion(p, opts, log);
    const mountMs = (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0);
    unmountRegion(m);
    fs.rmSync(p);
    rows.push({ n, create, lookup, unlink, commit, mountMs });
    console.error(`dir-engine: ${n} entries done`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
const pad = (s, w) => String(s).padStart(w);
console.log(`metadata engine, one directory, ${K} operations at each size (µs/op; commit = one fsync after them, µs)`);
console.log(['entries', 'create', 'lookup', 'unlink', 'commit', 'mount ms', 'create/1st'].map((h) => pad(h, 10)).join(' '));
for (const r of rows) {
  console.log([r.n, r.create, r.lookup, r.unlink, r.commit, r.mountMs, (r.create / rows[0].create).toFixed(2)].map((v) => pad(v, 10)).join(' '));
}
