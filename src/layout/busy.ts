/**
 * @file The pin registry: who holds references on which region blocks (a
 * device's DMA, get_user_pages()). Keyed by region blocks, not file offsets,
 * because two reflinked files can share a pinned block. Lookups of "is any
 * page in this range busy?" are O(log n + k) through an interval tree
 * (@flatten-js/interval-tree, closed intervals of block numbers).
 *
 * Pins are transient: nothing here is persisted, and none survive unmount.
 * A holder is a process (released when it exits) or the administrator
 * (control-file pins, released by `unpin` or unmount).
 *
 * Limits: at most MAX_PINS_PER_HOLDER pins per holder, MAX_PINS_PER_USER
 * per non-root user and MAX_PINS in all; past any, pinning fails with
 * EAGAIN, so a runaway process cannot exhaust the daemon's memory (about 200
 * bytes a pin) and one user cannot take the pool from the others.
 */
import IntervalTree from '@flatten-js/interval-tree';
import { FsError } from '../errors.js';

export const MAX_PINS_PER_HOLDER = 131072;
export const MAX_PINS = 1 << 20;
/** Per non-root user: a sixteenth of the pool, so at least sixteen users can pin at once. */
export const MAX_PINS_PER_USER = MAX_PINS / 16;

/** Who holds a pin: a process (and the user it ran as, for the per-user limit) or the administrator. */
export type PinHolder = { kind: 'pid'; pid: number; uid: number } | { kind: 'admin' };

export interface Pin {
  id: number;
  ino: number;
  fileOff: number;     // bytes
  len: number;         // bytes
  phys: number;        // region byte offset of the first pinned byte
  startBlock: number;  // first region block
  blocks: number;      // region blocks covered
  holder: PinHolder;
  created: number;     // Date.now() at pin time
}

export const holderKey = (h: PinHolder): string => (h.kind === 'admin' ? 'admin' : `pid:${h.pid}`);

export class PinRegistry {
  private readonly tree = new IntervalTree<Pin>();
  private readonly byId = new Map<number, Pin>();
  private readonly byIno = new Map<number, Set<number>>();
  private readonly perHolder = new Map<string, number>();
  private readonly perUser = new Map<number, number>();
  private nextId = 1;
  private waiters: Array<() => void> = [];

  get size(): number { return this.byId.size; }

  /**
   * Record a pin on region blocks [startBlock, startBlock+blocks).
   * @throws FsError EAGAIN past the per-holder, per-user or total limit
   */
  add(p: Omit<Pin, 'id' | 'created'>): Pin {
    const key = holderKey(p.holder);
    const held = this.perHolder.get(key) ?? 0;
    const uid = p.holder.kind === 'pid' && p.holder.uid ? p.holder.uid : null;   // root (uid 0) is exempt
    const byUser = uid === null ? 0 : this.perUser.get(uid) ?? 0;
    if (held >= MAX_PINS_PER_HOLDER || this.byId.size >= MAX_PINS || byUser >= MAX_PINS_PER_USER) {
      throw new FsError('EAGAIN', 'pin', undefined, `pin limit reached (${MAX_PINS_PER_HOLDER} per holder, ${MAX_PINS_PER_USER} per user, ${MAX_PINS} in all)`);
    }
    if (uid !== null) this.perUser.set(uid, byUser + 1);
    const pin: Pin = { ...p, id: this.nextId++, created: Date.now() };
    this.tree.insert([pin.startBlock, pin.startBlock + pin.blocks - 1], pin);
    this.byId.set(pin.id, pin);
    let set = this.byIno.get(pin.ino);
    if (!set) this.byIno.set(pin.ino, (set = new Set()));
    set.add(pin.id);
    this.perHolder.set(key, held + 1);
    return pin;
  }

  get(id: number): Pin | undefined { return this.byId.get(id); }

  /** Drop a pin; wakes every waiter (they re-check). Returns the pin, or undefined if unknown. */
  remove(id: number): Pin | undefined {
    const pin = this.byId.get(id);
    if (!pin) return undefined;
    this.tree.remove([pin.startBlock, pin.startBlock + pin.blocks - 1], pin);
    this.byId.delete(id);
    const set = this.byIno.get(pin.ino);
    set?.delete(id);
    if (set && set.size === 0) this.byIno.delete(pin.ino);
    const key = holderKey(pin.holder);
    const n = (this.perHolder.get(key) ?? 1) - 1;
    if (n > 0) this.perHolder.set(key, n); else this.perHolder.delete(key);
    if (pin.holder.kind === 'pid' && pin.holder.uid) {
      const u = (this.perUser.get(pin.holder.uid) ?? 1) - 1;
      if (u > 0) this.perUser.set(pin.holder.uid, u); else this.perUser.delete(pin.holder.uid);
    }
    this.wake();
    return pin;
  }

  /** Pins overlapping region blocks [start, start+count). */
  busy(start: number, count: number): Pin[] {
    if (count <= 0 || this.byId.size === 0) return [];
    return this.tree.search([start, start + count - 1]);
  }

  /** True if any block of [start, start+count) is pinned. */
  isBusy(start: number, count: number): boolean {
    return count > 0 && this.byId.size > 0 && this.tree.intersect_any([start, start + count - 1]);
  }

  pinsOfIno(ino: number): Pin[] {
    return [...(this.byIno.get(ino) ?? [])].map((id) => this.byId.get(id)!);
  }

  /** Every pin, in id order. */
  all(): Pin[] { return [...this.byId.values()]; }

  /** Process ids that hold pins. */
  pidHolders(): number[] {
    const out = new Set<number>();
    for (const p of this.byId.values()) if (p.holder.kind === 'pid') out.add(p.holder.pid);
    return [...out];
  }

  /** Drop every pin of one holder process (it exited); returns them. */
  removeHolder(pid: number): Pin[] {
    const key = `pid:${pid}`;
    const gone = [...this.byId.values()].filter((p) => holderKey(p.holder) === key);
    for (const p of gone) this.remove(p.id);
    return gone;
  }

  /** Drop everything (unmount). */
  clear(): void {
    this.tree.clear(); this.byId.clear(); this.byIno.clear(); this.perHolder.clear(); this.perUser.clear();
    this.wake();
  }

  /**
   * Resolve when any pin is released or after timeoutMs, whichever is first
   * (true if woken by a release). Callers re-check after every wake-up, as
   * dax_layout_busy_page's callers do, since a new pin may have appeared.
   */
  waitForRelease(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (woken: boolean) => { clearTimeout(t); this.waiters = this.waiters.filter((w) => w !== wake); resolve(woken); };
      const wake = () => done(true);
      const t = setTimeout(() => done(false), Math.max(0, timeoutMs));
      this.waiters.push(wake);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
