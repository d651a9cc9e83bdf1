import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { detachMounts, LocalS3, mountsUnder, ossfsStackConfig } from '../helpers/s3';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * Mount reference counts under concurrency and crashes: the holder set lives in the mount actor,
 * so neither races nor SIGKILLs nor a Temporal restart can leak or drop a mount.
 */
const BUCKET = 'tidebox-dur';
let s3: LocalS3;
let stack: Stack;
let mountRoot: string;

beforeAll(async () => {
  s3 = await LocalS3.start([BUCKET]);
  stack = await Stack.start({
    config: ossfsStackConfig(randomBytes(32).toString('base64'), { server: { createWaitSeconds: 120 } }),
  });
  mountRoot = join(stack.dataDir, 'mounts');
});
afterAll(async () => {
  detachMounts(mountRoot); // only a failed test leaves mounts behind
  await stack?.destroy();
  await s3?.stop();
});

const volume = () => ({
  name: 'data',
  mountPath: '/data',
  ossfs: {
    bucket: BUCKET,
    endpoint: s3.endpoint,
    version: '1.0',
    options: ['use_path_request_style'],
    accessKeyId: 'S3RVER',
    accessKeySecret: 'S3RVER',
  },
});
type Mount = { key: string; holders: string[]; state: string; hostPath?: string };
const mounts = async (): Promise<Mount[]> => (await stack.request('GET', '/v1/mounts')).body.items;
const faultFiles = (point: string) =>
  existsSync(join(stack.dataDir, 'faults')) ? readdirSync(join(stack.dataDir, 'faults')).filter((f) => f.startsWith(`${point}.`)) : [];

describe('concurrency', () => {
  it('when 30 sandboxes are created and deleted concurrently on one bucket, then the mount exists iff it has holders, and nothing is left', async () => {
    let done = false;
    let checked = 0;
    const violations: string[] = [];
    // Sampler: actor view, /proc/mounts, actor view again; a moment counts when both views agree.
    const sampler = (async () => {
      const deadline = Date.now() + 240_000;
      while (!done && Date.now() < deadline) {
        const before = await mounts();
        const present = mountsUnder(mountRoot);
        const after = await mounts();
        if (JSON.stringify(before) === JSON.stringify(after)) {
          const view = before[0];
          if (view && view.state === 'Mounted' && view.holders.length > 0 && present.length !== 1)
            violations.push(`holders ${view.holders.length} but ${present.length} mounts`);
          if (!view && present.length !== 0) violations.push(`no holder but mounted: ${present.join(', ')}`);
          checked++;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const cycles = Array.from({ length: 30 }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * 100)); // staggered, so acquires and releases interleave
      const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume()] }));
      if (created.body?.status?.state !== 'Running') throw new Error(`create ${i}: ${JSON.stringify(created.body)}`);
      const deleted = await stack.request('DELETE', `/v1/sandboxes/${created.body.id}`);
      if (deleted.status !== 204) throw new Error(`delete ${i}: ${deleted.status}`);
      return created.body.id as string;
    });
    const ids = await Promise.all(cycles);
    expect(new Set(ids).size).toBe(30);
    await waitFor('everything unmounted', async () => mountsUnder(mountRoot).length === 0 && (await mounts()).length === 0, 60_000, 200);
    done = true;
    await sampler;

    expect(violations).toEqual([]);
    expect(checked).toBeGreaterThan(20);
    expect(await stack.containers()).toHaveLength(0);
  }, 300_000);
});

describe('crashes', () => {
  afterEach(async () => {
    await stack.worker.stop();
    stack.startWorker();
  });

  it('when the worker is killed between mounting and creating the container, then after restart the mount is adopted and held exactly once', async () => {
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'bucket-mounted' });
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume()] }), { Prefer: 'respond-async' });
    const id: string = created.body.id;
    await waitFor('the bucket-mounted fault point', () => faultFiles('bucket-mounted').length === 1, 30_000);
    await stack.worker.kill();
    expect(mountsUnder(mountRoot)).toHaveLength(1);
    expect(await stack.containers(id)).toHaveLength(0);

    stack.startWorker();
    await waitFor(
      'Running after restart',
      async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).body.status.state === 'Running',
      60_000,
      200,
    );
    expect(await mounts()).toEqual([expect.objectContaining({ holders: [id], state: 'Mounted' })]);
    expect(mountsUnder(mountRoot)).toHaveLength(1);

    // A Temporal restart keeps the holder set and the mount.
    await stack.temporal.stop();
    await stack.temporal.start();
    await waitFor('API answers after the restart', async () => (await stack.request('GET', '/v1/mounts')).status === 200, 30_000, 200);
    expect(await mounts()).toEqual([expect.objectContaining({ holders: [id], state: 'Mounted' })]);

    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    await waitFor('unmounted', async () => mountsUnder(mountRoot).length === 0 && (await mounts()).length === 0, 60_000, 200);
  });

  it('when the worker is killed between removing the container and unmounting, then after restart the unmount finishes, and a sandbox that asked meanwhile gets a fresh mount', async () => {
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'bucket-unmounting' });
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume()] }));
    const id: string = created.body.id;
    expect(created.body.status.state).toBe('Running');
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    await waitFor('the bucket-unmounting fault point', () => faultFiles('bucket-unmounting').length === 1, 30_000);
    await stack.worker.kill();
    expect(await stack.containers(id)).toHaveLength(0);
    expect(mountsUnder(mountRoot)).toHaveLength(1);
    expect(await mounts()).toEqual([expect.objectContaining({ holders: [], state: 'Unmounting' })]);

    // A sandbox that wants the mount while it is being unmounted waits for the unmount, then mounts again.
    const next = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ volumes: [volume()] }), { Prefer: 'respond-async' });
    stack.startWorker();
    await waitFor(
      'the second sandbox Running',
      async () => (await stack.request('GET', `/v1/sandboxes/${next.body.id}`)).body.status.state === 'Running',
      60_000,
      200,
    );
    expect(await mounts()).toEqual([expect.objectContaining({ holders: [next.body.id], state: 'Mounted' })]);
    expect(mountsUnder(mountRoot)).toHaveLength(1);
    const [container] = await stack.containers(next.body.id);
    const mountsOfContainer = (await stack.docker.getContainer(container!.Id).inspect()).Mounts;
    expect(mountsOfContainer).toEqual([expect.objectContaining({ Destination: '/data', Source: mountsUnder(mountRoot)[0] })]);

    expect((await stack.request('DELETE', `/v1/sandboxes/${next.body.id}`)).status).toBe(204);
    await waitFor('unmounted at the end', async () => mountsUnder(mountRoot).length === 0 && (await mounts()).length === 0, 60_000, 200);
  });
});
