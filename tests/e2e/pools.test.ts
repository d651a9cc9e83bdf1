import { existsSync } from 'node:fs';
import { Sandbox } from '@alibaba-group/opensandbox';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { LABELS } from '../../contracts/labels';
import { deletePoolUpdate, POOL_WORKFLOW_TYPE } from '../../contracts/pool-actor';
import type { PoolWorkflowInput } from '../../core/pools';
import type { SandboxWorkflowInput } from '../../core/sandbox';
import { SANDBOX_WORKFLOW_TYPE } from '../../contracts/sandbox-actor';
import { sandboxRequest, Stack, TEST_IMAGE, waitFor } from '../helpers/stack';

/**
 * Warm pools on the real pieces (Docker, Temporal, the API): a pool actor keeps frozen members made
 * from its template, a create naming the pool takes one over (same container, thawed, the member's id
 * as the sandbox's), the pool refills, and a deleted pool leaves no container behind.
 */
const API_KEY = 'pools-test-key-0123456789';
const template = {
  image: { uri: TEST_IMAGE },
  entrypoint: ['tail', '-f', '/dev/null'],
  resourceLimits: { cpu: '250m', memory: '64Mi' },
};

let stack: Stack;
beforeAll(async () => {
  // createWaitSeconds as deployed (60): the 100-create burst queues for turns that long at most.
  stack = await Stack.start({ apiKey: API_KEY, config: { pools: { maxMembers: 20 }, server: { createWaitSeconds: 60 } } });
});
afterAll(async () => {
  await stack?.destroy();
});

/** POST /v1/pools with the test template (on this file's main stack unless told). */
function makePool(name: string, bufferMin: number, bufferMax: number, poolMax: number, on: Stack = stack) {
  return on.request('POST', '/v1/pools', { name, template, capacitySpec: { bufferMin, bufferMax, poolMin: 0, poolMax } });
}

/** Containers the pool made (members, and sandboxes that were members: the label stays). */
async function poolContainers(name: string, on: Stack = stack) {
  const all = await on.containers();
  return all.filter((c) => c.Labels[LABELS.pool]?.endsWith(`/${name}`));
}

/** Delete a pool and wait until none of its containers is left. */
async function deletePool(name: string, on: Stack = stack) {
  expect((await on.request('DELETE', `/v1/pools/${name}`)).status).toBe(204);
  await waitFor(`the members of pool ${name} to be gone`, async () => (await poolContainers(name, on)).length === 0, 60_000, 250);
}

async function available(name: string, n: number) {
  return waitFor(
    `pool ${name} to have ${n} ready members`,
    async () => {
      const { body } = await stack.request('GET', `/v1/pools/${name}`);
      return body.status?.available === n && body.status.warming === 0 ? body : undefined;
    },
    60_000,
    200,
  );
}

