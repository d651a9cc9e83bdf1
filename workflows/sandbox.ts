import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/docker/host-activities';
import { ErrorCodes } from '../core/errors';
import { SA } from '../core/search-attributes';
import {
  EventActor,
  hostTaskQueue,
  initialView,
  metadataKeywords,
  SandboxCarriedState,
  SandboxEvent,
  SandboxState,
  SandboxView,
  SandboxWorkflowInput,
  TerminationReason,
} from '../core/sandbox';

export const describeQuery = defineQuery<SandboxView>('describe');
export const eventsQuery = defineQuery<SandboxEvent[]>('events');
/** Resolves once the sandbox has left Pending, or after `timeoutMs`; returns the view either way. */
export const awaitSettledUpdate = defineUpdate<SandboxView, [{ timeoutMs: number }]>('awaitSettled');
export const renewUpdate = defineUpdate<{ expiresAt: string }, [{ expiresAt: string; maxExpiresAt: string }]>('renew');
/** Starts teardown; resolves when Terminated or after `waitMs`. */
export const deleteUpdate = defineUpdate<SandboxView, [{ waitMs: number }]>('delete');

/** Sent by the host's exit watcher when the sandbox's container stopped on its own. */
export const runtimeExitedSignal = defineSignal<[{ containerId: string; exitCode: number }]>('runtimeExited');

const MAX_EVENTS = 200;

const reject = (kind: keyof typeof ErrorCodes, message: string) =>
  ApplicationFailure.create({ type: ErrorCodes[kind].code, message, nonRetryable: true });

/**
 * The sandbox actor: one workflow per sandbox, id `sandbox/<sandboxId>`.
 * Pending → provision (create → start → running) → Running ⇄ wait for expiry or delete → Stopping →
 * remove the workload → Terminated. A failed provisioning step compensates and leaves Failed, which
 * still expires or waits for delete so the failure can be inspected.
 */
