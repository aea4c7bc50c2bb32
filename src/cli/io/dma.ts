/**
 * @file The `dma` command's engine: a device that DMAs into a file's pages.
 * It pins the range (so the block map cannot move under it), learns the
 * region file from PMEMFS_IOC_REGION and writes the pattern straight into
 * the region file at the pinned physical addresses — never through the
 * mount — optionally spread over some seconds so a test can race layout
 * changes against it. It fsyncs the region and always unpins, even on error.
 */
import * as fs from 'node:fs';
import type { IoContext } from './commands.js';
import { labelled } from './format.js';
import { pinRange, regionInfo, unpinAll, type PinRecord } from './ioctls.js';

export interface DmaJob {
  off: number;
  len: number;
  /** repeated from the start of the range: byte i of the range gets pattern[i % n] */
  pattern: Buffer;
  /** 0: all at once; else written in slices with sleeps in between, ending after ~seconds */
  seconds: number;
}

/** One contiguous run in the region: where it goes and where it sits in the range. */
export interface DmaSegment { phys: number; len: number; rangeOff: number }

/** Clip pin records to [off, off+len) and order them by file offset. */
export function dmaSegments(recs: readonly PinRecord[], off: number, len: number): DmaSegment[] {
  const out: DmaSegment[] = [];
  for (const r of [...recs].sort((x, y) => x.fileOff - y.fileOff)) {
    const s = Math.max(off, r.fileOff), e = Math.min(off + len, r.fileOff + r.len);
    if (e > s) out.push({ phys: r.phys + (s - r.fileOff), len: e - s, rangeOff: s - off });
  }
  return out;
}

/** `n` bytes of the repeating pattern, starting at phase `from` within it. */
export function patternBytes(pattern: Buffer, from: number, n: number): Buffer {
  const phase = from % pattern.length;
  const rotated = phase ? Buffer.concat([pattern.subarray(phase), pattern.subarray(0, phase)]) : pattern;
  return Buffer.alloc(n, rotated);
}

/** How many slices to cut `bytes` into over `seconds`: ~20 a second, at least 4 KiB each. */
export function sliceCount(bytes: number, seconds: number): number {
  if (seconds <= 0) return 1;
  return Math.max(1, Math.min(Math.ceil(bytes / 4096), Math.ceil(seconds * 20)));
}

/** Write range bytes [from, to) of the job to the region file. */
function writeSpan(rfd: number, segs: readonly DmaSegment[], pattern: Buffer, from: number, to: number): void {
  for (const sg of segs) {
    const s = Math.max(from, sg.rangeOff), e = Math.min(to, sg.rangeOff + sg.len);
    if (e <= s) continue;
    const buf = patternBytes(pattern, s, e - s);
    let done = 0;
    while (done < buf.length) done += fs.writeSync(rfd, buf, done, buf.length - done, sg.phys + (s - sg.rangeOff) + done);
  }
}

/**
 * Run a DMA job against ctx.fd. @returns how many pinned extents it went through
 * @throws the pin/region ioctl errors, or `REGION: strerror` for the region file
 */
export async function runDma(ctx: IoContext, job: DmaJob): Promise<number> {
  const recs = pinRange(ctx.sys, ctx.fd, job.off, job.len);
  let rfd = -1, ok = false;
  try {
    const region = regionInfo(ctx.sys, ctx.fd);
    rfd = labelled(region.path, () => fs.openSync(region.path, fs.constants.O_RDWR));
    const segs = dmaSegments(recs, job.off, job.len);
    const slices = sliceCount(job.len, job.seconds);
    const step = Math.ceil(job.len / slices);
    for (let at = 0; at < job.len; at += step) {
      labelled(region.path, () => writeSpan(rfd, segs, job.pattern, at, Math.min(job.len, at + step)));
      if (job.seconds > 0) await ctx.sleep((job.seconds * 1000) / slices);
    }
    labelled(region.path, () => fs.fsyncSync(rfd));
    ok = true;
  } finally {
    if (rfd >= 0) fs.closeSync(rfd);
    try {
      unpinAll(ctx.sys, ctx.fd, recs.map((r) => r.id));
    } catch (e) {
      if (ok) throw e; // else the first failure is the one worth reporting
    }
  }
  return recs.length;
}
