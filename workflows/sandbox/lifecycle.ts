import {
  allHandlersFinished,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  workflowInfo,
} from '@temporalio/workflow';
import { adoptedSignal } from '../../contracts/pool-actor';
import type { StartedWorkload } from '../../contracts/runtime';
import { releaseQuota } from '../quota';
import { ErrorCodes } from '../../core/errors';
import type { SandboxWorkflowInput, TerminationReason } from '../../core/sandbox';
import { describeFailure } from '../failures';
import type { SandboxActivities } from './activities';
import type { SandboxActorState } from './state';
import { has } from './versions';

/**
 * The sandbox's lifecycle, step by step: provision (Pending → Running | Failed), live until a delete
 * or the expiry (carrying out pauses, resumes and container exits on the way), tear down
 * (Stopping → Terminated). Every step is written so that a delete in any state, transitional ones
 * included, simply wins next.
 */

/** Shared bucket mounts this sandbox holds: one per distinct mount key, however many volumes use it. */
const mountKeysOf = (input: SandboxWorkflowInput) => [...new Set((input.spec.ossfs ?? []).map((v) => v.key))];
const namespaceOf = (input: SandboxWorkflowInput) => input.namespace ?? 'default';

async function releaseMounts(actor: SandboxActorState, acts: SandboxActivities): Promise<void> {
  for (const key of mountKeysOf(actor.input))
    await acts.messaging.releaseMount({ hostId: actor.input.hostId, key, sandboxId: actor.view.id });
}

/**
 * The provisioning saga: acquire mounts → create → start → Running. A failed step compensates in
 * reverse (never a half-made container or a held mount left behind) and leaves Failed. The saga runs
 * in its own scope so that a delete arriving meanwhile cancels it (a pod can wait minutes for a node
 * or an image) instead of waiting for it to finish.
 */
/**
 * A claimed member's actor owns it from its first step (it adopts it, or removes what is left of it,
 * or — thawed by the claim — runs on it): the pool may let it go now. Not awaited: the word goes out
 * with this task's other commands.
 */
export function announceAdoption(actor: SandboxActorState): void {
  const { input, view } = actor;
  if (!input.pooled) return;
  void getExternalWorkflowHandle(input.pooled.pool)
    .signal(adoptedSignal, { memberId: view.id })
    .catch(() => undefined); // the pool may be gone (deleted meanwhile)
}

/** Slack for the clocks of the pool's and this actor's history hosts. */
const CLOCK_SLACK_MS = 10_000;

/**
 * Whether the pool may have judged this actor's claim stale (and removed its member) before the actor
 * existed: only if the actor started at or after the claim's `staleFrom` (less some slack). Before
 * that, a stale check finds this actor open and leaves the member to it. Actors started before the
 * patch, or with no `staleFrom`, always check.
 */
export function claimMayBeStale(input: SandboxWorkflowInput): boolean {
  if (!has(input, 'pooled-check-only-when-late')) return true;
  const staleFrom = input.pooled?.staleFrom;
  return staleFrom === undefined || workflowInfo().startTime.getTime() >= staleFrom - CLOCK_SLACK_MS;
}

/**
 * A member thawed by its claim: this actor started Running on it. Check once that it is still there
 * and running (its claim may have been judged stale and the member removed, had the create been slow
 * to start this actor); if not, Failed as an exit would make it, with nothing left behind.
 */
export async function confirmStarted(actor: SandboxActorState, acts: SandboxActivities): Promise<void> {
  const { input, view } = actor;
  try {
    await acts.runtime.adoptContainer({ sandboxId: view.id, namespace: namespaceOf(input), ports: input.spec.ports });
  } catch (err) {
    if (isCancellation(err)) throw err;
    await acts.teardown.removeContainers({ sandboxId: view.id, namespace: namespaceOf(input) });
    delete view.containerId;
    delete view.network;
    const { reason, message } = describeFailure(err);
    actor.transition('Failed', 'runtime', reason, message);
  }
}

