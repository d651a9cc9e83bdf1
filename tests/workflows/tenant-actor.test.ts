/**
 * The tenant actor's ledger under the messages that reach it at scale, on a real Temporal dev server:
 * the real tenant workflow, and the real `releaseQuota` activity (called as a sandbox actor's local
 * activity calls it) on a client with Tidebox's retries (temporalRetryInterceptor).
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection, WithStartWorkflowOperation } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createMessagingActivities } from '../../activities/messaging';
import {
  recordSignal,
  reserveUpdate,
  TENANT_LEDGER_WORKFLOW_TYPE,
  TENANT_WORKFLOW_TYPE,
  tenantWorkflowId,
  type TenantWorkflow,
  type TenantWorkflowInput,
  usageQuery,
} from '../../contracts/tenant-actor';
import { parseConfig } from '../../core/config';
import type { Reservation } from '../../core/quotas';
import { temporalRetryInterceptor } from '../../platform/temporal-setup';
import { waitFor } from '../helpers/stack';
import { bundleQuietly, startWorkflowEnv } from '../helpers/workflow-env';

const TASK_QUEUE = 'tenant-actor-test';
/** Low enough that a few dozen messages make the server suggest a continue-as-new. */
const SUGGEST_CONTINUE_AS_NEW_AT = 60;

let env: TestWorkflowEnvironment;
let workers: Worker[] = [];
let running: Promise<unknown>;
let connection: Connection;
let releaseQuota: ReturnType<typeof createMessagingActivities>['releaseQuota'];

beforeAll(async () => {
  env = await startWorkflowEnv({ suggestContinueAsNewAt: SUGGEST_CONTINUE_AS_NEW_AT });
  connection = await Connection.connect({ address: env.address, interceptors: [temporalRetryInterceptor()] });
  const client = new Client({ connection });
  releaseQuota = createMessagingActivities({ client, config: parseConfig({}) }).releaseQuota;
  const common = { connection: env.nativeConnection, namespace: 'default' };
  const bundle = (path: string) => bundleQuietly(require.resolve(path));
  workers = [await Worker.create({ ...common, taskQueue: TASK_QUEUE, workflowBundle: await bundle('../../workflows'), activities: {} })];
  running = Promise.all(workers.map((w) => w.run()));
}, 120_000);

afterAll(async () => {
  for (const w of workers) w.shutdown();
  await running?.catch(() => undefined);
  await connection?.close();
  await env?.teardown();
});

/** Every run of one workflow id, oldest first, with its history. */
async function runsOf(workflowId: string) {
  const runs = [];
  for await (const w of env.client.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
    runs.push({
      runId: w.runId,
      start: w.startTime.getTime(),
      history: await env.client.workflow.getHandle(workflowId, w.runId).fetchHistory(),
    });
  return runs.sort((a, b) => a.start - b.start);
}

describe('the tenant actor', () => {
  it('when 60 sandboxes give their shares back at once while it continues as new, then every share comes back, and the API still reaches its later runs', async () => {
    const tenant = `acme-${randomUUID().slice(0, 8)}`;
    const handle = await env.client.workflow.start<TenantWorkflow>('tenantWorkflow', {
      workflowId: tenantWorkflowId(tenant),
      taskQueue: TASK_QUEUE,
      args: [{ tenant, check: { graceSeconds: 3600, intervalSeconds: 3600 } }],
    });
    const ids = Array.from({ length: 60 }, () => randomUUID()); // packed 16 bytes each as runs carry them
    for (let i = 0; i < ids.length; i += 5)
      await Promise.all(
        ids.slice(i, i + 5).map((sandboxId) =>
          handle.executeUpdate(reserveUpdate, {
            args: [{ sandboxId, reservation: { cpuMillis: 500, memoryBytes: 2 ** 28 }, limits: { maxSandboxes: 100 } }],
          }),
        ),
      );
    expect(await handle.query(usageQuery)).toEqual({ sandboxes: 60, cpuMillis: 30_000, memoryBytes: 60 * 2 ** 28, snapshots: 0, pools: 0 });

    // All at once, as sandbox actors' teardowns send them, over several runs: a release that reaches
    // a run continuing as new fails that task (the server then refuses messages until the next one).
    await Promise.all(ids.map((key) => releaseQuota({ tenant, key })));
    await waitFor('every share back', async () => (await handle.query(usageQuery)).sandboxes === 0, 20_000, 50);
    expect(await handle.query(usageQuery)).toEqual({ sandboxes: 0, cpuMillis: 0, memoryBytes: 0, snapshots: 0, pools: 0 });

    const runs = await runsOf(handle.workflowId);
    expect(runs.length).toBeGreaterThanOrEqual(3);
    // Every run after the first carries the ledger packed, under the name older workers do not run.
    const types = runs.map(({ history }) => history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name);
    expect(types).toEqual([TENANT_WORKFLOW_TYPE, ...runs.slice(1).map(() => TENANT_LEDGER_WORKFLOW_TYPE)]);
    const released = runs.flatMap(({ history }) =>
      (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'release'),
    );
    expect(released).toHaveLength(60);

    // The API reaches the actor by id with its first type, as it starts it: a run of the ledger type takes both.
    const start = { workflowId: handle.workflowId, taskQueue: TASK_QUEUE, args: [{ tenant }] as [TenantWorkflowInput] };
    const reserved = await env.client.workflow.executeUpdateWithStart(reserveUpdate, {
      args: [{ sandboxId: randomUUID(), reservation: { cpuMillis: 500, memoryBytes: 2 ** 28 }, limits: { maxSandboxes: 100 } }],
      startWorkflowOperation: new WithStartWorkflowOperation<TenantWorkflow>(TENANT_WORKFLOW_TYPE, {
        ...start,
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });
    expect(reserved).toMatchObject({ admitted: true, usage: { sandboxes: 1 } });
    await env.client.workflow.signalWithStart<TenantWorkflow, [{ sandboxId: string; reservation: Reservation }]>(TENANT_WORKFLOW_TYPE, {
      ...start,
      signal: recordSignal,
      signalArgs: [{ sandboxId: randomUUID(), reservation: { cpuMillis: 500, memoryBytes: 2 ** 28 } }],
    });
    await waitFor('the recorded share', async () => (await handle.query(usageQuery)).sandboxes === 2, 10_000, 50);
    expect((await runsOf(handle.workflowId)).length).toBe(runs.length); // the same run took them: no second actor
  }, 120_000);

  it('when a run continued before the ledger was packed carries its reservations by key, then it reads them', async () => {
    const tenant = `globex-${randomUUID().slice(0, 8)}`;
    const at = new Date().toISOString();
    const handle = await env.client.workflow.start<TenantWorkflow>('tenantWorkflow', {
      workflowId: tenantWorkflowId(tenant),
      taskQueue: TASK_QUEUE,
      args: [
        {
          tenant,
          check: { graceSeconds: 3600, intervalSeconds: 3600 },
          carried: {
            reservations: {
              [randomUUID()]: { cpuMillis: 1000, memoryBytes: 2 ** 30, at },
              'snapshot:s1': { kind: 'snapshot', cpuMillis: 0, memoryBytes: 0, at },
            },
          },
        },
      ],
    });
    expect(await handle.query(usageQuery)).toEqual({ sandboxes: 1, cpuMillis: 1000, memoryBytes: 2 ** 30, snapshots: 1, pools: 0 });
    await handle.terminate();
  });

  it('when the tenant actor does not exist, then a release is done', async () => {
    await expect(releaseQuota({ tenant: `nobody-${randomUUID().slice(0, 8)}`, key: 'sb-1' })).resolves.toBeUndefined();
  });
});
