import type { Client } from '@temporalio/client';
import { TemporalGateway } from '../../api/temporal/gateway';
import { paginate } from '../../api/temporal/visibility';
import type { VisibilityFilter } from '../../contracts/visibility';

/**
 * LIST's newest-first windows (TemporalGateway.newest) over an in-memory visibility store that
 * answers count and list the way Temporal's does for `TideboxCreatedAt >= t` — in its own order (not
 * by createdAt) — so every page can be checked against the whole list sorted, for many shapes of
 * creation times. The real stores are exercised by tests/e2e/noop-runtime.test.ts (dev server and
 * PostgreSQL cluster) and `npm run bench -- list`.
 */
interface Item {
  id: string;
  createdAt: string;
}

class StoreGateway extends TemporalGateway {
  counts = 0;
  read = 0;
  constructor(private readonly items: Item[]) {
    super({} as Client, 1000);
  }
  private matching(filter: VisibilityFilter): Item[] {
    return this.items.filter((i) => !filter.createdSince || i.createdAt >= filter.createdSince.toISOString());
  }
  override count(filter: VisibilityFilter): Promise<number> {
    this.counts++;
    return Promise.resolve(this.matching(filter).length);
  }
  override scan<V>(filter: VisibilityFilter, accept: (view: V) => boolean, limit = 10_000): Promise<V[]> {
    const found = this.matching(filter).slice(0, limit);
    this.read += found.length;
    return Promise.resolve((found as unknown as V[]).filter(accept));
  }
}

/** `n` items created over the last `spreadMs`, by `shape`; ids random, store order shuffled. */
function items(n: number, spreadMs: number, shape: (u: number) => number, seed: number): Item[] {
  let x = seed;
  const rand = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    id: `${rand().toString(36).slice(2, 10)}-${i}`,
    createdAt: new Date(now - Math.floor(shape(rand()) * spreadMs)).toISOString(),
  })).sort(() => rand() - 0.5);
}

const shapes: Record<string, (u: number) => number> = {
  even: (u) => u,
  'most just now': (u) => u ** 6,
  'most long ago': (u) => 1 - u ** 6,
  'one instant': () => 0,
};

describe('LIST newest-first windows', () => {
  for (const [name, shape] of Object.entries(shapes))
    for (const [n, spread] of [
      [500, 3_600_000],
      [3000, 86_400_000 * 30],
      [200, 500],
    ] as const)
      it(`when ${n} items are created ${name} over ${spread} ms, then every page is the slice of the whole sorted list, and page 1 reads a few pages' worth`, async () => {
        const all = items(n, spread, shape, n + spread);
        const whole = paginate(all, 1, n).items.map((i) => i.id);
        for (const pageSize of [1, 20, 200]) {
          for (const page of [1, 2, Math.ceil(n / pageSize)]) {
            const gateway = new StoreGateway(all);
            const views = await gateway.newest<Item>({ type: 't' }, () => true, page * pageSize, n);
            const got = paginate(views, page, pageSize, n).items.map((i) => i.id);
            expect([pageSize, page, got]).toEqual([pageSize, page, whole.slice((page - 1) * pageSize, page * pageSize)]);
            expect(gateway.counts).toBeLessThanOrEqual(8);
          }
        }
        // What the windows are for: the first page of 20 does not read everything.
        const first = new StoreGateway(all);
        await first.newest<Item>({ type: 't' }, () => true, 20, n);
        // (Unless they were made within the narrowest window, 100 ms, or at one instant: then all are read.)
        if (name !== 'one instant' && spread >= 60_000) expect(first.read).toBeLessThan(n / 2);
      });

  it('when a page needs more than one LIST reads, then it is refused with 400, not served from an arbitrary 10,000', async () => {
    const all = items(12_000, 3_600_000, (u) => u, 7);
    await expect(new StoreGateway(all).newest<Item>({ type: 't' }, () => true, 10_200, all.length)).rejects.toMatchObject({
      kind: 'INVALID_PARAMETER',
      message: expect.stringMatching(/beyond what one LIST reads/),
    });
    // ...while the first pages of the same 12,000 are served, right.
    const views = await new StoreGateway(all).newest<Item>({ type: 't' }, () => true, 200, all.length);
    expect(paginate(views, 1, 200, all.length).items).toEqual(paginate(all, 1, 12_000).items.slice(0, 200));
  });
});
