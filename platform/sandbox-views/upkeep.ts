/**
 * What keeps the read projection (./store.ts) written and true: the sink's batched writer and the
 * reconciliation against the open sandbox actors.
 */
import { type Client, type WorkflowExecutionDescription, WorkflowNotFoundError } from '@temporalio/client';
import { SANDBOX_WORKFLOW_TYPE } from '../../contracts/sandbox-actor';
import { visibilityQuery } from '../../contracts/visibility';
import { type MemoView, type SandboxView, sandboxWorkflowId } from '../../core/sandbox';
import { breather, type SandboxViewStore, type ViewWrite } from './store';

/** How long a sink waits for its batch's write before letting the workflow task complete anyway. */
const WRITE_WAIT_MS = 2000;
/** Most views one statement writes. */
const MAX_BATCH = 500;
/** Most views held for a retry while the database is unreachable; beyond, reconciliation repairs them. */
const MAX_PENDING = 50_000;

interface Pending extends ViewWrite {
  done: Array<() => void>;
}

/**
 * Writes the views sandbox actors publish, in batches: while one statement is in flight the next
 * views gather, so under load one round trip carries many actors (group commit). {@link publish}
 * resolves once its view is written (or failed, or WRITE_WAIT_MS passed): the sink holds the
 * workflow task until then, so a completed task's view is in the table — a LIST after a create
 * returns sees it. A failed batch is retried; a database that stays away costs each task at most
 * WRITE_WAIT_MS and the reconciliation brings the table back.
 */
export class SandboxViewWriter {
  private readonly pending = new Map<string, Pending>();
  private flushing: Promise<void> | undefined;
  private failures = 0;

  constructor(
    private readonly store: SandboxViewStore,
    private readonly onFailure: (err: Error, failures: number) => void,
  ) {}

  publish(view: SandboxView, at: number): Promise<void> {
    const held = this.pending.get(view.id);
    let done!: () => void;
    const written = new Promise<void>((resolve) => (done = resolve));
    if (held) {
      // A newer view of the same sandbox replaces the held one: one row, the latest.
      if (at >= held.at) Object.assign(held, { view, at });
      held.done.push(done);
    } else if (this.pending.size >= MAX_PENDING) done();
    else this.pending.set(view.id, { view, at, done: [done] });
    this.flushing ??= this.flush().finally(() => (this.flushing = undefined));
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([written, new Promise<void>((resolve) => (timer = setTimeout(resolve, WRITE_WAIT_MS)))]).finally(() =>
      clearTimeout(timer),
    );
  }

  private async flush(): Promise<void> {
    while (this.pending.size) {
      const batch = [...this.pending.values()].slice(0, MAX_BATCH);
      for (const p of batch) this.pending.delete(p.view.id);
      try {
        await this.store.write(batch);
        this.failures = 0;
      } catch (err) {
        this.failures++;
        this.onFailure(err as Error, this.failures);
        // Back in the queue unless a newer view came meanwhile; waiters are let go (the task goes on).
        for (const p of batch) if (!this.pending.has(p.view.id)) this.pending.set(p.view.id, { ...p, done: [] });
        await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 250 * 2 ** Math.min(this.failures, 7))));
      } finally {
        for (const p of batch) for (const done of p.done.splice(0)) done();
      }
    }
  }

  /** Resolves when nothing is pending (shutdown). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}

export interface ReconcileReport {
  open: number;
  inserted: number;
  repaired: number;
  tombstoned: number;
  purged: number;
}

/** Most actors one pass describes (rows that disagree with visibility); the rest wait for the next pass. */
const MAX_DESCRIBES = 1000;
/** Tombstones are kept this long. */
const TOMBSTONE_MS = 3600_000;

/**
 * One reconciliation pass: every open sandbox actor (visibility) against the table. A row written
 * within `graceMs` is not repaired (a workflow task may still be completing behind its write). Returns undefined
 * when another process is reconciling this namespace. Bounded: one visibility listing, one read of
 * the live rows, at most MAX_DESCRIBES describes.
 */
