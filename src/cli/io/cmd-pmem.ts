/**
 * @file pmemfs-io's commands for what only pmemfs has: stat with the seal
 * state, bmap over PMEMFS_IOC_GETBMAP, seal/unseal, lease/unlease/break,
 * pin/unpin, the `dma` engine emulator and `map` (MAP_DIRECT emulation).
 *
 * Leases and pins belong to the calling process: they last until the
 * matching command or until pmemfs-io exits, so `-c lease -c "sleep 30"`
 * holds a lease for 30 s. A lease break arrives as SIGIO, whose default
 * action would kill us (dropping the lease at once); we catch it and say so.
 */
import * as fs from 'node:fs';
import * as uapi from '../../uapi.js';
import type { CommandDef, IoContext } from './commands.js';
import { runDma } from './dma.js';
import { formatBmapShort, formatBmapVerbose, formatLsattr, formatStat } from './format.js';
import { fsGetXattr, getBmap, pinRange, regionInfo, unpin, type FsXattr } from './ioctls.js';
import { parseNum, parsePattern, parseSeconds, type ParsedArgs } from './parse.js';

function simpleIoctl(name: string, cmd: number, help: string, before?: (ctx: IoContext) => void): CommandDef {
  return {
    name, usage: '', help, args: [0, 0],
    run(ctx) {
      before?.(ctx);
      ctx.sys.ioctl(ctx.fd, cmd, null);
    },
  };
}

let breakNoticeTo: IoContext | null = null;

/** Catch SIGIO (lease break) so the holder keeps its lease for the grace period; tell the latest context. */
export function installBreakNotice(ctx: IoContext): void {
  if (!breakNoticeTo) {
    process.on('SIGIO', () => {
      breakNoticeTo?.err(`lease: break received for ${breakNoticeTo.path}: release it (unlease) before the lease-break time runs out\n`);
    });
  }
  breakNoticeTo = ctx;
}

