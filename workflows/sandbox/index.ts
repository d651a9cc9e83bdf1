import { allHandlersFinished, condition, continueAsNew } from '@temporalio/workflow';
import type { SandboxWorkflow } from '../../contracts/sandbox-actor';
import type { SandboxOutcome, SandboxWorkflowInput } from '../../core/sandbox';
import { sandboxActivities } from './activities';
import { registerHandlers } from './handlers';
import { announceAdoption, claimMayBeStale, confirmStarted, live, provision, teardown } from './lifecycle';
import { SandboxActorState } from './state';
import { has } from './versions';

/**
 * The sandbox actor: one workflow per sandbox, id `sandbox/<sandboxId>`.
 *
 *   Pending → provision (mounts → create → start) → Running ⇄ (Pausing → Paused → Resuming)
 *     → a delete or the expiry → Stopping → remove the workload and its renew schedule → Terminated.
 *
 * A failed provisioning step compensates and leaves Failed, which still expires or waits for a
 * delete so the failure can be read. Messages (contracts/sandbox-actor.ts) are validated against the
 * actor's own state and only record what was asked; this loop carries it out.
 */
export const sandboxWorkflow: SandboxWorkflow = async (input: SandboxWorkflowInput): Promise<SandboxOutcome> => {
  const actor = new SandboxActorState(input);
  const acts = sandboxActivities(input.hostId);
  registerHandlers(actor);
  // A new run of a continued-as-new actor starts with no memo: publish the carried view. A fresh run
  // was started with this very memo and these search attributes (api/temporal/sandboxes.ts): writing
  // them again cost every create's first workflow task. Runs recorded before did. The read projection
  // gets it either way (a sink: no command).
  if (input.carried || !has(input, 'fresh-run-starts-published')) actor.publish();
  else actor.project();

  if (actor.state === 'Pending' && !actor.deleteRequested) await provision(actor, acts);
  // A member thawed by its claim starts Running on it (input.pooled.started): the word to the pool,
  // and — if the pool may have judged the claim stale by now — one check that the member is there.
  else if (input.pooled?.started && !input.carried) {
    announceAdoption(actor);
    if (!actor.deleteRequested && claimMayBeStale(input)) await confirmStarted(actor, acts);
  }
  const outcome = await live(actor, acts);
  if ('continueAsNew' in outcome) return await continueAsNew<SandboxWorkflow>(outcome.continueAsNew);
  await teardown(actor, acts, outcome.end);
  await condition(allHandlersFinished);
  return actor.outcome();
};
