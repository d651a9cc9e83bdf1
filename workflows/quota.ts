import { getExternalWorkflowHandle, isCancellation } from '@temporalio/workflow';
import { releaseSignal, tenantWorkflowId } from '../contracts/tenant-actor';

/** Tell the tenant actor a reservation (a sandbox id, `snapshot:<id>`, a pool's key) holds nothing any more. No tenant actor (created before quotas): nothing was held. */
export async function releaseQuota(tenant: string, key: string): Promise<void> {
  try {
    await getExternalWorkflowHandle(tenantWorkflowId(tenant)).signal(releaseSignal, { sandboxId: key });
  } catch (err) {
    if (isCancellation(err)) throw err;
  }
}
