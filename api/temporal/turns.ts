import type { Config } from '../../core/config';
import { TideboxError } from '../../core/errors';

/** How long a caller may wait for its turn, and how many may wait per key. */
export interface TurnBounds {
  waitMs: number;
  maxWaiting: number;
}

/**
 * At most `limit` calls at a time per key, the rest queued in arrival order. Temporal admits only a
 * few Updates in flight per workflow (history.maxInFlightUpdates, 10 by default) and tells a client
 * beyond that to back off for seconds; one actor's Updates (a tenant's reservations, a pool's
 * claims) therefore go through one of these. The queues hold only waiting callers: an idle key
 * holds nothing. A queue is bounded twice, so a tenant flooding one key cannot hold this process's
 * connections: past `maxWaiting` waiters a caller is refused at once (429 SERVER::BUSY), and a
 * waiter whose turn has not come within `waitMs` gives up (504 SERVER::TIMEOUT); neither ran.
 */
export class Turns {
  private readonly keys = new Map<string, { running: number; waiting: Array<() => void> }>();

  constructor(
    private readonly limit: number,
    private readonly bounds: TurnBounds,
    /** Names the key's actor in refusals ("pool acme/x"). */
    private readonly what: (key: string) => string = (key) => key,
  ) {}

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let t = this.keys.get(key);
    if (!t) this.keys.set(key, (t = { running: 0, waiting: [] }));
    // A waiter is handed the finishing call's turn (running stays the same), so nobody arriving in
    // between can take it: never more than `limit` at once, and turns go in arrival order.
    if (t.running >= this.limit) await this.waitForTurn(t, key);
    else t.running++;
    try {
      return await fn();
    } finally {
      const next = t.waiting.shift();
      if (next) next();
      else if (--t.running === 0) this.keys.delete(key);
    }
  }

  private waitForTurn(t: { waiting: Array<() => void> }, key: string): Promise<void> {
    if (t.waiting.length >= this.bounds.maxWaiting)
      throw new TideboxError('BUSY', `${this.bounds.maxWaiting} requests already wait for ${this.what(key)} on this server; retry later`);
    return new Promise<void>((resolve, reject) => {
      const turn = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        // Out of the queue: a finishing call hands its turn to the next one still waiting.
        t.waiting.splice(t.waiting.indexOf(turn), 1);
        reject(
          new TideboxError(
            'TIMEOUT',
            `no turn at ${this.what(key)} within ${Math.round(this.bounds.waitMs / 1000)} s (too many requests for it at once); nothing was done, retry`,
          ),
        );
      }, this.bounds.waitMs);
      t.waiting.push(turn);
    });
  }
}

/**
 * One actor kind's turns as `[server]` configures them. A waiter gives up after as long as a create is
 * prepared to wait for Running plus one Temporal call: a burst of legitimate creates queues that long
 * (100 at once for one pool take ≈ 25 s here); the cap on waiters is what bounds a flood.
 */
export const actorTurns = (server: Config['server'], what: (key: string) => string): Turns =>
  new Turns(
    server.quotaReservationsInFlight,
    { waitMs: (server.createWaitSeconds + server.temporalCallTimeoutSeconds) * 1000, maxWaiting: server.updatesQueuedPerActor },
    what,
  );
