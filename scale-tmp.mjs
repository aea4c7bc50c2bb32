import * as fs from 'node:fs';
import pino from 'pino';
import { formatRegion, mountRegion, unmountRegion } from './dist/src/vfs/mount.js';
import { ROOT_CALLER } from './dist/src/vfs/fs.js';
const log = pino({ level: 'silent' });
const opts = { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 100 };
const N = Number(process.env.N ?? 200000);
const p = '/dev/shm/scale.pmem';
if (process.env.MAKE === '1') {
  formatRegion(p, { size: 2048 * 2 ** 20, blockSize: 4096, label: 'scale', bytesPerInode: 4096 });
  const m = mountRegion(p, opts, log);
  const f = m.fs;
  for (let d = 0; d < 10; d++) f.mkdir(`/d${d}`, 0o755, ROOT_CALLER);
  const buf = Buffer.alloc(50, 1);
  for (let i = 0; i < N; i++) {
    const h = f.create(`/d${i % 10}/file-${i}`, 0o644, 0o2, ROOT_CALLER);
    f.write(h.fh, 'x', buf, (i % 100) + 1, 0);
    f.release(h.fh);
    if (i % 20000 === 0) f.fsync();
  }
  unmountRegion(m);
}
global.gc?.();
const r0 = process.memoryUsage();
const t0 = process.hrtime.bigint();
const m = mountRegion(p, opts, log);
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
global.gc?.();
const r1 = process.memoryUsage();
console.log(`N=${N} mount ${ms.toFixed(0)} ms, heap ${((r1.heapUsed - r0.heapUsed) / 2 ** 20).toFixed(0)} MiB, rss ${((r1.rss) / 2 ** 20).toFixed(0)} MiB, per inode ${((r1.heapUsed - r0.heapUsed) / N).toFixed(0)} B`);
unmountRegion(m);
