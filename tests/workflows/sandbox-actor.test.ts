/**
 * The sandbox actor's state machine, on a real Temporal dev server, with the runtime and messaging
 * activities replaced by scripted fakes (tests/helpers/fake-host.ts). Every transition the actor
 * can make is driven here; the end-to-end suites prove the same paths against Docker.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { type InjectedSinks, Worker } from '@temporalio/worker';
import {
  announceRenewScheduleUpdate,
  deleteUpdate,
  describeQuery,
  eventsQuery,
  patchMetadataUpdate,
  pauseUpdate,
  renewUpdate,
  resumeUpdate,
  runtimeExitedSignal,
  runtimeProgressSignal,
  type SandboxWorkflow,
} from '../../contracts/sandbox-actor';
import { SA } from '../../contracts/search-attributes';
import type { SandboxViewSinks } from '../../contracts/sandbox-views';
import { ErrorCodes } from '../../core/errors';
import {
  SANDBOX_ACTOR_VERSION,
  type SandboxSpec,
  type SandboxState,
  type SandboxView,
  type SandboxWorkflowInput,
} from '../../core/sandbox';
import { hostTaskQueue, sandboxWorkflowId } from '../../core/sandbox';
import { FakeHost } from '../helpers/fake-host';
import { waitFor } from '../helpers/stack';
import { bundleQuietly, startWorkflowEnv } from '../helpers/workflow-env';

const TASK_QUEUE = 'sandbox-actor-test';
const HOST_ID = 'fake';
/** Low enough that a few dozen renewals make the server suggest a continue-as-new. */
const SUGGEST_CONTINUE_AS_NEW_AT = 120;

let env: TestWorkflowEnvironment;
let host: FakeHost;
let workers: Worker[] = [];
let running: Promise<unknown>;
/** What the actors published to the read projection's sink, by sandbox id. */
const published = new Map<string, Array<{ view: SandboxView; at: number }>>();
const sinks: InjectedSinks<SandboxViewSinks> = {
  sandboxViews: {
    publish: {
      fn: (_info, view, at) => void published.set(view.id, [...(published.get(view.id) ?? []), { view, at }]),
      callDuringReplay: false,
    },
  },
};

beforeAll(async () => {
  env = await startWorkflowEnv({ suggestContinueAsNewAt: SUGGEST_CONTINUE_AS_NEW_AT, searchAttributes: Object.values(SA) });
  host = new FakeHost();
  const workflowBundle = await bundleQuietly(require.resolve('../../workflows'));
  const common = { connection: env.nativeConnection, namespace: 'default' };
  workers = [
    await Worker.create({ ...common, taskQueue: TASK_QUEUE, workflowBundle, activities: host.messaging(), sinks }),
    // Cancellations reach a hanging activity with its next heartbeat: send those at once.
    await Worker.create({
      ...common,
      taskQueue: hostTaskQueue(TASK_QUEUE, HOST_ID),
      activities: host.runtime(),
      maxHeartbeatThrottleInterval: '100ms',
    }),
  ];
  running = Promise.all(workers.map((w) => w.run()));
}, 120_000);

afterAll(async () => {
  for (const w of workers) w.shutdown();
  await running?.catch(() => undefined);
  await env?.teardown();
});

function inputFor(overrides: Partial<SandboxSpec> = {}, extra: Partial<SandboxWorkflowInput> = {}): SandboxWorkflowInput {
  return {
    sandboxId: randomUUID(),
    tenant: 'acme',
    namespace: 'acme-ns',
    hostId: HOST_ID,
    createdAt: new Date().toISOString(),
    requestHash: 'hash',
    expiry: { maxTimeoutSeconds: 600 },
    spec: {
      image: { uri: 'example/image:1' },
      entrypoint: ['sleep', 'infinity'],
      env: {},
      metadata: { team: 'a' },
      extensions: {},
      timeoutSeconds: 300,
      resources: { cpuMillis: 500, memoryBytes: 256 * 2 ** 20 },
      volumes: [],
      ossfs: [],
      pvcs: [],
      ports: [],
      ...overrides,
    },
    ...extra,
  };
}

async function start(input: SandboxWorkflowInput): Promise<WorkflowHandle<SandboxWorkflow>> {
  return env.client.workflow.start<SandboxWorkflow>('sandboxWorkflow', {
    workflowId: sandboxWorkflowId(input.sandboxId),
    taskQueue: TASK_QUEUE,
    args: [input],
  });
}

