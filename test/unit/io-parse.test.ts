/**
 * pmemfs-io without a mount: the tokenizer, number and option parsing, the
 * xfs_io-shaped output (hexdump, timing line, bmap tables, stat, errors),
 * the payload codecs, and the dispatcher driving a fake native binding over
 * plain temp files (pwrite/pread/truncate, pin and GETBMAP loops, dma).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installBreakNotice } from '../../src/cli/io/cmd-pmem.js';
import { defaultContext, findCommand, helpText, runCommand, type IoContext } from '../../src/cli/io/commands.js';
import { dmaSegments, patternBytes, sliceCount } from '../../src/cli/io/dma.js';
import {
  bmapFlagWords, cvtstr, errorLine, formatBmapShort, formatBmapVerbose, formatLsattr, formatStat, formatXflags,
  hexdump, LabelledError, parseStateLine, timingLine,
} from '../../src/cli/io/format.js';
import {
  decodeBmapReply, decodePinReply, decodeRegion, encodeReflink, type BmapRecord, type IoShim, type PinRecord,
} from '../../src/cli/io/ioctls.js';
import { checkArgCount, getopt, parseByte, parseNum, parsePattern, parseSeconds, tokenize, UsageError } from '../../src/cli/io/parse.js';
import { strerror } from '../../src/cli/io/strerror.js';
import { fileOff, regionOff } from '../../src/types.js';
import * as uapi from '../../src/uapi.js';

const errno = (code: string, syscall = 'ioctl') =>
  Object.assign(new Error(`${syscall}: ${code}`), { code, errno: os.constants.errno[code as keyof typeof os.constants.errno], syscall });

describe('tokenize', () => {
  it('splits on whitespace', () => {
    expect(tokenize('  pwrite   -S 0x41\t0 4k ')).toEqual(['pwrite', '-S', '0x41', '0', '4k']);
  });
  it('keeps quoted words together, single quotes literal', () => {
    expect(tokenize(`dma 0 1m -p "hello world"`)).toEqual(['dma', '0', '1m', '-p', 'hello world']);
    expect(tokenize(`dma 0 1m -p 'a\\b "c"'`)).toEqual(['dma', '0', '1m', '-p', 'a\\b "c"']);
    expect(tokenize(`x "a \\"q\\" b"`)).toEqual(['x', 'a "q" b']);
    expect(tokenize(`x ab"cd ef"gh`)).toEqual(['x', 'abcd efgh']);
    expect(tokenize(`x ""`)).toEqual(['x', '']);
  });
  it('honours backslash escapes and # comments', () => {
    expect(tokenize('x a\\ b')).toEqual(['x', 'a b']);
    expect(tokenize('fsync # flush it')).toEqual(['fsync']);
    expect(tokenize('x a#b')).toEqual(['x', 'a#b']);
    expect(tokenize('')).toEqual([]);
  });
  it('rejects unterminated quotes', () => {
    expect(() => tokenize('x "abc')).toThrow(UsageError);
    expect(() => tokenize("x 'abc")).toThrow(/unterminated single quote/);
    expect(() => tokenize('x \\')).toThrow(UsageError);
  });
});

describe('numbers', () => {
  it('parses decimal, hex and binary suffixes', () => {
    expect(parseNum('4096', 'offset')).toBe(4096);
    expect(parseNum('0x1000', 'offset')).toBe(4096);
    expect(parseNum('0X1f', 'offset')).toBe(31);
    expect(parseNum('4k', 'offset')).toBe(4096);
    expect(parseNum('2M', 'offset')).toBe(2 * 2 ** 20);
    expect(parseNum('1g', 'length')).toBe(2 ** 30);
    expect(parseNum('3t', 'length')).toBe(3 * 2 ** 40);
    expect(parseNum('8s', 'length')).toBe(4096);
    expect(parseNum('0x10k', 'length')).toBe(16 * 1024);
  });
  it('rejects junk in xfs_io words', () => {
    expect(() => parseNum('0x1z', 'length')).toThrow('non-numeric length argument -- 0x1z');
    expect(() => parseNum('-5', 'truncate')).toThrow('non-numeric truncate argument -- -5');
    expect(() => parseNum('1.5k', 'offset')).toThrow(UsageError);
    expect(() => parseNum('', 'offset')).toThrow(UsageError);
    expect(() => parseNum('99999999e', 'offset')).toThrow(/too large/);
  });
  it('parses seconds, bytes and patterns', () => {
    expect(parseSeconds('0.25')).toBe(0.25);
    expect(parseSeconds('3')).toBe(3);
    expect(() => parseSeconds('-1')).toThrow(UsageError);
    expect(parseByte('0x41')).toBe(0x41);
    expect(parseByte('255')).toBe(255);
    expect(() => parseByte('0x100')).toThrow(UsageError);
    expect([...parsePattern('0x5a')]).toEqual([0x5a]);
    expect([...parsePattern('0xdeadbeef')]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    expect([...parsePattern('0xabc')]).toEqual([0x0a, 0xbc]);
    expect(parsePattern('hi!').toString()).toBe('hi!');
    expect(() => parsePattern('')).toThrow(UsageError);
  });
});

describe('getopt', () => {
  const spec = { S: 'value', q: 'flag', v: 'flag', b: 'value' } as const;
  it('takes options before, between and after operands', () => {
    const a = getopt('pwrite', ['-S', '0x41', '0', '-q', '4k'], spec);
    expect(a.rest).toEqual(['0', '4k']);
    expect(a.opts.get('S')).toBe('0x41');
    expect(a.opts.get('q')).toBe(true);
    const d = getopt('dma', ['0', '1m', '-p', 'xy', '-t', '2'], { p: 'value', t: 'value' });
    expect(d.rest).toEqual(['0', '1m']);
    expect(d.opts.get('t')).toBe('2');
  });
  it('groups flags and inlines values', () => {
    const a = getopt('pread', ['-qv', '-b64k', '0', '1'], spec);
    expect(a.opts.get('q')).toBe(true);
    expect(a.opts.get('v')).toBe(true);
    expect(a.opts.get('b')).toBe('64k');
  });
  it('stops at --, rejects unknown options and missing values', () => {
    expect(getopt('x', ['--', '-q'], spec).rest).toEqual(['-q']);
    expect(() => getopt('pwrite', ['-z', '0', '1'], spec)).toThrow("pwrite: invalid option -- 'z'");
    expect(() => getopt('pwrite', ['0', '1', '-S'], spec)).toThrow("pwrite: option requires an argument -- 'S'");
  });
  it('counts operands like xfs_io', () => {
    expect(() => checkArgCount('pwrite', 1, 2, 2)).toThrow('bad argument count 1 to pwrite, expected 2 arguments');
    expect(() => checkArgCount('help', 2, 0, 1)).toThrow('bad argument count 2 to help, expected between 0 and 1 arguments');
    expect(() => checkArgCount('x', 0, 1, Infinity)).toThrow('expected at least 1 arguments');
    expect(() => checkArgCount('fsync', 0, 0, 0)).not.toThrow();
  });
});

describe('output formats', () => {
  it('hexdumps like xfs_io -v', () => {
    const buf = Buffer.concat([Buffer.alloc(6, 0), Buffer.alloc(14, 0xcd)]);
    expect(hexdump(buf, 0xffa)).toBe(
      '00000ffa:  00 00 00 00 00 00 cd cd cd cd cd cd cd cd cd cd  ................\n' +
      '0000100a:  cd cd cd cd  ....\n');
    expect(hexdump(Buffer.from('AB c-9'), 0)).toBe('00000000:  41 42 20 63 2d 39  AB.c.9\n');
    expect(hexdump(Buffer.alloc(0), 0)).toBe('');
  });
  it('prints sizes with libfrog cvtstr quirks', () => {
    expect(cvtstr(100)).toBe('100.000000 bytes');
    expect(cvtstr(8192)).toBe('8 KiB');
    expect(cvtstr(1500)).toBe('1 KiB');
    expect(cvtstr(3 * 2 ** 20)).toBe('3 MiB');
    expect(cvtstr(1.5 * 2 ** 20 + 0.5)).toBe('1.500 MiB');
    expect(timingLine(4096, 1, 0.5)).toBe('4 KiB, 1 ops; 0.5000 sec (8 KiB/sec and 2.0000 ops/sec)\n');
    expect(timingLine(0, 0, 0)).toMatch(/^0\.000000 bytes, 0 ops; 0\.0000 sec \(-nan bytes\/sec and -nan ops\/sec\)\n$/);
  });
  it('matches xfstests _filter_xfs_io', () => {
    const line = timingLine(3 * 2 ** 20, 768, 0.0034).trimEnd();
    const filtered = line.replace(/[0-9/.]* [GMKiBbytes]*, [0-9]* ops; [0-9/:. sec]* \([infa0-9/.]* [EPGMKiBbytes]*\/sec and [nainf0-9/.]* ops\/sec\)/, 'XXX');
    expect(filtered).toBe('XXX');
  });

  const recs: BmapRecord[] = [
    { fileOff: fileOff(0), len: 8192, phys: regionOff(0x200000), flags: 0 },
    { fileOff: fileOff(8192), len: 4096, phys: null, flags: uapi.BMAP_F_HOLE },
    { fileOff: fileOff(12288), len: 4096, phys: regionOff(0x300000), flags: uapi.BMAP_F_UNWRITTEN | uapi.BMAP_F_SHARED },
  ];
  it('formats bmap in short form (512-byte units)', () => {
    expect(formatBmapShort('f', recs)).toBe(
      'f:\n\t0: [0..15]: 4096..4111\n\t1: [16..23]: hole\n\t2: [24..31]: 6144..6151\n');
    expect(formatBmapShort('f', [])).toBe('f: no extents\n');
  });
  it('formats bmap -v with region offsets, blocks and flag words', () => {
    const out = formatBmapVerbose('f', recs, 4096).split('\n');
    expect(out[0]).toBe('f:');
    expect(out[1].trim().split(/\s+/)).toEqual(['EXT:', 'FILE-OFFSET', 'REGION-OFFSET', 'BLOCKS', 'TOTAL', 'FLAGS']);
    expect(out[2].trim().split(/\s+/)).toEqual(['0:', '[0..8191]:', '2097152..2105343', '512..513', '16', '-']);
    expect(out[3].trim().split(/\s+/)).toEqual(['1:', '[8192..12287]:', 'hole', '8', 'hole']);
    expect(out[4].trim().split(/\s+/)).toEqual(['2:', '[12288..16383]:', '3145728..3149823', '768..768', '8', 'unwritten,shared']);
    // columns line up: every FLAGS cell starts where the header's does
    const col = out[1].indexOf('FLAGS');
    for (const l of out.slice(2, 5)) expect(l[col - 1]).toBe(' ');
    expect(out[2].slice(col)).toBe('-');
    expect(out[3].slice(col)).toBe('hole');
    expect(bmapFlagWords(uapi.BMAP_F_SEALED)).toBe('sealed');
  });
  it('formats stat with xflags and the state xattr', () => {
    expect(formatXflags(uapi.FS_XFLAG_DAX | uapi.PMEMFS_XFLAG_SEALED)).toBe('0x28000 [dax, sealed]');
    expect(formatXflags(0)).toBe('0x0 []');
    expect(formatXflags(0x40000000)).toBe('0x40000000 [0x40000000]');
    expect(parseStateLine('sealed=lease pins=2 busy_pages=3 extents=1\n')).toEqual([
      ['sealed', 'lease'], ['pins', '2'], ['busy_pages', '3'], ['extents', '1']]);
    const out = formatStat({
      path: 'f', readOnly: false, ino: 12n, type: 'regular file', size: 4096, blocks: 8,
      fsx: { xflags: 0x28000, extsize: 0, nextents: 1, projid: 0, cowextsize: 0 },
      state: 'sealed=persistent pins=0 busy_pages=0 extents=1',
    });
    expect(out).toContain('fd.path = "f"\n');
    expect(out).toContain('fd.flags = non-sync,non-direct,read-write\n');
    expect(out).toContain('stat.size = 4096\n');
    expect(out).toContain('fsxattr.xflags = 0x28000 [dax, sealed] sealed=persistent\n');
    expect(out).toContain('fsxattr.nextents = 1\n');
    expect(out).toMatch(/^sealed = persistent$/m);
    expect(out).toMatch(/^pins = 0$/m);
    expect(out).toMatch(/^busy_pages = 0$/m);
    expect(out).toMatch(/^extents = 1$/m);
    // Kernel 6.x drops the sealed xflag: the seal still shows, from the state line.
    const dropped = formatStat({ path: 'f', readOnly: true, ino: 1, type: 'regular file', size: 0, blocks: 0,
      fsx: { xflags: 0x8000, extsize: 0, nextents: 0, projid: 0, cowextsize: 0 }, state: 'sealed=lease pins=0' });
    expect(dropped).toContain('fsxattr.xflags = 0x8000 [dax] sealed=lease\n');
    expect(formatLsattr('/m/f', { xflags: 0x8000, extsize: 0, nextents: 0, projid: 0, cowextsize: 0 }, 'sealed=persistent')).toBe('0x8000 [dax] sealed=persistent /m/f\n');
    expect(formatLsattr('/m/f', null, null)).toBe('(no fsxattr) sealed=unknown /m/f\n');
  });
  it('reports errors as perror does', () => {
    expect(strerror('ETXTBSY')).toBe('Text file busy');
    expect(strerror('EOPNOTSUPP')).toBe('Operation not supported');
    expect(strerror('ENOTTY')).toBe('Inappropriate ioctl for device');
    expect(strerror('EWOULDBLOCK')).toBe('Resource temporarily unavailable');
    expect(strerror('EBOGUS', 999)).toBe('Unknown error 999');
    expect(errorLine('pwrite', errno('ETXTBSY', 'write'))).toBe('pwrite: Text file busy');
    expect(errorLine('seal', errno('EPERM'))).toBe('seal: Operation not permitted');
    expect(errorLine('x', new UsageError('bad argument count 1 to x, expected 2 arguments'))).toBe('bad argument count 1 to x, expected 2 arguments');
    expect(errorLine('reflink', new LabelledError('/src', errno('ENOENT', 'stat')))).toBe('/src: No such file or directory');
    expect(errorLine('map', new Error('weird'))).toBe('map: weird');
  });
});

describe('payload codecs', () => {
  it('decodes GETBMAP replies, holes included', () => {
    const buf = Buffer.alloc(uapi.BMAP.size);
    buf.writeUInt32LE(2, uapi.BMAP.count);
    buf.writeUInt32LE(uapi.BMAP_MORE, uapi.BMAP.flags);
    buf.writeBigUInt64LE(100000n, uapi.BMAP.fsize);
    buf.writeBigUInt64LE(8192n, uapi.BMAP.next);
    const r0 = uapi.BMAP.recs, r1 = r0 + uapi.BMAP_REC.size;
    buf.writeBigUInt64LE(4096n, r0 + uapi.BMAP_REC.len);
    buf.writeBigUInt64LE(0x10000n, r0 + uapi.BMAP_REC.phys);
    buf.writeUInt32LE(uapi.BMAP_F_SEALED, r0 + uapi.BMAP_REC.flags);
    buf.writeBigUInt64LE(4096n, r1 + uapi.BMAP_REC.fileOff);
    buf.writeBigUInt64LE(4096n, r1 + uapi.BMAP_REC.len);
    buf.writeBigUInt64LE(uapi.BMAP_PHYS_NONE, r1 + uapi.BMAP_REC.phys);
    buf.writeUInt32LE(uapi.BMAP_F_HOLE, r1 + uapi.BMAP_REC.flags);
    expect(decodeBmapReply(buf)).toEqual({
      more: true, fsize: 100000, next: 8192,
      records: [
        { fileOff: 0, len: 4096, phys: 0x10000, flags: uapi.BMAP_F_SEALED },
        { fileOff: 4096, len: 4096, phys: null, flags: uapi.BMAP_F_HOLE },
      ],
    });
  });
  it('decodes PIN replies and REGION', () => {
    const buf = Buffer.alloc(uapi.PIN.size);
    buf.writeBigUInt64LE(8192n, uapi.PIN.done);
    buf.writeUInt32LE(1, uapi.PIN.count);
    buf.writeBigUInt64LE(7n, uapi.PIN.recs + uapi.PIN_REC.id);
    buf.writeBigUInt64LE(0x40000000n, uapi.PIN.recs + uapi.PIN_REC.phys);
    buf.writeBigUInt64LE(8192n, uapi.PIN.recs + uapi.PIN_REC.len);
    expect(decodePinReply(buf)).toEqual({ done: 8192, records: [{ id: 7, fileOff: 0, phys: 0x40000000, len: 8192 }] });
    const reg = Buffer.alloc(uapi.REGION.size);
    reg.writeBigUInt64LE(1n << 30n, uapi.REGION.regionSize);
    reg.writeUInt32LE(4096, uapi.REGION.blockSize);
    reg.writeUInt32LE(uapi.REGION_F_DAX, uapi.REGION.flags);
    reg.write('/srv/pmem.img', uapi.REGION.path);
    expect(decodeRegion(reg)).toEqual({ regionSize: 2 ** 30, dataStart: 0, blockSize: 4096, dax: true, path: '/srv/pmem.img' });
  });
  it('encodes REFLINK', () => {
    const b = encodeReflink({ srcFd: 12, srcOff: 1, dstOff: 2, len: 3 });
    expect(b.length).toBe(uapi.REFLINK.size);
    expect([b.readBigUInt64LE(0), b.readBigUInt64LE(8), b.readBigUInt64LE(16), b.readBigUInt64LE(24)]).toEqual([12n, 1n, 2n, 3n]);
  });
});

describe('dma helpers', () => {
  it('clips pin records to the range and orders them', () => {
    const recs: PinRecord[] = [
      { id: 2, fileOff: fileOff(8192), phys: regionOff(0x9000), len: 8192 },
      { id: 1, fileOff: fileOff(0), phys: regionOff(0x1000), len: 8192 },
    ];
    expect(dmaSegments(recs, 100, 10000)).toEqual([
      { phys: 0x1000 + 100, len: 8092, rangeOff: 0 },
      { phys: 0x9000, len: 1908, rangeOff: 8092 },
    ]);
  });
  it('repeats patterns from a phase and slices time', () => {
    expect(patternBytes(Buffer.from('abc'), 4, 5).toString()).toBe('bcabc');
    expect(patternBytes(Buffer.from([0xab]), 7, 3)).toEqual(Buffer.from([0xab, 0xab, 0xab]));
    expect(sliceCount(1 << 20, 0)).toBe(1);
    expect(sliceCount(1 << 20, 2)).toBe(40);
    expect(sliceCount(4096, 10)).toBe(1);
  });
});

/** A fake pmemfs: a block map, pins, a region file; records every ioctl. */
class FakeShim implements IoShim {
  calls: Array<{ cmd: number; mode?: number; off?: number; len?: number }> = [];
  nextPin = 1;
  unpinned: number[] = [];
  fail: Record<number, string> = {};
  constructor(readonly regionPath: string, readonly fsize: number, readonly extentLen: number) {}

