/**
 * @file Interruptible waits. The request a piece of engine code runs for is
 * carried through its awaits (node:async_hooks AsyncLocalStorage), so the
 * one place that waits for busy pages, the layout guard, can give up its
 * wait when the kernel interrupts the request (FUSE_INTERRUPT: a signal
 * reached the caller, who then sees EINTR).
 *
 * The transport runs each request's handler inside its RequestContext
 * (runInRequest) and calls interrupt() when the kernel asks; the guard
 * takes the current request's signal (requestSignal) before it waits.
 * An interrupt only ever ends a wait: a request that is not waiting, or is
 * reached after its reply, completes as if none had come. Outside any
 * request (unit tests, tools, timers) there is no signal and nothing is
 * interruptible.
 *
 * Caveat: AsyncLocalStorage on Node 20 keeps a promise hook enabled; the
 * cost is per promise, and the hot paths (read, write) create none.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** One request's interruption state; the AbortController is made only for a request that waits. */
export class RequestContext {
  private ac: AbortController | null = null;
  private hit = false;

  /** The kernel interrupted the request: a wait in progress, or any later one, ends. */
  interrupt(): void {
    this.hit = true;
    this.ac?.abort();
  }

  get interrupted(): boolean { return this.hit; }

  /** Aborted once the request is interrupted (at once if it already was). */
  get signal(): AbortSignal {
    if (!this.ac) {
      this.ac = new AbortController();
      if (this.hit) this.ac.abort();
    }
    return this.ac.signal;
  }
}

const current = new AsyncLocalStorage<RequestContext>();

/** Run fn, and everything it awaits, as part of the request ctx. */
export function runInRequest<T>(ctx: RequestContext, fn: () => T): T {
  return current.run(ctx, fn);
}

/** The signal of the request the caller runs for; undefined outside any request. */
export function requestSignal(): AbortSignal | undefined {
  return current.getStore()?.signal;
}

/**
 * p, or 'interrupted' as soon as signal aborts, whichever comes first (p is
 * left to settle on its own). Without a signal, p itself.
 */
export function unlessInterrupted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T | 'interrupted'> {
  if (!signal) return p;
  if (signal.aborted) return Promise.resolve('interrupted');
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve('interrupted');
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); });
  });
}
