import { existsSync } from 'node:fs';
import { runCli } from '../helpers/cli';
import { HttpResult, sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * Snapshots as actors on the real pieces: commit a changed sandbox, restore it, list and delete,
 * fail a snapshot on purpose and retry it from the failed step, and crash everything mid-commit.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await Stack.start();
});
afterAll(async () => {
  // Snapshot images are not containers: remove what this file's snapshots left (none, if all went well).
  const images = await stack.docker.listImages({ filters: { label: [`tidebox.io/instance=${stack.instance}`] } }).catch(() => []);
  for (const image of images)
    await stack.docker
      .getImage(image.Id)
      .remove({ force: true })
      .catch(() => undefined);
  await stack?.destroy();
});

const get = (path: string) => stack.request('GET', path);
const snapshotState = async (id: string) => (await get(`/v1/snapshots/${id}`)).body?.status?.state;
const settled = (id: string, timeoutMs = 60_000) =>
  waitFor(
    `snapshot ${id} to settle`,
    async () => {
      const r = await get(`/v1/snapshots/${id}`);
      return ['Ready', 'Failed'].includes(r.body?.status?.state) ? r.body : undefined;
    },
    timeoutMs,
    200,
  );

async function sandbox(overrides: Record<string, unknown> = {}): Promise<string> {
  const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest(overrides));
  expect(r.body.status.state).toBe('Running');
  return r.body.id;
}

/** Run a command in the sandbox's container; its exit code. */
async function exec(sandboxId: string, cmd: string[]): Promise<number> {
  const [info] = await stack.containers(sandboxId);
  const run = await stack.docker.getContainer(info!.Id).exec({ Cmd: cmd, AttachStdout: false, AttachStderr: false });
  await run.start({ Detach: true });
  return waitFor(
    `${cmd.join(' ')} to finish`,
    async () => {
      const r = await run.inspect();
      return r.Running ? undefined : (r.ExitCode ?? -1);
    },
    10_000,
    50,
  );
}

async function snapshot(sandboxId: string, body: unknown = {}): Promise<HttpResult> {
  return stack.request('POST', `/v1/sandboxes/${sandboxId}/snapshots`, body);
}

const cli = (args: string[]) => runCli(stack.baseUrl, args);

const imageExists = async (ref: string) => {
  try {
    await stack.docker.getImage(ref).inspect();
    return true;
  } catch {
    return false;
  }
};