describe('a warm pool', () => {
  it('when a create names the pool, then it takes a frozen member over at once, and the pool refills', async () => {
    const created = await makePool('warm', 2, 3, 4);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'warm', capacitySpec: { bufferMin: 2 }, status: { available: 0 } });
    await available('warm', 2);
    const members = await poolContainers('warm');
    expect(members).toHaveLength(2);
    // Frozen while they wait: nothing of theirs runs.
    expect(members.map((c) => c.State).sort()).toEqual(['paused', 'paused']);

    const claim = await stack.request('POST', '/v1/sandboxes', {
      timeout: 300,
      metadata: { team: 'blue' },
      extensions: { poolRef: 'warm' },
    });
    expect(claim.status).toBe(202);
    expect(claim.body.status.state).toBe('Running');
    const id: string = claim.body.id;
    // The sandbox is the member: its id, its very container, thawed.
    const member = members.find((c) => c.Labels[LABELS.sandboxId] === id);
    expect(member).toBeDefined();
    const [container] = await stack.containers(id);
    expect(container!.Id).toBe(member!.Id);
    expect(container!.State).toBe('running');
    const got = await stack.request('GET', `/v1/sandboxes/${id}`);
    expect(got.body).toMatchObject({ id, metadata: { team: 'blue' }, image: { uri: TEST_IMAGE }, status: { state: 'Running' } });
    expect(Date.parse(got.body.expiresAt) - Date.parse(got.body.createdAt)).toBeGreaterThan(290_000);
    const ran = await stack.exec(id, 'echo alive');
    expect(ran.code).toBe(0);
    expect(ran.output).toContain('alive');

    // The claim is counted, and the pool makes up for it.
    const refilled = await available('warm', 2);
    expect(refilled.claims).toBe(1);
    expect((await poolContainers('warm')).filter((c) => c.Labels[LABELS.sandboxId] !== id)).toHaveLength(2);
    // …and /metrics says so: members by state, claims by outcome, the claim's latency.
    const metrics = await waitFor(
      'the pool in /metrics',
      async () => {
        const text = String((await stack.request('GET', '/metrics')).body);
        return /tidebox_pool_members\{tenant="[^"]+",pool="warm",state="available"\} 2/.test(text) ? text : undefined;
      },
      15_000,
      500,
    );
    expect(metrics).toMatch(/tidebox_pool_claims\{tenant="[^"]+",pool="warm",outcome="hit"\} 1/);
    expect(metrics).toMatch(/tidebox_pool_claim_seconds_count\{outcome="hit"\} 1/);

    // The claimed sandbox is the client's like any other: endpoints, pause, resume, snapshot, delete.
    expect((await stack.request('GET', `/v1/sandboxes/${id}/endpoints/44772`)).body).toEqual({
      endpoint: `${new URL(stack.baseUrl).host}/sandboxes/${id}/proxy/44772`,
      headers: { 'X-EXECD-ACCESS-TOKEN': expect.any(String) },
    });
    expect((await stack.request('POST', `/v1/sandboxes/${id}/pause`)).status).toBeLessThan(300);
    await waitFor('paused', async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).body.status.state === 'Paused');
    expect((await stack.request('POST', `/v1/sandboxes/${id}/resume`)).status).toBeLessThan(300);
    await waitFor('running', async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).body.status.state === 'Running');
    const snap = await stack.request('POST', `/v1/sandboxes/${id}/snapshots`, {});
    expect(snap.status).toBeLessThan(300);
    const snapshotState = await waitFor(
      'the snapshot of the claimed sandbox to settle',
      async () => {
        const state = (await stack.request('GET', `/v1/snapshots/${snap.body.id}`)).body?.status?.state;
        return ['Ready', 'Failed'].includes(state) ? state : undefined;
      },
      60_000,
      250,
    );
    expect(snapshotState).toBe('Ready');
    expect((await stack.request('DELETE', `/v1/snapshots/${snap.body.id}`)).status).toBe(204);
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await stack.containers(id)).toHaveLength(0);

    // …and expires like any other: a claimed member's container goes at its own timeout.
    const short = await stack.request('POST', '/v1/sandboxes', { timeout: 2, extensions: { poolRef: 'warm' } });
    expect(short.body.status.state).toBe('Running');
    expect((await poolContainers('warm')).some((c) => c.Labels[LABELS.sandboxId] === short.body.id)).toBe(true);
    await waitFor('the claimed sandbox to expire', async () => (await stack.containers(short.body.id)).length === 0, 20_000, 100);
    await waitFor('GET 404', async () => (await stack.request('GET', `/v1/sandboxes/${short.body.id}`)).status === 404, 5_000, 100);

    // Deleting the pool removes every member it still holds.
    await deletePool('warm');
    expect((await stack.request('GET', '/v1/pools/warm')).status).toBe(404);
  });

  it('when a claimed sandbox runs its first command, then a shell the member started before it was frozen runs it (no process set up on the way)', async () => {
    expect((await makePool('primed', 1, 1, 2)).status).toBe(201);
    await available('primed', 1);
    // A gap to measure against: the shell that runs the first command must be older than the claim.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const claimed = Date.now();
    const sandbox = await Sandbox.create({
      connectionConfig: { domain: stack.baseUrl, apiKey: API_KEY },
      image: TEST_IMAGE,
      entrypoint: template.entrypoint,
      resource: template.resourceLimits,
      extensions: { poolRef: 'primed' },
      timeoutSeconds: 300,
    });
    try {
      // The command's parent is the shell that runs it: its start (clock ticks since boot, 100 a
      // second) against the machine's uptime gives its age.
      const run = await sandbox.commands.run(`awk '{print $22}' /proc/$PPID/stat; cut -d' ' -f1 /proc/uptime`);
      const answered = Date.now();
      const [startTicks, uptime] = run.logs.stdout.map((m) => Number(m.text));
      const ageMs = (uptime! - startTicks! / 100) * 1000;
      expect(ageMs).toBeGreaterThan(answered - claimed + 1000);
      // …and later commands, on the same sandbox, run as on any other.
      const again = await sandbox.commands.run('echo again');
      expect(again.logs.stdout.map((m) => m.text)).toEqual(['again']);
    } finally {
      await sandbox.kill();
    }
    await deletePool('primed');
  });

  it('when a sandbox actor starts on a thawed member after its claim could be judged stale, then it checks the member and, finding it gone, fails with nothing left; in time, it checks nothing', async () => {
    expect((await makePool('late', 1, 1, 2)).status).toBe(201);
    await available('late', 1);
    const claim = await stack.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'late' } });
    expect(claim.body.status.state).toBe('Running');
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      const client = new Client({ connection });
      const history = async (id: string) => (await client.workflow.getHandle(`sandbox/${id}`).fetchHistory()).events ?? [];
      const scheduled = async (id: string) =>
        (await history(id)).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
      // Started in time (the claim's staleFrom is minutes ahead): no look at its member at all.
      const input = defaultPayloadConverter.fromPayload<SandboxWorkflowInput>(
        (await history(claim.body.id))[0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!,
      );
      expect(input.pooled?.staleFrom).toBeGreaterThan(Date.now() + 60_000);
      expect(await scheduled(claim.body.id)).not.toContain('adoptContainer');

      // The same start, as if the create had stalled past the claim timeout and the pool had removed
      // the member meanwhile (no container has this id): the actor checks, and fails.
      const lateId = `late-${Date.now().toString(36)}`;
      await client.workflow.start(SANDBOX_WORKFLOW_TYPE, {
        workflowId: `sandbox/${lateId}`,
        taskQueue: 'tidebox', // the default [temporal] taskQueue, where the stack's workflow worker polls
        args: [{ ...input, sandboxId: lateId, pooled: { ...input.pooled!, staleFrom: Date.now() - 1000 } }],
      });
      const failed = await waitFor(
        'the late actor to fail',
        async () => {
          const { body } = await stack.request('GET', `/v1/sandboxes/${lateId}`);
          return body?.status?.state === 'Failed' ? body : undefined;
        },
        30_000,
        200,
      );
      expect(failed.status.reason).toBe('SANDBOX::CONTAINER_EXITED');
      expect(await scheduled(lateId)).toContain('adoptContainer');
      expect(await stack.containers(lateId)).toHaveLength(0);
      expect((await stack.request('DELETE', `/v1/sandboxes/${lateId}`)).status).toBe(204);
    } finally {
      await connection.close();
    }
    expect((await stack.request('DELETE', `/v1/sandboxes/${claim.body.id}`)).status).toBe(204);
    await deletePool('late');
  });

  it('when the pool has no ready member, then a create goes cold from the template (env included, never shown), or answers 503 with Prefer: pool-only', async () => {
    const made = await stack.request('POST', '/v1/pools', {
      name: 'empty',
      template: { ...template, env: { POOL_SECRET: 's3cret-value' } },
      capacitySpec: { bufferMin: 0, bufferMax: 0, poolMin: 0, poolMax: 1 },
    });
    expect(made.status).toBe(201);
    // A template's env may hold secrets: views leave it out, as a sandbox's view does.
    expect(made.body.template.env).toBeUndefined();
    expect((await stack.request('GET', '/v1/pools/empty')).body.template.env).toBeUndefined();
    expect(JSON.stringify((await stack.request('GET', '/v1/pools')).body)).not.toContain('s3cret-value');
    const only = await stack.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'empty' } }, { Prefer: 'pool-only' });
    expect(only.status).toBe(503);
    expect(only.body.code).toBe('POOL::EMPTY');

    const cold = await stack.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'empty' } });
    expect(cold.status).toBe(202);
    expect(cold.body.status.state).toBe('Running');
    const [container] = await stack.containers(cold.body.id);
    expect(container!.Labels[LABELS.pool]).toBeUndefined(); // made cold, from the template
    expect((await stack.exec(cold.body.id, 'echo "$POOL_SECRET"')).output).toContain('s3cret-value');
    expect((await stack.request('GET', '/v1/pools/empty')).body.misses).toBeGreaterThanOrEqual(2);
    await stack.request('DELETE', `/v1/sandboxes/${cold.body.id}`);
    expect((await stack.request('DELETE', '/v1/pools/empty')).status).toBe(204);
  });

  it('when a pool or a claim asks for what cannot be, then 4xx says why and nothing is made', async () => {
    const before = (await stack.containers()).length;
    const bad = async (body: unknown, status: number, message: RegExp) => {
      const r = await stack.request('POST', '/v1/pools', body);
      expect(r.status).toBe(status);
      expect(r.body.message).toMatch(message);
    };
    await bad({ name: 'x', template, capacitySpec: { bufferMin: 3, bufferMax: 2, poolMin: 0, poolMax: 4 } }, 400, /bufferMin/);
    await bad({ name: 'x', template, capacitySpec: { bufferMin: 1, bufferMax: 2, poolMin: 0, poolMax: 21 } }, 400, /at most 20/);
    await bad({ name: 'Not_A_Label', template, capacitySpec: { bufferMin: 0, bufferMax: 0, poolMin: 0, poolMax: 0 } }, 400, /DNS label/);
    await bad(
      {
        name: 'x',
        template: { ...template, image: { uri: 'Bad Image*x' } },
        capacitySpec: { bufferMin: 0, bufferMax: 0, poolMin: 0, poolMax: 0 },
      },
      400,
      /image/,
    );

    expect((await stack.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'nosuch' } })).status).toBe(404);
    expect((await makePool('strict', 0, 0, 1)).status).toBe(201);
    expect((await makePool('strict', 0, 0, 1)).status).toBe(409);
    const other = await stack.request(
      'POST',
      '/v1/sandboxes',
      sandboxRequest({ image: { uri: 'other:1' }, extensions: { poolRef: 'strict' } }),
    );
    expect(other.status).toBe(400);
    expect(other.body.message).toMatch(/template/);
    const env = await stack.request('POST', '/v1/sandboxes', { timeout: 300, env: { A: '1' }, extensions: { poolRef: 'strict' } });
    expect(env.status).toBe(400);
    expect((await stack.request('DELETE', '/v1/pools/strict')).status).toBe(204);
    expect((await stack.containers()).length).toBe(before);
  });

  it("when a deleted pool's host never answers (no worker on its queue), then the pool ends after its drain bound and its name is free again", async () => {
    // The pool actor's input as the API makes it (from a real pool's history), pointed at a host no worker serves.
    expect((await makePool('alive', 0, 0, 1)).status).toBe(201);
    const connection = await Connection.connect({ address: stack.temporal.address });
    try {
      const client = new Client({ connection });
      const started = (await client.workflow.getHandle('pool/default/alive').fetchHistory()).events![0]!;
      const input = defaultPayloadConverter.fromPayload<PoolWorkflowInput>(
        started.workflowExecutionStartedEventAttributes!.input!.payloads![0]!,
      );
      expect((await stack.request('DELETE', '/v1/pools/alive')).status).toBe(204);
      const { reservation: _none, ...rest } = input;
      const orphaned: PoolWorkflowInput = {
        ...rest,
        name: 'hostless',
        hostId: 'gone-host',
        capacity: { bufferMin: 1, bufferMax: 1, poolMin: 0, poolMax: 1 },
        drainTimeoutSeconds: 3,
      };
      const handle = await client.workflow.start(POOL_WORKFLOW_TYPE, {
        workflowId: 'pool/default/hostless',
        taskQueue: 'tidebox', // the default [temporal] taskQueue, where the stack's workflow worker polls
        args: [orphaned],
      });
      // A member is being made on the host that never answers: its activity waits for ever.
      await waitFor(
        'a member to be scheduled on the gone host',
        async () => ((await handle.fetchHistory()).events ?? []).some((e) => e.activityTaskScheduledEventAttributes),
        30_000,
        200,
      );
      await handle.executeUpdate(deletePoolUpdate);
      // Without the bound this never returns; with it the actor ends ≈ 3 s after the delete.
      await waitFor('the pool actor to end', async () => (await handle.describe()).status.name === 'COMPLETED', 30_000, 200);
      expect((await stack.request('GET', '/v1/pools/hostless')).status).toBe(404);
      expect((await makePool('hostless', 0, 0, 1)).status).toBe(201);
      expect((await stack.request('DELETE', '/v1/pools/hostless')).status).toBe(204);
    } finally {
      await connection.close();
    }
  });

  it("when a pool's host worker is down, then DELETE still ends the pool, and that host's sweep removes its members once back", async () => {
    expect((await makePool('downhost', 1, 1, 1)).status).toBe(201);
    await available('downhost', 1);
    expect(await poolContainers('downhost')).toHaveLength(1);
    await stack.worker.stop();
    try {
      // The pool runs on its host's queue: nobody answers the delete Update, so the API ends the actor itself.
      expect((await stack.request('DELETE', '/v1/pools/downhost')).status).toBe(204);
      expect((await stack.request('GET', '/v1/pools/downhost')).status).toBe(404);
    } finally {
      stack.startWorker();
      await stack.workerReady();
    }
    // The name is free again (a pool's share is reserved through the tenant actor: that needs a worker).
    expect((await makePool('downhost', 0, 0, 1)).status).toBe(201);
    // The old member belongs to no pool now (the new one never made it): the sweep removes it.
    await waitFor('the old member to be swept', async () => (await poolContainers('downhost')).length === 0, 60_000, 250);
    expect((await stack.request('DELETE', '/v1/pools/downhost')).status).toBe(204);
  });

  it('when the worker is SIGKILLed while a claim thaws its member and Temporal restarts, then no member is lost, leaked or given twice', async () => {
    expect((await makePool('crash', 2, 2, 3)).status).toBe(201);
    await available('crash', 2);
    const members = new Map((await poolContainers('crash')).map((c) => [c.Labels[LABELS.sandboxId]!, c.Id]));

    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'member-adopting' });
    await stack.workerReady();
    // The claim's thaw (a local activity of the pool actor, in the claim's own workflow task) hangs…
    const pending = stack.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'crash' } });
    const hung = await waitFor(
      'the member-adopting fault point',
      () => [...members.keys()].find((id) => existsSync(stack.faultFile('member-adopting', id))),
      30_000,
    );
    await stack.worker.kill();
    // …and Temporal restarts meanwhile (same db file): the ledger survives, the unfinished claim does not.
    await stack.temporal.stop();
    await stack.temporal.start();
    stack.startWorker();
    const first = await pending;
    // Answered either way: the claim was lost with its task (5xx, nothing was handed out), or done after the restart.
    expect([202, 503, 504]).toContain(first.status);
    const claimed: string[] = [];
    if (first.status === 202) {
      expect(first.body.status.state).toBe('Running');
      claimed.push(first.body.id);
    }
    // The client retries until it has a sandbox: each claim gets a member no other create got.
    for (let tries = 0; claimed.length < 2; tries++) {
      expect(tries).toBeLessThan(10);
      const r = await stack.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'crash' } });
      if (r.status !== 202) continue;
      expect(r.body.status.state).toBe('Running');
      claimed.push(r.body.id);
    }
    expect(new Set(claimed).size).toBe(2);
    for (const id of claimed) {
      expect(members.has(id)).toBe(true);
      const [container, ...extra] = await stack.containers(id);
      expect(extra).toHaveLength(0);
      expect(container!.Id).toBe(members.get(id));
      expect(container!.State).toBe('running');
    }
    expect(claimed).toContain(hung);
    const refilled = await available('crash', 2);
    expect(refilled.claims).toBeGreaterThanOrEqual(2);
    // Every container the pool made is a live sandbox or a ready member: nothing leaked, nothing twice.
    const made = await poolContainers('crash');
    expect(made).toHaveLength(4);
    expect(new Set(made.map((c) => c.Labels[LABELS.sandboxId])).size).toBe(4);

    for (const sid of claimed) expect((await stack.request('DELETE', `/v1/sandboxes/${sid}`)).status).toBe(204);
    await deletePool('crash');
  });

  it('when the worker is SIGKILLed right after a claim answered and Temporal restarts, then the sandbox runs on its member and the pool lets it go', async () => {
    expect((await makePool('handover', 1, 1, 2)).status).toBe(201);
    await available('handover', 1);
    const claim = await stack.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'handover' } });
    expect([claim.status, claim.body.status.state]).toEqual([202, 'Running']);
    const id: string = claim.body.id;
    // The sandbox actor's first task (telling the pool it took the member over) may not have run yet.
    await stack.worker.kill();
    await stack.temporal.stop();
    await stack.temporal.start();
    stack.startWorker();
    await stack.workerReady();
    expect((await stack.request('GET', `/v1/sandboxes/${id}`)).body.status.state).toBe('Running');
    const refilled = await available('handover', 1);
    expect([refilled.status.allocated, refilled.claims]).toEqual([0, 1]);
    const [container, ...extra] = await stack.containers(id);
    expect(extra).toHaveLength(0);
    expect(container!.State).toBe('running');
    expect((await stack.exec(id, 'echo alive')).output.trim()).toBe('alive');
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    await deletePool('handover');
  });

  it('when a claim is repeated with its Idempotency-Key, then it gets the same sandbox (also at the same time), another key another member, and a key whose sandbox ended 409', async () => {
    expect((await makePool('keyed', 2, 2, 3)).status).toBe(201);
    await available('keyed', 2);
    const members = new Set((await poolContainers('keyed')).map((c) => c.Labels[LABELS.sandboxId]));
    const claimWith = (key: string) =>
      stack.request(
        'POST',
        '/v1/sandboxes',
        { timeout: 300, metadata: { k: 'v' }, extensions: { poolRef: 'keyed' } },
        { 'Idempotency-Key': key },
      );
    // The first claim and its repeat at once: the repeat waits for the first's answer.
    const [first, again] = await Promise.all([claimWith('key-1'), claimWith('key-1')]);
    expect([first.status, first.body.status.state, again.status]).toEqual([202, 'Running', 202]);
    expect(again.body.id).toBe(first.body.id);
    expect(members.has(first.body.id)).toBe(true);
    const later = await claimWith('key-1');
    expect([later.status, later.body.id]).toEqual([202, first.body.id]);
    const other = await claimWith('key-2');
    expect(other.status).toBe(202);
    expect(other.body.id).not.toBe(first.body.id);
    // One container per sandbox; the pool counted two claims, not four.
    for (const id of [first.body.id, other.body.id]) expect(await stack.containers(id)).toHaveLength(1);
    expect((await stack.request('GET', '/v1/pools/keyed')).body.claims).toBe(2);
    // A different body under a used key is refused, as for any create.
    const changed = await stack.request(
      'POST',
      '/v1/sandboxes',
      { timeout: 301, extensions: { poolRef: 'keyed' } },
      { 'Idempotency-Key': 'key-1' },
    );
    expect([changed.status, changed.body.code]).toEqual([409, 'SANDBOX::IDEMPOTENCY_CONFLICT']);
    expect((await stack.request('DELETE', `/v1/sandboxes/${first.body.id}`)).status).toBe(204);
    const ended = await claimWith('key-1');
    expect([ended.status, ended.body.code]).toEqual([409, 'SANDBOX::IDEMPOTENCY_CONFLICT']);
    expect((await stack.request('DELETE', `/v1/sandboxes/${other.body.id}`)).status).toBe(204);
    await deletePool('keyed');
  });

  it('when 100 creates arrive at once for a pool of 20, then each ready member goes to exactly one, the rest are made cold, and the pool refills', async () => {
    expect((await makePool('burst', 20, 20, 20)).status).toBe(201);
    await available('burst', 20);
    const members = new Set((await poolContainers('burst')).map((c) => c.Labels[LABELS.sandboxId]!));
    expect(members.size).toBe(20);
    const results = await Promise.all(
      Array.from({ length: 100 }, () => stack.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'burst' } })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(100).fill(202));
    expect(results.map((r) => r.body.status.state)).toEqual(Array(100).fill('Running'));
    const ids = results.map((r) => r.body.id as string);
    expect(new Set(ids).size).toBe(100);
    // Every member went to exactly one create (ids are distinct), and every ready member was taken.
    expect(ids.filter((id) => members.has(id)).sort()).toEqual([...members].sort());
    // The engine agrees: one running container per sandbox, none shared, no member left over twice.
    const byId = new Map<string, string[]>();
    for (const c of await stack.containers()) {
      const id = c.Labels[LABELS.sandboxId]!;
      if (ids.includes(id)) byId.set(id, [...(byId.get(id) ?? []), `${c.Id}:${c.State}`]);
    }
    expect([...byId.values()].filter((cs) => cs.length === 1 && cs[0]!.endsWith(':running'))).toHaveLength(100);
    // Members made while the burst was queued were claimed too: each a hit, every other create a miss.
    const pool = await available('burst', 20);
    const hits = (await poolContainers('burst')).filter((c) => ids.includes(c.Labels[LABELS.sandboxId]!));
    expect(hits.length).toBeGreaterThanOrEqual(20);
    expect([pool.claims, pool.misses]).toEqual([hits.length, 100 - hits.length]);
    // The refill: new members, frozen, none of them a sandbox a create got.
    const refill = (await poolContainers('burst')).filter((c) => !ids.includes(c.Labels[LABELS.sandboxId]!));
    expect(refill.map((c) => c.State)).toEqual(Array(20).fill('paused'));

    await Promise.all(ids.map((id) => stack.request('DELETE', `/v1/sandboxes/${id}`)));
    expect((await stack.request('DELETE', '/v1/pools/burst')).status).toBe(204);
    await waitFor('the pool members to be gone', async () => (await poolContainers('burst')).length === 0, 120_000, 500);
  }, 600_000);
});

