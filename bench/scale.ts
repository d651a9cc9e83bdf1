import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TENANT_LEDGER_WORKFLOW_TYPE, TENANT_WORKFLOW_TYPE } from '../contracts/tenant-actor';
import { sandboxWorkflowId } from '../core/sandbox';
import { freePort, sandboxRequest, Stack } from '../tests/helpers/stack';
import { type Backend, BACKENDS, backendsFrom, inParallel, onBackend } from './backends';
import { quantile, timed as timedWith } from './create-delete';
import { CpuMeter, cpuSummary, marginalSummary } from './cpu';
import { cpuProfiles, liveHeap } from './heap';
import { cdf, svgChart } from './svg';

/**
 * `npm run bench -- scale` (issue #22): Tidebox with thousands of live sandbox actors on one worker,
 * on the `noop` runtime (activities/noop/host.ts: every workflow, activity, timer, memo and search
 * attribute of the real path, no container), so what is measured is Tidebox and Temporal, not the
 * engine. For each size in SCALE_SANDBOXES (default 1000; e.g. `SCALE_SANDBOXES=1000,10000`), on a
 * fresh stack: the creates (throughput), the worker's RSS per idle actor, GET p50/p99 on random
 * sandboxes, LIST filtered to 1,000 matches p50/p99, renew acknowledgement p50/p99, and the
 * lateness of 1,000 sandboxes that expire in the same minute (SCALE_EXPIRY_WINDOW_S, default 60,
 * evenly spread; 0 = all at one instant): each actor's close time less its own expiresAt. Plots
 * (SVG) go to SCALE_PLOTS_DIR (default docs/img). SCALE_WORKER_CACHE sets the worker's
 * maxCachedWorkflows, SCALE_WORKER_NODE_OPTIONS its Node options, SCALE_PROFILE_DIR (optional) where CPU
 * profiles of the worker's threads during the expiries are written. SCALE_BACKENDS=dev,cluster (default dev)
 * runs each size on the dev server and/or the real cluster (PostgreSQL; bench/backends.ts). Bounded: a time budget per size, fixed sample counts.
 */
const RUNS = backendsFrom('SCALE_BACKENDS', 'dev');
const SIZES = (process.env.SCALE_SANDBOXES ?? '1000').split(',').map(Number);
if (!SIZES.every((n) => Number.isSafeInteger(n) && n > 0))
  throw new Error('SCALE_SANDBOXES: positive integers, comma-separated (e.g. 1000,10000)');
const CONCURRENCY = 16;
const GET_SAMPLES = 500;
const LIST_SAMPLES = 100;
const RENEW_SAMPLES = 200;
const EXPIRING = Number(process.env.SCALE_EXPIRING ?? 1000);
const WINDOW_S = Number(process.env.SCALE_EXPIRY_WINDOW_S ?? 60);
if (!Number.isSafeInteger(EXPIRING) || EXPIRING < 1 || !Number.isSafeInteger(WINDOW_S) || WINDOW_S < 0)
  throw new Error('SCALE_EXPIRING: a positive integer; SCALE_EXPIRY_WINDOW_S: a whole number of seconds');
const CACHE = process.env.SCALE_WORKER_CACHE === undefined ? undefined : Number(process.env.SCALE_WORKER_CACHE);
/** Extra V8/Node options for the worker (e.g. `--max-old-space-size=256`). */
const NODE_OPTIONS = process.env.SCALE_WORKER_NODE_OPTIONS ?? '';
/** Where CPU profiles of the worker's threads during the expiries go (SCALE_PROFILE_DIR; none when unset). */
const PROFILE_DIR = process.env.SCALE_PROFILE_DIR;
const PLOTS_DIR = process.env.SCALE_PLOTS_DIR ?? 'docs/img';
/** The expiring batch expires this long after its creates are expected to be done. */
const EXPIRY_LEAD_MS = 20_000;
const BUDGET_MS = 60 * 60_000;