describe('snapshot, restore, list, delete', () => {
  let source: string;
  let snapshotId: string;

  it('when a changed sandbox is snapshotted and restored, then the new sandbox has the change', async () => {
    source = await sandbox();
    expect(await exec(source, ['sh', '-c', 'echo changed-after-start > /marker.txt'])).toBe(0);

    const created = await snapshot(source, { name: 'before-import' });
    expect(created.status).toBe(202);
    snapshotId = created.body.id;
    expect(created.headers.get('location')).toBe(`/v1/snapshots/${snapshotId}`);
    expect(created.body).toMatchObject({
      sandboxId: source,
      name: 'before-import',
      status: { state: 'Creating', reason: 'snapshot_accepted' },
      image: `tidebox-snapshots:${snapshotId}`,
      workflowId: `snapshot/${snapshotId}`,
    });

    const ready = await settled(snapshotId);
    expect(ready.status).toMatchObject({ state: 'Ready', reason: 'snapshot_ready' });
    expect(ready.steps.map((s: { name: string; state: string; runs: number }) => [s.name, s.state, s.runs])).toEqual([
      ['locate', 'done', 1],
      ['commit', 'done', 1],
      ['verify', 'done', 1],
    ]);
    expect(await imageExists(ready.image)).toBe(true);
    // The source keeps running after the commit (Docker pauses it only while committing).
    expect((await get(`/v1/sandboxes/${source}`)).body.status.state).toBe('Running');

    const restored = await stack.request('POST', '/v1/sandboxes', {
      snapshotId,
      timeout: 600,
      resourceLimits: { cpu: '250m', memory: '64Mi' },
    });
    expect(restored.status).toBe(202);
    expect(restored.body.status.state).toBe('Running');
    expect(await exec(restored.body.id, ['sh', '-c', 'test "$(cat /marker.txt)" = changed-after-start'])).toBe(0);
    const fetched = (await get(`/v1/sandboxes/${restored.body.id}`)).body;
    expect(fetched.snapshotId).toBe(snapshotId);
    expect(fetched.image).toBeUndefined();
    expect(fetched.entrypoint).toEqual(['tail', '-f', '/dev/null']);

    // In use by the restored sandbox: the snapshot cannot go.
    const inUse = await stack.request('DELETE', `/v1/snapshots/${snapshotId}`);
    expect(inUse.status).toBe(409);
    expect(inUse.body.code).toBe('SNAPSHOT::IN_USE');
    expect(await snapshotState(snapshotId)).toBe('Ready');
    expect((await stack.request('DELETE', `/v1/sandboxes/${restored.body.id}`)).status).toBe(204);
  });

  it('when snapshots are listed, then they page newest first and filter by sandbox and state', async () => {
    const more = [];
    for (let i = 0; i < 2; i++) more.push((await snapshot(source, { name: `n${i}` })).body.id);
    for (const id of more) await settled(id);
    const all = [snapshotId, ...more];

    const page1 = await get(`/v1/snapshots?sandboxId=${source}&pageSize=2`);
    expect(page1.status).toBe(200);
    expect(page1.body.pagination).toEqual({ page: 1, pageSize: 2, totalItems: 3, totalPages: 2, hasNextPage: true });
    expect(page1.body.items.map((s: { id: string }) => s.id)).toEqual([more[1], more[0]]);
    const page2 = await get(`/v1/snapshots?sandboxId=${source}&pageSize=2&page=2`);
    expect(page2.body.items.map((s: { id: string }) => s.id)).toEqual([snapshotId]);

    const ready = await get(`/v1/snapshots?sandboxId=${source}&state=Ready&state=Failed`);
    expect(ready.body.items.map((s: { id: string }) => s.id).sort()).toEqual([...all].sort());
    expect((await get(`/v1/snapshots?sandboxId=${source}&state=Failed`)).body.items).toEqual([]);
    expect((await get('/v1/snapshots?sandboxId=someone-else')).body.items).toEqual([]);
    expect((await get('/v1/snapshots?state=Broken')).status).toBe(400);
    expect((await get('/v1/snapshots?pageSize=201')).status).toBe(400);

    for (const id of more) expect((await stack.request('DELETE', `/v1/snapshots/${id}`)).status).toBe(204);
  });

  it('when a snapshot is deleted, then its image is gone and it answers 404; the source sandbox may already be gone', async () => {
    expect((await stack.request('DELETE', `/v1/sandboxes/${source}`)).status).toBe(204);
    // Snapshots outlive their sandbox.
    expect(await snapshotState(snapshotId)).toBe('Ready');
    expect((await stack.request('DELETE', `/v1/snapshots/${snapshotId}`)).status).toBe(204);
    expect(await imageExists(`tidebox-snapshots:${snapshotId}`)).toBe(false);
    expect((await get(`/v1/snapshots/${snapshotId}`)).status).toBe(404);
    expect((await stack.request('DELETE', `/v1/snapshots/${snapshotId}`)).status).toBe(404);
    const restore = await stack.request('POST', '/v1/sandboxes', { snapshotId, timeout: 600 });
    expect([restore.status, restore.body.code]).toEqual([404, 'SNAPSHOT::NOT_FOUND']);
  });

  it('when requests are wrong, then 4xx and nothing is made', async () => {
    const stopped = await sandbox();
    await stack.request('POST', `/v1/sandboxes/${stopped}/pause`);
    await waitFor('paused', async () => (await get(`/v1/sandboxes/${stopped}`)).body.status.state === 'Paused', 15_000, 100);
    const before = (await get('/v1/snapshots')).body.pagination.totalItems;
    expect((await snapshot('no-such-sandbox')).status).toBe(404);
    expect((await snapshot(stopped, { name: '' })).status).toBe(400);
    expect((await snapshot(stopped, { name: 'x', extra: 1 })).status).toBe(400);
    expect((await stack.request('POST', '/v1/sandboxes', { snapshotId: 'x', image: { uri: 'busybox' }, entrypoint: ['sh'] })).status).toBe(
      400,
    );
    expect((await get('/v1/snapshots')).body.pagination.totalItems).toBe(before);
    // A paused sandbox can be snapshotted (Docker commits a frozen container as it is).
    const paused = await snapshot(stopped);
    expect(paused.status).toBe(202);
    expect((await settled(paused.body.id)).status.state).toBe('Ready');
    expect((await stack.request('POST', `/v1/snapshots/${paused.body.id}/retry`)).status).toBe(409);
    expect((await stack.request('DELETE', `/v1/snapshots/${paused.body.id}`)).status).toBe(204);
    await stack.request('DELETE', `/v1/sandboxes/${stopped}`);
  });
});