describe('a refill after a claim (pools.refillDelayMs)', () => {
  let own: Stack;
  beforeAll(async () => {
    own = await Stack.start({ apiKey: API_KEY, config: { pools: { maxMembers: 20, refillDelayMs: 30_000 } } });
  });
  afterAll(async () => {
    await own?.destroy();
  });

  it('when a claim leaves a member ready, then the replacement waits; a claim that empties the pool has it refilled at once', async () => {
    expect((await makePool('calm', 2, 2, 4, own)).status).toBe(201);
    const status = async () => (await own.request('GET', '/v1/pools/calm')).body.status;
    await waitFor('two ready members', async () => (await status())?.available === 2, 60_000, 200);
    const first = await own.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'calm' } });
    expect(first.body.status.state).toBe('Running');
    // For three seconds (of the 30 s delay) one member is ready and none is being made.
    for (const end = Date.now() + 3000; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
      expect(await status()).toMatchObject({ available: 1, warming: 0 });
      expect((await poolContainers('calm', own)).filter((c) => c.State === 'paused')).toHaveLength(1);
    }
    const second = await own.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'calm' } });
    expect(second.body.status.state).toBe('Running');
    // Empty now: both replacements are made at once, long before the first claim's delay is over.
    const emptied = Date.now();
    await waitFor('two ready members again', async () => (await status())?.available === 2, 60_000, 200);
    expect(Date.now() - emptied).toBeLessThan(20_000);

    for (const r of [first, second]) expect((await own.request('DELETE', `/v1/sandboxes/${r.body.id}`)).status).toBe(204);
    await deletePool('calm', own);
  }, 120_000);
});

