import { TideboxError } from '../core/errors';
import type { Caller } from '../core/tenants';

/**
 * Slots per tenant for something one API process does at once (proxied connections, LISTs):
 * past `limit` a tenant's request is refused with 429 (`acquire`) or waits its turn behind its
 * tenant's others (`queued`), so one tenant cannot take what every tenant shares — the API's
 * sockets, Temporal's visibility rate.
 */
export class TenantSlots {
  private readonly open = new Map<string, number>();
  /** Per tenant, those waiting for a slot (`queued`), first come first served. */
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(
    private readonly limit: number,
    /** What a slot holds, plural, for the refusal ("open proxied connections"). */
    private readonly what: string,
    /** How many may wait for a slot per tenant (`queued`); past it, 429. */
    private readonly queue = 0,
  ) {}

  /** Take a slot for the caller, or 429; the returned function gives it back (idempotent). */
  acquire(caller: Caller): () => void {
    return this.acquireFor(keyOf(caller));
  }

  /** Take a slot for a tenant by name (execd counts a token's use against the sandbox's tenant). */
  acquireFor(key: string): () => void {
    const n = this.open.get(key) ?? 0;
    if (n >= this.limit)
      throw new TideboxError('QUOTA_EXCEEDED', `too many ${this.what}: at most ${this.limit} per tenant, and ${n} are open`);
    this.open.set(key, n + 1);
    return this.releaser(key);
  }

  /**
   * Run `work` in a slot of the caller's, waiting in line for one while the tenant's are all taken;
   * 429 SERVER::BUSY when `queue` of its requests already wait.
   */
  async queued<T>(caller: Caller, work: () => Promise<T>): Promise<T> {
    const key = keyOf(caller);
    const n = this.open.get(key) ?? 0;
    if (n < this.limit) this.open.set(key, n + 1);
    else {
      const line = this.waiting.get(key) ?? [];
      if (line.length >= this.queue)
        throw new TideboxError('BUSY', `too many ${this.what}: ${this.limit} run at once per tenant and ${line.length} wait; retry later`);
      this.waiting.set(key, line);
      // A released slot passes straight to the first in line (the count stays).
      await new Promise<void>((resolve) => line.push(resolve));
    }
    const release = this.releaser(key);
    try {
      return await work();
    } finally {
      release();
    }
  }

  /** Gives the slot back once: to the first waiting for one, else to the pool. */
  private releaser(key: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const line = this.waiting.get(key);
      const next = line?.shift();
      if (line && !line.length) this.waiting.delete(key);
      if (next) return next();
      const left = (this.open.get(key) ?? 1) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    };
  }
}

const keyOf = (caller: Caller): string => (caller.kind === 'admin' ? '(admin)' : caller.tenant);