  ioctl(_fd: number, cmd: number, buf: Buffer | null): number {
    this.calls.push({ cmd });
    if (this.fail[cmd]) throw errno(this.fail[cmd]);
    if (cmd === uapi.PMEMFS_IOC_REGION) {
      buf!.writeUInt32LE(4096, uapi.REGION.blockSize);
      buf!.write(this.regionPath, uapi.REGION.path);
    } else if (cmd === uapi.PMEMFS_IOC_PIN) {
      this.pin(buf!);
    } else if (cmd === uapi.PMEMFS_IOC_UNPIN) {
      this.unpinned.push(Number(buf!.readBigUInt64LE(0)));
    } else if (cmd === uapi.PMEMFS_IOC_GETBMAP) {
      this.getbmap(buf!);
    }
    return 0;
  }

  /** extent i of the file lives at region offset (i+1) * 1 MiB, reversed order to catch sorting bugs */
  physOf(fileOffset: number): number {
    const i = Math.floor(fileOffset / this.extentLen);
    return (50 - i) * 2 ** 20 + (fileOffset % this.extentLen);
  }

  private pin(buf: Buffer): void {
    let off = Number(buf.readBigUInt64LE(uapi.PIN.off));
    const end = off + Number(buf.readBigUInt64LE(uapi.PIN.len));
    if (end > this.fsize) throw errno('ENXIO');
    const start = off;
    let n = 0;
    while (off < end && n < uapi.PIN_MAX_RECS) {
      const e = Math.min(end, (Math.floor(off / this.extentLen) + 1) * this.extentLen);
      const o = uapi.PIN.recs + n * uapi.PIN_REC.size;
      buf.writeBigUInt64LE(BigInt(this.nextPin++), o + uapi.PIN_REC.id);
      buf.writeBigUInt64LE(BigInt(off), o + uapi.PIN_REC.fileOff);
      buf.writeBigUInt64LE(BigInt(this.physOf(off)), o + uapi.PIN_REC.phys);
      buf.writeBigUInt64LE(BigInt(e - off), o + uapi.PIN_REC.len);
      off = e;
      n++;
    }
    buf.writeBigUInt64LE(BigInt(off - start), uapi.PIN.done);
    buf.writeUInt32LE(n, uapi.PIN.count);
  }

