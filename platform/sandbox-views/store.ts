/**
 * The sandbox read projection: every sandbox's view in one PostgreSQL table, so LIST is one indexed
 * query instead of reading memos out of Temporal visibility (docs/architecture.md "The read
 * projection"). GET stays on the actor's memo (describe): it must be exact.
 *
 * - Written by the worker: each sandbox actor publishes its view through a workflow sink
 *   (contracts/sandbox-views.ts) and {@link SandboxViewWriter} writes it, many actors in one statement,
 *   before the workflow task completes. A write carries the workflow time of its task (`at`); an
 *   older one never overwrites a newer one, so a slow or restarted worker cannot move a row back.
 * - Kept true by {@link reconcileSandboxViews} (one worker at a time, under an advisory lock): rows
 *   that disagree with visibility are re-read from their actor (describe) and repaired; rows of actors
 *   that are gone become tombstones (state Terminated, kept an hour so a late write cannot bring the
 *   sandbox back); open actors without a row get one. Its first full pass marks the namespace
 *   backfilled; until then the API keeps reading visibility.
 * - Read by the API ({@link SandboxViewStore.list}): tenant, states and metadata are columns, sorted by
 *   createdAt (newest first, ties by id), as the contract pages them.
 *
 * The view column holds each view as a Temporal payload, through the payload codec when
 * security.payloadKey is set: the table is as sealed as the memo it mirrors. Tenant, state, createdAt
 * and metadata are clear, as they are in Temporal's search attributes. Rows are per Temporal
 * namespace: installs (and test stacks) may share one database.
 */
import { temporal } from '@temporalio/proto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import pg from 'pg';
import type { MemoView, SandboxState, SandboxView } from '../../core/sandbox';