/** How long fn takes, in ms. */
const timed = async (fn: () => Promise<unknown>): Promise<number> => (await timedWith(fn))[1];

const rssBytes = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

export async function benchScale(): Promise<void> {
  const rows: string[] = [];
  for (const backend of RUNS) for (const size of SIZES) rows.push(await onBackend(backend, () => oneSize(size, backend)));
  console.log(
    `\nscale: noop runtime, one worker (maxCachedWorkflows ${CACHE ?? 'default'}, node options ${NODE_OPTIONS || 'none'}), one API, Temporal ${RUNS.map((b) => BACKENDS[b]).join(' / ')}; times in ms; p99 of ${GET_SAMPLES} GETs, ${LIST_SAMPLES} LISTs, ${RENEW_SAMPLES} renewals; ${EXPIRING} expiring ${WINDOW_S ? `evenly over ${WINDOW_S} s` : 'at one instant'}; worker memory: its live JS heap after a full GC (all threads) and its RSS, growth per actor over all creates / over the second half\n`,
  );
  console.log(
    `| Temporal | live sandboxes | creates/s | worker live heap per actor: all / second half (KB) | worker RSS per actor: all / second half (KB) | GET p50 / p99 | LIST (≤ 1,000 matches) p50 / p99 | renew p50 / p99 | expiry lateness p50 / p99 |`,
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

async function oneSize(size: number, backend: Backend): Promise<string> {
  const deadline = Date.now() + BUDGET_MS;
  const inspectPort = await freePort();
  const stack = await Stack.start({
    config: {
      runtime: { type: 'noop' },
      sandbox: { minTimeoutSeconds: 1 },
      ...(CACHE === undefined ? {} : { worker: { maxCachedWorkflows: CACHE } }),
    },
    workerEnv: { NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort} ${NODE_OPTIONS}` },
  });
  const connection = await Connection.connect({ address: stack.temporal.address });
  try {
    const client = new Client({ connection, namespace: stack.namespace });
    const create = async (metadata: Record<string, string>, timeout: number) => {
      const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ metadata, timeout }));
      if (r.status !== 202) throw new Error(`create answered ${r.status}: ${JSON.stringify(r.body)}`);
      return r.body.id as string;
    };
    const memory = async () => ({ heap: (await liveHeap(inspectPort)).bytes, rss: rssBytes(stack.worker.pid!) });
    const before = await memory();
    const started = Date.now();
    // The first 1,000 carry a label of their own: the filtered LIST matches exactly them.
    const half = Math.floor(size / 2);
    const label = (i: number) => ({ group: i < 1000 ? 'k' : 'rest' });
    const ids = await inParallel(half, CONCURRENCY, deadline, (i) => create(label(i), 3600));
    const atHalf = await memory();
    ids.push(...(await inParallel(size - half, CONCURRENCY, deadline, (i) => create(label(half + i), 3600))));
    const createsPerSecond = size / ((Date.now() - started) / 1000);
    // Each create answered at Running (or its wait ran out under the burst): the last one is waited for.
    for (;;) {
      const state = (await stack.request('GET', `/v1/sandboxes/${ids[ids.length - 1]}`)).body.status?.state;
      if (state === 'Running') break;
      if (state !== 'Pending' || Date.now() > deadline) throw new Error(`the last sandbox is ${state}, not Running`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const after = await memory();
    const perActor = (k: 'heap' | 'rss') =>
      `${((after[k] - before[k]) / size / 1024).toFixed(0)} / ${((after[k] - atHalf[k]) / (size - half) / 1024).toFixed(0)}`;

    const pick = () => ids[Math.floor(Math.random() * ids.length)]!;
    const gets = await inParallel(GET_SAMPLES, 1, deadline, () => timed(() => stack.request('GET', `/v1/sandboxes/${pick()}`)));
    const matches = Math.min(size, 1000);
    const listOnce = async (baseUrl: string) => {
      let n = 0;
      const ms = await timed(async () => {
        const r = await stack.requestTo(baseUrl, 'GET', '/v1/sandboxes?metadata=group%3Dk&pageSize=200');
        n = r.body.pagination?.totalItems ?? r.body.items.length;
      });
      if (n !== matches) throw new Error(`LIST found ${n} of ${matches}`);
      return ms;
    };
    // With the read projection (on the cluster), the same LISTs through a second API without it,
    // interleaved: visibility and the projection side by side, same stack, same moment.
    const bare = stack.viewsUrl ? await stack.startApiReplica('api-visibility', { TIDEBOX_VIEWS_POSTGRES_URL: undefined }) : undefined;
    const lists: number[] = [];
    const fromVisibility: number[] = [];
    try {
      await inParallel(LIST_SAMPLES, 1, deadline, async () => {
        lists.push(await listOnce(stack.baseUrl));
        if (bare) fromVisibility.push(await listOnce(bare.baseUrl));
      });
    } finally {
      await bare?.process.stop();
    }
    if (bare) {
      const fellBack = readFileSync(join(stack.dataDir, 'api.log'), 'utf8').includes('sandbox views');
      if (fellBack) throw new Error('the API fell back to visibility during the LISTs: see its log');
      console.log(
        `
LIST (${matches} matches, page of 200), ${size} live: read projection ${quantile(lists, 0.5).toFixed(1)} / ${quantile(lists, 0.99).toFixed(1)} ms, visibility (second API, same run) ${quantile(fromVisibility, 0.5).toFixed(1)} / ${quantile(fromVisibility, 0.99).toFixed(1)} ms (p50 / p99)`,
      );
    }
    const far = new Date(Date.now() + 3 * 3_600_000).toISOString();
    const renews = await inParallel(RENEW_SAMPLES, 1, deadline, () =>
      timed(async () => {
        const r = await stack.request('POST', `/v1/sandboxes/${pick()}/renew-expiration`, { expiresAt: far });
        if (r.status !== 200) throw new Error(`renew answered ${r.status}: ${JSON.stringify(r.body)}`);
      }),
    );

    // 1,000 more, the i-th with the timeout that makes it expire i/1,000 of the window after one
    // instant (to the second), all after the last create. Lateness: the actor's close less its own expiresAt.
    const at = Date.now() + (EXPIRING / createsPerSecond) * 1000 * 1.5 + EXPIRY_LEAD_MS;
    const target = (i: number) => at + (i / EXPIRING) * WINDOW_S * 1000;
    const pids = () => ({ worker: stack.worker.pid!, api: stack.api.pid!, bench: process.pid });
    const creating = CpuMeter.start(pids());
    const expiring = await inParallel(EXPIRING, CONCURRENCY, deadline, async (i) => {
      const timeout = Math.max(1, Math.round((target(i) - Date.now()) / 1000));
      const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ metadata: { group: 'expiring' }, timeout }));
      if (r.status !== 202) throw new Error(`create answered ${r.status}: ${JSON.stringify(r.body)}`);
      return { id: r.body.id as string, expiresAt: Date.parse(r.body.expiresAt) };
    });
    // The creates ran slower than guessed: they do not expire as planned, and the number would not mean it.
    const off = expiring.findIndex((e, i) => Math.abs(e.expiresAt - target(i)) > 2000);
    if (off >= 0) throw new Error(`expiring sandbox ${off} expires ${expiring[off]!.expiresAt - target(off)} ms off its plan`);
    const createCpu = creating.stop();
    // What the machine spends with every actor idle (Temporal's own upkeep, the worker's pollers):
    // from 2 s after the last create to just before the first expiresAt, nobody asking anything.
    await new Promise((r) => setTimeout(r, 2000));
    const idleMeter = CpuMeter.start(pids());
    await new Promise((r) => setTimeout(r, Math.max(0, at - 500 - Date.now())));
    const idleCpu = idleMeter.stop();
    // Where the machine's CPU went from the first expiresAt to the last close.
    const expiryMeter = CpuMeter.start(pids());
    const expiries = inParallel(EXPIRING, CONCURRENCY, deadline, async (i) => {
      const { id, expiresAt } = expiring[i]!;
      const handle = client.workflow.getHandle(sandboxWorkflowId(id));
      for (;;) {
        // closeTime is exact: no need to ask before the expiry, nor often after it.
        await new Promise((r) => setTimeout(r, Math.max(1000, expiresAt - Date.now())));
        const d = await handle.describe();
        if (d.closeTime) return d.closeTime.getTime() - expiresAt;
        if (Date.now() > deadline) throw new Error('an expiring sandbox never ended');
      }
    });
    if (PROFILE_DIR) {
      const files = await cpuProfiles(inspectPort, PROFILE_DIR, `worker-${size}-expiring`, expiries);
      console.log(`worker CPU profiles while expiring: ${files.join(', ')}`);
    }
    const lateness = await expiries;
    const expiryCpu = expiryMeter.stop();
    console.log(`\nCPU while ${EXPIRING} more were created: ${cpuSummary(createCpu, { n: EXPIRING, what: 'create' })}`);
    console.log(`CPU from the first expiresAt to the last close: ${cpuSummary(expiryCpu, { n: EXPIRING, what: 'expiry' })}`);
    console.log(`CPU idle (${(idleCpu.wallMs / 1000).toFixed(0)} s before the first expiresAt): ${cpuSummary(idleCpu)}`);
    console.log(`CPU per expiry beyond idle: ${marginalSummary(expiryCpu, idleCpu, { n: EXPIRING, what: 'expiry' })}`);
    // Where an expiry's time went, from its expiresAt: the first one's events, and the latest one's
    // (with when it was due, in s after the first expiresAt: a stall shows which step it held up).
    const stepsOf = async (i: number) => {
      const { id, expiresAt } = expiring[i]!;
      const history = await client.workflow.getHandle(sandboxWorkflowId(id)).fetchHistory();
      return (history.events ?? [])
        .map((e) => ({
          at: Number(e.eventTime!.seconds) * 1000 + Math.round((e.eventTime!.nanos ?? 0) / 1e6),
          type: temporal.api.enums.v1.EventType[e.eventType ?? 0] ?? String(e.eventType),
        }))
        .filter((e) => e.at >= expiresAt - 1000)
        .map((e) => `${e.at - expiresAt} ${e.type.replace('EVENT_TYPE_', '')}`)
        .join(', ');
    };
    const latest = lateness.indexOf(Math.max(...lateness));
    const due = (expiring[latest]!.expiresAt - expiring[0]!.expiresAt) / 1000;
    const reconciled = readFileSync(join(stack.dataDir, 'worker.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('sandbox views reconciled'));
    if (reconciled.length) console.log(`read projection reconciliations: ${reconciled.map((l) => JSON.parse(l).ms + ' ms').join(', ')}`);
    console.log(`\none expiry (ms from its expiresAt; ${size} live, ${EXPIRING} expiring): ${await stepsOf(0)}`);
    console.log(`the latest expiry (due at +${due.toFixed(1)} s): ${await stepsOf(latest)}`);
    // The tenant actor takes every release; its runs' ends (continue-as-new, carrying its ledger) beside the stalls.
    const firstDue = expiring[0]!.expiresAt;
    const tenantRuns: Array<{ at: number; text: string }> = [];
    const query = `WorkflowType IN ('${TENANT_WORKFLOW_TYPE}', '${TENANT_LEDGER_WORKFLOW_TYPE}') AND CloseTime >= '${new Date(firstDue).toISOString()}'`;
    for await (const w of client.workflow.list({ query })) {
      const at = (w.closeTime!.getTime() - firstDue) / 1000;
      tenantRuns.push({
        at,
        text: `+${at.toFixed(1)} s (${w.historyLength} events, ${(Number(w.historySize ?? 0) / 1024).toFixed(0)} KB${await failedContinueAsNew(client, w.workflowId, w.runId)})`,
      });
    }
    console.log(
      `tenant actor runs ended during the expiries: ${
        tenantRuns
          .sort((a, b) => a.at - b.at)
          .map((r) => r.text)
          .join(', ') || 'none'
      }`,
    );
    const pair = (xs: number[]) => `${quantile(xs, 0.5).toFixed(1)} / ${quantile(xs, 0.99).toFixed(1)}`;
    plot(size, backend, { gets, lists, renews }, expiring, lateness);
    return `| ${BACKENDS[backend]} | ${size} | ${createsPerSecond.toFixed(0)} | ${perActor('heap')} | ${perActor('rss')} | ${pair(gets)} | ${pair(lists)} | ${pair(renews)} | ${pair(lateness)} |`;
  } finally {
    await connection.close();
    await stack.destroy();
  }
}

/**
 * Whether a run's continue-as-new failed on a Signal that came meanwhile (UNHANDLED_COMMAND), and if
 * so how long its next workflow task waited to start and ran (the SDK replays the run from its first
 * event in it; the server refuses messages to the workflow until it ends).
 */
async function failedContinueAsNew(client: Client, workflowId: string, runId: string): Promise<string> {
  const events = (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
  const ms = (e: (typeof events)[number] | undefined) =>
    e?.eventTime ? Number(e.eventTime.seconds) * 1000 + (e.eventTime.nanos ?? 0) / 1e6 : NaN;
  const failed = events.filter(
    (e) =>
      e.workflowTaskFailedEventAttributes?.cause ===
      temporal.api.enums.v1.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
  );
  if (!failed.length) return '';
  const last = failed[failed.length - 1]!;
  const after = events.slice(events.indexOf(last));
  const started = after.find((e) => e.workflowTaskStartedEventAttributes);
  const completed = after.find((e) => e.workflowTaskCompletedEventAttributes);
  return `; continue-as-new failed on a Signal ${failed.length}×, the last one's next task waited ${(ms(started) - ms(last)).toFixed(0)} ms and ran ${(ms(completed) - ms(started)).toFixed(0)} ms`;
}

/** The size's two plots: latency CDFs of the reads and renewals, and each expiry's lateness over the window. */
function plot(
  size: number,
  backend: Backend,
  ms: Record<'gets' | 'lists' | 'renews', number[]>,
  expiring: Array<{ expiresAt: number }>,
  lateness: number[],
) {
  mkdirSync(PLOTS_DIR, { recursive: true });
  const on = backend === 'dev' ? '' : `, Temporal ${BACKENDS[backend]}`;
  const latency = svgChart(`${size} live sandboxes (noop runtime${on}): request latency`, 'ms', '% of requests', [
    { name: `GET (${ms.gets.length})`, points: cdf(ms.gets), style: 'line' },
    { name: `LIST, 1,000 matches (${ms.lists.length})`, points: cdf(ms.lists), style: 'line' },
    { name: `renew (${ms.renews.length})`, points: cdf(ms.renews), style: 'line' },
  ]);
  const first = Math.min(...expiring.map((e) => e.expiresAt));
  const expiry = svgChart(
    `${size} live + ${expiring.length} expiring ${WINDOW_S ? `over ${WINDOW_S} s` : 'at once'}${on}: lateness`,
    's after the first expiresAt',
    'close − expiresAt (ms)',
    [{ name: 'one expiry', points: expiring.map((e, i) => [(e.expiresAt - first) / 1000, lateness[i]!]), style: 'dots' }],
  );
  for (const [name, svg] of Object.entries({ latency, expiry })) {
    const path = join(PLOTS_DIR, `scale-${size}${backend === 'dev' ? '' : `-${backend}`}-${name}.svg`);
    writeFileSync(path, svg);
    console.log(`plot: ${path}`);
  }
}