describe('transparent claims (pools.transparentClaims)', () => {
  let own: Stack;
  beforeAll(async () => {
    own = await Stack.start({ apiKey: API_KEY, config: { pools: { maxMembers: 20, transparentClaims: true } } });
  });
  afterAll(async () => {
    await own?.destroy();
  });

  it('when a create names no pool but asks exactly for what a pool runs, then it takes a member; any other create goes cold', async () => {
    const withEnv = { ...template, env: { MODE: 'pooled' } };
    const made = await own.request('POST', '/v1/pools', {
      name: 'quiet',
      template: withEnv,
      capacitySpec: { bufferMin: 2, bufferMax: 2, poolMin: 0, poolMax: 4 },
    });
    expect(made.status).toBe(201);
    await waitFor('two ready members', async () => (await own.request('GET', '/v1/pools/quiet')).body.status?.available === 2, 60_000, 200);
    const memberIds = async () => new Set((await poolContainers('quiet', own)).map((c) => c.Labels[LABELS.sandboxId]!));
    const members = await memberIds();

    // Same image, entrypoint, resources and env; its own timeout and metadata: a member, thawed.
    const same = await own.request('POST', '/v1/sandboxes', { ...withEnv, timeout: 300, metadata: { who: 'same' } });
    expect([same.status, same.body.status.state]).toEqual([202, 'Running']);
    expect(members.has(same.body.id)).toBe(true);
    expect(same.body.metadata).toEqual({ who: 'same' });
    // Other env, or other resources: not what the members run, so cold (never a member).
    const otherEnv = await own.request('POST', '/v1/sandboxes', { ...withEnv, env: { MODE: 'other' }, timeout: 300 });
    const otherSize = await own.request('POST', '/v1/sandboxes', {
      ...withEnv,
      resourceLimits: { cpu: '500m', memory: '64Mi' },
      timeout: 300,
    });
    for (const r of [otherEnv, otherSize]) {
      expect([r.status, r.body.status.state]).toEqual([202, 'Running']);
      expect(members.has(r.body.id)).toBe(false);
    }
    const exec = await own.exec(otherEnv.body.id, 'echo $MODE');
    expect(exec.output.trim()).toBe('other');
    expect((await own.exec(same.body.id, 'echo $MODE')).output.trim()).toBe('pooled');
    // Only the matching create was counted by the pool.
    const { body: pool } = await own.request('GET', '/v1/pools/quiet');
    expect([pool.claims, pool.misses]).toEqual([1, 0]);

    for (const r of [same, otherEnv, otherSize]) expect((await own.request('DELETE', `/v1/sandboxes/${r.body.id}`)).status).toBe(204);
    await deletePool('quiet', own);
  }, 180_000);
});