  private getbmap(buf: Buffer): void {
    let at = Number(buf.readBigUInt64LE(uapi.BMAP.start));
    let n = 0;
    for (; at < this.fsize && n < uapi.BMAP_MAX_RECS; n++, at += this.extentLen) {
      const o = uapi.BMAP.recs + n * uapi.BMAP_REC.size;
      buf.writeBigUInt64LE(BigInt(at), o + uapi.BMAP_REC.fileOff);
      buf.writeBigUInt64LE(BigInt(this.extentLen), o + uapi.BMAP_REC.len);
      buf.writeBigUInt64LE(BigInt(this.physOf(at)), o + uapi.BMAP_REC.phys);
    }
    buf.writeUInt32LE(n, uapi.BMAP.count);
    buf.writeUInt32LE(at < this.fsize ? uapi.BMAP_MORE : 0, uapi.BMAP.flags);
    buf.writeBigUInt64LE(BigInt(this.fsize), uapi.BMAP.fsize);
    buf.writeBigUInt64LE(BigInt(at), uapi.BMAP.next);
  }

  fallocate(_fd: number, mode: number, off: number, len: number): void {
    this.calls.push({ cmd: -1, mode, off, len });
    if (this.fail[-1]) throw errno(this.fail[-1], 'fallocate');
  }
}

