/**
 * @file Interruptible waits. The one place that waits for busy pages, the
 * layout guard, gives up its wait when the kernel interrupts the request it
 * waits for (FUSE_INTERRUPT: a signal reached the caller, who then sees
 * EINTR).
 *
 * The transport runs each request's handler inside its RequestContext
 * (runInRequest) and calls interrupt() when the kernel asks; the guard
 * takes the current request's signal (requestSignal) before it waits.
 * An interrupt only ever ends a wait: a request that is not waiting, or is
 * reached after its reply, completes as if none had come. Outside any
 * request (unit tests, tools, timers) there is no signal and nothing is
 * interruptible.
 *
 *
 * The current request is a plain variable, set while the transport runs a
 * request's handler synchronously. That suffices because every wait takes
 * its signal before its first await, in the synchronous part of a request
 * (prepare steps run synchronously up to the guard); continuations run
 * later, outside any handler, and see none. AsyncLocalStorage would carry
 * the request through awaits too, but on Node 20 it turns on async hooks
 * for the whole daemon (a cost on every promise and callback) for a wait
 * that never needs it.
 */

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

let current: RequestContext | null = null;

/** Run fn (its synchronous part) as part of the request ctx. */
export function runInRequest<T>(ctx: RequestContext, fn: () => T): T {
  const outer = current;
  current = ctx;
  try { return fn(); } finally { current = outer; }
}

/**
 * The signal of the request whose handler is running now; undefined outside
 * any (and in a continuation after an await: take the signal before it).
 */
export function requestSignal(): AbortSignal | undefined {
  return current?.signal;
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