const stateOf = async (handle: WorkflowHandle<SandboxWorkflow>) => (await handle.query(describeQuery)).status.state;
const reachState = (handle: WorkflowHandle<SandboxWorkflow>, state: SandboxState) =>
  waitFor(`sandbox ${handle.workflowId} to be ${state}`, async () => (await stateOf(handle)) === state, 20_000, 50);
const deleteAndWait = (handle: WorkflowHandle<SandboxWorkflow>) => handle.executeUpdate(deleteUpdate, { args: [{ waitMs: 15_000 }] });

/** The catalogued code an Update was refused with. */
async function refusal(update: Promise<unknown>): Promise<string | undefined> {
  try {
    await update;
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) return err.cause.type ?? undefined;
    throw err;
  }
  return undefined;
}

/** The states of a sandbox's history, in order (renewals keep the state they found). */
const statesOf = (events: Array<{ state: string; reason?: string }>) => events.filter((e) => e.reason !== 'renewed').map((e) => e.state);

describe('sandbox actor (workflow tests on a real dev server, fake runtime)', () => {
  it('when created, renewed, paused, resumed and deleted, then it goes Pending → Running → Pausing → Paused → Resuming → Running → Stopping → Terminated, publishing each state', async () => {
    const input = inputFor();
    const handle = await start(input);
    await reachState(handle, 'Running');
    const described = await handle.describe();
    expect((described.memo?.view as { status: { state: string } }).status.state).toBe('Running');
    expect(described.typedSearchAttributes.get(SA.state)).toBe('Running');
    expect(described.typedSearchAttributes.get(SA.tenant)).toBe('acme');

    const expiresAt = new Date(Date.now() + 400_000).toISOString();
    expect(await handle.executeUpdate(renewUpdate, { args: [{ expiresAt }] })).toEqual({ expiresAt });
    expect((await handle.executeUpdate(pauseUpdate)).status.state).toBe('Pausing');
    await reachState(handle, 'Paused');
    expect((await handle.executeUpdate(resumeUpdate)).status.state).toBe('Resuming');
    await reachState(handle, 'Running');
    expect((await deleteAndWait(handle)).status.state).toBe('Terminated');

    const { view, events } = await handle.result();
    expect(view).toMatchObject({ expiresAt, terminationReason: 'deleted' });
    expect(view.containerId).toBeUndefined();
    expect(statesOf(events)).toEqual(['Pending', 'Running', 'Pausing', 'Paused', 'Resuming', 'Running', 'Stopping', 'Terminated']);
    expect(events.find((e) => e.reason === 'renewed')).toMatchObject({
      actor: 'api',
      state: 'Running',
      message: `1 renewal in a row; expiresAt ${expiresAt}`,
    });
    const calls = host.callsOf(input.sandboxId);
    expect(calls.slice(0, 4)).toEqual(['ensureContainer', 'startContainer', 'pauseContainer', 'resumeContainer']);
    // Teardown removes the workload and the renew schedule side by side (two task queues: either may start first), then gives the quota back.
    expect(calls.slice(4, 6).sort()).toEqual(['deleteRenewSchedule', 'removeContainers']);
    expect(calls.slice(6)).toEqual(['releaseQuota']);

    // The read projection's sink got each view as it was published, in workflow-time order, ending with the last.
    const sunk = published.get(input.sandboxId) ?? [];
    const times = sunk.map((p) => p.at);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const states = sunk.map((p) => p.view.status.state);
    expect(states.filter((state, i) => state !== states[i - 1])).toEqual(statesOf(events));
    expect(sunk.some((p) => p.view.expiresAt === expiresAt && p.view.status.state === 'Running')).toBe(true);
    expect(sunk.at(-1)?.view).toEqual(view);
  });

  it('when its timeout passes, then it expires on its own: Running → Stopping → Terminated by the expiry', async () => {
    const input = inputFor({ timeoutSeconds: 1 });
    const handle = await start(input);
    const { view, events } = await handle.result();
    expect(view.terminationReason).toBe('expired');
    expect(statesOf(events)).toEqual(['Pending', 'Running', 'Stopping', 'Terminated']);
    expect(events.slice(-2)).toEqual([
      expect.objectContaining({ state: 'Stopping', actor: 'expiry', reason: 'ttl_expiry' }),
      expect.objectContaining({ state: 'Terminated', actor: 'expiry', reason: 'ttl_expiry' }),
    ]);
    expect(Date.parse(events.at(-2)!.at)).toBeGreaterThanOrEqual(Date.parse(input.createdAt) + 1000);
  });

  it('when renewed before it expires, then it lives until the new expiresAt; renewals by one actor fold into one history entry', async () => {
    const input = inputFor({ timeoutSeconds: 3 });
    const handle = await start(input);
    await reachState(handle, 'Running');
    const first = new Date(Date.now() + 3500).toISOString();
    const last = new Date(Date.now() + 4000).toISOString();
    await handle.executeUpdate(renewUpdate, { args: [{ expiresAt: first, actor: 'schedule' }] });
    await handle.executeUpdate(renewUpdate, { args: [{ expiresAt: last, actor: 'schedule' }] });
    const { view, events } = await handle.result();
    expect(view).toMatchObject({ expiresAt: last, terminationReason: 'expired' });
    const renewals = events.filter((e) => e.reason === 'renewed');
    expect(renewals).toEqual([
      expect.objectContaining({ actor: 'schedule', renewals: 2, message: `2 renewals in a row; expiresAt ${last}` }),
    ]);
    expect(Date.parse(events.at(-1)!.at)).toBeGreaterThanOrEqual(Date.parse(last));
  });

  it('when a renewal is in the past, earlier than now set, beyond the expiry policy or for a manual-cleanup sandbox, then the actor refuses it and nothing changes', async () => {
    const handle = await start(inputFor({}, { expiry: { maxTimeoutSeconds: 900 } }));
    await reachState(handle, 'Running');
    const before = (await handle.query(describeQuery)).expiresAt!;
    const renew = (expiresAt: string) => refusal(handle.executeUpdate(renewUpdate, { args: [{ expiresAt }] }));
    expect(await renew(new Date(Date.now() - 1000).toISOString())).toBe('SANDBOX::INVALID_EXPIRATION');
    expect(await renew(new Date(Date.parse(before) - 1000).toISOString())).toBe('SANDBOX::INVALID_EXPIRATION');
    expect(await renew(new Date(Date.now() + 901_000).toISOString())).toBe('SANDBOX::INVALID_EXPIRATION');
    expect(await renew(new Date(Date.now() + 890_000).toISOString())).toBeUndefined();
    await deleteAndWait(handle);

    const manual = await start(inputFor({ timeoutSeconds: null }));
    await reachState(manual, 'Running');
    expect(await refusal(manual.executeUpdate(renewUpdate, { args: [{ expiresAt: new Date(Date.now() + 60_000).toISOString() }] }))).toBe(
      'SANDBOX::MANUAL_CLEANUP',
    );
    expect((await manual.query(describeQuery)).expiresAt).toBeNull();
    await deleteAndWait(manual);
  });

  it('when a provisioning step fails, then it compensates (removes the workload, releases its mounts) and stays Failed until deleted', async () => {
    const ossfs = ['k1', 'k1', 'k2'].map((key, i) => ({
      name: `v${i}`,
      mountPath: `/data/${i}`,
      readOnly: false,
      key,
      source: {
        bucket: 'bkt',
        endpoint: 'http://127.0.0.1:1',
        version: '1.0' as const,
        prefix: '',
        options: [],
        accessKeyId: 'id',
        accessKeySecret: 'secret',
      },
    }));
    const input = inputFor({ ossfs });
    host.script(input.sandboxId, { fail: { startContainer: { kind: 'CONTAINER_EXITED', message: 'entrypoint exited with code 1' } } });
    const handle = await start(input);
    await reachState(handle, 'Failed');
    expect((await handle.query(describeQuery)).status).toMatchObject({
      reason: 'SANDBOX::CONTAINER_EXITED',
      message: 'entrypoint exited with code 1',
    });
    // One acquire per distinct mount, all before the container; every volume bound at its path.
    expect(host.callsOf(input.sandboxId)).toEqual([
      'acquireMount',
      'acquireMount',
      'ensureContainer',
      'startContainer',
      'removeContainers',
      'releaseMount',
      'releaseMount',
    ]);
    const ensure = host.calls.find((c) => c.sandboxId === input.sandboxId && c.step === 'ensureContainer')!.input as {
      mountBinds: unknown[];
    };
    expect(ensure.mountBinds).toEqual(ossfs.map((v) => ({ hostPath: `/mounts/${v.key}`, mountPath: v.mountPath, readOnly: false })));

    expect(await refusal(handle.executeUpdate(pauseUpdate))).toBe('SANDBOX::INVALID_STATE');
    await deleteAndWait(handle);
    const { events } = await handle.result();
    expect(statesOf(events)).toEqual(['Pending', 'Failed', 'Stopping', 'Terminated']);
    expect(events[1]).toMatchObject({ actor: 'failure', reason: 'SANDBOX::CONTAINER_EXITED' });
  });

  it('when deleted while provisioning hangs, then the provisioning is cancelled and it goes Pending → Stopping → Terminated without a Failed entry', async () => {
    const input = inputFor();
    host.script(input.sandboxId, { hang: ['ensureContainer'] });
    const handle = await start(input);
    await waitFor('the create to start', () => host.callsOf(input.sandboxId).includes('ensureContainer'), 20_000, 50);
    await handle.signal(runtimeProgressSignal, { reason: 'Unschedulable', message: '0/3 nodes are available' });
    await handle.signal(runtimeProgressSignal, { reason: 'Unschedulable', message: '0/4 nodes are available' });
    await handle.signal(runtimeProgressSignal, { reason: 'ContainerCreating', message: 'pulling image' });
    await waitFor(
      'the progress to show',
      async () => (await handle.query(describeQuery)).status.reason === 'ContainerCreating',
      20_000,
      50,
    );
    const pending = (await handle.query(eventsQuery)).filter((e) => e.actor === 'runtime');
    // One history entry per reason: the changed message replaced its entry.
    expect(pending.map((e) => [e.state, e.reason, e.message])).toEqual([
      ['Pending', 'Unschedulable', '0/4 nodes are available'],
      ['Pending', 'ContainerCreating', 'pulling image'],
    ]);

    expect((await deleteAndWait(handle)).status.state).toBe('Terminated');
    const { events } = await handle.result();
    expect(statesOf(events)).toEqual(['Pending', 'Pending', 'Pending', 'Stopping', 'Terminated']);
    expect(host.callsOf(input.sandboxId, 'cancelled')).toEqual(['ensureContainer']);
    expect(host.callsOf(input.sandboxId)).not.toContain('startContainer');
    expect(host.callsOf(input.sandboxId).filter((s) => s === 'removeContainers').length).toBeGreaterThanOrEqual(1);
  });

  it('when a pause or a resume fails, then it returns to the state it came from with the failure as reason', async () => {
    const input = inputFor();
    host.script(input.sandboxId, { fail: { pauseContainer: { kind: 'RUNTIME_REJECTED', message: 'cgroup freezer unavailable' } } });
    const handle = await start(input);
    await reachState(handle, 'Running');
    await handle.executeUpdate(pauseUpdate);
    await waitFor(
      'the failed pause',
      async () => (await handle.query(describeQuery)).status.reason === 'SANDBOX::RUNTIME_REJECTED',
      20_000,
      50,
    );
    expect((await handle.query(describeQuery)).status).toMatchObject({
      state: 'Running',
      message: 'pause failed: cgroup freezer unavailable',
    });

    host.script(input.sandboxId, { fail: { resumeContainer: { kind: 'RUNTIME_REJECTED', message: 'thaw refused' } } });
    await handle.executeUpdate(pauseUpdate);
    await reachState(handle, 'Paused');
    await handle.executeUpdate(resumeUpdate);
    await waitFor(
      'the failed resume',
      async () => (await handle.query(describeQuery)).status.message === 'resume failed: thaw refused',
      20_000,
      50,
    );
    expect(await stateOf(handle)).toBe('Paused');
    expect(await refusal(handle.executeUpdate(pauseUpdate))).toBe('SANDBOX::INVALID_STATE');
    await deleteAndWait(handle);
    const { events } = await handle.result();
    expect(statesOf(events)).toEqual([
      'Pending',
      'Running',
      'Pausing',
      'Running',
      'Pausing',
      'Paused',
      'Resuming',
      'Paused',
      'Stopping',
      'Terminated',
    ]);
  });

  it.each([
    ['pause', 'pauseContainer', 'Pausing'],
    ['resume', 'resumeContainer', 'Resuming'],
  ] as const)('when deleted while a %s hangs, then the %s is cancelled and it tears down from %s', async (op, step, transitional) => {
    const input = inputFor();
    const handle = await start(input);
    await reachState(handle, 'Running');
    if (op === 'resume') {
      await handle.executeUpdate(pauseUpdate);
      await reachState(handle, 'Paused');
    }
    host.script(input.sandboxId, { hang: [step] });
    await handle.executeUpdate(op === 'pause' ? pauseUpdate : resumeUpdate);
    await waitFor(`the ${op} to start`, () => host.callsOf(input.sandboxId).includes(step), 20_000, 50);
    expect(await stateOf(handle)).toBe(transitional);
    await deleteAndWait(handle);
    const { events } = await handle.result();
    expect(statesOf(events).slice(-3)).toEqual([transitional, 'Stopping', 'Terminated']);
    await waitFor(`the ${op} to be cancelled`, () => host.callsOf(input.sandboxId, 'cancelled').includes(step), 20_000, 50);
  });

  it('when its container exits on its own, then it removes the workload and goes Running → Failed; an exit of another container is ignored', async () => {
    const input = inputFor();
    const handle = await start(input);
    await reachState(handle, 'Running');
    await handle.signal(runtimeExitedSignal, { containerId: 'someone-else', exitCode: 1 });
    await handle.executeUpdate(patchMetadataUpdate, { args: [{ probe: '1' }] }); // a round trip after the signal
    expect(await stateOf(handle)).toBe('Running');

    await handle.signal(runtimeExitedSignal, { containerId: `c-${input.sandboxId}`, exitCode: 137 });
    await reachState(handle, 'Failed');
    const view = await handle.query(describeQuery);
    expect(view.status).toMatchObject({ reason: 'SANDBOX::CONTAINER_EXITED', message: 'sandbox process exited with code 137' });
    expect(view.containerId).toBeUndefined();
    expect(view.network).toBeUndefined();
    expect(host.callsOf(input.sandboxId).filter((s) => s === 'removeContainers')).toHaveLength(1);
    await deleteAndWait(handle);
    expect(statesOf((await handle.result()).events)).toEqual(['Pending', 'Running', 'Failed', 'Stopping', 'Terminated']);
  });

  it('when paused until its timeout passes, or Failed until it passes, then the expiry ends it from Paused and from Failed', async () => {
    const paused = await start(inputFor({ timeoutSeconds: 3 }));
    await reachState(paused, 'Running');
    await paused.executeUpdate(pauseUpdate);
    const failedInput = inputFor({ timeoutSeconds: 1 });
    host.script(failedInput.sandboxId, { fail: { ensureContainer: { kind: 'IMAGE_UNAVAILABLE', message: 'no such image' } } });
    const failed = await start(failedInput);

    expect(statesOf((await paused.result()).events)).toEqual(['Pending', 'Running', 'Pausing', 'Paused', 'Stopping', 'Terminated']);
    const failedOutcome = await failed.result();
    expect(statesOf(failedOutcome.events)).toEqual(['Pending', 'Failed', 'Stopping', 'Terminated']);
    expect(failedOutcome.view.terminationReason).toBe('expired');
  });

  it('when metadata is patched, then the view and the search attribute follow; a patch breaking the label rules is refused', async () => {
    const handle = await start(inputFor());
    await reachState(handle, 'Running');
    const view = await handle.executeUpdate(patchMetadataUpdate, { args: [{ team: null, owner: 'bob' }] });
    expect(view.metadata).toEqual({ owner: 'bob' });
    expect((await handle.describe()).typedSearchAttributes.get(SA.metadata)).toEqual(['owner=bob']);
    expect(await refusal(handle.executeUpdate(patchMetadataUpdate, { args: [{ 'tidebox.io/x': 'y' }] }))).toBe(
      'SANDBOX::INVALID_PARAMETER',
    );
    expect(await refusal(handle.executeUpdate(patchMetadataUpdate, { args: [{ owner: 'not a label value' }] }))).toBe(
      'SANDBOX::INVALID_PARAMETER',
    );
    await deleteAndWait(handle);
  });

  it('when its history grows past the server’s suggestion, then it continues as new with its whole state and still answers', async () => {
    const input = inputFor({ timeoutSeconds: 600 }, { expiry: { maxTimeoutSeconds: 3600 } });
    const handle = await start(input);
    await reachState(handle, 'Running');
    const firstRun = (await handle.describe()).runId;
    let expiresAt = '';
    for (let i = 1; i <= 30; i++) {
      expiresAt = new Date(Date.parse(input.createdAt) + 600_000 + i * 1000).toISOString();
      await handle.executeUpdate(renewUpdate, { args: [{ expiresAt, actor: 'schedule' }] });
    }
    await waitFor('a new run', async () => (await handle.describe()).runId !== firstRun, 20_000, 100);
    const view = await handle.query(describeQuery);
    expect(view).toMatchObject({ expiresAt, status: { state: 'Running' }, containerId: `c-${input.sandboxId}` });
    expect((await handle.query(eventsQuery)).filter((e) => e.reason === 'renewed')).toEqual([expect.objectContaining({ renewals: 30 })]);
    const described = await handle.describe();
    expect(described.typedSearchAttributes.get(SA.expiresAt)?.toISOString()).toBe(expiresAt);
    expect((described.memo?.view as { status: { state: string } }).status.state).toBe('Running');
    await deleteAndWait(handle);
    expect(statesOf((await handle.result()).events)).toEqual(['Pending', 'Running', 'Stopping', 'Terminated']);
  });

  it('when a renew schedule is announced again and again, then the actor continues as new keeping what it was told, and its teardown deletes the schedule', async () => {
    const input = inputFor({ timeoutSeconds: 600 }, { actorVersion: SANDBOX_ACTOR_VERSION });
    const handle = await start(input);
    await reachState(handle, 'Running');
    const firstRun = (await handle.describe()).runId;
    // A tenant re-PUTting its schedule in a loop: each announcement is an Update in the history.
    for (let i = 0; i < 30; i++) await handle.executeUpdate(announceRenewScheduleUpdate, { args: [] });
    await waitFor('a new run', async () => (await handle.describe()).runId !== firstRun, 20_000, 100);
    await deleteAndWait(handle);
    expect(host.callsOf(input.sandboxId)).toContain('deleteRenewSchedule');
  });

  it('when an actor ends, then its quota goes back inside the last workflow task of the teardown (a local activity): no Signal command, no task of its own', async () => {
    const input = inputFor({}, { actorVersion: SANDBOX_ACTOR_VERSION });
    const handle = await start(input);
    await reachState(handle, 'Running');
    await deleteAndWait(handle);
    await handle.result();
    expect(host.callsOf(input.sandboxId)).toContain('releaseQuota');
    const types = ((await handle.fetchHistory()).events ?? []).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0]);
    expect(types).not.toContain('EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED');
    // After the workload's removal: one workflow task, whose local activity (a marker) releases, then the end.
    const afterRemoval = types.slice(types.lastIndexOf('EVENT_TYPE_ACTIVITY_TASK_COMPLETED') + 1);
    expect(afterRemoval.filter((t) => t === 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED')).toHaveLength(1);
    expect(afterRemoval).toContain('EVENT_TYPE_MARKER_RECORDED');
    expect(afterRemoval.at(-1)).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED');
  });

  it('when no renew schedule was announced, then the teardown does not look for one; and an announcement to a sandbox being deleted is refused', async () => {
    const input = inputFor({}, { actorVersion: SANDBOX_ACTOR_VERSION });
    host.script(input.sandboxId, { hang: ['removeContainers'] });
    const handle = await start(input);
    await reachState(handle, 'Running');
    await handle.executeUpdate(deleteUpdate, { args: [{ waitMs: 0 }] });
    await waitFor('the teardown to start removing', async () => host.callsOf(input.sandboxId).includes('removeContainers'), 10_000, 50);
    expect(await refusal(handle.executeUpdate(announceRenewScheduleUpdate, { args: [] }))).toBe(ErrorCodes.INVALID_STATE.code);
    expect(host.callsOf(input.sandboxId)).not.toContain('deleteRenewSchedule');
    await handle.terminate('the removal hangs by script');
  });
});
