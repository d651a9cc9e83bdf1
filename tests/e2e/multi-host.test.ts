import { Client, Connection } from '@temporalio/client';
import { hostname } from 'node:os';
import { LABELS } from '../../contracts/labels';
import { hostTaskQueue } from '../../core/sandbox';
import { snapshotWorkflowId } from '../../core/snapshots';
import type { ManagedProcess } from '../../scripts/lib/managed-process';
import { DockerTestHost } from '../helpers/docker-host';
import { freePort, sandboxRequest, Stack, TEST_IMAGE, waitFor } from '../helpers/stack';

/**
 * Two Docker hosts behind one API: host `a` is the machine's engine, host `b` a second dockerd in a
 * network namespace of its own (scripts/docker-test-host), each driven by its own host worker. The
 * API places creates over both (placement.hosts); every later step of a sandbox runs on its host.
 */
let stack: Stack;
let hostB: DockerTestHost;
let workerB: ManagedProcess;
let execdPortB = 0;

const TASK_QUEUE = 'tidebox';
// Serves /tmp/index.html on 8080 (busybox httpd), so its published port can be reached.
const SERVING = sandboxRequest({ entrypoint: ['sh', '-c', 'echo served > /tmp/index.html && exec httpd -f -p 8080 -h /tmp'] });

async function startWorkerB(): Promise<ManagedProcess> {
  return stack.startHostWorker('worker-b', {
    docker: { hostId: 'b', socketPath: hostB.socket, publishHost: hostB.address },
    // Host b's egress guard goes into host b's own iptables (its network namespace).
    network: { iptablesBinary: hostB.iptables, iptablesRestoreBinary: hostB.iptablesRestore },
    execd: { workerPort: execdPortB },
  });
}

beforeAll(async () => {
  hostB = await DockerTestHost.start([TEST_IMAGE]);
  execdPortB = await freePort();
  stack = await Stack.start({
    config: {
      docker: { hostId: 'a' },
      server: { deleteWaitSeconds: 2 },
      // Host b's worker checks the execd tokens this API mints: one secret for all.
      execd: { tokenSecret: 'multi-host-test-execd-token-secret-0123456789' },
      placement: { hosts: [{ id: 'a' }, { id: 'b', execdUrl: `http://127.0.0.1:${execdPortB}` }] },
    },
  });
  await stack.workerReady();
  workerB = await startWorkerB();
}, 240_000);

afterAll(async () => {
  await workerB?.stop().catch(() => undefined);
  await stack?.destroy();
  await hostB?.stop();
}, 120_000);

