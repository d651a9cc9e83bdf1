// The read projection (platform/sandbox-views.ts) on the real cluster's PostgreSQL: what LIST reads,
// how it is written, sealed and kept true. Noop runtime (the actor path without containers).
import '../../helpers/use-temporal-cluster';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { stringify } from 'smol-toml';
import { sandboxWorkflowId } from '../../../core/sandbox';
import { SandboxViewStore } from '../../../platform/sandbox-views';
import { sandboxRequest, Stack, waitFor } from '../../helpers/stack';

const KEY_A = 'views-tenant-a-key-0123456789';
const KEY_B = 'views-tenant-b-key-0123456789';
const ADMIN = 'views-admin-key-0123456789abc';
const dir = mkdtempSync(join(tmpdir(), 'tidebox-views-'));
const tenantsFile = join(dir, 'tenants.toml');
writeFileSync(
  tenantsFile,
  stringify({
    tenants: [
      { name: 'acme', namespace: 'views-acme', apiKeys: [KEY_A] },
      { name: 'globex', namespace: 'views-globex', apiKeys: [KEY_B] },
    ],
  }),
);

let stack: Stack;
let db: pg.Client;
beforeAll(async () => {
  stack = await Stack.start({
    config: {
      runtime: { type: 'noop' },
      tenants: { provider: 'file', file: tenantsFile, adminKeys: [ADMIN] },
      security: { payloadKey: randomBytes(32).toString('base64') },
      views: { reconcileIntervalSeconds: 5, reconcileGraceSeconds: 1 },
    },
  });
  db = new pg.Client({ connectionString: stack.viewsUrl });
  await db.connect();
  // The worker's first reconciliation marks the namespace filled; until then LIST reads visibility.
  await waitFor(
    'the first reconciliation',
    async () => (await db.query('SELECT 1 FROM tidebox_sandbox_views_meta WHERE namespace = $1', [stack.namespace])).rowCount === 1,
    30_000,
    100,
  );
});
afterAll(async () => {
  await db?.end();
  await stack?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const as = (key: string) => (method: string, path: string, body?: unknown) =>
  stack.request(method, path, body, { 'OPEN-SANDBOX-API-KEY': key });
const A = as(KEY_A);
const B = as(KEY_B);
const admin = as(ADMIN);
const listIds = async (call: typeof A, query: string) => {
  const res = await call('GET', `/v1/sandboxes?${query}`);
  expect(res.status).toBe(200);
  return { ids: (res.body.items as Array<{ id: string }>).map((s) => s.id), total: res.body.pagination.totalItems as number };
};
const row = async (id: string) =>
  (
    await db.query<{ state: string; view: Buffer; at: string }>(
      'SELECT state, view, at FROM tidebox_sandbox_views WHERE namespace = $1 AND id = $2',
      [stack.namespace, id],
    )
  ).rows[0];
const running = async (call: typeof A, metadata: Record<string, string>, entrypoint?: string[]) => {
  const created = await call('POST', '/v1/sandboxes', sandboxRequest({ metadata, ...(entrypoint ? { entrypoint } : {}) }));
  expect(created.status).toBe(202);
  const id = created.body.id as string;
  await waitFor('Running', async () => (await call('GET', `/v1/sandboxes/${id}`)).body.status?.state === 'Running', 20_000, 50);
  return id;
};

describe('the read projection', () => {
  it('when sandboxes change, then LIST shows each change as soon as the change is answered, per tenant, from a table that holds views sealed', async () => {
    const probe = 'views-sealed-probe-7f3a';
    const a = [
      await running(A, { group: 'views' }, ['sleep', probe]),
      await running(A, { group: 'views' }),
      await running(A, { group: 'other' }),
    ];
    const b = await running(B, { group: 'views' });

    // No waiting: the Running transition's view was written before the task that made it completed.
    expect(await listIds(A, 'metadata=group%3Dviews')).toEqual({ ids: [a[1], a[0]], total: 2 });
    expect(await listIds(A, 'state=Running&pageSize=1&page=2')).toEqual({ ids: [a[1]], total: 3 });
    expect(await listIds(B, 'metadata=group%3Dviews')).toEqual({ ids: [b], total: 1 });
    expect((await listIds(admin, 'metadata=group%3Dviews')).ids).toEqual([b, a[1], a[0]]);
    expect(await listIds(admin, 'tenant=globex')).toEqual({ ids: [b], total: 1 });

    // Sealed with the payload key like the memo: the entrypoint is not in the table in clear.
    const sealed = await row(a[0]!);
    expect(sealed?.state).toBe('Running');
    expect(sealed!.view.includes(Buffer.from(probe))).toBe(false);
    expect(sealed!.view.includes(Buffer.from('binary/encrypted'))).toBe(true);

    expect((await A('POST', `/v1/sandboxes/${a[1]}/pause`)).status).toBe(202);
    await waitFor('Paused', async () => (await A('GET', `/v1/sandboxes/${a[1]}`)).body.status?.state === 'Paused', 20_000, 50);
    expect(await listIds(A, 'state=Paused')).toEqual({ ids: [a[1]], total: 1 });
    expect((await A('PATCH', `/v1/sandboxes/${a[2]}/metadata`, { group: 'views' })).status).toBe(200);
    expect((await listIds(A, 'metadata=group%3Dviews')).ids).toEqual([a[2], a[1], a[0]]);

    // A delete answered 204 has reached Terminated: the next LIST has it no more.
    expect((await A('DELETE', `/v1/sandboxes/${a[0]}`)).status).toBe(204);
    expect((await listIds(A, 'metadata=group%3Dviews')).ids).toEqual([a[2], a[1]]);
    expect((await row(a[0]!))?.state).toBe('Terminated');
    for (const id of [a[1], a[2]]) expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect((await B('DELETE', `/v1/sandboxes/${b}`)).status).toBe(204);
    // Every answer above came from the table, none from the fallback.
    expect(readFileSync(join(stack.dataDir, 'api.log'), 'utf8')).not.toContain('sandbox views');
  });

  it('when a row is lost, an actor is terminated by hand, or a stale write arrives, then LIST shows the projection and the reconciliation brings it back to the actors', async () => {
    const kept = await running(A, { group: 'repair' });
    const terminated = await running(A, { group: 'repair' });
    // LIST reads the table: a lost row (a write that never came) is missing from it...
    await db.query('DELETE FROM tidebox_sandbox_views WHERE namespace = $1 AND id = $2', [stack.namespace, kept]);
    expect(await listIds(A, 'metadata=group%3Drepair')).toEqual({ ids: [terminated], total: 1 });
    // ...until the reconciliation (every 5 s here) puts it back from the actor.
    await waitFor('the lost row back', async () => (await listIds(A, 'metadata=group%3Drepair')).total === 2, 30_000, 250);

    // A write older than the row's (a slow worker's) changes nothing.
    const store = new SandboxViewStore({ url: stack.viewsUrl!, namespace: stack.namespace });
    try {
      const current = await row(kept);
      const stale = { id: kept, tenant: 'acme', createdAt: new Date().toISOString(), metadata: {}, status: { state: 'Paused' } };
      expect(await store.write([{ view: stale as never, at: Number(current!.at) - 1 }])).toBe(0);
      expect((await row(kept))?.state).toBe('Running');
    } finally {
      await store.close();
    }

    // An operator's terminate publishes no last view: the reconciliation finds the actor gone.
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      await new Client({ connection, namespace: stack.namespace }).workflow.getHandle(sandboxWorkflowId(terminated)).terminate('by hand');
    } finally {
      await connection.close();
    }
    expect((await listIds(A, 'metadata=group%3Drepair')).total).toBe(2);
    await waitFor(
      'the terminated actor gone from LIST',
      async () => (await listIds(A, 'metadata=group%3Drepair')).total === 1,
      30_000,
      250,
    );
    expect((await row(terminated))?.state).toBe('Terminated');
    expect((await A('DELETE', `/v1/sandboxes/${kept}`)).status).toBe(204);
  });

  it('when the database is unreachable, then LIST answers from visibility', async () => {
    const id = await running(A, { group: 'fallback' });
    await waitFor('visibility to list it', async () => (await listIds(A, 'metadata=group%3Dfallback')).total === 1, 20_000, 100);
    // An API that cannot reach the table (nothing listens on port 1) can only answer from visibility.
    const replica = await stack.startApiReplica('api-no-views', { TIDEBOX_VIEWS_POSTGRES_URL: stack.viewsUrl!.replace(/:\d+\//, ':1/') });
    try {
      const res = await stack.requestTo(replica.baseUrl, 'GET', '/v1/sandboxes?metadata=group%3Dfallback', undefined, {
        'OPEN-SANDBOX-API-KEY': KEY_A,
      });
      expect([res.status, res.body.items.map((s: { id: string }) => s.id)]).toEqual([200, [id]]);
      expect(readFileSync(join(stack.dataDir, 'api-no-views.log'), 'utf8')).toContain('sandbox views');
    } finally {
      await replica.process.stop();
    }
    expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});
