import { Client, Connection, ScheduleNotFoundError } from '@temporalio/client';
import { failedSandbox, sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * Renew schedules are Temporal Schedules (`renew/<sandboxId>`) that start a short workflow which
 * renews through the sandbox actor; they outlive every Tidebox process and go when the sandbox goes.
 */
let stack: Stack;
let temporal: Client;
let connection: Connection;

beforeAll(async () => {
  stack = await Stack.start();
  connection = await Connection.connect({ address: stack.temporal.address });
  temporal = new Client({ connection, namespace: stack.namespace });
});
afterAll(async () => {
  await connection?.close();
  await stack?.destroy();
});

const expiresAtOf = async (id: string): Promise<number> => Date.parse((await stack.request('GET', `/v1/sandboxes/${id}`)).body.expiresAt);
const scheduleExists = async (id: string) => {
  try {
    await temporal.schedule.getHandle(`renew/${id}`).describe();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
};

describe('renew schedules', () => {
  it('when a short-lived sandbox has a renew schedule, then it outlives several original deadlines, across process restarts, and the schedule goes with the sandbox', async () => {
    // 5 s of life; renewals every second push expiry 15 s ahead (room for a loaded CI machine and
    // for the restart below, where no worker runs for a few seconds).
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 5 }));
    const id: string = created.body.id;
    const firstDeadline = Date.parse(created.body.expiresAt);

    const put = await stack.request('PUT', `/v1/sandboxes/${id}/renew-schedule`, { intervalSeconds: 1, extendBySeconds: 15 });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ scheduleId: `renew/${id}`, intervalSeconds: 1, extendBySeconds: 15 });

    // Three original lifetimes after creation it is still running, and the schedule did the renewing.
    await waitFor('three original lifetimes', () => Date.now() > firstDeadline + 10_000, 20_000, 100);
    expect((await stack.request('GET', `/v1/sandboxes/${id}`)).body.status.state).toBe('Running');
    expect(await expiresAtOf(id)).toBeGreaterThan(Date.now());
    const events = (await stack.request('GET', `/v1/sandboxes/${id}/events`)).body.events;
    expect(events.at(-1)).toMatchObject({ actor: 'schedule', reason: 'renewed', state: 'Running' });
    const described = await stack.request('GET', `/v1/sandboxes/${id}/renew-schedule`);
    expect(described.body.runs).toBeGreaterThanOrEqual(3);
    expect((await stack.request('GET', `/v1/workflows/${described.body.lastRunWorkflowId}`)).body).toMatchObject({ type: 'renewWorkflow' });

    // Kill every Tidebox process, bring them back: the schedule keeps firing.
    await Promise.all([stack.worker.kill(), stack.api.kill()]);
    stack.startWorker();
    await stack.startApi();
    const afterRestart = await expiresAtOf(id);
    const runsAfterRestart: number = (await stack.request('GET', `/v1/sandboxes/${id}/renew-schedule`)).body.runs;
    await waitFor('a renewal after the restart', async () => (await expiresAtOf(id)) > afterRestart + 1500, 20_000, 200);
    expect((await stack.request('GET', `/v1/sandboxes/${id}/renew-schedule`)).body.runs).toBeGreaterThan(runsAfterRestart);

    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await scheduleExists(id)).toBe(false);
  });

  it('when a sandbox never had a renew schedule, then its teardown does not look for one; when it had one, the teardown deletes it', async () => {
    const scheduledActivities = async (id: string) =>
      ((await temporal.workflow.getHandle(`sandbox/${id}`).fetchHistory()).events ?? []).flatMap(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? [],
      );
    const [plain, scheduled] = await Promise.all([1, 2].map(() => stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 60 }))));
    const [a, b] = [plain!.body.id as string, scheduled!.body.id as string];
    expect((await stack.request('PUT', `/v1/sandboxes/${b}/renew-schedule`, { intervalSeconds: 30, extendBySeconds: 60 })).status).toBe(
      200,
    );
    for (const id of [a, b]) expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    // Each delete answered at Terminated: the teardown's activities are in the history.
    expect(await scheduledActivities(a)).toEqual(['createAndStartContainer', 'removeContainers']);
    expect(await scheduledActivities(b)).toEqual(['createAndStartContainer', 'removeContainers', 'deleteRenewSchedule']);
    expect(await scheduleExists(b)).toBe(false);
  });

  it('when a renew schedule is deleted, then it is gone and the sandbox expires on its own', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 4 }));
    const id: string = created.body.id;
    expect((await stack.request('PUT', `/v1/sandboxes/${id}/renew-schedule`, { intervalSeconds: 1, extendBySeconds: 4 })).status).toBe(200);
    // Replacing it is allowed (PUT is idempotent); the new settings are what GET reports.
    const replaced = await stack.request('PUT', `/v1/sandboxes/${id}/renew-schedule`, { intervalSeconds: 2, extendBySeconds: 4 });
    expect(replaced.body.intervalSeconds).toBe(2);
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}/renew-schedule`)).status).toBe(204);
    expect(await scheduleExists(id)).toBe(false);
    const gone = await stack.request('GET', `/v1/sandboxes/${id}/renew-schedule`);
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe('SANDBOX::RENEW_SCHEDULE_NOT_FOUND');
    await waitFor('expiry', async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).status === 404, 20_000, 200);
  });

  it('when a schedule request is invalid, then it answers 4xx and creates nothing', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 600 }));
    const manual = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: null }));
    const id: string = created.body.id;
    for (const [body, status, code] of [
      [{ intervalSeconds: 10, extendBySeconds: 10 }, 400, 'SANDBOX::INVALID_PARAMETER'],
      [{ intervalSeconds: 0, extendBySeconds: 10 }, 400, 'SANDBOX::INVALID_PARAMETER'],
      [{ intervalSeconds: 1, extendBySeconds: 10, until: 'tomorrow' }, 400, 'SANDBOX::INVALID_PARAMETER'],
      [{ intervalSeconds: 1, extendBySeconds: 10, until: '2001-01-01T00:00:00Z' }, 400, 'SANDBOX::INVALID_PARAMETER'],
      [{ intervalSeconds: 1, extendBySeconds: 10, extra: true }, 400, 'SANDBOX::INVALID_PARAMETER'],
    ] as const) {
      const r = await stack.request('PUT', `/v1/sandboxes/${id}/renew-schedule`, body);
      expect([r.status, r.body.code]).toEqual([status, code]);
    }
    const manualPut = await stack.request('PUT', `/v1/sandboxes/${manual.body.id}/renew-schedule`, {
      intervalSeconds: 1,
      extendBySeconds: 10,
    });
    expect([manualPut.status, manualPut.body.code]).toEqual([409, 'SANDBOX::MANUAL_CLEANUP']);
    expect((await stack.request('PUT', `/v1/sandboxes/nope/renew-schedule`, { intervalSeconds: 1, extendBySeconds: 10 })).status).toBe(404);
    const failed = { body: await failedSandbox((m, p, b) => stack.request(m, p, b)) };
    expect(failed.body.status.state).toBe('Failed');
    const failedPut = await stack.request('PUT', `/v1/sandboxes/${failed.body.id}/renew-schedule`, {
      intervalSeconds: 1,
      extendBySeconds: 10,
    });
    expect([failedPut.status, failedPut.body.code]).toEqual([409, 'SANDBOX::INVALID_STATE']);
    expect(await scheduleExists(failed.body.id)).toBe(false);
    await stack.request('DELETE', `/v1/sandboxes/${failed.body.id}`);
    expect(await scheduleExists(id)).toBe(false);
    expect(await scheduleExists(manual.body.id)).toBe(false);
    await stack.request('DELETE', `/v1/sandboxes/${id}`);
    await stack.request('DELETE', `/v1/sandboxes/${manual.body.id}`);
  });
});
