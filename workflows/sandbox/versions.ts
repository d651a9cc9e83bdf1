import { patched } from '@temporalio/workflow';
import type { SandboxWorkflowInput } from '../../core/sandbox';

/**
 * The sandbox actor's code changes made while actors were running, each gated by a patch: the
 * marker in a run's history says which code it took, so old runs replay. A marker is not free: with
 * it the SDK upserts the TemporalChangeVersion search attribute, one more visibility write for every
 * change a run passes (four in a create and an expiry). An actor started at `actorVersion` n
 * (core/sandbox.ts, SANDBOX_ACTOR_VERSION) began with every change of version ≤ n, so it takes the
 * new code without asking and its history carries no marker.
 *
 * Adding a change: gate it with {@link has} at the next version, and raise SANDBOX_ACTOR_VERSION in
 * the same release. Deploy workers before the API: a run started at a version its worker does not
 * know would take the old path unmarked, and a newer worker replaying it would diverge.
 */
const CHANGES = {
  'fresh-run-starts-published': 1,
  'runtime-progress': 1,
  'metadata-patch-wakes-loop': 1,
  'pooled-check-only-when-late': 1,
  'create-and-start-in-one-activity': 1,
  'delete-cancels-provisioning': 1,
  'bounded-run-length': 1,
  'teardown-removes-renew-schedule': 1,
  'teardown-releases-quota': 1,
  /** The quota goes back through a local activity in the teardown's last task, not a Signal command (one task fewer). */
  'teardown-releases-quota-locally': 2,
} as const;

export type SandboxChange = keyof typeof CHANGES;

/**
 * What an actor does only if it was started with it, never by a patch: a running older actor cannot
 * take it up (it was not told of schedules made before the change, so it must keep looking for one).
 */
const STARTED_WITH = {
  /** Renew schedules are announced to the actor before they are made (announceRenewSchedule). */
  'renew-schedules-announced': 1,
} as const;

/** Whether this actor was started at a version that includes `feature`. */
export function startedWith(input: SandboxWorkflowInput, feature: keyof typeof STARTED_WITH): boolean {
  return (input.actorVersion ?? 0) >= STARTED_WITH[feature];
}

/** Whether this run takes the changed code: started with it, or (an older actor) marked as taking it now. */
export function has(input: SandboxWorkflowInput, change: SandboxChange): boolean {
  return (input.actorVersion ?? 0) >= CHANGES[change] || patched(change);
}