export async function reconcileSandboxViews(
  store: SandboxViewStore,
  client: Client,
  graceMs: number,
): Promise<ReconcileReport | undefined> {
  return store.exclusively(async () => {
    const listed = new Map<string, MemoView>();
    const pause = breather();
    for await (const w of client.workflow.list({ query: visibilityQuery({ type: SANDBOX_WORKFLOW_TYPE }) })) {
      await pause();
      const view = w.memo?.view as MemoView | undefined;
      if (view) listed.set(view.id, view);
    }
    const rows = await store.liveRows();
    const report: ReconcileReport = { open: listed.size, inserted: 0, repaired: 0, tombstoned: 0, purged: 0 };
    // An open actor with no row at all gets its memo at once (at 0: any write of the actor's wins);
    // one with a tombstone (just deleted, visibility behind; or an id used again) is asked first.
    const missing = [...listed.keys()].filter((id) => !rows.has(id));
    const tombstones = await store.atOf(missing);
    const inserts = missing.filter((id) => !tombstones.has(id)).map((id) => ({ view: listed.get(id)!, at: 0 }));
    const suspects = missing.filter((id) => tombstones.has(id));
    for (const [id, row] of rows) {
      if (row.ageMs < graceMs) continue;
      const memo = listed.get(id);
      if (!memo || !row.view || !sameView(row.view, memo)) suspects.push(id);
    }

    const repairs: ViewWrite[] = [];
    const gone = new Map<string, number>();
    for (const id of suspects.slice(0, MAX_DESCRIBES)) {
      const row = rows.get(id);
      let described: WorkflowExecutionDescription | undefined;
      try {
        described = await client.workflow.getHandle(sandboxWorkflowId(id)).describe();
      } catch (err) {
        // Gone only when Temporal says so; any other failure leaves the row for the next pass.
        if (!(err instanceof WorkflowNotFoundError)) continue;
      }
      const view = described?.memo?.view as MemoView | undefined;
      if (described && described.type === SANDBOX_WORKFLOW_TYPE && described.status.name === 'RUNNING' && view) {
        if (row?.view && sameView(row.view, view)) continue;
        // An elided entrypoint (a long one) is kept from the row that has it; the API asks the actor otherwise.
        const full =
          view.entrypointElided && row?.view && !row.view.entrypointElided
            ? { ...view, entrypoint: row.view.entrypoint, entrypointElided: undefined }
            : view;
        repairs.push({ view: full, at: row?.at ?? tombstones.get(id)! });
      } else if (row) gone.set(id, row.at);
    }
    // Each only over the row as it was read: a sink's newer write meanwhile is left as it is.
    report.inserted = await store.write(inserts, new Map(inserts.map((w) => [w.view.id, null])));
    report.repaired = await store.write(repairs, new Map(repairs.map((w) => [w.view.id, w.at])));
    report.tombstoned = await store.tombstone(gone);
    report.purged = await store.purge(TOMBSTONE_MS);
    // Every open actor has a row now: LIST may read the table.
    await store.markBackfilled();
    return report;
  });
}

/** Whether a row's view says what a memo says (a memo may have left a long entrypoint out). */
function sameView(row: MemoView, memo: MemoView): boolean {
  const strip = ({ entrypoint: _e, entrypointElided: _x, ...rest }: MemoView) => JSON.stringify(rest);
  return (
    strip(row) === strip(memo) && (memo.entrypointElided === true || JSON.stringify(row.entrypoint) === JSON.stringify(memo.entrypoint))
  );
}

/**
 * Reconciles now and then every `intervalMs` (± 10 %) until `signal` aborts. A pass that fails is
 * reported and tried again at the next interval.
 */
export async function keepSandboxViews(
  store: SandboxViewStore,
  client: Client,
  intervalMs: number,
  graceMs: number,
  signal: AbortSignal,
  report: (outcome: { report?: ReconcileReport; error?: Error; ms: number }) => void,
): Promise<void> {
  while (!signal.aborted) {
    const started = Date.now();
    try {
      const done = await reconcileSandboxViews(store, client, graceMs);
      if (done) report({ report: done, ms: Date.now() - started });
    } catch (err) {
      report({ error: err as Error, ms: Date.now() - started });
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, intervalMs * (0.9 + Math.random() * 0.2));
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  }
}