describe('a claim refused over quota', () => {
  let own: Stack;
  beforeAll(async () => {
    own = await Stack.start({ apiKey: API_KEY, config: { pools: { maxMembers: 20 }, quotas: { maxSandboxes: 2 } } });
  });
  afterAll(async () => {
    await own?.destroy();
  });

  it('when the tenant is at its limit, then the claim answers 429 and the member its claim thawed is frozen again and ready, not rebuilt', async () => {
    // The pool holds one sandbox of the quota (poolMax 1); one claimed sandbox takes the second.
    expect((await makePool('tight', 1, 1, 1, own)).status).toBe(201);
    const readyMember = async () =>
      waitFor(
        'a ready, frozen member',
        async () => {
          const { body } = await own.request('GET', '/v1/pools/tight');
          if (body.status?.available !== 1 || body.status.warming !== 0) return undefined;
          const [member, ...more] = (await poolContainers('tight', own)).filter((c) => c.State === 'paused');
          return member && more.length === 0 ? member : undefined;
        },
        60_000,
        200,
      );
    await readyMember();
    const first = await own.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'tight' } });
    expect([first.status, first.body.status.state]).toEqual([202, 'Running']);

    // The pool refills; the next claim would be a third sandbox of the quota.
    const member = await readyMember();
    const refused = await own.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'tight' } });
    expect([refused.status, refused.body.code]).toEqual([429, 'SANDBOX::QUOTA_EXCEEDED']);
    // Its claim had thawed the member: it is frozen again and ready — the same container, not a new one.
    const again = await readyMember();
    expect(again.Id).toBe(member.Id);
    expect(again.Labels[LABELS.sandboxId]).toBe(member.Labels[LABELS.sandboxId]);
    expect(await own.containers(member.Labels[LABELS.sandboxId])).toHaveLength(1);

    expect((await own.request('DELETE', `/v1/sandboxes/${first.body.id}`)).status).toBe(204);
    await deletePool('tight', own);
  }, 180_000);
});

