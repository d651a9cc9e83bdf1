import {
  ActivityCancellationType,
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  patched,
  defineQuery,
  defineSignal,
  defineUpdate,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/docker/host-activities';
import type { MessagingActivities } from '../activities/messaging';
import { ErrorCodes } from '../core/errors';
import { applyMetadataPatch, MetadataPatch, metadataKeywords, metadataPatchProblems } from '../core/metadata';
import { SA } from '../core/search-attributes';
import {
  acceptedEvent,
  EventActor,
  hostTaskQueue,
  initialView,
  RuntimeProgress,
  SandboxCarriedState,
  SandboxOutcome,
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
export const renewUpdate = defineUpdate<
  { expiresAt: string },
  [{ expiresAt: string; maxExpiresAt: string; actor?: 'api' | 'schedule' }]
>('renew');
/** Starts teardown; resolves when Terminated or after `waitMs`. */
export const deleteUpdate = defineUpdate<SandboxView, [{ waitMs: number }]>('delete');
/** Accepts a pause (Running → Pausing) and returns at once; the actor then freezes the workload → Paused. */
export const pauseUpdate = defineUpdate<SandboxView, []>('pause');
/** Accepts a resume (Paused → Resuming) and returns at once; the actor then thaws the workload → Running. */
export const resumeUpdate = defineUpdate<SandboxView, []>('resume');
/** JSON merge patch of the metadata (null deletes a key); returns the new view. */
export const patchMetadataUpdate = defineUpdate<SandboxView, [MetadataPatch]>('patchMetadata');

/** Sent by the host's exit watcher when the sandbox's container stopped on its own. */
export const runtimeExitedSignal = defineSignal<[{ containerId: string; exitCode: number; message?: string }]>('runtimeExited');

/**
 * Sent by the provisioning activity while the workload waits for something outside Tidebox (a pod
 * unschedulable for lack of nodes, an image being pulled): shown in the Pending status and history
 * so the caller learns why the sandbox is not running yet.
 */
export const runtimeProgressSignal = defineSignal<[RuntimeProgress]>('runtimeProgress');

const MAX_EVENTS = 200;

const reject = (kind: keyof typeof ErrorCodes, message: string) =>
  ApplicationFailure.create({ type: ErrorCodes[kind].code, message, nonRetryable: true });

/**
 * The sandbox actor: one workflow per sandbox, id `sandbox/<sandboxId>`.
 * Pending → provision (create → start → running) → Running ⇄ (Pausing → Paused → Resuming) → wait for
 * expiry or delete → Stopping → remove the workload → remove its renew schedule → Terminated.
 * Pause and resume are accepted by Updates and carried out by this loop, so only one runtime action
 * runs at a time and a delete in any state, transitional ones included, simply wins next. A failed provisioning step compensates and leaves Failed, which
 * still expires or waits for delete so the failure can be inspected.
 */
export async function sandboxWorkflow(input: SandboxWorkflowInput): Promise<SandboxOutcome> {
  const host = proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(workflowInfo().taskQueue, input.hostId),
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '500ms', maximumInterval: '10s', maximumAttempts: 8 },
  });
  // The same activities for provisioning: a cancelled create must have stopped before its
  // compensation removes what it made. (Pause/resume keep `host`: their recorded cancellations did
  // not wait, and replay must see the same commands.)
  const provisioner = proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(workflowInfo().taskQueue, input.hostId),
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '500ms', maximumInterval: '10s', maximumAttempts: 8 },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  // Teardown must eventually succeed: a leaked container is worse than a slow delete.
  const teardown = proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(workflowInfo().taskQueue, input.hostId),
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '500ms', maximumInterval: '30s' },
  });

  const messaging = proxyActivities<MessagingActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });

  // Acquiring waits for the mount itself (up to ossfs.mountTimeoutSeconds on the host).
  const mounting = proxyActivities<MessagingActivities>({
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 5 },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });

  const carried: SandboxCarriedState = input.carried ?? {
    view: initialView(input),
    events: [acceptedEvent(input)],
    deleteRequested: false,
  };
  const view = carried.view;
  const events = carried.events;
  let deleteRequested = carried.deleteRequested;
  let deletedBy: EventActor = 'api';
  let generation = 0; // bumped on every change the wait loop must notice
  let runtimeExit = carried.runtimeExit;
  let pendingOp = carried.pendingOp;

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

  const record = (event: SandboxEvent) => {
    events.push(event);
    // Bounded, but the first entry (acceptance) always stays.
    if (events.length > MAX_EVENTS) events.splice(1, events.length - MAX_EVENTS);
  };

  const transition = (state: SandboxState, actor: EventActor, reason?: string, message?: string) => {
    const at = new Date().toISOString();
    view.status = { state, lastTransitionAt: at, ...(reason ? { reason } : {}), ...(message ? { message } : {}) };
    record({ at, state, actor, ...(reason ? { reason } : {}), ...(message ? { message } : {}) });
    generation++;
    publish();
  };

  const isAlive = () => !deleteRequested && view.status.state !== 'Stopping' && view.status.state !== 'Terminated';
  const isExpired = () => view.expiresAt !== null && Date.now() >= Date.parse(view.expiresAt);
  /** The container died and the loop has not yet moved the sandbox to Failed. */
  const exitPending = () => runtimeExit !== undefined && runtimeExit.containerId === view.containerId;

  setHandler(runtimeExitedSignal, (exit) => {
    // Kept whatever the state: the exit of the container being started can be delivered in the same
    // activation as the start's result, before the actor knows the container id. The wait loop acts
    // on it only while Running and only for its own container; exits during teardown are ours.
    runtimeExit = exit;
    generation++;
  });

  setHandler(runtimeProgressSignal, ({ reason, message }) => {
    // Late or repeated reports (a retried activity sends its first one again) change nothing.
    if (view.status.state !== 'Pending' || deleteRequested) return;
    if (view.status.reason === reason && view.status.message === message) return;
    // An older worker that received this signal ignored it (no handler, no commands): its history
    // must replay here without the memo update below.
    if (!patched('runtime-progress')) return;
    view.status = { ...view.status, reason, message };
    // One history entry per reason: a changing message (the scheduler's node counts) replaces it.
    const last = events[events.length - 1];
    if (last?.state === 'Pending' && last.actor === 'runtime' && last.reason === reason) events.pop();
    record({ at: new Date().toISOString(), state: 'Pending', actor: 'runtime', reason, message });
    publish();
  });

  setHandler(describeQuery, () => view);
  setHandler(eventsQuery, () => events);

  setHandler(awaitSettledUpdate, async ({ timeoutMs }) => {
    await condition(() => view.status.state !== 'Pending', Math.max(0, timeoutMs));
    return view;
  });

  setHandler(
    renewUpdate,
    ({ expiresAt, actor = 'api' }) => {
      view.expiresAt = expiresAt;
      // A renew schedule renews every few seconds to minutes: keep one entry per run of renewals.
      const last = events[events.length - 1];
      const count = last?.reason === 'renewed' && last.actor === actor ? Number(/^(\d+) renewal/.exec(last.message ?? '')?.[1] ?? 1) + 1 : 1;
      if (count > 1) events.pop();
      record({
        at: new Date().toISOString(),
        state: view.status.state,
        actor,
        reason: 'renewed',
        message: `${count} renewal${count > 1 ? 's' : ''} in a row; expiresAt ${expiresAt}`,
      });
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

  // Pause and resume only accept the request; the loop below carries it out.
  for (const [update, op, from, accepted] of [
    [pauseUpdate, 'pause', 'Running', 'Pausing'],
    [resumeUpdate, 'resume', 'Paused', 'Resuming'],
  ] as const) {
    setHandler(
      update,
      () => {
        pendingOp = op;
        transition(accepted, 'api', `user_${op}`, `${op} requested`);
        return view;
      },
      {
        validator: () => {
          if (!isAlive() || view.status.state !== from || exitPending()) {
            throw reject('INVALID_STATE', `sandbox is ${describeState(view.status.state, deleteRequested)}; only a ${from} sandbox can be ${op}d`);
          }
        },
      },
    );
  }

  setHandler(
    patchMetadataUpdate,
    (patch) => {
      view.metadata = applyMetadataPatch(view.metadata, patch);
      publish();
      return view;
    },
    {
      validator: (patch) => {
        if (!isAlive()) throw reject('INVALID_STATE', `sandbox is ${describeState(view.status.state, deleteRequested)}`);
        const problems = metadataPatchProblems(view.metadata, patch);
        if (problems.length) throw reject('INVALID_PARAMETER', problems.join('; '));
      },
    },
  );

  publish(); // also after continue-as-new: the new run starts from the carried view

  // Shared bucket mounts this sandbox holds: one per distinct mount key, however many volumes use it.
  const mountKeys = [...new Set((input.spec.ossfs ?? []).map((v) => v.key))];
  const releaseMounts = async () => {
    for (const key of mountKeys) await messaging.releaseMount({ hostId: input.hostId, key, sandboxId: view.id });
  };

  // ---- provisioning saga ----
  if (view.status.state === 'Pending' && !deleteRequested) {
    // The saga runs in its own scope so that a delete arriving meanwhile can cancel it (a pod can wait
    // minutes for a node or an image) instead of waiting for it to finish.
    const scope = new CancellationScope();
    let settled = false;
    const provisioning = scope.run(async () => {
      // Mounts first: the container binds them at create.
      const hostPaths = new Map<string, string>();
      for (const key of mountKeys) {
        const volume = input.spec.ossfs.find((v) => v.key === key)!;
        const { hostPath } = await mounting.acquireMount({
          sandboxId: view.id,
          key,
          tenant: view.tenant,
          hostId: input.hostId,
          source: volume.source,
        });
        hostPaths.set(key, hostPath);
      }
      const mountBinds = (input.spec.ossfs ?? []).map((v) => ({ hostPath: hostPaths.get(v.key)!, mountPath: v.mountPath, readOnly: v.readOnly }));
      // Activity arguments are not part of replay's command comparison: adding the namespace is safe for old runs.
      await provisioner.ensureContainer({ sandboxId: view.id, tenant: view.tenant, namespace: input.namespace ?? 'default', spec: input.spec, ...(mountBinds.length ? { mountBinds } : {}) });
      return await provisioner.startContainer({ sandboxId: view.id, namespace: input.namespace ?? 'default', ports: input.spec.ports });
    });
    provisioning.then(
      () => (settled = true),
      () => (settled = true),
    );
    await condition(() => settled || deleteRequested);
    // Histories from before the patch waited for the saga to end whatever happened meanwhile.
    const cancelled = !settled && patched('delete-cancels-provisioning');
    if (cancelled) scope.cancel();
    try {
      const started = await provisioning;
      view.containerId = started.containerId;
      view.network = started.network;
      transition('Running', 'runtime', 'started', 'sandbox is running');
    } catch (err) {
      // Compensate in reverse: never leave a half-made container or a held mount behind. The
      // activities wait for their cancellation to complete, so nothing is created after this.
      await teardown.removeContainers({ sandboxId: view.id, namespace: input.namespace ?? 'default' });
      await releaseMounts();
      delete view.containerId;
      // Cancelled for a delete: no failure to report, the teardown below ends it as Terminated.
      if (!(cancelled && isCancellation(err))) {
        const { reason, message } = describeFailure(err);
        transition('Failed', 'failure', reason, message);
      }
    }
  }

  // ---- alive: wait for delete or expiry ----
  let terminationReason: TerminationReason = view.terminationReason ?? 'deleted';
  while (view.status.state !== 'Stopping' && view.status.state !== 'Terminated') {
    if (deleteRequested) {
      terminationReason = 'deleted';
      break;
    }
    if (view.containerId && exitPending()) {
      const { exitCode, message } = runtimeExit!;
      // runtimeExit stays set until the container is gone, so pause/resume validators refuse meanwhile.
      await teardown.removeContainers({ sandboxId: view.id, namespace: input.namespace ?? 'default' });
      runtimeExit = undefined;
      pendingOp = undefined;
      delete view.containerId;
      delete view.network;
      transition('Failed', 'runtime', ErrorCodes.CONTAINER_EXITED.code, message ?? `sandbox process exited with code ${exitCode}`);
      continue;
    }
    if (isExpired()) {
      terminationReason = 'expired';
      deletedBy = 'expiry';
      break;
    }
    if (pendingOp) {
      const op = pendingOp;
      pendingOp = undefined;
      const [from, to] = op === 'pause' ? (['Pausing', 'Paused'] as const) : (['Resuming', 'Running'] as const);
      // A delete or the expiry does not wait for a slow freeze or thaw: it cancels it and tears down.
      const scope = new CancellationScope();
      const action = scope.run(() =>
        op === 'pause' ? host.pauseContainer({ sandboxId: view.id }) : host.resumeContainer({ sandboxId: view.id }),
      );
      let outcome: { ok: true } | { ok: false; err: unknown } | undefined;
      action.then(
        () => (outcome = { ok: true }),
        (err: unknown) => (outcome = { ok: false, err }),
      );
      // Wait for the action, a delete, or the expiry; a renewal meanwhile re-arms the expiry timer.
      while (!outcome && !deleteRequested && !isExpired()) {
        const seen = generation;
        const remaining = view.expiresAt === null ? undefined : Math.max(0, Date.parse(view.expiresAt) - Date.now());
        const woken = () => outcome !== undefined || deleteRequested || generation !== seen;
        if (remaining === undefined) await condition(woken);
        else await condition(woken, remaining);
      }
      if (!outcome) {
        scope.cancel();
        await action.catch(() => undefined);
        continue; // the next turn of the loop tears down
      }
      // An expiry or exit that arrived meanwhile is handled by the next turn of the loop.
      if (view.status.state === from && !deleteRequested) {
        if (outcome.ok) {
          transition(to, 'runtime', op === 'pause' ? 'paused' : 'resumed', op === 'pause' ? 'sandbox is paused' : 'sandbox is running');
        } else {
          const { reason, message } = describeFailure(outcome.err);
          transition(op === 'pause' ? 'Running' : 'Paused', 'failure', reason, `${op} failed: ${message}`);
        }
      }
      continue;
    }
    if (workflowInfo().continueAsNewSuggested) {
      // A delete handler waits for Terminated, so it never finishes while we wait here: wake up
      // for it (and for an exit) and handle those in this run instead.
      const seenBeforeDrain = generation;
      await condition(() => allHandlersFinished() || deleteRequested || generation !== seenBeforeDrain);
      if (!allHandlersFinished() || deleteRequested || generation !== seenBeforeDrain) continue;
      const next: SandboxWorkflowInput = { ...input, carried: { view, events, deleteRequested, runtimeExit, pendingOp } };
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
    if (patched('teardown-removes-renew-schedule')) {
      // A renew schedule outliving its sandbox would only fail: remove it (idempotent) alongside the workload.
      await Promise.all([teardown.removeContainers({ sandboxId: view.id, namespace: input.namespace ?? 'default' }), messaging.deleteRenewSchedule({ sandboxId: view.id })]);
    } else {
      await teardown.removeContainers({ sandboxId: view.id, namespace: input.namespace ?? 'default' }); // histories recorded before renew schedules existed
    }
    await releaseMounts();
    delete view.containerId;
    delete view.network;
    view.terminationReason = terminationReason;
    transition('Terminated', deletedBy, terminationReason === 'expired' ? 'ttl_expiry' : 'user_delete');
  }
  await condition(allHandlersFinished);
  return { view, events };
}

function describeState(state: SandboxState, deleteRequested: boolean): string {
  if (deleteRequested && state !== 'Terminated') return 'being deleted';
  return state;
}

function describeFailure(err: unknown): { reason: string; message: string } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.type) {
    return { reason: cause.type, message: cause.message };
  }
  return { reason: ErrorCodes.INTERNAL.code, message: cause instanceof Error ? cause.message : String(cause) };
}