export async function provision(actor: SandboxActorState, acts: SandboxActivities): Promise<void> {
  const { input, view } = actor;
  announceAdoption(actor);
  const scope = new CancellationScope();
  let settled = false;
  const provisioning = scope.run(async () => {
    if (input.pooled) {
      const adopted = await adoptMember(actor, acts);
      if (adopted) return adopted;
    }
    // Mounts first: the container binds them at create.
    const hostPaths = new Map<string, string>();
    for (const key of mountKeysOf(input)) {
      const volume = input.spec.ossfs.find((v) => v.key === key)!;
      const { hostPath } = await acts.mounting.acquireMount({
        sandboxId: view.id,
        key,
        tenant: view.tenant,
        hostId: input.hostId,
        source: volume.source,
      });
      hostPaths.set(key, hostPath);
    }
    const mountBinds = (input.spec.ossfs ?? []).map((v) => ({
      hostPath: hostPaths.get(v.key)!,
      mountPath: v.mountPath,
      readOnly: v.readOnly,
    }));
    // Activity arguments are not part of replay's command comparison: adding the namespace was safe for old runs.
    const create = {
      sandboxId: view.id,
      tenant: view.tenant,
      namespace: namespaceOf(input),
      spec: input.spec,
      ...(mountBinds.length ? { mountBinds } : {}),
    };
    // One activity for both steps: a dispatch and a workflow task fewer on every create. Runs recorded
    // before it made two.
    if (has(input, 'create-and-start-in-one-activity')) return await acts.provisioner.createAndStartContainer(create);
    await acts.provisioner.ensureContainer(create);
    return await acts.provisioner.startContainer({ sandboxId: view.id, namespace: namespaceOf(input), ports: input.spec.ports });
  });
  provisioning.then(
    () => (settled = true),
    () => (settled = true),
  );
  await condition(() => settled || actor.deleteRequested);
  // Histories from before the patch waited for the saga to end whatever happened meanwhile.
  const cancelled = !settled && has(input, 'delete-cancels-provisioning');
  if (cancelled) scope.cancel();
  try {
    const started = await provisioning;
    view.containerId = started.containerId;
    view.network = started.network;
    actor.transition('Running', 'runtime', 'started', 'sandbox is running');
  } catch (err) {
    // The activities wait for their cancellation to complete, so nothing is created after this.
    await acts.teardown.removeContainers({ sandboxId: view.id, namespace: namespaceOf(input) });
    await releaseMounts(actor, acts);
    delete view.containerId;
    // Cancelled for a delete: no failure to report, the teardown ends it as Terminated.
    if (!(cancelled && isCancellation(err))) {
      const { reason, message } = describeFailure(err);
      actor.transition('Failed', 'failure', reason, message);
    }
  }
}

/**
 * Take over the warm pool member made for this sandbox's id (thawed, already running); gone or
 * broken, its remains are removed here and the sandbox is created cold instead (undefined).
 */
async function adoptMember(actor: SandboxActorState, acts: SandboxActivities): Promise<StartedWorkload | undefined> {
  const { input, view } = actor;
  try {
    // The metadata goes with it: a pod carries it as labels, as a create would have made them.
    return await acts.provisioner.adoptContainer({
      sandboxId: view.id,
      namespace: namespaceOf(input),
      ports: input.spec.ports,
      metadata: view.metadata,
    });
  } catch (err) {
    if (isCancellation(err)) throw err;
    await acts.teardown.removeContainers({ sandboxId: view.id, namespace: namespaceOf(input) });
    return undefined;
  }
}

/** How the live phase ended: teardown for a reason, or a fresh run with the whole state. */
/**
 * A run continues as new once its history is this long, whatever Temporal suggests: every accepted
 * Update adds two events, so a run never comes near the server's cap on Updates per run (2,000).
 */
export const MAX_EVENTS_PER_RUN = 2000;

export type LiveOutcome = { end: TerminationReason } | { continueAsNew: SandboxWorkflowInput };

/**
 * Running, Paused or Failed until a delete or the expiry. Each turn handles one thing — a delete, a
 * container that exited, the expiry, an accepted pause or resume — and otherwise waits for a change or
 * the expiry timer (re-armed with every renewal).
 */
export async function live(actor: SandboxActorState, acts: SandboxActivities): Promise<LiveOutcome> {
  const { input, view } = actor;
  let end: TerminationReason = view.terminationReason ?? 'deleted';
  while (actor.state !== 'Stopping' && actor.state !== 'Terminated') {
    if (actor.deleteRequested) {
      end = 'deleted';
      break;
    }
    if (view.containerId && actor.exitPending()) {
      await failExitedContainer(actor, acts);
      continue;
    }
    if (actor.isExpired()) {
      end = 'expired';
      actor.deletedBy = 'expiry';
      break;
    }
    if (actor.pendingOp) {
      await carryOutPendingOp(actor, acts);
      continue;
    }
    if (workflowInfo().continueAsNewSuggested || (workflowInfo().historyLength >= MAX_EVENTS_PER_RUN && has(input, 'bounded-run-length'))) {
      // A delete handler waits for Terminated, so it never finishes while we wait here: wake up
      // for it (and for an exit) and handle those in this run instead.
      const seen = actor.generation;
      await condition(() => allHandlersFinished() || actor.deleteRequested || actor.generation !== seen);
      if (!allHandlersFinished() || actor.deleteRequested || actor.generation !== seen) continue;
      return { continueAsNew: { ...input, carried: actor.carried() } };
    }
    await waitForChangeOrExpiry(actor, () => false);
  }
  return { end };
}