describe('a pool that continues as new', () => {
  let own: Stack;
  beforeAll(async () => {
    // Temporal suggests continue-as-new after 80 events: a few claims and refills take the pool past it.
    own = await Stack.start({
      apiKey: API_KEY,
      config: { pools: { maxMembers: 20 } },
      temporalDynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 80 },
    });
  });
  afterAll(async () => {
    await own?.destroy();
  });

  it('when claims keep coming across its continue-as-new, then every claim is a distinct member or a cold create, and the ledger carries over', async () => {
    expect((await makePool('long', 2, 2, 4, own)).status).toBe(201);
    const connection = await Connection.connect({ address: own.temporal.address });
    try {
      const handle = new Client({ connection }).workflow.getHandle('pool/default/long');
      const runs = new Set<string>();
      const ids: string[] = [];
      // Bounded: at most 12 rounds of two concurrent claims, until the actor has run twice.
      for (let round = 0; round < 12 && runs.size < 2; round++) {
        await waitFor(
          'two ready members',
          async () => (await own.request('GET', '/v1/pools/long')).body.status?.available === 2,
          60_000,
          100,
        );
        const claims = await Promise.all(
          [0, 1].map(() => own.request('POST', '/v1/sandboxes', { timeout: 300, extensions: { poolRef: 'long' } })),
        );
        for (const c of claims) {
          expect([c.status, c.body.status.state]).toEqual([202, 'Running']);
          ids.push(c.body.id);
        }
        runs.add((await handle.describe()).runId);
        await Promise.all(ids.splice(0).map((id) => own.request('DELETE', `/v1/sandboxes/${id}`)));
      }
      expect(runs.size).toBeGreaterThanOrEqual(2);
      // The new run knows its members: claims, refills and the ready count go on.
      const { body } = await own.request('GET', '/v1/pools/long');
      expect(body.claims + body.misses).toBeGreaterThanOrEqual(4);
      await waitFor(
        'two ready members after the continue-as-new',
        async () => (await own.request('GET', '/v1/pools/long')).body.status?.available === 2,
        60_000,
        100,
      );
      const frozen = await poolContainers('long', own);
      expect(frozen.map((c) => c.State)).toEqual(['paused', 'paused']);
    } finally {
      await connection.close();
    }
    await deletePool('long', own);
  }, 300_000);
});
