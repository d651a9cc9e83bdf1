import Dockerode from 'dockerode';
import { sandboxRequest, Stack } from '../tests/helpers/stack';
import { quantile, RAW_NETWORK, rawCreate, removeRawLeftovers } from './create-delete';

/**
 * The concurrency part of `npm run bench` (issue #22): a burst of CONCURRENT_CREATES (100) creates
 * sent at once through Tidebox until every sandbox is Running, and in the same run the same burst of
 * raw dockerode create + start with the same container settings. Rounds alternate which goes first
 * (VM drift stays out of the ratio); between rounds everything is removed. Any create that fails or
 * ends in another state than Running fails the bench: the number is for a burst that fully succeeds.
 */
const BURST = Number(process.env.CONCURRENT_CREATES ?? 100);
const ROUNDS = Number(process.env.CONCURRENT_ROUNDS ?? 3);
const BUDGET_MS = 20 * 60_000;
/** Deletes in flight while a Tidebox round is cleaned up. */
const CLEANUP_WIDTH = 16;

interface Burst {
  /** First request sent → last sandbox Running, ms. */
  total: number;
  /** Per sandbox: its request sent → it was seen Running, ms. */
  each: number[];
}

async function tideboxBurst(stack: Stack, deadline: number): Promise<Burst> {
  const started = process.hrtime.bigint();
  const since = () => Number(process.hrtime.bigint() - started) / 1e6;
  const results = await Promise.all(
    Array.from({ length: BURST }, async () => {
      const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
      if (r.status !== 202) throw new Error(`create answered ${r.status}: ${JSON.stringify(r.body)}`);
      // The create's wait can end before Running under a burst: then its state is polled.
      for (let state = r.body.status.state as string; state !== 'Running';) {
        if (state !== 'Pending') throw new Error(`sandbox ${r.body.id} is ${state}: ${JSON.stringify(r.body.status)}`);
        if (Date.now() > deadline) throw new Error(`sandbox ${r.body.id} still Pending at the time budget`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        state = (await stack.request('GET', `/v1/sandboxes/${r.body.id}`)).body.status?.state;
      }
      return { id: r.body.id as string, at: since() };
    }),
  );
  const total = since();
  const ids = results.map((r) => r.id);
  for (let i = 0; i < ids.length; i += CLEANUP_WIDTH) {
    await Promise.all(
      ids.slice(i, i + CLEANUP_WIDTH).map(async (id) => {
        const r = await stack.request('DELETE', `/v1/sandboxes/${id}`);
        if (r.status !== 204) throw new Error(`delete of ${id} answered ${r.status}`);
      }),
    );
  }
  return { total, each: results.map((r) => r.at) };
}

async function rawBurst(docker: Dockerode, round: number): Promise<Burst> {
  const started = process.hrtime.bigint();
  const results = await Promise.all(
    Array.from({ length: BURST }, async (_, i) => {
      const c = await rawCreate(docker, `${round}-${i}`);
      return { c, at: Number(process.hrtime.bigint() - started) / 1e6 };
    }),
  );
  const total = Number(process.hrtime.bigint() - started) / 1e6;
  for (let i = 0; i < results.length; i += CLEANUP_WIDTH) {
    await Promise.all(results.slice(i, i + CLEANUP_WIDTH).map(({ c }) => c.remove({ force: true, v: true })));
  }
  return { total, each: results.map((r) => r.at) };
}

export async function benchConcurrent(): Promise<void> {
  if (!Number.isSafeInteger(BURST) || BURST < 1 || !Number.isSafeInteger(ROUNDS) || ROUNDS < 1)
    throw new Error('CONCURRENT_CREATES and CONCURRENT_ROUNDS: positive integers');
  const deadline = Date.now() + BUDGET_MS;
  const docker = new Dockerode();
  // The burst must fit the default tenant: no quota of its own in the bench stack.
  const stack = await Stack.start();
  await docker.createNetwork({ Name: RAW_NETWORK, Driver: 'bridge', Labels: { 'tidebox.io/bench': 'raw' } });
  try {
    // Warm-up, outside the timings: the tenant's network, the image's first use, the worker's JIT.
    const warm = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
    if (warm.status !== 202) throw new Error(`warm-up create answered ${warm.status}`);
    await stack.request('DELETE', `/v1/sandboxes/${warm.body.id}`);
    const tidebox: Burst[] = [];
    const raw: Burst[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      if (Date.now() > deadline) throw new Error(`time budget exhausted after ${round} rounds`);
      const order = round % 2 ? (['raw', 'tidebox'] as const) : (['tidebox', 'raw'] as const);
      for (const kind of order) {
        if (kind === 'tidebox') tidebox.push(await tideboxBurst(stack, deadline));
        else raw.push(await rawBurst(docker, round));
      }
    }
    const median = (bs: Burst[]) =>
      quantile(
        bs.map((b) => b.total),
        0.5,
      );
    const each = (bs: Burst[], q: number) =>
      quantile(
        bs.flatMap((b) => b.each),
        q,
      );
    console.log(`\n${BURST} creates at once, ${ROUNDS} rounds each, alternating; all Running, 0 failures; times in ms\n`);
    console.log('| | burst total (median of rounds) | each: p50 | each: p95 | rounds |');
    console.log('|---|---|---|---|---|');
    for (const [name, bs] of [
      ['Tidebox', tidebox],
      ['raw Docker', raw],
    ] as const) {
      console.log(
        `| ${name} | ${median(bs).toFixed(0)} | ${each(bs, 0.5).toFixed(0)} | ${each(bs, 0.95).toFixed(0)} | ${bs.map((b) => b.total.toFixed(0)).join(', ')} |`,
      );
    }
    console.log(
      `| ratio | ${(median(tidebox) / median(raw)).toFixed(2)} | ${(each(tidebox, 0.5) / each(raw, 0.5)).toFixed(2)} | ${(each(tidebox, 0.95) / each(raw, 0.95)).toFixed(2)} | |`,
    );
  } finally {
    await stack.destroy();
    await removeRawLeftovers(docker);
  }
}
