/**
 * @file Branded unit types. A byte offset in a file, a byte offset in the
 * region and a block number are all JS numbers at run time; the brands keep
 * them apart at compile time (XFS keeps xfs_fileoff_t, xfs_fsblock_t and
 * xfs_extlen_t apart for the same reason). Numbers stay below 2^53, which
 * bounds a region at 8 PiB: far beyond what an emulated pmem file reaches.
 */

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Byte offset within a file. */
export type FileOff = Brand<number, 'FileOff'>;
/** Byte offset within the region file. */
export type RegionOff = Brand<number, 'RegionOff'>;
/** Block index within a file (file offset / block size). */
export type FileBlock = Brand<number, 'FileBlock'>;
/** Block number within the region (region offset / block size). */
export type RegionBlock = Brand<number, 'RegionBlock'>;
/** A length in blocks. */
export type BlockCount = Brand<number, 'BlockCount'>;
/** Inode number; 1 is the root directory. */
export type Ino = Brand<number, 'Ino'>;

export const fileOff = (n: number) => n as FileOff;
export const regionOff = (n: number) => n as RegionOff;
export const fileBlock = (n: number) => n as FileBlock;
export const regionBlock = (n: number) => n as RegionBlock;
export const blockCount = (n: number) => n as BlockCount;
export const ino = (n: number) => n as Ino;

/** A timestamp with nanosecond precision, as stored on media. */
export interface Timespec { sec: number; nsec: number }

export function nowTimespec(): Timespec {
  const ns = process.hrtime.bigint() - hrBase + wallBaseNs;
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}
// hrtime is monotonic; anchor it to the wall clock once for ns-resolution stamps.
const hrBase = process.hrtime.bigint();
const wallBaseNs = BigInt(Date.now()) * 1_000_000n;