const TABLE = 'tidebox_sandbox_views';
const META = 'tidebox_sandbox_views_meta';
/** pg_advisory_xact_lock key of the schema's creation (API and worker may start at once). */
const SCHEMA_LOCK = 0x7469_6462;
/** pg_try_advisory_lock key of one namespace's reconciliation (hashed with the namespace). */
const RECONCILE_LOCK = 'tidebox-sandbox-views-reconcile';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ${TABLE} (
  namespace text NOT NULL,
  id text NOT NULL,
  tenant text NOT NULL,
  state text NOT NULL,
  created_at timestamptz NOT NULL,
  metadata jsonb NOT NULL,
  view bytea NOT NULL,
  at bigint NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, id)
);
CREATE INDEX IF NOT EXISTS ${TABLE}_live ON ${TABLE} (namespace, tenant, created_at DESC, id COLLATE "C") WHERE state <> 'Terminated';
CREATE INDEX IF NOT EXISTS ${TABLE}_metadata ON ${TABLE} USING gin (metadata jsonb_path_ops) WHERE state <> 'Terminated';
CREATE TABLE IF NOT EXISTS ${META} (namespace text PRIMARY KEY, backfilled_at timestamptz NOT NULL);
`;

/** What one LIST asks of the projection (tenant absent: every tenant, for admins). */
export interface ViewQuery {
  tenant?: string;
  states: readonly SandboxState[];
  metadata: Record<string, string>;
  offset: number;
  limit: number;
}

export interface ViewStoreOptions {
  url: string;
  namespace: string;
  poolSize?: number;
  /** The payload codec (security.payloadKey): views are sealed with it. */
  codec?: PayloadCodec;
  /** Where a failed connection is reported (pg pools emit errors of idle clients). */
  onError?: (err: Error) => void;
}

/** One row as it is written: the view and the workflow time it was published at (0: a reconciliation's insert). */
export interface ViewWrite {
  view: SandboxView | MemoView;
  at: number;
}

const utf8 = new TextEncoder();

export class SandboxViewStore {
  private readonly pool: pg.Pool;
  private schema: Promise<void> | undefined;
  private backfilled = false;

  constructor(private readonly opts: ViewStoreOptions) {
    // Bounded: a database that does not answer costs a LIST 3 s (then visibility answers) and a sink
    // its wait; no statement runs longer than 15 s.
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: 3000,
      // Connections are kept: a new one costs a SCRAM handshake (tens of ms of CPU), which an idle
      // timeout would put on the first LIST after every quiet spell.
      idleTimeoutMillis: 0,
      statement_timeout: 15_000,
      query_timeout: 15_000,
    });
    // An idle client's lost connection must not crash the process; the next query reconnects.
    this.pool.on('error', (err) => opts.onError?.(err));
  }

  /**
   * Opens the connections a LIST uses (its two queries run side by side) and reads whether the table
   * is filled, so the first LIST does not pay for either. Failures are left to the first LIST.
   */
  async warm(): Promise<void> {
    const clients = await Promise.all([this.pool.connect(), this.pool.connect()]);
    for (const client of clients) client.release();
    await this.isBackfilled();
  }

  get namespace(): string {
    return this.opts.namespace;
  }

  /** Creates the table and its indexes once per process (idempotent, serialised across processes). */
  ensureSchema(): Promise<void> {
    this.schema ??= (async () => {
      const client = await this.pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
        await client.query(SCHEMA);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    })().catch((err) => {
      this.schema = undefined;
      throw err;
    });
    return this.schema;
  }

  private async seal(view: SandboxView | MemoView): Promise<Buffer> {
    let payloads: Payload[] = [{ metadata: { encoding: utf8.encode('json/plain') }, data: utf8.encode(JSON.stringify(view)) }];
    if (this.opts.codec) payloads = await this.opts.codec.encode(payloads);
    return Buffer.from(temporal.api.common.v1.Payload.encode(payloads[0]!).finish());
  }

  private async open(bytes: Buffer): Promise<MemoView> {
    let payloads: Payload[] = [temporal.api.common.v1.Payload.decode(bytes)];
    if (this.opts.codec) payloads = await this.opts.codec.decode(payloads);
    return JSON.parse(Buffer.from(payloads[0]!.data ?? []).toString('utf8')) as MemoView;
  }

  /**
   * Writes views, each only over an older one (by `at`): one statement for the batch. `onlyOver`
   * makes each a compare-and-set instead: written only where the row still has that `at` (or, for
   * `null`, where there is no row).
   */
  async write(rows: readonly ViewWrite[], onlyOver?: ReadonlyMap<string, number | null>): Promise<number> {
    if (!rows.length) return 0;
    await this.ensureSchema();
    const cols = {
      id: [] as string[],
      tenant: [] as string[],
      state: [] as string[],
      created: [] as string[],
      metadata: [] as string[],
      view: [] as Buffer[],
      at: [] as string[],
    };
    for (const { view, at } of rows) {
      cols.id.push(view.id);
      cols.tenant.push(view.tenant);
      cols.state.push(view.status.state);
      cols.created.push(view.createdAt);
      cols.metadata.push(JSON.stringify(view.metadata ?? {}));
      cols.view.push(await this.seal(view));
      cols.at.push(String(Math.trunc(at)));
    }
    const conflict = onlyOver
      ? `${TABLE}.at = (SELECT (x->>'at')::bigint FROM jsonb_array_elements($9::jsonb) x WHERE x->>'id' = ${TABLE}.id)`
      : `${TABLE}.at <= excluded.at`;
    const guard = onlyOver ? [JSON.stringify([...onlyOver].filter(([, at]) => at !== null).map(([id, at]) => ({ id, at })))] : [];
    const result = await this.pool.query(
      `INSERT INTO ${TABLE} (namespace, id, tenant, state, created_at, metadata, view, at)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::bytea[], $8::bigint[])
       ON CONFLICT (namespace, id) DO UPDATE SET tenant = excluded.tenant, state = excluded.state, created_at = excluded.created_at,
         metadata = excluded.metadata, view = excluded.view, at = excluded.at, written_at = now()
       WHERE ${conflict}`,
      [this.namespace, cols.id, cols.tenant, cols.state, cols.created, cols.metadata, cols.view, cols.at, ...guard],
    );
    return result.rowCount ?? 0;
  }

  /** Marks rows Terminated (their actors are gone), each only if it still has the `at` it was read with. */
  async tombstone(rows: ReadonlyMap<string, number>): Promise<number> {
    if (!rows.size) return 0;
    const result = await this.pool.query(
      `UPDATE ${TABLE} t SET state = 'Terminated', written_at = now()
       FROM unnest($2::text[], $3::bigint[]) AS g(id, at)
       WHERE t.namespace = $1 AND t.id = g.id AND t.at = g.at`,
      [this.namespace, [...rows.keys()], [...rows.values()].map(String)],
    );
    return result.rowCount ?? 0;
  }

  /**
   * Every live row's id, `at`, view and age (for reconciliation). A view this process cannot open (sealed
   * with another key, or written in clear before a key was set) is undefined: the row gets repaired.
   */
  async liveRows(): Promise<Map<string, { at: number; view: MemoView | undefined; ageMs: number }>> {
    await this.ensureSchema();
    const { rows } = await this.pool.query<{ id: string; at: string; view: Buffer; age_ms: number }>(
      `SELECT id, at, view, extract(epoch FROM now() - written_at) * 1000 AS age_ms FROM ${TABLE} WHERE namespace = $1 AND state <> 'Terminated'`,
      [this.namespace],
    );
    const live = new Map<string, { at: number; view: MemoView | undefined; ageMs: number }>();
    const pause = breather();
    for (const r of rows) {
      await pause();
      const view = await this.open(r.view).catch(() => undefined);
      live.set(r.id, { at: Number(r.at), view, ageMs: Number(r.age_ms) });
    }
    return live;
  }

  /** The `at` of rows by id (any state), for the ids that have one. */
  async atOf(ids: readonly string[]): Promise<Map<string, number>> {
    const { rows } = await this.pool.query<{ id: string; at: string }>(
      `SELECT id, at FROM ${TABLE} WHERE namespace = $1 AND id = ANY($2::text[])`,
      [this.namespace, ids],
    );
    return new Map(rows.map((r) => [r.id, Number(r.at)]));
  }

  /** Drops tombstones older than `olderThanMs`. */
  async purge(olderThanMs: number): Promise<number> {
    const result = await this.pool.query(
      `DELETE FROM ${TABLE} WHERE namespace = $1 AND state = 'Terminated' AND written_at < now() - make_interval(secs => $2::double precision)`,
      [this.namespace, olderThanMs / 1000],
    );
    return result.rowCount ?? 0;
  }

  async markBackfilled(): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${META} (namespace, backfilled_at) VALUES ($1, now()) ON CONFLICT (namespace) DO UPDATE SET backfilled_at = now()`,
      [this.namespace],
    );
  }

  /** Whether a full reconciliation has filled the table for this namespace (once true, stays true in this process). */
  async isBackfilled(): Promise<boolean> {
    if (this.backfilled) return true;
    await this.ensureSchema();
    const { rowCount } = await this.pool.query(`SELECT 1 FROM ${META} WHERE namespace = $1`, [this.namespace]);
    this.backfilled = (rowCount ?? 0) > 0;
    return this.backfilled;
  }

  /** One LIST page: how many match in all, and the page's views (newest first by createdAt, ties by id). */
  async list(q: ViewQuery): Promise<{ total: number; views: MemoView[] }> {
    const where = [`namespace = $1`, `state <> 'Terminated'`];
    const params: unknown[] = [this.namespace];
    const param = (v: unknown) => `$${params.push(v)}`;
    if (q.tenant !== undefined) where.push(`tenant = ${param(q.tenant)}`);
    if (q.states.length) where.push(`state = ANY(${param(q.states)}::text[])`);
    if (Object.keys(q.metadata).length) where.push(`metadata @> ${param(JSON.stringify(q.metadata))}::jsonb`);
    const clause = where.join(' AND ');
    const filterParams = [...params];
    const [count, page] = await Promise.all([
      this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${TABLE} WHERE ${clause}`, filterParams),
      this.pool.query<{ view: Buffer }>(
        `SELECT view FROM ${TABLE} WHERE ${clause} ORDER BY created_at DESC, id COLLATE "C" ASC LIMIT ${param(q.limit)} OFFSET ${param(q.offset)}`,
        params,
      ),
    ]);
    return { total: Number(count.rows[0]?.n ?? 0), views: await Promise.all(page.rows.map((r) => this.open(r.view))) };
  }

  /**
   * Runs `fn` while holding this namespace's reconciliation lock on one connection, or returns
   * undefined at once when another process holds it.
   */
  async exclusively<T>(fn: () => Promise<T>): Promise<T | undefined> {
    const client = await this.pool.connect();
    const key = [RECONCILE_LOCK, this.namespace].join('/');
    try {
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS locked', [key]);
      if (!rows[0]?.locked) return undefined;
      try {
        return await fn();
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtext($1))', [key]);
      }
    } finally {
      client.release();
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

/**
 * A loop over thousands of rows or memos decodes each through awaited promises, which never let the
 * event loop turn: in the worker that held up activities and the view writes of every workflow task
 * for as long as the loop ran (a reconciliation at 10,000 live: 2.4 s). Awaiting the returned
 * function on each turn of such a loop gives the event loop its turn every `every` items.
 */
export function breather(every = 200): () => Promise<void> {
  let n = 0;
  return () => (++n % every === 0 ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve());
}