/** Wait until the state changes, a delete arrives, `done()` holds, or the (re-armed) expiry is due. */
async function waitForChangeOrExpiry(actor: SandboxActorState, done: () => boolean): Promise<void> {
  const seen = actor.generation;
  const woken = () => done() || actor.deleteRequested || actor.generation !== seen;
  const remaining = actor.untilExpiry();
  if (remaining === undefined) await condition(woken);
  else await condition(woken, remaining);
}

async function failExitedContainer(actor: SandboxActorState, acts: SandboxActivities): Promise<void> {
  const { view, input } = actor;
  const { exitCode, message } = actor.runtimeExit!;
  // runtimeExit stays set until the container is gone, so pause/resume validators refuse meanwhile.
  await acts.teardown.removeContainers({ sandboxId: view.id, namespace: namespaceOf(input) });
  actor.runtimeExit = undefined;
  actor.pendingOp = undefined;
  delete view.containerId;
  delete view.network;
  actor.transition('Failed', 'runtime', ErrorCodes.CONTAINER_EXITED.code, message ?? `sandbox process exited with code ${exitCode}`);
}

/**
 * Freeze or thaw the workload, as accepted by the pause/resume Update. A delete or the expiry does
 * not wait for a slow freeze or thaw: it cancels it, and the next turn of the loop tears down.
 */
async function carryOutPendingOp(actor: SandboxActorState, acts: SandboxActivities): Promise<void> {
  const { view } = actor;
  const op = actor.pendingOp!;
  actor.pendingOp = undefined;
  const [from, to] = op === 'pause' ? (['Pausing', 'Paused'] as const) : (['Resuming', 'Running'] as const);
  const scope = new CancellationScope();
  const action = scope.run(() =>
    op === 'pause' ? acts.runtime.pauseContainer({ sandboxId: view.id }) : acts.runtime.resumeContainer({ sandboxId: view.id }),
  );
  let outcome: { ok: true } | { ok: false; err: unknown } | undefined;
  action.then(
    () => (outcome = { ok: true }),
    (err: unknown) => (outcome = { ok: false, err }),
  );
  // A renewal meanwhile re-arms the expiry timer, so the old deadline does not end the wait.
  while (!outcome && !actor.deleteRequested && !actor.isExpired()) await waitForChangeOrExpiry(actor, () => outcome !== undefined);
  if (!outcome) {
    scope.cancel();
    await action.catch(() => undefined);
    return;
  }
  // An expiry or exit that arrived meanwhile is handled by the next turn of the loop.
  if (actor.state !== from || actor.deleteRequested) return;
  if (outcome.ok) {
    actor.transition(to, 'runtime', op === 'pause' ? 'paused' : 'resumed', op === 'pause' ? 'sandbox is paused' : 'sandbox is running');
  } else {
    const { reason, message } = describeFailure(outcome.err);
    actor.transition(op === 'pause' ? 'Running' : 'Paused', 'failure', reason, `${op} failed: ${message}`);
  }
}

/** Stopping → remove the workload and the renew schedule → release mounts → Terminated. */
export async function teardown(actor: SandboxActorState, acts: SandboxActivities, reason: TerminationReason): Promise<void> {
  const { view, input } = actor;
  if (actor.state === 'Terminated') return;
  const why = reason === 'expired' ? 'ttl_expiry' : 'user_delete';
  if (actor.state !== 'Stopping') actor.transition('Stopping', actor.deletedBy, why);
  const removeWorkload = () => acts.teardown.removeContainers({ sandboxId: view.id, namespace: namespaceOf(input) });
  if (has(input, 'teardown-removes-renew-schedule')) {
    // A renew schedule outliving its sandbox would only fail: remove it (idempotent) alongside the
    // workload — if there may be one: most sandboxes never had one, and the call is an activity.
    // (The removal is scheduled first: recorded histories have the two commands in this order.)
    const removal = removeWorkload();
    await Promise.all([removal, actor.mayHaveRenewSchedule() ? acts.messaging.deleteRenewSchedule({ sandboxId: view.id }) : undefined]);
  } else {
    await removeWorkload(); // histories recorded before renew schedules existed
  }
  await releaseMounts(actor, acts);
  // Give the tenant's quota back before Terminated shows: a client that saw its DELETE answered may create again at once.
  if (has(input, 'teardown-releases-quota-locally')) await acts.local.releaseQuota({ tenant: view.tenant, key: view.id });
  else if (has(input, 'teardown-releases-quota')) await releaseQuota(view.tenant, view.id);
  delete view.containerId;
  delete view.network;
  view.terminationReason = reason;
  actor.transition('Terminated', actor.deletedBy, why);
}