/** The sandbox's containers on host b's engine. */
const onB = (sandboxId: string) =>
  hostB.docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.instance}=${stack.instance}`, `${LABELS.sandboxId}=${sandboxId}`] },
  });

async function create(body: Record<string, unknown> = SERVING, headers: Record<string, string> = {}): Promise<string> {
  const r = await stack.request('POST', '/v1/sandboxes', body, headers);
  expect(r.status).toBe(202);
  return r.body.id;
}

async function hostOf(sandboxId: string): Promise<'a' | 'b'> {
  const [a, b] = [await stack.containers(sandboxId), await onB(sandboxId)];
  expect(a.length + b.length).toBe(1);
  return a.length ? 'a' : 'b';
}

/** A sandbox that placement put on host b (one put on a meanwhile is deleted again). */
async function createOnB(): Promise<string> {
  const id = await create();
  if ((await hostOf(id)) === 'b') return id;
  expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  await waitFor('its container to go', async () => (await stack.containers(id)).length === 0);
  return createOnB();
}

/** Every activity of an actor (`sandbox/<id>`, `snapshot/<id>`): its name, the queue it was scheduled on, the worker that ran it. */
async function activities(workflowId: string): Promise<Array<{ name: string; queue: string; worker?: string }>> {
  const connection = await Connection.connect({ address: stack.temporal.address });
  try {
    const history = await new Client({ connection, namespace: stack.namespace }).workflow.getHandle(workflowId).fetchHistory();
    const events = history.events ?? [];
    return events.flatMap((e) => {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (!scheduled) return [];
      const started = events.find((s) => String(s.activityTaskStartedEventAttributes?.scheduledEventId) === String(e.eventId));
      const worker = started?.activityTaskStartedEventAttributes?.identity ?? undefined;
      return [{ name: scheduled.activityType!.name!, queue: scheduled.taskQueue!.name!, ...(worker ? { worker } : {}) }];
    });
  } finally {
    await connection.close();
  }
}

const workerIdentity = (process: ManagedProcess) => `${process.pid}@${hostname()}`;

describe('two Docker hosts', () => {
  it('when sandboxes are created, then they spread over both hosts, each endpoint names its host, and the proxy and execd reach either', async () => {
    const ids = [await create(), await create(), await create(), await create()];
    const hosts = await Promise.all(ids.map(hostOf));
    expect(hosts.filter((h) => h === 'a')).toHaveLength(2);
    expect(hosts.filter((h) => h === 'b')).toHaveLength(2);
    for (const [i, id] of ids.entries()) {
      const endpoint = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/8080`);
      expect(endpoint.status).toBe(200);
      // Host b publishes on its own address; host a on 127.0.0.1.
      expect(endpoint.body.endpoint).toMatch(
        new RegExp(`^${(hosts[i] === 'b' ? hostB.address : '127.0.0.1').replaceAll('.', '\\.')}:\\d+$`),
      );
      expect(await (await fetch(`http://${endpoint.body.endpoint}/index.html`)).text()).toBe('served\n');
      // The API's proxy connects to the host's address too.
      const proxied = await stack.request('GET', `/v1/sandboxes/${id}/proxy/8080/index.html`);
      expect([proxied.status, proxied.body]).toEqual([200, 'served\n']);
      // execd: the API forwards to the worker of the sandbox's host, which runs it on that host's engine.
      const execd = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/44772`);
      const run = await fetch(`http://${execd.body.endpoint}/command`, {
        method: 'POST',
        headers: { ...execd.body.headers, 'content-type': 'application/json' },
        body: JSON.stringify({ command: 'echo $((6 * 7)) > /tmp/answer && cat /tmp/answer' }),
      });
      expect(run.status).toBe(200);
      expect(await run.text()).toContain('42');
    }
    for (const id of ids) expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    for (const id of ids)
      await waitFor(`sandbox ${id}'s container to go`, async () => (await stack.containers(id)).length + (await onB(id)).length === 0);
  });

  it('when a sandbox on host b is paused, resumed, snapshotted, restored and deleted, then host b’s worker does every step on host b’s engine', async () => {
    const id = await createOnB();
    expect(await hostOf(id)).toBe('b');
    const state = async (sid: string) => (await stack.request('GET', `/v1/sandboxes/${sid}`)).body?.status?.state;

    expect((await stack.request('POST', `/v1/sandboxes/${id}/pause`)).status).toBe(202);
    await waitFor('Paused', async () => (await state(id)) === 'Paused');
    expect((await onB(id))[0]!.State).toBe('paused');
    expect((await stack.request('POST', `/v1/sandboxes/${id}/resume`)).status).toBe(202);
    await waitFor('Running', async () => (await state(id)) === 'Running');

    const snap = await stack.request('POST', `/v1/sandboxes/${id}/snapshots`, {});
    expect(snap.status).toBe(202);
    const snapshot = await waitFor(
      'the snapshot to be Ready',
      async () => {
        const r = await stack.request('GET', `/v1/snapshots/${snap.body.id}`);
        return ['Ready', 'Failed'].includes(r.body?.status?.state) ? r.body : undefined;
      },
      60_000,
      200,
    );
    expect(snapshot.status.state).toBe('Ready');
    // The image is committed on host b's engine, not on a's.
    const image = `tidebox-snapshots:${snap.body.id}`;
    await expect(hostB.docker.getImage(image).inspect()).resolves.toBeDefined();
    await expect(stack.docker.getImage(image).inspect()).rejects.toThrow();

    // A restore goes where the image is, whatever placement would have picked next.
    const restored = await stack.request('POST', '/v1/sandboxes', { snapshotId: snap.body.id, timeout: 300 });
    expect([restored.status, restored.body.status.state]).toEqual([202, 'Running']);
    expect(await hostOf(restored.body.id)).toBe('b');

    for (const sid of [id, restored.body.id]) {
      expect((await stack.request('DELETE', `/v1/sandboxes/${sid}`)).status).toBe(204);
      await waitFor('the container to go', async () => (await onB(sid)).length === 0);
    }
    for (const workflowId of [`sandbox/${id}`, `sandbox/${restored.body.id}`, snapshotWorkflowId(snap.body.id)]) {
      const ran = await activities(workflowId);
      const onHostQueue = ran.filter((a) => a.queue !== TASK_QUEUE);
      // Every host step went to host b's queue and was run by host b's worker.
      expect(onHostQueue.map((a) => a.queue)).toEqual(onHostQueue.map(() => hostTaskQueue(TASK_QUEUE, 'b')));
      expect(new Set(onHostQueue.map((a) => a.worker))).toEqual(new Set([workerIdentity(workerB)]));
      const names = onHostQueue.map((a) => a.name);
      if (workflowId === `sandbox/${id}`)
        expect(names).toEqual(expect.arrayContaining(['pauseContainer', 'resumeContainer', 'removeContainers']));
      if (workflowId === snapshotWorkflowId(snap.body.id)) expect(names).toEqual(expect.arrayContaining(['commitSnapshot']));
    }
    expect((await stack.request('DELETE', `/v1/snapshots/${snap.body.id}`)).status).toBe(204);
    await waitFor('the snapshot image to go from host b', () =>
      hostB.docker
        .getImage(image)
        .inspect()
        .then(
          () => false,
          () => true,
        ),
    );
  });

  it('when host b’s worker is down, then its deletes and creates wait in Temporal and are done when it returns; host a goes on', async () => {
    const running = await createOnB();
    expect(await hostOf(running)).toBe('b');
    await workerB.stop();

    // A delete of a sandbox on b is accepted; its container stays until b's worker is back.
    expect((await stack.request('DELETE', `/v1/sandboxes/${running}`)).status).toBe(204);
    expect(await onB(running)).toHaveLength(1);
    expect((await stack.request('GET', `/v1/sandboxes/${running}`)).status).toBe(200);

    // Creates go on being placed over both: a's run at once, b's wait (202 Pending with respond-async).
    const made = [await create(SERVING, { prefer: 'respond-async' }), await create(SERVING, { prefer: 'respond-async' })];
    const states = async () => Promise.all(made.map(async (sid) => (await stack.request('GET', `/v1/sandboxes/${sid}`)).body.status.state));
    await waitFor('the sandbox placed on a to run', async () => (await states()).includes('Running'));
    expect((await states()).sort()).toEqual(['Pending', 'Running']);
    const waiting = made[(await states()).indexOf('Pending')]!;
    expect(await onB(waiting)).toHaveLength(0);

    workerB = await startWorkerB();
    await waitFor(
      'the deleted sandbox to be gone',
      async () => (await stack.request('GET', `/v1/sandboxes/${running}`)).status === 404,
      60_000,
    );
    expect(await onB(running)).toHaveLength(0);
    await waitFor(
      'the waiting create to run on b',
      async () => (await stack.request('GET', `/v1/sandboxes/${waiting}`)).body.status.state === 'Running',
      60_000,
    );
    expect(await hostOf(waiting)).toBe('b');
    for (const sid of made) expect((await stack.request('DELETE', `/v1/sandboxes/${sid}`)).status).toBe(204);
    for (const sid of made)
      await waitFor('the container to go', async () => (await stack.containers(sid)).length + (await onB(sid)).length === 0);
  });

  it('when one of two workflow workers and one of two APIs are SIGKILLed during a burst of 50 creates and deletes, then every sandbox converges: 0 duplicates, 0 leaks', async () => {
    const replica = await stack.startApiReplica('api-2');
    try {
      const apis = [stack.baseUrl, replica.baseUrl];
      const run = Date.now().toString(36);
      /**
       * A client that fails over: a request the API did not answer (killed: refused or reset) or
       * answered 5xx/409 goes to the other API; the idempotency key makes a repeated create the same sandbox.
       */
      const call = async (i: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
        let last = 'no attempt';
        for (let attempt = 0; attempt < 30; attempt++) {
          try {
            const r = await stack.requestTo(apis[(i + attempt) % 2]!, method, path, body, headers);
            if (r.status < 500 && r.status !== 409) return { ...r, retried: attempt > 0 };
            last = `${r.status} ${JSON.stringify(r.body)}`;
          } catch (err) {
            last = (err as Error).message;
          }
          await new Promise((r) => setTimeout(r, 250));
        }
        throw new Error(`${method} ${path} failed on both APIs: ${last}`);
      };
      const N = 50;
      const ids: string[] = [];
      const deleted = (i: number) => i % 2 === 1;
      let next = 0;
      let restartB: Promise<ManagedProcess> | undefined;
      const one = async (i: number) => {
        const created = await call(i, 'POST', '/v1/sandboxes', sandboxRequest({ metadata: { burst: run } }), {
          'idempotency-key': `burst-${run}-${i}`,
          prefer: 'respond-async',
        });
        expect(created.status).toBe(202);
        ids[i] = created.body.id;
        if (!deleted(i)) return;
        // A DELETE retried after its API died unanswered may find the sandbox already gone: 404 then.
        const removed = await call(i, 'DELETE', `/v1/sandboxes/${ids[i]}`);
        expect(removed.retried ? [204, 404] : [204]).toContain(removed.status);
      };
      const lane = async () => {
        while (next < N) {
          const i = next++;
          // A third of the way in: one API and one workflow worker (host b's) die mid-flight...
          if (i === 15) await Promise.all([stack.api.kill(), workerB.kill()]);
          // ...and the worker comes back two thirds in (its host's steps wait for it); the API later.
          if (i === 35) restartB = startWorkerB();
          await one(i);
        }
      };
      const burst = Promise.all(Array.from({ length: 5 }, lane));
      await Promise.race([
        burst,
        new Promise((_, reject) => setTimeout(() => reject(new Error('the burst took over 4 minutes')), 240_000)),
      ]);
      workerB = await restartB!;
      await stack.startApi();

      const kept = ids.filter((_, i) => !deleted(i));
      const gone = ids.filter((_, i) => deleted(i));
      expect(new Set(ids).size).toBe(N);
      // Converged: the kept ones run, the deleted ones are gone...
      for (const id of kept)
        await waitFor(
          `${id} to run`,
          async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).body?.status?.state === 'Running',
          120_000,
        );
      for (const id of gone)
        await waitFor(`${id} to be gone`, async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).status === 404, 120_000);
      // ...one sandbox per key (no create made twice)...
      const listed = await stack.request('GET', `/v1/sandboxes?metadata=${encodeURIComponent(`burst=${run}`)}&pageSize=100`);
      expect(listed.body.items.map((s: { id: string }) => s.id).sort()).toEqual([...kept].sort());
      // ...and exactly one container per kept sandbox over both engines, none for the deleted (nor any other).
      const containers = async () => {
        const on = async (engine: 'a' | 'b') =>
          (engine === 'a'
            ? await stack.containers()
            : await hostB.docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${stack.instance}`] } })
          ).map((c) => ({ engine, sandbox: c.Labels[LABELS.sandboxId]!, state: c.State, name: c.Names[0] }));
        return [...(await on('a')), ...(await on('b'))];
      };
      await waitFor(
        'one container per kept sandbox and no other',
        async () => {
          const have = await containers();
          const ids = have.map((c) => c.sandbox);
          const extra = have.filter((c) => !kept.includes(c.sandbox) || ids.indexOf(c.sandbox) !== ids.lastIndexOf(c.sandbox));
          const missing = kept.filter((id) => !ids.includes(id));
          if (extra.length || missing.length)
            throw new Error(`extra or twice: ${JSON.stringify(extra)}; missing: ${JSON.stringify(missing)}`);
          return true;
        },
        120_000,
      );
      const perHost = await Promise.all(kept.map(hostOf));
      expect(perHost).toContain('a');
      expect(perHost).toContain('b');

      for (const id of kept) expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
      await waitFor('every container to go', async () => (await containers()).length === 0, 120_000);
    } finally {
      await replica.process.stop();
    }
  }, 600_000);
});
