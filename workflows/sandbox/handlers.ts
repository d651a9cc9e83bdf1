import { condition, setHandler } from '@temporalio/workflow';
import {
  announceRenewScheduleUpdate,
  awaitSettledUpdate,
  deleteUpdate,
  describeQuery,
  eventsQuery,
  patchMetadataUpdate,
  pauseUpdate,
  renewUpdate,
  resumeUpdate,
  runtimeExitedSignal,
  runtimeProgressSignal,
} from '../../contracts/sandbox-actor';
import { judgeRenewal } from '../../core/expiry';
import { applyMetadataPatch, metadataPatchProblems } from '../../core/metadata';
import { reject } from '../failures';
import type { SandboxActorState } from './state';
import { has } from './versions';

/**
 * The sandbox actor's messages. Validators refuse bad requests synchronously against the actor's own
 * state; handlers only record what was asked and leave runtime work to the main loop, so exactly one
 * runtime action runs at a time and a delete simply wins next.
 */
export function registerHandlers(actor: SandboxActorState): void {
  const { view } = actor;

  setHandler(runtimeExitedSignal, (exit) => {
    // Kept whatever the state: the exit of the container being started can be delivered in the same
    // activation as the start's result, before the actor knows the container id. The loop acts on
    // it only while Running and only for its own container; exits during teardown are ours.
    actor.runtimeExit = exit;
    actor.generation++;
  });

  setHandler(runtimeProgressSignal, (progress) => {
    // Late or repeated reports (a retried activity sends its first one again) change nothing.
    if (actor.state !== 'Pending' || actor.deleteRequested) return;
    if (view.status.reason === progress.reason && view.status.message === progress.message) return;
    // An older worker that received this signal ignored it (no handler, no commands): its history
    // must replay here without the memo update.
    if (!has(actor.input, 'runtime-progress')) return;
    actor.showProgress(progress);
  });

  setHandler(describeQuery, () => view);
  setHandler(eventsQuery, () => actor.events);

  setHandler(awaitSettledUpdate, async ({ timeoutMs }) => {
    await condition(() => actor.state !== 'Pending', Math.max(0, timeoutMs));
    return view;
  });

  setHandler(
    renewUpdate,
    ({ expiresAt, actor: by = 'api' }) => {
      actor.renew(expiresAt, by);
      return { expiresAt };
    },
    {
      validator: ({ expiresAt }) => {
        if (actor.state === 'Stopping' || actor.state === 'Terminated' || actor.deleteRequested) {
          throw reject('INVALID_STATE', `sandbox is ${actor.state === 'Terminated' ? 'terminated' : 'being deleted'}`);
        }
        const verdict = judgeRenewal(view.expiresAt, expiresAt, Date.now(), actor.expiry);
        if (!verdict.ok) throw reject(verdict.kind, verdict.message);
      },
    },
  );

  setHandler(
    deleteUpdate,
    async ({ waitMs }) => {
      actor.requestDelete('api');
      await condition(() => actor.state === 'Terminated', Math.max(0, waitMs));
      return view;
    },
    {
      validator: (_request) => {
        if (actor.state === 'Terminated') throw reject('NOT_FOUND', `sandbox ${view.id} not found`);
      },
    },
  );

  // Pause and resume only accept the request; the main loop carries it out.
  for (const [update, op, from, accepted] of [
    [pauseUpdate, 'pause', 'Running', 'Pausing'],
    [resumeUpdate, 'resume', 'Paused', 'Resuming'],
  ] as const) {
    setHandler(
      update,
      () => {
        actor.pendingOp = op;
        actor.transition(accepted, 'api', `user_${op}`, `${op} requested`);
        return view;
      },
      {
        validator: () => {
          if (!actor.isAlive() || actor.state !== from || actor.exitPending()) {
            throw reject('INVALID_STATE', `sandbox is ${actor.describeState()}; only a ${from} sandbox can be ${op}d`);
          }
        },
      },
    );
  }

  setHandler(
    announceRenewScheduleUpdate,
    () => {
      actor.renewScheduled = true;
      // Wake the loop, as a metadata patch does: a tenant re-PUTting its schedule in a loop must not
      // run the actor into the history or Update limits unseen (each Update adds events).
      actor.generation++;
      return view;
    },
    {
      validator: () => {
        if (!actor.isAlive()) throw reject('INVALID_STATE', `sandbox is ${actor.describeState()}`);
      },
    },
  );

  setHandler(
    patchMetadataUpdate,
    (patch) => {
      view.metadata = applyMetadataPatch(view.metadata, patch);
      actor.publish();
      // Wake the loop so it sees Temporal's continue-as-new suggestion: a tenant patching in a loop
      // must not run the actor into the history or Update limits. Older histories never woke here.
      if (has(actor.input, 'metadata-patch-wakes-loop')) actor.generation++;
      return view;
    },
    {
      validator: (patch) => {
        if (!actor.isAlive()) throw reject('INVALID_STATE', `sandbox is ${actor.describeState()}`);
        const problems = metadataPatchProblems(view.metadata, patch);
        if (problems.length) throw reject('INVALID_PARAMETER', problems.join('; '));
      },
    },
  );
}
