import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * Crash and restart tests: the worker is SIGKILLed at exact points (test-only fault points make
 * the activity record its position and hang there), the Temporal dev server is restarted on its
 * SQLite file, and the API keeps answering reads while no worker runs.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await Stack.start();
});
afterAll(async () => {
  await stack?.destroy();
});

const async = { Prefer: 'respond-async' };
const state = async (id: string) => (await stack.request('GET', `/v1/sandboxes/${id}`)).body?.status?.state;

describe('worker crashes', () => {
  it('when the worker is killed after creating the container but before recording it, then after restart exactly one container runs', async () => {
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'container-created' });
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest(), async);
    expect(created.status).toBe(202);
    expect(created.body.status.state).toBe('Pending');
    const id: string = created.body.id;

    await waitFor('the container-created fault point', () => existsSync(stack.faultFile('container-created', id)), 30_000);
    await stack.worker.kill();
    expect(await stack.containers(id)).toHaveLength(1);
    expect(await state(id)).toBe('Pending');

    stack.startWorker();
    await waitFor('Running after restart', async () => (await state(id)) === 'Running', 60_000, 200);
    const containers = await stack.containers(id);
    expect(containers).toHaveLength(1);
    expect(containers[0]!.State).toBe('running');
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it('when a sandbox is deleted while its container is being created, then the create is cancelled, the container removed, and no Failed is recorded', async () => {
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'container-created' });
    const id: string = (await stack.request('POST', '/v1/sandboxes', sandboxRequest(), async)).body.id;
    await waitFor('the container-created fault point', () => existsSync(stack.faultFile('container-created', id)), 30_000);
    expect(await stack.containers(id)).toHaveLength(1);
    // The activity hangs at the fault point until cancelled: only the cancellation can end this delete.
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect((await stack.request('GET', `/v1/sandboxes/${id}`)).status).toBe(404);
    expect(await stack.containers(id)).toEqual([]);
    const events = (await stack.request('GET', `/v1/sandboxes/${id}/events`)).body.events;
    expect(events.map((e: { state: string }) => e.state)).toEqual(['Pending', 'Stopping', 'Terminated']);
    await stack.worker.stop();
    stack.startWorker();
  });

  it('when the worker is killed while an expiry removes the container, then after restart the container is still removed', async () => {
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'container-removing' });
    // 8 s: the create also waits for the freshly started worker, which can take seconds on a busy machine.
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 8 }));
    expect(created.body.status.state).toBe('Running');
    const id: string = created.body.id;

    await waitFor('the container-removing fault point', () => existsSync(stack.faultFile('container-removing', id)), 30_000);
    await stack.worker.kill();
    expect(await stack.containers(id)).toHaveLength(1);

    stack.startWorker();
    await waitFor('container removed after restart', async () => (await stack.containers(id)).length === 0, 60_000, 200);
    await waitFor('GET 404', async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).status === 404, 10_000);
  });
});

