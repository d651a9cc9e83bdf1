import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { performance } from 'node:perf_hooks';
import { LABELS } from '../contracts/labels';
import { sandboxRequest, Stack } from '../tests/helpers/stack';
import { quantile } from './create-delete';

/**
 * Where a cold create's time goes (`BENCH_ONLY=breakdown`; part of `npm run bench`): N sequential
 * creates through the API, each cut into steps from three clocks on this machine — the client's
 * (request sent, answer read), the sandbox actor's history (every workflow task and activity:
 * queued → started → completed) and the Docker engine's own events (container create, start). The
 * medians per step are printed as a table (docs/benchmarks.md). Bounded: N creates and a time budget.
 */
const N = Number(process.env.BENCH_BREAKDOWN_ITERATIONS ?? 15);
const WARMUP = 2;
const BUDGET_MS = 5 * 60_000;

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const EventType = {
  started: 1,
  wftScheduled: 5,
  wftStarted: 6,
  wftCompleted: 7,
  actScheduled: 10,
  actStarted: 11,
  actCompleted: 12,
} as const;

const nowMs = () => performance.timeOrigin + performance.now();
const msOf = (e: HistoryEvent) => {
  const t = e.eventTime!;
  return Number(t.seconds) * 1000 + (t.nanos ?? 0) / 1e6;
};

/** One create cut into named, consecutive steps (ms). */
export type Steps = [string, number][];

/** Cut one create's history and engine events into consecutive steps from `sent` to `answered`. */
export function stepsOf(history: HistoryEvent[], engine: { create?: number; start?: number }, sent: number, answered: number): Steps {
  const marks: [string, number][] = [];
  const activityType = new Map<string, string>();
  let wft = 0;
  for (const e of history) {
    const type = Number(e.eventType);
    if (type === EventType.started) marks.push(['API: auth, checks, tenant quota, workflow start', msOf(e)]);
    if (type === EventType.wftScheduled) wft++;
    if (type === EventType.wftStarted) marks.push([`workflow task ${wft}: queued (matching)`, msOf(e)]);
    if (type === EventType.wftCompleted) marks.push([`workflow task ${wft}: run by the worker`, msOf(e)]);
    if (type === EventType.actScheduled) {
      const name = e.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
      activityType.set(String(e.eventId), name);
      marks.push([`→ ${name}: scheduled after workflow task`, msOf(e)]);
    }
    if (type === EventType.actStarted) {
      const name = activityType.get(String(e.activityTaskStartedEventAttributes?.scheduledEventId)) ?? '?';
      marks.push([`${name}: dispatch (scheduled → started)`, msOf(e)]);
    }
    if (type === EventType.actCompleted) {
      const name = activityType.get(String(e.activityTaskCompletedEventAttributes?.scheduledEventId)) ?? '?';
      marks.push([`${name}: run (started → completed)`, msOf(e)]);
    }
  }
  marks.sort((a, b) => a[1] - b[1]);
  const steps: Steps = [];
  let prev = sent;
  for (const [name, at] of marks) {
    steps.push([name, at - prev]);
    prev = at;
  }
  steps.push(['answer: last task → Update answered → HTTP response read', answered - prev]);
  // The engine's own time inside the activities, for comparison (not a step of its own).
  if (engine.create !== undefined && engine.start !== undefined)
    steps.push(['(inside: engine create event → start event)', engine.start - engine.create]);
  return steps;
}

export async function benchBreakdown(): Promise<void> {
  const deadline = Date.now() + BUDGET_MS;
  const stack = await Stack.start();
  const connection = await Connection.connect({ address: stack.temporal.address });
  const client = new Client({ connection });
  const engineTimes = new Map<string, { create?: number; start?: number }>();
  const events = (await stack.docker.getEvents({
    filters: { type: ['container'], event: ['create', 'start'], label: [`${LABELS.instance}=${stack.instance}`] },
  })) as NodeJS.ReadableStream & { destroy(): void };
  let buffered = '';
  events.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        const e = JSON.parse(line) as { Action: string; timeNano: number; Actor: { Attributes: Record<string, string> } };
        const id = e.Actor.Attributes[LABELS.sandboxId];
        if (!id || (e.Action !== 'create' && e.Action !== 'start')) continue;
        engineTimes.set(id, { ...engineTimes.get(id), [e.Action]: e.timeNano / 1e6 });
      } catch {
        // not a JSON line: ignore
      }
    }
  });
  try {
    const samples: Steps[] = [];
    for (let i = 0; i < WARMUP + N; i++) {
      if (Date.now() > deadline) throw new Error(`breakdown: time budget exhausted after ${samples.length} samples`);
      const sent = nowMs();
      const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
      const answered = nowMs();
      if (created.body.status?.state !== 'Running') throw new Error(`create failed: ${created.status} ${JSON.stringify(created.body)}`);
      const id = created.body.id as string;
      const history = (await client.workflow.getHandle(`sandbox/${id}`).fetchHistory()).events ?? [];
      if (i >= WARMUP) samples.push(stepsOf(history, engineTimes.get(id) ?? {}, sent, answered));
      await stack.request('DELETE', `/v1/sandboxes/${id}`);
    }
    // Steps are named by their place in the history; creates with the same shape share every name.
    const names = samples[0]!.map(([name]) => name);
    const alike = samples.filter((s) => s.length === names.length && s.every(([n], k) => n === names[k]));
    console.log(`\ncold create, where the time goes: median of ${alike.length} of ${samples.length} creates (same steps), ms\n`);
    console.log('| step | p50 |');
    console.log('|---|---|');
    let sum = 0;
    for (const [k, name] of names.entries()) {
      const p50 = quantile(
        alike.map((s) => s[k]![1]),
        0.5,
      );
      if (!name.startsWith('(')) sum += p50;
      console.log(`| ${name} | ${p50.toFixed(1)} |`);
    }
    const totals = alike.map((s) => s.filter(([n]) => !n.startsWith('(')).reduce((a, [, ms]) => a + ms, 0));
    console.log(
      `| **create → Running, as the client saw it (p50)** | **${quantile(totals, 0.5).toFixed(1)}** (steps sum ${sum.toFixed(1)}) |`,
    );
  } finally {
    events.destroy();
    await connection.close();
    await stack.destroy();
  }
}