function fileType(st: fs.BigIntStats): string {
  if (st.isFile()) return 'regular file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symbolic link';
  if (st.isBlockDevice()) return 'block device';
  if (st.isCharacterDevice()) return 'char device';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

const stat: CommandDef = {
  name: 'stat', usage: '', help: 'statistics on the open file, with its pmemfs seal, pin and busy-page state',
  args: [0, 0], label: 'fstat',
  run(ctx) {
    const st = fs.fstatSync(ctx.fd, { bigint: true });
    let fsx: FsXattr | null = null;
    try { fsx = fsGetXattr(ctx.sys, ctx.fd); } catch { /* not pmemfs, or no FS_IOC_FSGETXATTR: omit */ }
    ctx.out(formatStat({
      path: ctx.path, readOnly: ctx.readOnly, ino: st.ino, type: fileType(st),
      size: Number(st.size), blocks: Number(st.blocks), fsx,
      state: ctx.readXattr(ctx.path, uapi.XATTR_STATE),
    }));
  },
};

const lsattr: CommandDef = {
  name: 'lsattr', usage: '', help: 'the file\'s xflags with its seal state (sealed=none|lease|persistent), which current kernels cannot pass in the xflags',
  args: [0, 0], label: 'lsattr',
  run(ctx) {
    let fsx: FsXattr | null = null;
    try { fsx = fsGetXattr(ctx.sys, ctx.fd); } catch { /* not pmemfs, or no FS_IOC_FSGETXATTR */ }
    ctx.out(formatLsattr(ctx.path, fsx, ctx.readXattr(ctx.path, uapi.XATTR_STATE)));
  },
};

const bmap: CommandDef = {
  name: 'bmap', usage: '[-v]', help: 'print the block map (file offset -> region offset) via PMEMFS_IOC_GETBMAP',
  opts: { v: 'flag' }, args: [0, 0],
  run(ctx, a) {
    const { records } = getBmap(ctx.sys, ctx.fd);
    if (!a.opts.has('v')) {
      ctx.out(formatBmapShort(ctx.path, records));
      return;
    }
    let blockSize: number;
    try { blockSize = regionInfo(ctx.sys, ctx.fd).blockSize; } catch { blockSize = Number(fs.fstatSync(ctx.fd).blksize); }
    ctx.out(formatBmapVerbose(ctx.path, records, blockSize || 4096));
  },
};

function offLen(a: ParsedArgs): [number, number] {
  return [parseNum(a.rest[0], 'offset'), parseNum(a.rest[1], 'length')];
}

const pin: CommandDef = {
  name: 'pin', usage: 'off len', help: 'pin a range (DMA emulation) until unpin or exit; prints one pin per physical extent',
  args: [2, 2],
  run(ctx, a) {
    for (const r of pinRange(ctx.sys, ctx.fd, ...offLen(a))) {
      ctx.out(`pin ${r.id} phys=0x${r.phys.toString(16)} len=${r.len}\n`);
    }
  },
};

const unpinCmd: CommandDef = {
  name: 'unpin', usage: 'id', help: 'release a pin taken by this process',
  args: [1, 1],
  run(ctx, a) { unpin(ctx.sys, ctx.fd, parseNum(a.rest[0], 'pin id')); },
};

const dma: CommandDef = {
  name: 'dma', usage: 'off len [-p pattern] [-t seconds]',
  help: 'DMA emulation: pin, write pattern (0x5a, 0xhexbytes or text; default 0xab) into the region over seconds, unpin',
  opts: { p: 'value', t: 'value' }, args: [2, 2],
  async run(ctx, a) {
    const [off, len] = offLen(a);
    const p = a.opts.get('p'), t = a.opts.get('t');
    const pattern = typeof p === 'string' ? parsePattern(p) : Buffer.from([0xab]);
    const secs = typeof t === 'string' ? parseSeconds(t) : 0;
    const n = await runDma(ctx, { off, len, pattern, seconds: secs });
    ctx.out(`dma ${len} bytes at ${off} via ${n} extents\n`);
  },
};

const map: CommandDef = {
  name: 'map', usage: 'off len', help: 'take a lease and mmap the range straight from the region file (MAP_DIRECT emulation), kept until exit',
  args: [2, 2],
  async run(ctx, a) {
    const [off, len] = offLen(a);
    // Loaded on use: it pulls in the native binding.
    const { mapDirect } = await import('../../mapdirect.js');
    installBreakNotice(ctx);
    const m = await mapDirect(ctx.path, off, len, { shim: ctx.sys });
    ctx.keep.push(m);
    ctx.out(`mapped ${len} bytes at offset ${off} via ${m.extents.length} extents from ${m.region.path}\n`);
    m.extents.forEach((e, i) => {
      ctx.out(`\t${i}: [${e.fileOff}..${e.fileOff + e.len - 1}]: region 0x${e.phys.toString(16)}..0x${(e.phys + e.len - 1).toString(16)} (${e.len} bytes)\n`);
    });
  },
};

export const pmemCommands: readonly CommandDef[] = [
  stat, lsattr, bmap,
  simpleIoctl('seal', uapi.PMEMFS_IOC_SEAL, 'persistently seal the block map (S_IOMAP_IMMUTABLE; root)'),
  simpleIoctl('unseal', uapi.PMEMFS_IOC_UNSEAL, 'clear the persistent seal (root; ETXTBSY while leased or pinned)'),
  simpleIoctl('lease', uapi.PMEMFS_IOC_LEASE, 'seal the block map for as long as this process holds the lease (MAP_DIRECT)', installBreakNotice),
  simpleIoctl('unlease', uapi.PMEMFS_IOC_UNLEASE, "drop this process's lease"),
  simpleIoctl('break', uapi.PMEMFS_IOC_BREAK, 'break every lease on the file: SIGIO now, revoked after lease_break (root)'),
  pin, unpinCmd, dma, map,
];