describe('commands over a fake binding', () => {
  let dir: string, file: string, region: string, fd: number, shim: FakeShim, ctx: IoContext;
  let out: string, err: string;
  const run = async (...lines: string[]) => {
    for (const l of lines) {
      const r = await runCommand(ctx, l);
      if (!r.ok) return false;
    }
    return true;
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmemfs-io-'));
    file = path.join(dir, 'f');
    region = path.join(dir, 'region');
    fs.writeFileSync(region, '');
    fs.truncateSync(region, 64 << 20);
    fd = fs.openSync(file, 'w+');
    shim = new FakeShim(region, 1 << 20, 64 << 10);
    out = err = '';
    ctx = defaultContext({ fd, path: file, readOnly: false, sys: shim });
    ctx.out = (s) => { out += s; };
    ctx.err = (s) => { err += s; };
    ctx.sleep = async () => {};
    ctx.readXattr = () => 'sealed=none pins=0 busy_pages=0 extents=3';
  });
  afterEach(() => {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pwrite / pread / truncate like xfs_io', async () => {
    expect(await run('pwrite -S 0x41 0 100', 'pwrite 4096 8k', 'pread -v 4090 20', 'truncate 16k')).toBe(true);
    expect(out).toMatch(/^wrote 100\/100 bytes at offset 0\n100\.000000 bytes, 1 ops; /);
    expect(out).toContain('wrote 8192/8192 bytes at offset 4096\n8 KiB, 2 ops; ');
    expect(out).toContain('00000ffa:  00 00 00 00 00 00 cd cd cd cd cd cd cd cd cd cd  ................\n0000100a:  cd cd cd cd  ....\nread 20/20 bytes at offset 4090\n');
    expect(fs.statSync(file).size).toBe(16384);
    expect(fs.readFileSync(file).subarray(0, 100)).toEqual(Buffer.alloc(100, 0x41));
    out = '';
    expect(await run('pread -q 16000 1m')).toBe(true);
    expect(out).toBe('');
    expect(await run('pread 16000 1m')).toBe(true);
    expect(out).toMatch(/^read 384\/1048576 bytes at offset 16000\n/);
  });

  it('stops with xfs_io wording on bad input', async () => {
    expect(await run('pwrite 0')).toBe(false);
    expect(err).toBe('bad argument count 1 to pwrite, expected 2 arguments\n');
    err = '';
    expect(await run('nosuch 1')).toBe(false);
    expect(err).toBe('command "nosuch" not found\n');
    err = '';
    expect(await run('truncate -5')).toBe(false);
    expect(err).toBe("truncate: invalid option -- '5'\n");
    err = '';
    expect(await run('pwrite 0 0x1z')).toBe(false);
    expect(err).toBe('non-numeric length argument -- 0x1z\n');
  });

  it('reports system errors as LABEL: strerror', async () => {
    const ro = fs.openSync(file, 'r');
    ctx.fd = ro;
    expect(await run('pwrite 0 1')).toBe(false);
    expect(err).toBe('pwrite: Bad file descriptor\n');
    fs.closeSync(ro);
    ctx.fd = fd;
    err = '';
    shim.fail[uapi.PMEMFS_IOC_SEAL] = 'EPERM';
    expect(await run('seal')).toBe(false);
    expect(err).toBe('seal: Operation not permitted\n');
    err = '';
    shim.fail[-1] = 'ETXTBSY';
    expect(await run('fpunch 0 4k')).toBe(false);
    expect(err).toBe('fallocate: Text file busy\n');
    err = '';
    shim.fail[uapi.PMEMFS_IOC_FCOLLAPSE] = 'ETXTBSY';
    expect(await run('fcollapse 0 4k')).toBe(false);
    expect(err).toBe('fallocate: Text file busy\n');
    err = '';
    expect(await run('reflink /nonexistent/src')).toBe(false);
    expect(err).toBe('/nonexistent/src: No such file or directory\n');
  });

  it('passes fallocate modes and ioctl payloads', async () => {
    expect(await run('falloc 0 4k', 'falloc -k 4k 4k', 'fpunch 0 4k', 'fzero 0 4k', 'fzero -k 0 4k')).toBe(true);
    expect(shim.calls.map((c) => c.mode)).toEqual([
      0, uapi.FALLOC_FL_KEEP_SIZE, uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE,
      uapi.FALLOC_FL_ZERO_RANGE, uapi.FALLOC_FL_ZERO_RANGE | uapi.FALLOC_FL_KEEP_SIZE]);
    expect(shim.calls[1]).toMatchObject({ off: 4096, len: 4096 });
    shim.calls = [];
    expect(await run('seal', 'unseal', 'lease', 'unlease', 'break', 'finsert 0 64k', 'unpin 9')).toBe(true);
    expect(shim.calls.map((c) => c.cmd)).toEqual([
      uapi.PMEMFS_IOC_SEAL, uapi.PMEMFS_IOC_UNSEAL, uapi.PMEMFS_IOC_LEASE, uapi.PMEMFS_IOC_UNLEASE,
      uapi.PMEMFS_IOC_BREAK, uapi.PMEMFS_IOC_FINSERT, uapi.PMEMFS_IOC_UNPIN]);
    expect(shim.unpinned).toEqual([9]);
    expect(await run(`reflink ${region} 0 4k 8k`)).toBe(true);
    expect(out).toContain('linked 8192/8192 bytes at offset 4096\n');
  });

  it('pins piecewise, 16 extents per call', async () => {
    expect(await run('pin 0 1m')).toBe(true);
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(16);
    expect(lines[0]).toBe(`pin 1 phys=0x${(50 * 2 ** 20).toString(16)} len=65536`);
    out = '';
    expect(await run('pin 1000 2m')).toBe(false);
    expect(err).toBe('pin: No such device or address\n');
    shim.calls = [];
    // 40 extents: three PIN calls
    shim = new FakeShim(region, 40 * 4096, 4096);
    ctx.sys = shim;
    expect(await run('pin 0 160k')).toBe(true);
    expect(shim.calls.filter((c) => c.cmd === uapi.PMEMFS_IOC_PIN)).toHaveLength(3);
    expect(out.trim().split('\n')).toHaveLength(40);
  });

  it('loops GETBMAP and prints both bmap forms', async () => {
    shim = new FakeShim(region, 40 * 4096, 4096);
    ctx.sys = shim;
    expect(await run('bmap')).toBe(true);
    expect(shim.calls.filter((c) => c.cmd === uapi.PMEMFS_IOC_GETBMAP)).toHaveLength(2);
    const short = out.trim().split('\n');
    expect(short).toHaveLength(41);
    expect(short[0]).toBe(`${file}:`);
    expect(short[1]).toBe(`\t0: [0..7]: ${50 * 2048}..${50 * 2048 + 7}`);
    out = '';
    expect(await run('bmap -v')).toBe(true);
    expect(out.split('\n')[1]).toMatch(/^ EXT: FILE-OFFSET +REGION-OFFSET +BLOCKS +TOTAL FLAGS$/);
  });

  it('dma writes the pattern into the region at the pinned addresses, then unpins', async () => {
    expect(await run('dma 100 200k -p abc -t 0.5')).toBe(true);
    expect(out).toBe('dma 204800 bytes at 100 via 4 extents\n');
    expect(shim.unpinned.sort((x, y) => x - y)).toEqual([1, 2, 3, 4]);
    const reg = fs.readFileSync(region);
    const expectAt = (fileOffset: number) => 'abc'.charCodeAt((fileOffset - 100) % 3);
    for (const o of [100, 101, 65535, 65536, 131072, 204899]) {
      expect(reg[shim.physOf(o)]).toBe(expectAt(o));
    }
    expect(reg[shim.physOf(99)]).toBe(0);
    expect(reg[shim.physOf(204900)]).toBe(0);
    shim.unpinned = [];
    shim.fail[uapi.PMEMFS_IOC_REGION] = 'ENOTTY';
    expect(await run('dma 0 4k')).toBe(false);
    expect(err).toBe('dma: Inappropriate ioctl for device\n');
    expect(shim.unpinned).toEqual([5]);
  });

  it('stat prints xfs_io lines and the pmemfs state', async () => {
    expect(await run('stat')).toBe(true);
    expect(out).toContain(`fd.path = "${file}"\n`);
    expect(out).toContain('stat.type = regular file\n');
    expect(out).toMatch(/^sealed = none$/m);
    expect(out).toMatch(/^extents = 3$/m);
  });

  it('help lists every command on one line; quit stops', async () => {
    expect(await run('help')).toBe(true);
    for (const name of ['pwrite', 'pread', 'falloc', 'fpunch', 'fzero', 'fcollapse', 'finsert', 'reflink', 'truncate',
      'fsync', 'fdatasync', 'sleep', 'stat', 'bmap', 'seal', 'unseal', 'lease', 'unlease', 'break', 'pin', 'unpin',
      'dma', 'map', 'help', 'quit']) {
      expect(out).toMatch(new RegExp(`^${name}( .*)? -- .+$`, 'm'));
      expect(findCommand(name)).toBeDefined();
    }
    expect(helpText()).toBe(out);
    expect((await runCommand(ctx, 'quit')).quit).toBe(true);
    const noFile = defaultContext({ fd: -1, path: '', readOnly: false, sys: shim });
    noFile.err = (s) => { err += s; };
    expect((await runCommand(noFile, 'fsync')).ok).toBe(false);
    expect(err).toBe('fsync: no file is open\n');
  });
});

