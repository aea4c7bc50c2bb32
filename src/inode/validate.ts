/**
 * @file Cross-inode checks of a loaded region, shared by mount (which
 * refuses a region that fails them) and fsck (which reports and repairs):
 * every referenced block inside the data area, claimed once, and marked in
 * use in the free-space bitmap; every directory entry naming a live inode;
 * the directory tree rooted, without cycles or a directory under two names.
 * Iterative (no recursion) and linear in the metadata, whatever the shape.
 */
import type { Allocator } from '../alloc/allocator.js';
import { ROOT_INO } from '../format/layout.js';
import type { Inode } from './inode.js';
import { InodeStore } from './store.js';

export interface BlockClaim { start: number; len: number; ino: number }

export interface Validation {
  /** Blocks claimed by two inodes (or twice by one): [claim, earlier claim]. */
  overlaps: Array<[BlockClaim, BlockClaim]>;
  /** Claims of blocks the bitmap calls free. */
  markedFree: BlockClaim[];
  /** Blocks the bitmap marks in use that nothing claims. */
  leaked: number;
  /** Entries naming inodes that are not loaded. */
  danglingEntries: Array<{ dir: number; name: string; ino: number }>;
  /** Directories reachable under more than one name (or a cycle). */
  multiLinkedDirs: Array<{ dir: number; name: string; ino: number }>;
  /** Inodes with links that cannot be reached from the root. */
  unreachable: number[];
  /** ino → number of entries naming it, and directory → subdirectory count. */
  links: Map<number, number>;
  subdirs: Map<number, number>;
}

/** Every block claim of every inode, sorted by start. */
export function allClaims(store: InodeStore): BlockClaim[] {
  const claims: BlockClaim[] = [];
  for (const inode of store.inodes.values()) for (const r of InodeStore.usedRuns(inode)) claims.push({ start: r.start, len: r.len, ino: inode.ino });
  return claims.sort((a, b) => a.start - b.start || a.len - b.len);
}

/** Run every cross-inode check (see the file comment). */
export function validate(store: InodeStore, alloc: Allocator): Validation {
  const v: Validation = { overlaps: [], markedFree: [], leaked: 0, danglingEntries: [], multiLinkedDirs: [], unreachable: [], links: new Map(), subdirs: new Map() };
  const claims = allClaims(store);
  // One pass in start order: `reach` is the claim reaching furthest so far, so a claim
  // starting before its end overlaps it; distinct claimed blocks are what lies past that end.
  let reach: BlockClaim | null = null;
  let claimed = 0;
  for (const c of claims) {
    const reachEnd = reach ? reach.start + reach.len : -1;
    if (c.start < reachEnd) v.overlaps.push([c, reach!]);
    if (c.start + c.len > reachEnd) { claimed += c.start + c.len - Math.max(c.start, reachEnd); reach = c; }
    if (!alloc.isAllocated(c.start, c.len)) v.markedFree.push(c);
  }
  const { dataStart, dataEnd } = alloc.geo;
  const inUse = dataEnd - dataStart - alloc.freeBlocks;
  v.leaked = Math.max(0, inUse - claimed);
  walkTree(store, v);
  return v;
}

function walkTree(store: InodeStore, v: Validation): void {
  const root = store.inodes.get(ROOT_INO);
  if (!root) return;
  const seen = new Set<number>([ROOT_INO]);
  const stack: Inode[] = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    for (const [name, ino] of dir.dirents!) {
      const child = store.inodes.get(ino);
      if (!child) { v.danglingEntries.push({ dir: dir.ino, name, ino }); continue; }
      v.links.set(ino, (v.links.get(ino) ?? 0) + 1);
      if (child.isDir) {
        v.subdirs.set(dir.ino, (v.subdirs.get(dir.ino) ?? 0) + 1);
        if (seen.has(ino)) { v.multiLinkedDirs.push({ dir: dir.ino, name, ino }); continue; }
        stack.push(child);
      }
      seen.add(ino);
    }
  }
  for (const inode of store.inodes.values()) if (!seen.has(inode.ino) && inode.nlink > 0) v.unreachable.push(inode.ino);
}

/** The first problem that makes a region unsafe to mount, or null. */
export function mountBlocker(v: Validation): string | null {
  if (v.overlaps.length) { const [a, b] = v.overlaps[0]; return `block ${a.start} is claimed by inode ${a.ino} and inode ${b.ino}`; }
  if (v.markedFree.length) { const c = v.markedFree[0]; return `inode ${c.ino} uses blocks [${c.start}, +${c.len}) that the free-space bitmap calls free`; }
  if (v.danglingEntries.length) { const d = v.danglingEntries[0]; return `directory ${d.dir}: entry '${d.name}' names missing inode ${d.ino}`; }
  if (v.multiLinkedDirs.length) { const d = v.multiLinkedDirs[0]; return `directory ${d.ino} is reachable twice (entry '${d.name}' in directory ${d.dir}): the tree has a cycle or a hard-linked directory`; }
  return null;
}
