import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { holdsMemberQuery, reservationQuery } from '../contracts/pool-actor';
import { type SandboxView, sandboxWorkflowId } from '../core/sandbox';

/**
 * Whether a sandbox's actor no longer claims its workload, by the actor's own word (describe, not
 * visibility, which lags): its workflow is missing or closed; with `failedToo`, also when it is
 * Failed or Terminated (a runtime whose actor leaves the failed workload to the sweep).
 */
export async function actorGone(client: Client, sandboxId: string, { failedToo = false } = {}): Promise<boolean> {
  try {
    const described = await client.workflow.getHandle(sandboxWorkflowId(sandboxId)).describe();
    if (described.status.name !== 'RUNNING') return true;
    if (!failedToo) return false;
    const state = (described.memo?.view as SandboxView | undefined)?.status.state;
    return state === 'Failed' || state === 'Terminated';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return true;
    throw err;
  }
}

/** Whether a workflow is open (running), by describe: the actor's own word, not visibility's. */
export async function workflowOpen(client: Client, workflowId: string): Promise<boolean> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/**
 * Whether a warm pool's actor still holds this member in its ledger (by its own word). A pool that
 * is missing or closed holds nothing; any other failure to ask counts as holding (never remove a
 * member on a guess).
 */
export async function poolHolds(client: Client, poolWorkflowId: string, memberId: string): Promise<boolean> {
  try {
    const handle = client.workflow.getHandle(poolWorkflowId);
    if ((await handle.describe()).status.name !== 'RUNNING') return false;
    return await handle.query(holdsMemberQuery, memberId);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    return true;
  }
}

/**
 * Whether a pool still holds this reservation key: its actor is open and says the key is its own (a
 * pool made again under the same name holds a key of its own). Any other failure to ask counts as
 * holding: a share is never given back on a guess.
 */
export async function poolReservationHeld(client: Client, poolWorkflowId: string, key: string): Promise<boolean> {
  try {
    const handle = client.workflow.getHandle(poolWorkflowId);
    if ((await handle.describe()).status.name !== 'RUNNING') return false;
    return (await handle.query(reservationQuery)) === key;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    return true;
  }
}
