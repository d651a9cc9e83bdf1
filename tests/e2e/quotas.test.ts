import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { Client, Connection } from '@temporalio/client';
import { reserveUpdate, tenantWorkflowId } from '../../contracts/tenant-actor';
import { poolReservation, poolReservationKey } from '../../core/quotas';
import { sandboxWorkflowId } from '../../core/sandbox';
import { failedSandbox, sandboxRequest, Stack, TEST_IMAGE, waitFor } from '../helpers/stack';

/**
 * Per-tenant quotas on the real pieces: the tenant actor admits or refuses each create atomically,
 * sandboxes give their share back however they end, and nothing is lost or leaked across crashes.
 */
const KEY_A = 'acme-quota-key-0123456789';
const KEY_B = 'globex-quota-key-0123456789';
const KEY_C = 'initech-quota-key-0123456789';
const ADMIN = 'admin-quota-key-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'tidebox-test-quotas-'));
const tenantsFile = join(dir, 'tenants.toml');

type Entry = { name: string; namespace: string; apiKeys: string[]; quotas?: Record<string, unknown> };
const acme = (maxSandboxes: number): Entry => ({ name: 'acme', namespace: 'acme', apiKeys: [KEY_A], quotas: { maxSandboxes } });
const globex: Entry = {
  name: 'globex',
  namespace: 'globex',
  apiKeys: [KEY_B],
  quotas: { maxSandboxCpu: '500m', maxCpu: '1', allowManualCleanup: false, maxTimeoutSeconds: 600 },
};
const initech: Entry = { name: 'initech', namespace: 'initech', apiKeys: [KEY_C] };
function writeTenants(entries: Entry[]): void {
  writeFileSync(`${tenantsFile}.tmp`, stringify({ tenants: entries }));
  renameSync(`${tenantsFile}.tmp`, tenantsFile);
}