// mapdirect.ts imports the native binding; without a built one this part is skipped.
const md = await import('../../src/mapdirect.js').catch(() => null);

describe.skipIf(!md)('mapDirect over a fake binding', () => {
  it('maps extents from the region file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'md-'));
    const region = path.join(dir, 'region'), file = path.join(dir, 'f');
    fs.writeFileSync(region, ''); fs.truncateSync(region, 1 << 20);
    fs.writeFileSync(file, Buffer.alloc(3 * 4096 + 100));
    const calls: number[] = [];
    const shim: IoShim = {
      fallocate() {},
      ioctl(_fd, cmd, buf) {
        calls.push(cmd);
        if (cmd === uapi.PMEMFS_IOC_REGION) { buf!.writeUInt32LE(4096, uapi.REGION.blockSize); buf!.write(region, uapi.REGION.path); }
        if (cmd === uapi.PMEMFS_IOC_GETBMAP) {
          // blocks 0,1 contiguous at 0x10000, block 2-3 at 0x40000
          const recs = [[0, 8192, 0x10000], [8192, 8192, 0x40000]];
          recs.forEach(([f, l, p], i) => {
            const o = uapi.BMAP.recs + i * uapi.BMAP_REC.size;
            buf!.writeBigUInt64LE(BigInt(f), o); buf!.writeBigUInt64LE(BigInt(l), o + 8); buf!.writeBigUInt64LE(BigInt(p), o + 16);
          });
          buf!.writeUInt32LE(2, uapi.BMAP.count);
          buf!.writeBigUInt64LE(BigInt(3 * 4096 + 100), uapi.BMAP.fsize);
          buf!.writeBigUInt64LE(16384n, uapi.BMAP.next);
        }
        return 0;
      },
    };
    const m = await md!.mapDirect(file, 100, 9000, { shim });
    expect(m.extents).toEqual([{ fileOff: 100, len: 8092, phys: 0x10000 + 100 }, { fileOff: 8192, len: 908, phys: 0x40000 }]);
    expect(m.buffers.map((b) => b.length)).toEqual([8092, 908]);
    m.buffers[0].fill(0x11); m.buffers[1].fill(0x22);
    const r = fs.readFileSync(region);
    expect(r[0x10000 + 99]).toBe(0); expect(r[0x10000 + 100]).toBe(0x11); expect(r[0x10000 + 8191]).toBe(0x11); expect(r[0x10000 + 8192]).toBe(0);
    expect(r[0x40000]).toBe(0x22); expect(r[0x40000 + 907]).toBe(0x22); expect(r[0x40000 + 908]).toBe(0);
    m.release(); m.release();
    expect(calls.filter((c) => c === uapi.PMEMFS_IOC_UNLEASE)).toHaveLength(1);
    await expect(md!.mapDirect(file, 12000, 1000, { shim })).rejects.toMatchObject({ code: 'ENXIO' });
    expect(calls.filter((c) => c === uapi.PMEMFS_IOC_UNLEASE)).toHaveLength(2);
  });
});

describe('lease break notice', () => {
  it('survives SIGIO after a lease', async () => {
    let err = '';
    const ctx = defaultContext({ fd: -1, path: 'f', readOnly: false, sys: {} as IoShim });
    ctx.err = (s) => { err += s; };
    installBreakNotice(ctx);
    process.kill(process.pid, 'SIGIO');
    await new Promise((r) => setTimeout(r, 100));
    expect(err).toContain('lease: break received for f');
  });
});