export async function sandboxWorkflow(input: SandboxWorkflowInput): Promise<SandboxView> {
  const host = proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(workflowInfo().taskQueue, input.hostId),
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '500ms', maximumInterval: '10s', maximumAttempts: 8 },
  });
  // Teardown must eventually succeed: a leaked container is worse than a slow delete.
  const teardown = proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(workflowInfo().taskQueue, input.hostId),
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '500ms', maximumInterval: '30s' },
  });

  const carried: SandboxCarriedState = input.carried ?? { view: initialView(input), events: [], deleteRequested: false };
  const view = carried.view;
  const events = carried.events;
  let deleteRequested = carried.deleteRequested;
  let deletedBy: EventActor = 'api';
  let generation = 0; // bumped on every change the wait loop must notice
  let runtimeExit = carried.runtimeExit;

  // Everything GET/LIST read, in full every time: a continued-as-new run starts with none of it.
  const publish = () => {
    upsertMemo({ view, requestHash: input.requestHash });
    upsertSearchAttributes([
      { key: SA.tenant, value: view.tenant },
      { key: SA.state, value: view.status.state },
      { key: SA.createdAt, value: new Date(view.createdAt) },
      { key: SA.expiresAt, value: view.expiresAt ? new Date(view.expiresAt) : null },
      { key: SA.metadata, value: metadataKeywords(view.metadata) },
    ]);
  };

  const transition = (state: SandboxState, actor: EventActor, reason?: string, message?: string) => {
    const at = new Date().toISOString();
    view.status = { state, lastTransitionAt: at, ...(reason ? { reason } : {}), ...(message ? { message } : {}) };
    events.push({ at, state, actor, ...(reason ? { reason } : {}), ...(message ? { message } : {}) });
    if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
    generation++;
    publish();
  };

  setHandler(runtimeExitedSignal, (exit) => {
    // Kept whatever the state: the exit of the container being started can be delivered in the same
    // activation as the start's result, before the actor knows the container id. The wait loop acts
    // on it only while Running and only for its own container; exits during teardown are ours.
    runtimeExit = exit;
    generation++;
  });

  setHandler(describeQuery, () => view);
  setHandler(eventsQuery, () => events);

  setHandler(awaitSettledUpdate, async ({ timeoutMs }) => {
    await condition(() => view.status.state !== 'Pending', Math.max(0, timeoutMs));
    return view;
  });

  setHandler(
    renewUpdate,
    ({ expiresAt }) => {
      view.expiresAt = expiresAt;
      generation++;
      publish();
      return { expiresAt };
    },
    {
      validator: ({ expiresAt, maxExpiresAt }) => {
        const state = view.status.state;
        if (state === 'Stopping' || state === 'Terminated' || deleteRequested) {
          throw reject('INVALID_STATE', `sandbox is ${state === 'Terminated' ? 'terminated' : 'being deleted'}`);
        }
        if (view.expiresAt === null) {
          throw reject('MANUAL_CLEANUP', 'sandbox was created for manual cleanup (no timeout); it has no expiration to renew');
        }
        const requested = Date.parse(expiresAt);
        if (!(requested > Date.now())) throw reject('INVALID_EXPIRATION', 'expiresAt must be in the future');
        if (requested < Date.parse(view.expiresAt)) {
          throw reject('INVALID_EXPIRATION', `expiresAt must not be earlier than the current expiresAt ${view.expiresAt}`);
        }
        if (requested > Date.parse(maxExpiresAt)) {
          throw reject('INVALID_EXPIRATION', `expiresAt must not be later than ${maxExpiresAt} (maximum sandbox lifetime)`);
        }
      },
    },
  );

  setHandler(
    deleteUpdate,
    async ({ waitMs }) => {
      if (!deleteRequested) {
        deleteRequested = true;
        deletedBy = 'api';
        generation++;
      }
      await condition(() => view.status.state === 'Terminated', Math.max(0, waitMs));
      return view;
    },
    {
      validator: (_request) => {
        if (view.status.state === 'Terminated') throw reject('NOT_FOUND', `sandbox ${view.id} not found`);
      },
    },
  );

  publish(); // also after continue-as-new: the new run starts from the carried view

  // ---- provisioning saga ----
  if (view.status.state === 'Pending' && !deleteRequested) {
    try {
      await host.ensureContainer({ sandboxId: view.id, tenant: view.tenant, spec: input.spec });
      const started = await host.startContainer({ sandboxId: view.id });
      view.containerId = started.containerId;
      transition('Running', 'runtime', 'started', 'sandbox is running');
    } catch (err) {
      const { reason, message } = describeFailure(err);
      // Compensate: never leave a half-made container behind a Failed sandbox.
      await teardown.removeContainers({ sandboxId: view.id });
      delete view.containerId;
      transition('Failed', 'failure', reason, message);
    }
  }

  // ---- alive: wait for delete or expiry ----
  let terminationReason: TerminationReason = view.terminationReason ?? 'deleted';
  while (view.status.state !== 'Stopping' && view.status.state !== 'Terminated') {
    if (deleteRequested) {
      terminationReason = 'deleted';
      break;
    }
    if (runtimeExit && view.status.state === 'Running' && runtimeExit.containerId === view.containerId) {
      const { exitCode } = runtimeExit;
      runtimeExit = undefined;
      await teardown.removeContainers({ sandboxId: view.id });
      delete view.containerId;
      transition('Failed', 'runtime', ErrorCodes.CONTAINER_EXITED.code, `sandbox process exited with code ${exitCode}`);
      continue;
    }
    if (view.expiresAt !== null && Date.now() >= Date.parse(view.expiresAt)) {
      terminationReason = 'expired';
      deletedBy = 'expiry';
      break;
    }
    if (workflowInfo().continueAsNewSuggested) {
      // A delete handler waits for Terminated, so it never finishes while we wait here: wake up
      // for it (and for an exit) and handle those in this run instead.
      const seenBeforeDrain = generation;
      await condition(() => allHandlersFinished() || deleteRequested || generation !== seenBeforeDrain);
      if (!allHandlersFinished() || deleteRequested || generation !== seenBeforeDrain) continue;
      const next: SandboxWorkflowInput = { ...input, carried: { view, events, deleteRequested, runtimeExit } };
      return await continueAsNew<typeof sandboxWorkflow>(next);
    }
    const seen = generation;
    const remaining = view.expiresAt === null ? undefined : Math.max(0, Date.parse(view.expiresAt) - Date.now());
    if (remaining === undefined) await condition(() => generation !== seen || deleteRequested);
    else await condition(() => generation !== seen || deleteRequested, remaining);
  }

  // ---- teardown ----
  if (view.status.state !== 'Terminated') {
    if (view.status.state !== 'Stopping') {
      transition('Stopping', deletedBy, terminationReason === 'expired' ? 'ttl_expiry' : 'user_delete');
    }
    await teardown.removeContainers({ sandboxId: view.id });
    delete view.containerId;
    view.terminationReason = terminationReason;
    transition('Terminated', deletedBy, terminationReason === 'expired' ? 'ttl_expiry' : 'user_delete');
  }
  await condition(allHandlersFinished);
  return view;
}

function describeFailure(err: unknown): { reason: string; message: string } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.type) {
    return { reason: cause.type, message: cause.message };
  }
  return { reason: ErrorCodes.INTERNAL.code, message: cause instanceof Error ? cause.message : String(cause) };
}
