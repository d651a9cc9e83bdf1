/**
 * At most `limit` calls at a time per key, the rest queued in arrival order. Temporal admits only a
 * few Updates in flight per workflow (history.maxInFlightUpdates, 10 by default) and tells a client
 * beyond that to back off for seconds; one actor's Updates (a tenant's reservations, a pool's
 * claims) therefore go through one of these. The queues hold only waiting callers: an idle key
 * holds nothing.
 */
export class Turns {
  private readonly keys = new Map<string, { running: number; waiting: Array<() => void> }>();

  constructor(private readonly limit: number) {}

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let t = this.keys.get(key);
    if (!t) this.keys.set(key, (t = { running: 0, waiting: [] }));
    // A waiter is handed the finishing call's turn (running stays the same), so nobody arriving in
    // between can take it: never more than `limit` at once, and turns go in arrival order.
    if (t.running >= this.limit) await new Promise<void>((resolve) => t.waiting.push(resolve));
    else t.running++;
    try {
      return await fn();
    } finally {
      const next = t.waiting.shift();
      if (next) next();
      else if (--t.running === 0) this.keys.delete(key);
    }
  }
}