describe('operators: failed snapshots and retry', () => {
  it('when the commit fails, then the snapshot is Failed with the step and reason; after the fix, retry resumes at that step and it becomes Ready', async () => {
    const source = await sandbox();
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_FAIL_AT: 'snapshot-commit' });
    const id: string = (await snapshot(source)).body.id;
    const failed = await settled(id);
    expect(failed.status).toMatchObject({ state: 'Failed', reason: 'snapshot_capture_failed' });
    expect(failed.status.message).toContain('injected fault');
    expect(failed.failedStep).toBe('commit');
    const locateDone = failed.steps[0];
    expect(locateDone).toMatchObject({ name: 'locate', state: 'done', runs: 1 });
    expect((await get('/v1/snapshots?state=Failed')).body.items.map((s: { id: string }) => s.id)).toContain(id);
    // A Failed snapshot cannot be restored.
    expect((await stack.request('POST', '/v1/sandboxes', { snapshotId: id, timeout: 600 })).status).toBe(409);

    // The operator finds it with the CLI...
    const listed = await cli(['snapshots', 'list', '--state', 'Failed']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${id}\\s+Failed\\s+${source}.*failed at commit: .*injected fault`));

    // ...fixes the cause (a worker without the fault) and retries with the CLI, which follows it to Ready.
    await stack.worker.stop();
    stack.startWorker();
    const retried = await cli(['snapshots', 'retry', id]);
    expect(retried.stdout).toContain('retry accepted (retry #1): resuming at commit');
    expect(retried.stdout).toContain(`snapshot ${id} is Ready`);
    expect(retried.code).toBe(0);
    const ready = await settled(id);
    expect(ready.status.state).toBe('Ready');
    expect(ready.retries).toBe(1);
    // locate did not run again (same run count and finish time); commit ran twice, verify once.
    expect(ready.steps[0]).toEqual(locateDone);
    expect(ready.steps.map((s: { runs: number }) => s.runs)).toEqual([1, 2, 1]);
    expect(ready.failedStep).toBeUndefined();
    // Retrying what is not Failed, or without an id, is refused with exit 2 and a reason.
    const again = await cli(['snapshots', 'retry', id]);
    expect([again.code, again.stderr]).toEqual([2, expect.stringContaining('409 SNAPSHOT::INVALID_STATE')]);
    expect((await cli(['snapshots', 'retry'])).code).toBe(2);

    // The whole story is in the actor's history.
    const wf = await get(`/v1/workflows/snapshot/${id}`);
    expect(wf.body).toMatchObject({ type: 'snapshotWorkflow', status: 'RUNNING' });
    await stack.request('DELETE', `/v1/sandboxes/${source}`);
    expect((await stack.request('DELETE', `/v1/snapshots/${id}`)).status).toBe(204);
  });
});

describe('crashes during a commit', () => {
  it('when the worker is killed mid-commit and Temporal restarts, then the snapshot still ends Ready, and deleting it leaves no image', async () => {
    const source = await sandbox();
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'snapshot-committing' });
    const id: string = (await snapshot(source)).body.id;
    await waitFor('the snapshot-committing fault point', () => existsSync(stack.faultFile('snapshot-committing', id)), 30_000);
    // Creating: cannot be deleted yet.
    const early = await stack.request('DELETE', `/v1/snapshots/${id}`);
    expect([early.status, early.body.code]).toEqual([409, 'SNAPSHOT::INVALID_STATE']);

    await stack.worker.kill();
    await stack.temporal.stop();
    await stack.temporal.start();
    stack.startWorker();
    const done = await settled(id, 90_000);
    expect(done.status.state).toBe('Ready');
    expect(done.steps.map((s: { state: string }) => s.state)).toEqual(['done', 'done', 'done']);

    await stack.request('DELETE', `/v1/sandboxes/${source}`);
    expect((await stack.request('DELETE', `/v1/snapshots/${id}`)).status).toBe(204);
    const left = await stack.docker.listImages({ filters: { label: [`tidebox.io/snapshot-id=${id}`] } });
    expect(left).toEqual([]);
  });
});