describe('reads without a worker', () => {
  it('when the worker is stopped, then GET and LIST still answer, and a Pending create proceeds once it is back', async () => {
    const running = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ metadata: { probe: 'noworker' } }));
    expect(running.body.status.state).toBe('Running');
    await stack.worker.stop();

    const got = await stack.request('GET', `/v1/sandboxes/${running.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body.status.state).toBe('Running');
    const pending = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ metadata: { probe: 'noworker' } }), async);
    expect(pending.status).toBe(202);
    expect(pending.body.status.state).toBe('Pending');

    const listed = await waitFor('both in LIST', async () => {
      const r = await stack.request('GET', `/v1/sandboxes?metadata=${encodeURIComponent('probe=noworker')}`);
      return r.body.items.length === 2 ? r : undefined;
    });
    expect(listed.body.items.map((s: { status: { state: string } }) => s.status.state)).toEqual(['Pending', 'Running']);

    stack.startWorker();
    await waitFor('Pending → Running', async () => (await state(pending.body.id)) === 'Running', 60_000, 200);
    for (const id of [running.body.id, pending.body.id]) expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});

describe('a create that waits while no worker runs', () => {
  let short: Stack;
  beforeAll(async () => {
    short = await Stack.start({ config: { server: { createWaitSeconds: 2 } } });
  });
  afterAll(async () => {
    await short?.destroy();
  });

  it('when no worker runs, then a create (not respond-async) answers 202 Pending after its wait, and the sandbox runs once a worker is back', async () => {
    await short.worker.stop();
    const created = await short.request('POST', '/v1/sandboxes', sandboxRequest());
    expect(created.status).toBe(202);
    expect(created.body.status.state).toBe('Pending');
    const id: string = created.body.id;
    expect((await short.request('GET', `/v1/sandboxes/${id}`)).body.status.state).toBe('Pending');
    short.startWorker();
    await waitFor(
      'Pending → Running',
      async () => (await short.request('GET', `/v1/sandboxes/${id}`)).body.status.state === 'Running',
      60_000,
      200,
    );
    expect(await short.containers(id)).toHaveLength(1);
    expect((await short.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});

describe('Temporal restarts', () => {
  it('when the dev server runs, then its SQLite file is in write-ahead-log mode (and survives the restarts below as such)', () => {
    // SQLite file header bytes 18-19: 1 = rollback journal (Temporal's default), 2 = WAL.
    const header = readFileSync(join(stack.dataDir, 'temporal.db')).subarray(18, 20);
    expect([...header]).toEqual([2, 2]);
    expect(existsSync(join(stack.dataDir, 'temporal.db-wal'))).toBe(true);
  });

  it('when the dev server stops and starts on the same db file, then sandboxes keep their state and expiry', async () => {
    const manual = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: null }));
    const expiring = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 15 }));
    expect(manual.body.status.state).toBe('Running');
    expect(expiring.body.status.state).toBe('Running');

    await stack.temporal.stop();
    await stack.temporal.start();

    const manualAfter = await waitFor('GET after restart', async () => {
      const r = await stack.request('GET', `/v1/sandboxes/${manual.body.id}`);
      return r.status === 200 ? r : undefined;
    });
    expect(manualAfter.body.status.state).toBe('Running');
    const expiringAfter = await stack.request('GET', `/v1/sandboxes/${expiring.body.id}`);
    expect(expiringAfter.body).toMatchObject({ status: { state: 'Running' }, expiresAt: expiring.body.expiresAt });

    const removedAt = await waitFor(
      'expiry after the restart',
      async () => ((await stack.containers(expiring.body.id)).length === 0 ? Date.now() : undefined),
      60_000,
      50,
    );
    expect(removedAt).toBeGreaterThanOrEqual(Date.parse(expiring.body.expiresAt));
    expect(removedAt - Date.parse(expiring.body.expiresAt)).toBeLessThanOrEqual(2000);
    expect(await stack.containers(manual.body.id)).toHaveLength(1);
    expect((await stack.request('DELETE', `/v1/sandboxes/${manual.body.id}`)).status).toBe(204);
  });
});

describe('containers that die on their own', () => {
  /** The sandbox as GET shows it once it is Failed. */
  const untilFailed = (id: string, timeoutMs: number) =>
    waitFor(
      'Failed',
      async () => {
        const r = await stack.request('GET', `/v1/sandboxes/${id}`);
        return r.body.status.state === 'Failed' ? r : undefined;
      },
      timeoutMs,
      50,
    );

  it('when the entrypoint exits at once and no grace window is set (the default), then the create answers and the sandbox is Failed with its code and last output', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ entrypoint: ['sh', '-c', 'echo boom; exit 3'] }));
    expect(created.status).toBe(202);
    // Running if the engine still showed it up, Failed if the start's own inspect saw it gone: both are honest.
    expect(['Running', 'Failed']).toContain(created.body.status.state);
    const id: string = created.body.id;
    const failed = await untilFailed(id, 15_000);
    expect(failed.body.status).toMatchObject({ reason: 'SANDBOX::CONTAINER_EXITED', message: expect.stringContaining('code 3') });
    expect(failed.body.status.message).toContain('last output: boom');
    await waitFor('container removed', async () => (await stack.containers(id)).length === 0, 10_000);
    const { body: events } = await stack.request('GET', `/v1/sandboxes/${id}/events`);
    expect(JSON.stringify(events)).toContain('CONTAINER_EXITED');
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it('when the sandbox process exits after start-up, then the sandbox becomes Failed with the exit code and its container is removed', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ entrypoint: ['sh', '-c', 'sleep 2; exit 7'] }));
    expect(created.body.status.state).toBe('Running');
    const id: string = created.body.id;
    const failed = await untilFailed(id, 30_000);
    expect(failed.body.status).toMatchObject({ reason: 'SANDBOX::CONTAINER_EXITED', message: expect.stringContaining('code 7') });
    await waitFor('container removed', async () => (await stack.containers(id)).length === 0, 10_000);
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it("when a container is killed behind Tidebox's back while no worker runs, then the restarted worker marks the sandbox Failed", async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
    expect(created.body.status.state).toBe('Running');
    const id: string = created.body.id;
    await stack.worker.stop();
    const [container] = await stack.containers(id);
    await stack.docker.getContainer(container!.Id).kill();
    expect(await state(id)).toBe('Running'); // nobody has noticed yet

    stack.startWorker();
    await waitFor('Failed after restart', async () => (await state(id)) === 'Failed', 30_000, 100);
    expect((await stack.request('GET', `/v1/sandboxes/${id}`)).body.status.message).toContain('code 137');
    await waitFor('container removed', async () => (await stack.containers(id)).length === 0, 10_000);
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});
