import { sandboxRequest, Stack, waitFor } from '../tests/helpers/stack';
import { type Backend, BACKENDS, backendsFrom, inParallel, onBackend } from './backends';
import { quantile, timed } from './create-delete';

/**
 * `npm run bench -- list` (issue #20): LIST over LIST_LIVE (default 2,000) live sandboxes on the noop
 * runtime, on the Temporal dev server (SQLite visibility) and on the real cluster
 * (scripts/temporal-test-cluster: PostgreSQL visibility), one after the other in the same run. On
 * each: every page of 200 is walked and checked (newest first by createdAt, ties by id, each sandbox
 * once, the totals right), then LIST_SAMPLES timings each of: the first page of 20, a filtered first
 * page of 200 (1,000 match), and the last page of 200 (which needs every match: what every LIST cost
 * before the newest-first windows). LIST_BACKENDS=dev or cluster runs one. Bounded: a time budget per
 * backend, fixed sample counts.
 */
const LIVE = Number(process.env.LIST_LIVE ?? 2000);
const SAMPLES = Number(process.env.LIST_SAMPLES ?? 100);
if (!Number.isSafeInteger(LIVE) || LIVE < 400 || !Number.isSafeInteger(SAMPLES) || SAMPLES < 1)
  throw new Error('LIST_LIVE: an integer ≥ 400; LIST_SAMPLES: a positive integer');
const CONCURRENCY = 16;
const BUDGET_MS = 30 * 60_000;

export async function benchList(): Promise<void> {
  const rows: string[] = [];
  for (const backend of backendsFrom('LIST_BACKENDS', 'dev,cluster')) rows.push(await onBackend(backend, () => oneBackend(backend)));
  console.log(
    `\nlist: ${LIVE} live sandboxes (noop runtime), one worker, one API; ms, p50 / p99 of ${SAMPLES} LISTs each; order and paging checked on every page\n`,
  );
  console.log('| Temporal | creates/s | first page of 20 | filtered first page of 200 (1,000 match) | last page of 200 (all read) |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

async function oneBackend(backend: Backend): Promise<string> {
  const deadline = Date.now() + BUDGET_MS;
  const stack = await Stack.start({ config: { runtime: { type: 'noop' }, sandbox: { minTimeoutSeconds: 1 } } });
  try {
    const started = Date.now();
    await inParallel(LIVE, CONCURRENCY, deadline, async (i) => {
      const r = await stack.request(
        'POST',
        '/v1/sandboxes',
        sandboxRequest({ metadata: { group: i < 1000 ? 'k' : 'rest' }, timeout: 3600 }),
      );
      if (r.status !== 202) throw new Error(`create answered ${r.status}: ${JSON.stringify(r.body)}`);
    });
    const createsPerSecond = LIVE / ((Date.now() - started) / 1000);
    const list = async (q: string) => {
      const r = await stack.request('GET', `/v1/sandboxes?${q}`);
      if (r.status !== 200) throw new Error(`LIST ${q} answered ${r.status}: ${JSON.stringify(r.body)}`);
      return r.body as { items: Array<{ id: string; createdAt: string }>; pagination: { totalItems: number; totalPages: number } };
    };
    await waitFor('visibility to index every sandbox', async () => (await list('pageSize=1')).pagination.totalItems === LIVE, 120_000, 500);

    // Every page, checked against the order the contract promises.
    const seen: Array<{ id: string; createdAt: string }> = [];
    const pages = Math.ceil(LIVE / 200);
    for (let page = 1; page <= pages; page++) {
      const body = await list(`pageSize=200&page=${page}`);
      if (body.pagination.totalItems !== LIVE || body.pagination.totalPages !== pages)
        throw new Error(`page ${page}: ${JSON.stringify(body.pagination)}`);
      seen.push(...body.items);
    }
    if (new Set(seen.map((s) => s.id)).size !== LIVE)
      throw new Error(`the pages hold ${new Set(seen.map((s) => s.id)).size} distinct sandboxes, not ${LIVE}`);
    for (let i = 1; i < seen.length; i++) {
      const [a, b] = [seen[i - 1]!, seen[i]!];
      if (a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id > b.id))
        throw new Error(`out of order at ${i}: ${JSON.stringify([a, b])}`);
    }

    const sample = async (q: string, check: (body: Awaited<ReturnType<typeof list>>) => boolean) => {
      const ms: number[] = [];
      for (let i = 0; i < SAMPLES && Date.now() < deadline; i++) {
        let body: Awaited<ReturnType<typeof list>> | undefined;
        ms.push((await timed(async () => (body = await list(q))))[1]);
        if (!check(body!)) throw new Error(`LIST ${q}: unexpected ${JSON.stringify(body!.pagination)}`);
      }
      return `${quantile(ms, 0.5).toFixed(1)} / ${quantile(ms, 0.99).toFixed(1)}`;
    };
    const first = await sample('pageSize=20', (b) => b.items[0]?.id === seen[0]!.id && b.items.length === 20);
    const filtered = await sample('metadata=group%3Dk&pageSize=200', (b) => b.pagination.totalItems === 1000 && b.items.length === 200);
    const last = await sample(`pageSize=200&page=${pages}`, (b) => b.items.at(-1)?.id === seen.at(-1)!.id);
    return `| ${BACKENDS[backend]} | ${createsPerSecond.toFixed(0)} | ${first} | ${filtered} | ${last} |`;
  } finally {
    await stack.destroy();
  }
}
