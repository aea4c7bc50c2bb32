/**
 * @file mkfs.pmemfs: create (sparse, or written in full with -P) or format a region file and print its
 * geometry. Refuses to overwrite anything that is not empty — a pmemfs
 * region or any other data — without -f, and refuses a region that is
 * mounted (locked) even with -f.
 */
import { Command } from 'commander';
import * as fs from 'node:fs';
import { dataEnd, decodeSuperblock, FormatError, hasSuperblockMagic, SB_SIZE, type Superblock } from '../format/layout.js';
import { formatRegion } from '../vfs/mount.js';
import { CliError, lockRegion, parseSize, runMain, version } from './common.js';

const PROG = 'mkfs.pmemfs';

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command(PROG)
    .description('create or format a pmemfs region file')
    .argument('<region>', 'region file (created sparse if missing)')
    .option('-s, --size <size>', 'region size, with k/m/g/t suffix (required for a new file)')
    .option('-b, --block-size <bytes>', 'block size: 4096 to 65536, a power of two', '4096')
    .option('-L, --label <label>', 'volume label (up to 64 bytes)', '')
    .option('-i, --bytes-per-inode <bytes>', 'one inode per this many bytes of region (1k to 64m, k/m suffix; default 16k, at most 4M inodes)')
    .option('-N, --inodes <count>', 'number of inodes (64 to 16M), overriding -i')
    .option('-P, --preallocate', 'write the whole region file now (zeroes, bypassing the page cache), so the host filesystem never allocates a block on a later flush, as on a pmem device (takes as long as writing the region once; a region on tmpfs takes its full size in memory)')
    .option('-f, --force', 'overwrite an existing region or non-empty file')
    .version(version(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  await runMain(PROG, () => {
    try { cmd.parse(argv, { from: 'user' }); } catch (e) { return (e as { exitCode?: number }).exitCode ?? 1; }
    const o = cmd.opts<{ size?: string; blockSize: string; label: string; force?: boolean; bytesPerInode?: string; inodes?: string; preallocate?: boolean }>();
    const region = cmd.args[0];
    const size = o.size !== undefined ? parseSize(o.size, 'size') : undefined;
    const blockSize = parseSize(o.blockSize, 'block size');
    const bytesPerInode = o.bytesPerInode !== undefined ? parseSize(o.bytesPerInode, 'bytes per inode') : undefined;
    if (o.inodes !== undefined && !/^[1-9][0-9]*$/.test(o.inodes)) throw new CliError(`inode count '${o.inodes}' is not a positive integer (e.g. -N 1000000)`);
    const inodeCount = o.inodes !== undefined ? Number(o.inodes) : undefined;
    checkTarget(region, !!o.force, size);
    try {
      // The root directory belongs to whoever made the region (mke2fs's root_owner default): a user's own mount is writable.
      const sb = formatRegion(region, { size, blockSize, bytesPerInode, inodeCount, label: o.label, rootUid: process.getuid?.() ?? 0, rootGid: process.getgid?.() ?? 0, preallocate: !!o.preallocate });
      process.stdout.write(describe(region, sb));
    } catch (e) {
      if (e instanceof FormatError) throw new CliError(e.message);
      throw e;
    }
  });
}

/** Refuse what must not be overwritten; explain how to proceed. */
function checkTarget(region: string, force: boolean, size: number | undefined): void {
  let st: fs.Stats;
  try { st = fs.statSync(region); } catch {
    if (size === undefined) throw new CliError(`${region} does not exist: give its size with -s SIZE (e.g. -s 1g)`);
    return;
  }
  if (!st.isFile()) throw new CliError(`${region} is not a regular file: a pmemfs region is a plain file`);
  const fd = fs.openSync(region, 'r+');
  try {
    lockRegion(fd, region, 'exclusive');
    if (st.size === 0) {
      if (size === undefined) throw new CliError(`${region} is empty: give the region size with -s SIZE`);
      return;
    }
    const head = Buffer.alloc(SB_SIZE);
    fs.readSync(fd, head, 0, SB_SIZE, 0);
    if (force) return;
    if (hasSuperblockMagic(head)) {
      let what = 'a pmemfs region';
      try { const sb = decodeSuperblock(head); what += ` (label '${sb.label}', uuid ${fmtUuid(sb.uuid)})`; } catch { /* damaged: still ours */ }
      throw new CliError(`${region} already holds ${what}: use -f to overwrite it`);
    }
    throw new CliError(`${region} exists and is not empty (${st.size} bytes of data that is not a pmemfs region): use -f to overwrite it`);
  } finally {
    fs.closeSync(fd);
  }
}

function fmtUuid(u: Buffer): string {
  const h = u.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Geometry in the spirit of mkfs.xfs's summary. */
function describe(region: string, sb: Superblock): string {
  const bs = sb.blockSize;
  const r = (start: number, n: number) => `${start}..${start + n - 1}`;
  return [
    `region=${region} size=${sb.regionSize} bytes (${(sb.regionSize / 2 ** 30).toFixed(2)} GiB), blocks=${sb.totalBlocks}, bsize=${bs}`,
    `superblock  block 0, uuid=${fmtUuid(sb.uuid)}, label='${sb.label}', version=${sb.version}`,
    `bitmap      blocks ${r(sb.bitmapStart, sb.bitmapBlocks)} (one bit per block, checksummed)`,
    `inodes      blocks ${r(sb.itableStart, sb.itableBlocks)}, count=${sb.inodeCount}, isize=${sb.inodeSize}`,
    `journal     blocks ${r(sb.journalStart, sb.journalBlocks)} (${(sb.journalBlocks * bs / 2 ** 20).toFixed(1)} MiB write-ahead log)`,
    `data        blocks ${r(sb.dataStart, dataEnd(sb) - sb.dataStart)}, ${((dataEnd(sb) - sb.dataStart) * bs / 2 ** 20).toFixed(1)} MiB`,
    `backup sb   block ${sb.totalBlocks - 1}`,
    '',
  ].join('\n');
}
