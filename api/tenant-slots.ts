import { TideboxError } from '../core/errors';
import type { Caller } from '../core/tenants';

/**
 * Slots per tenant for something one API process does at once (proxied connections, LISTs):
 * past `limit` a tenant gets 429, so one tenant cannot take what every tenant shares — the
 * API's sockets, Temporal's visibility rate.
 */
export class TenantSlots {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly limit: number,
    /** What a slot holds, plural, for the refusal ("open proxied connections"). */
    private readonly what: string,
  ) {}

  /** Take a slot for the caller, or 429; the returned function gives it back (idempotent). */
  acquire(caller: Caller): () => void {
    return this.acquireFor(caller.kind === 'admin' ? '(admin)' : caller.tenant);
  }

  /** Take a slot for a tenant by name (execd counts a token's use against the sandbox's tenant). */
  acquireFor(key: string): () => void {
    const n = this.open.get(key) ?? 0;
    if (n >= this.limit)
      throw new TideboxError('QUOTA_EXCEEDED', `too many ${this.what}: at most ${this.limit} per tenant, and ${n} are open`);
    this.open.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left > 0) this.open.set(key, left);
      else this.open.delete(key);
    };
  }

  /** Run `work` in a slot of the caller's. */
  async with<T>(caller: Caller, work: () => Promise<T>): Promise<T> {
    const release = this.acquire(caller);
    try {
      return await work();
    } finally {
      release();
    }
  }
}