let stack: Stack;
beforeAll(async () => {
  writeTenants([acme(10), globex, initech]);
  stack = await Stack.start({
    // Temporal admits few Updates in flight per workflow: lowered here to what one API process sends
    // (quotaReservationsInFlight), so a process that sent more would be told to back off and time out.
    temporalDynamicConfig: { 'history.maxInFlightUpdates': 4 },
    config: {
      tenants: { provider: 'file', file: tenantsFile, adminKeys: [ADMIN], pollSeconds: 1 },
      // initech has no quotas of its own: these defaults apply.
      quotas: { maxSandboxes: 3, maxSnapshots: 1 },
      server: { quotaCheckGraceSeconds: 3, quotaCheckIntervalSeconds: 1 },
      pools: { maxPerTenant: 2 },
    },
  });
});
afterAll(async () => {
  await stack?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const as = (key: string) => (method: string, path: string, body?: unknown) => stack.as(key)(method, path, body);
const A = as(KEY_A);
const B = as(KEY_B);
const C = as(KEY_C);
const admin = as(ADMIN);
const live = async (req: typeof A) =>
  ((await req('GET', '/v1/sandboxes?pageSize=200')).body.items as Array<{ id: string }>).map((s) => s.id);
const usage = async (req: typeof A) => (await req('GET', '/v1/tenants/me/usage')).body;
async function deleteAll(req: typeof A): Promise<void> {
  await Promise.all((await live(req)).map((id) => req('DELETE', `/v1/sandboxes/${id}`)));
}

describe('maxSandboxes', () => {
  afterAll(() => deleteAll(A));

  it('when 50 creates race for 10 places, then exactly 10 are admitted, 40 get 429, and never 11 live; after 3 deletes exactly 3 more fit', async () => {
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        most = Math.max(most, (await stack.containers()).length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const answers = await Promise.all(Array.from({ length: 50 }, () => A('POST', '/v1/sandboxes', sandboxRequest())));
    sampling = false;
    await sampler;
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s !== 202 && s !== 429)).toEqual([]);
    expect(statuses.filter((s) => s === 202)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(40);
    const refused = answers.find((r) => r.status === 429)!.body;
    expect(refused).toEqual({ code: 'SANDBOX::QUOTA_EXCEEDED', message: 'quota exceeded: maxSandboxes is 10 and 10 are live' });
    expect(most).toBeLessThanOrEqual(10);
    expect(await live(A)).toHaveLength(10);
    expect(await usage(A)).toEqual({
      tenant: 'acme',
      limits: { maxSandboxes: 10, maxSnapshots: 1, maxPools: 2 },
      usage: { sandboxes: 10, cpu: '2500m', memory: '640Mi', snapshots: 0, pools: 0 },
    });

    const admitted = answers.filter((r) => r.status === 202).map((r) => r.body.id as string);
    for (const id of admitted.slice(0, 3)) expect((await A('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    const again = await Promise.all(Array.from({ length: 10 }, () => A('POST', '/v1/sandboxes', sandboxRequest())));
    expect(again.map((r) => r.status).sort()).toEqual([...Array(3).fill(202), ...Array(7).fill(429)]);
    expect((await usage(A)).usage.sandboxes).toBe(10);
  }, 180_000);

  it("when Prometheus scrapes, then each tenant's usage and refusals are there", async () => {
    const metrics = (await stack.request('GET', '/metrics')).body as string;
    expect(metrics).toContain('tidebox_quota_usage{tenant="acme",resource="sandboxes"} 10');
    expect(metrics).toContain('tidebox_quota_usage{tenant="acme",resource="cpu_millis"} 2500');
    expect(metrics).toMatch(/tidebox_quota_refusals\{tenant="acme"\} 47\b/);
  });

  it('when the tenants file raises the limit, then the new limit applies to the next create', async () => {
    writeTenants([acme(11), globex, initech]);
    await waitFor('the new limit', async () => (await A('POST', '/v1/sandboxes', sandboxRequest())).status === 202, 10_000, 250);
    expect((await A('POST', '/v1/sandboxes', sandboxRequest())).status).toBe(429);
    expect((await usage(A)).limits).toEqual({ maxSandboxes: 11, maxSnapshots: 1, maxPools: 2 });
    writeTenants([acme(10), globex, initech]);
  });

  it('when a tenant has no quota of its own, then [quotas] applies', async () => {
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await C('POST', '/v1/sandboxes', sandboxRequest())).status);
    expect(answers).toEqual([202, 202, 202, 429]);
    await deleteAll(C);
  });
});

describe('maxSnapshots', () => {
  afterAll(() => deleteAll(C));

  it('when a tenant holds maxSnapshots, then another snapshot gets 429; deleting one makes room', async () => {
    const id = (await C('POST', '/v1/sandboxes', sandboxRequest())).body.id as string;
    const first = await C('POST', `/v1/sandboxes/${id}/snapshots`, {});
    expect(first.status).toBe(202);
    const second = await C('POST', `/v1/sandboxes/${id}/snapshots`, {});
    expect(second.status).toBe(429);
    expect(second.body.message).toBe('quota exceeded: maxSnapshots is 1 and 1 exist');
    expect((await usage(C)).usage.snapshots).toBe(1);
    await waitFor(
      'the snapshot Ready',
      async () => (await C('GET', `/v1/snapshots/${first.body.id}`)).body.status.state === 'Ready',
      60_000,
      250,
    );
    expect((await C('DELETE', `/v1/snapshots/${first.body.id}`)).status).toBe(204);
    expect((await usage(C)).usage.snapshots).toBe(0);
    const third = await C('POST', `/v1/sandboxes/${id}/snapshots`, {});
    expect(third.status).toBe(202);
    await waitFor(
      'the snapshot Ready',
      async () => (await C('GET', `/v1/snapshots/${third.body.id}`)).body.status.state === 'Ready',
      60_000,
      250,
    );
    expect((await C('DELETE', `/v1/snapshots/${third.body.id}`)).status).toBe(204);
  });
});

describe('usage', () => {
  it("when an admin asks, then it sees any tenant's usage; a tenant sees only its own", async () => {
    const a = await A('GET', '/v1/tenants/acme/usage');
    expect(a.status).toBe(200);
    expect((await admin('GET', '/v1/tenants/acme/usage')).body).toMatchObject({ tenant: 'acme', usage: a.body.usage });
    expect((await B('GET', '/v1/tenants/acme/usage')).status).toBe(404);
    expect((await admin('GET', '/v1/tenants/me/usage')).status).toBe(403);
    expect((await admin('GET', '/v1/tenants/nobody/usage')).body).toEqual({
      tenant: 'nobody',
      limits: {},
      usage: { sandboxes: 0, cpu: '0', memory: '0', snapshots: 0, pools: 0 },
    });
  });
});

describe('per-sandbox maxima and cpu sums', () => {
  afterAll(() => deleteAll(B));

  it.each([
    [
      'cpu above maxSandboxCpu',
      { resourceLimits: { cpu: '1', memory: '64Mi' } },
      "resourceLimits.cpu 1 is above this tenant's maxSandboxCpu 500m",
    ],
    ['timeout null without allowManualCleanup', { timeout: null }, 'timeout null (manual cleanup) is not allowed for this tenant'],
    ['timeout above maxTimeoutSeconds', { timeout: 601 }, "timeout 601 is above this tenant's maxTimeoutSeconds 600"],
  ])('when a create asks for %s, then 400 naming the limit and nothing is created', async (_what, overrides, message) => {
    const r = await B('POST', '/v1/sandboxes', sandboxRequest(overrides));
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('SANDBOX::INVALID_PARAMETER');
    expect(r.body.message).toContain(message);
    expect(await live(B)).toEqual([]);
  });

  it('when the live sandboxes would hold more than maxCpu, then 429 naming it and the usage', async () => {
    const half = sandboxRequest({ resourceLimits: { cpu: '500m', memory: '64Mi' } });
    expect((await B('POST', '/v1/sandboxes', half)).status).toBe(202);
    expect((await B('POST', '/v1/sandboxes', half)).status).toBe(202);
    const third = await B('POST', '/v1/sandboxes', sandboxRequest({ resourceLimits: { cpu: '100m', memory: '64Mi' } }));
    expect(third.status).toBe(429);
    expect(third.body.message).toBe('quota exceeded: maxCpu is 1; live sandboxes hold 1 and this one asks for 100m');
  });
});

describe('warm pools hold quota', () => {
  const template = { image: { uri: TEST_IMAGE }, entrypoint: ['tail', '-f', '/dev/null'], resourceLimits: { cpu: '250m', memory: '64Mi' } };
  /** A pool that makes no member until asked: what it reserves does not depend on members existing. */
  const pool = (name: string, poolMax: number) => ({ name, template, capacitySpec: { bufferMin: 0, bufferMax: 0, poolMin: 0, poolMax } });
  const pools = async (req: typeof A) => ((await req('GET', '/v1/pools')).body.items as Array<{ name: string }>).map((p) => p.name);
  async function deletePools(req: typeof A): Promise<void> {
    await Promise.all((await pools(req)).map((name) => req('DELETE', `/v1/pools/${name}`)));
    await waitFor('the pools to end and give their shares back', async () => (await usage(req)).usage.pools === 0, 20_000, 250);
  }
  afterAll(async () => {
    await deletePools(C);
    await deletePools(A);
    await deleteAll(C);
  });

  it('when a pool is made, resized or deleted, then it holds poolMax sandboxes of the quota, judged like a create', async () => {
    // initech: maxSandboxes 3 (the [quotas] default).
    expect((await C('POST', '/v1/pools', pool('two', 2))).status).toBe(201);
    expect((await usage(C)).usage).toEqual({ sandboxes: 2, cpu: '500m', memory: '128Mi', snapshots: 0, pools: 1 });
    const over = await C('POST', '/v1/pools', pool('more', 2));
    expect(over.status).toBe(429);
    expect(over.body).toEqual({
      code: 'SANDBOX::QUOTA_EXCEEDED',
      message: 'quota exceeded: maxSandboxes is 3; live sandboxes and pools hold 2 and this pool may hold 2 (poolMax)',
    });
    expect((await C('GET', '/v1/pools/more')).status).toBe(404);
    // The same name again: 409 (not 429, though it would not fit), and the usage stays as it was.
    expect((await C('POST', '/v1/pools', pool('two', 2))).status).toBe(409);
    await waitFor('the refused pool to give its share back', async () => (await usage(C)).usage.sandboxes === 2, 10_000, 100);
    expect((await usage(C)).usage.pools).toBe(1);

    // One place is left for sandboxes, pooled or not.
    expect((await C('POST', '/v1/sandboxes', sandboxRequest())).status).toBe(202);
    const full = await C('POST', '/v1/sandboxes', sandboxRequest());
    expect(full.status).toBe(429);
    expect(full.body.message).toBe('quota exceeded: maxSandboxes is 3 and 3 are live or held by pools');

    // Growing is judged in place of the old size: refused, the pool stays as it was.
    const grow = await C('PUT', '/v1/pools/two', { template, capacitySpec: { bufferMin: 0, bufferMax: 0, poolMin: 0, poolMax: 3 } });
    expect(grow.status).toBe(429);
    expect((await C('GET', '/v1/pools/two')).body.capacitySpec.poolMax).toBe(2);
    const shrink = await C('PUT', '/v1/pools/two', { template, capacitySpec: { bufferMin: 0, bufferMax: 0, poolMin: 0, poolMax: 1 } });
    expect(shrink.status).toBe(200);
    expect((await usage(C)).usage).toMatchObject({ sandboxes: 2, pools: 1 });

    // PUTs racing each other: whatever order they land in, the share is the size the pool has.
    const sizes = [1, 2, 1, 2, 1, 2];
    const raced = await Promise.all(
      sizes.map((poolMax) => C('PUT', '/v1/pools/two', { template, capacitySpec: { bufferMin: 0, bufferMax: 0, poolMin: 0, poolMax } })),
    );
    expect(raced.map((r) => r.status)).toEqual(Array(6).fill(200));
    const final = (await C('GET', '/v1/pools/two')).body.capacitySpec.poolMax;
    expect((await usage(C)).usage.sandboxes).toBe(1 + final);

    // Deleted: its share comes back when its actor ends.
    expect((await C('DELETE', '/v1/pools/two')).status).toBe(204);
    await waitFor('the pool to give its share back', async () => (await usage(C)).usage.pools === 0, 20_000, 250);
    expect((await usage(C)).usage.sandboxes).toBe(1);
  }, 60_000);

  it('when two creates of one name race, then one pool is made and the loser gives back only its own share', async () => {
    // globex refuses sandboxes that never expire: its template says when.
    const body = { ...pool('dup', 1), template: { ...template, timeout: 300 } };
    // Two at once (a third could meet maxPools 2 while the loser's share is still held: 429 then).
    const answers = await Promise.all([1, 2].map(() => B('POST', '/v1/pools', body)));
    expect(answers.map((r) => r.status).sort()).toEqual([201, 409]);
    await waitFor('the loser to give its share back', async () => (await usage(B)).usage.cpu === '250m', 10_000, 100);
    expect((await usage(B)).usage).toMatchObject({ pools: 1, sandboxes: 1 });
    expect((await B('DELETE', '/v1/pools/dup')).status).toBe(204);
    await waitFor('the pool to give its share back', async () => (await usage(B)).usage.pools === 0, 20_000, 250);
    expect((await usage(B)).usage.cpu).toBe('0');
  }, 60_000);

  it('when 5 pools are made at once against pools.maxPerTenant 2, then exactly 2 are made and 3 get 429 naming maxPools', async () => {
    const answers = await Promise.all(['p1', 'p2', 'p3', 'p4', 'p5'].map((name) => A('POST', '/v1/pools', pool(name, 1))));
    expect(answers.map((r) => r.status).sort()).toEqual([201, 201, 429, 429, 429]);
    expect(answers.find((r) => r.status === 429)!.body.message).toBe('quota exceeded: maxPools is 2 and 2 exist');
    // The quota actor's count is authoritative at once; the listing reads visibility, which lags by design.
    expect((await usage(A)).usage).toMatchObject({ pools: 2, sandboxes: 2 });
    const made = answers
      .filter((r) => r.status === 201)
      .map((r) => r.body.name as string)
      .sort();
    await waitFor('the listing to show the two pools made', async () => (await pools(A)).length >= 2, 10_000, 100);
    expect(await pools(A)).toEqual(made);
  }, 60_000);
});

describe('every ending gives the share back', () => {
  afterAll(() => deleteAll(C));

  it('when a sandbox expires, or fails and is then deleted, then its share comes back', async () => {
    const failed = { body: await failedSandbox(C) };
    const short = await C('POST', '/v1/sandboxes', sandboxRequest({ timeout: 3 }));
    expect([short.body.status.state, failed.body.status.state]).toEqual(['Running', 'Failed']);
    expect((await usage(C)).usage.sandboxes).toBe(2);
    await waitFor('the expiry to give its share back', async () => (await usage(C)).usage.sandboxes === 1, 20_000, 250);
    expect((await C('DELETE', `/v1/sandboxes/${failed.body.id}`)).status).toBe(204);
    expect((await usage(C)).usage.sandboxes).toBe(0);
  });

  it('when a create crashed between reserving and starting its actor, then the tenant actor gives the share back', async () => {
    const before = (await usage(C)).usage.sandboxes;
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      // Exactly what the API sends before it starts a sandbox actor, for a sandbox that is then never started.
      const outcome = await new Client({ connection }).workflow.getHandle(tenantWorkflowId('initech')).executeUpdate(reserveUpdate, {
        args: [{ sandboxId: 'never-started', reservation: { cpuMillis: 250, memoryBytes: 64 * 2 ** 20 }, limits: {} }],
      });
      expect(outcome.admitted).toBe(true);
      // And what it sends before it starts a pool actor, for a pool that is then never started.
      const pool = await new Client({ connection }).workflow.getHandle(tenantWorkflowId('initech')).executeUpdate(reserveUpdate, {
        args: [
          {
            sandboxId: poolReservationKey('pool/initech/ghost', 'never-started'),
            reservation: poolReservation({ cpuMillis: 250, memoryBytes: 0 }, 1),
            limits: {},
          },
        ],
      });
      expect(pool.admitted).toBe(true);
    } finally {
      await connection.close();
    }
    expect((await usage(C)).usage.sandboxes).toBe(before + 2);
    await waitFor('the orphan reservations to be given back', async () => (await usage(C)).usage.sandboxes === before, 20_000, 250);
  });

  it('when an operator terminates a live sandbox actor, then the tenant actor finds it closed and gives its share back, and the orphan sweep removes its container', async () => {
    const before = (await usage(C)).usage.sandboxes;
    const created = await C('POST', '/v1/sandboxes', sandboxRequest());
    expect(created.body.status.state).toBe('Running');
    const id = created.body.id as string;
    expect((await usage(C)).usage.sandboxes).toBe(before + 1);
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      // No teardown runs: nothing tells the tenant actor. Its check must find the actor closed.
      await new Client({ connection }).workflow.getHandle(sandboxWorkflowId(id)).terminate('an operator ends it by hand');
    } finally {
      await connection.close();
    }
    await waitFor("the terminated actor's share to be given back", async () => (await usage(C)).usage.sandboxes === before, 20_000, 250);
    await waitFor('its container to be swept', async () => (await stack.containers(id)).length === 0, 20_000, 250);
  });

  it('when the API and the worker are killed in the middle of a burst, then after restart the usage equals the live sandboxes', async () => {
    const burst = Promise.all(Array.from({ length: 8 }, () => A('POST', '/v1/sandboxes', sandboxRequest()).catch(() => undefined)));
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all([stack.api.kill(), stack.worker.kill()]);
    await burst;
    stack.startWorker();
    await Promise.all([stack.startApi(), stack.workerReady()]);
    // Creates the crash cut between reserving and starting their actor hold a share no actor claims:
    // the tenant actor's check gives it back (grace 3 s here); sandboxes that did start keep theirs.
    await waitFor(
      'usage to equal the live sandboxes',
      async () => {
        const [ids, u] = await Promise.all([live(A), usage(A)]);
        return u.usage.sandboxes === ids.length;
      },
      30_000,
      500,
    );
    const ids = await live(A);
    expect(ids.length).toBeLessThanOrEqual(10);
    // And the freed places are really free: fill up to the limit, then one more is refused.
    const free = 10 - ids.length;
    const fill = await Promise.all(Array.from({ length: free + 1 }, () => A('POST', '/v1/sandboxes', sandboxRequest())));
    expect(fill.filter((r) => r.status === 202)).toHaveLength(free);
    expect(fill.filter((r) => r.status === 429)).toHaveLength(1);
  }, 180_000);
});
