/**
 * The real workflows with two deliberately incompatible changes, to prove the replay test catches
 * them: a renew run and a snapshot that now start with a timer their recorded histories never had.
 * A change like this, shipped without `patched()`, would break every running workflow of that type.
 */
import { sleep } from '@temporalio/workflow';
import type { RenewRunInput, RenewRunOutcome } from '../../../core/sandbox';
import type { SnapshotView, SnapshotWorkflowInput } from '../../../core/snapshots';
import { renewWorkflow as realRenewWorkflow } from '../../../workflows/renew';
import { snapshotWorkflow as realSnapshotWorkflow } from '../../../workflows/snapshot';

export { mountWorkflow, poolWorkflow, sandboxWorkflow, tenantWorkflow } from '../../../workflows';

export async function renewWorkflow(input: RenewRunInput): Promise<RenewRunOutcome> {
  await sleep('1 second');
  return realRenewWorkflow(input);
}

export async function snapshotWorkflow(input: SnapshotWorkflowInput): Promise<SnapshotView> {
  await sleep('1 second');
  return realSnapshotWorkflow(input);
}
