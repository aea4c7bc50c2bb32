/**
 * @file Notices when a process that holds leases or pins exits. One timer
 * serves every holder (no per-file polling): each tick probes the distinct
 * holder pids with kill(pid, 0) and reports those that are gone. The tick is
 * 250 ms, so a dead holder is released within a second.
 *
 * Caveat: a pid reused within one tick would be taken for the old holder;
 * pidfd would close that gap, and can replace probe() without changing callers.
 */
export const HOLDER_TICK_MS = 250;

export type HolderSource = () => Iterable<number>;

export class HolderWatch {
  private timer: NodeJS.Timeout | null = null;
  private readonly sources: HolderSource[] = [];

  /** onDeath(pid) is called once per tick for every probed pid that no longer exists. */
  constructor(private readonly onDeath: (pid: number) => void, private readonly probe: (pid: number) => boolean = pidAlive) {}

  addSource(s: HolderSource): void { this.sources.push(s); }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), HOLDER_TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One pass over all holders (exposed for tests). */
  tick(): void {
    const pids = new Set<number>();
    for (const s of this.sources) for (const p of s()) pids.add(p);
    for (const pid of pids) if (!this.probe(pid)) this.onDeath(pid);
  }
}

/** True if a process with this pid exists (EPERM counts as existing). */
export function pidAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
