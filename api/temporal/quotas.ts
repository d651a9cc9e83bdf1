import { WithStartWorkflowOperation } from '@temporalio/client';
import {
  limitsQuery,
  releaseSignal,
  reserveUpdate,
  TENANT_WORKFLOW_TYPE,
  type TenantWorkflow,
  tenantWorkflowId,
  usageQuery,
} from '../../contracts/tenant-actor';
import type { Config } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { effectiveQuota, type Quota, type Reservation, type Usage, type UsageLimits, usageLimits } from '../../core/quotas';
import type { TenantCaller } from '../../core/tenants';
import { isWorkflowGone } from './errors';
import type { TemporalGateway } from './gateway';

const NO_USAGE: Usage = { sandboxes: 0, cpuMillis: 0, memoryBytes: 0 };

/**
 * Tenants' quotas over their actors (`tenant/<name>`): a create reserves its sandbox's share (an
 * Update-with-start that admits or refuses atomically) before the sandbox actor exists, and gives it
 * back when that actor could not be started. Refusals are counted per tenant for /metrics.
 */
export function createQuotaService(temporal: TemporalGateway, config: Config) {
  const refusals = new Map<string, number>();
  /** Tenants that created through this process (their usage is on /metrics); bounded by the tenants there are. */
  const seen = new Set<string>();

  /** The caller's limits: its own over `[quotas]`. */
  const quotaOf = (caller: TenantCaller): Quota => effectiveQuota(config.quotas, caller.quotas);

  /** Reserve the sandbox's share, or 429 naming the limit and the usage. Idempotent per sandbox id. */
  async function reserve(caller: TenantCaller, sandboxId: string, reservation: Reservation): Promise<void> {
    seen.add(caller.tenant);
    const outcome = await temporal.call((client) =>
      client.workflow.executeUpdateWithStart(reserveUpdate, {
        args: [{ sandboxId, reservation, limits: usageLimits(quotaOf(caller)) }],
        startWorkflowOperation: new WithStartWorkflowOperation<TenantWorkflow>(TENANT_WORKFLOW_TYPE, {
          workflowId: tenantWorkflowId(caller.tenant),
          taskQueue: config.temporal.taskQueue,
          args: [
            {
              tenant: caller.tenant,
              check: { graceSeconds: config.server.quotaCheckGraceSeconds, intervalSeconds: config.server.quotaCheckIntervalSeconds },
            },
          ],
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      }),
    );
    if (!outcome.admitted) {
      refusals.set(caller.tenant, (refusals.get(caller.tenant) ?? 0) + 1);
      throw new TideboxError('QUOTA_EXCEEDED', outcome.message);
    }
  }

  /** Give a share back (its sandbox actor was never started). Idempotent; the tenant actor's own check catches a lost one. */
  async function release(tenant: string, sandboxId: string): Promise<void> {
    try {
      await temporal.call((client) => client.workflow.getHandle(tenantWorkflowId(tenant)).signal(releaseSignal, { sandboxId }));
    } catch (err) {
      if (!isWorkflowGone(err)) throw err;
    }
  }

  /** What a tenant holds now (nothing when it has no actor yet). */
  async function usage(tenant: string): Promise<Usage> {
    try {
      return await temporal.call((client) => client.workflow.getHandle(tenantWorkflowId(tenant)).query(usageQuery));
    } catch (err) {
      if (isWorkflowGone(err)) return NO_USAGE;
      throw err;
    }
  }

  /** The limits a tenant's last create was judged by (an operator cannot see a tenant's own quota otherwise). */
  async function lastLimits(tenant: string): Promise<UsageLimits | undefined> {
    try {
      return (await temporal.call((client) => client.workflow.getHandle(tenantWorkflowId(tenant)).query(limitsQuery))) ?? undefined;
    } catch (err) {
      if (isWorkflowGone(err)) return undefined;
      throw err;
    }
  }

  return {
    quotaOf,
    reserve,
    release,
    usage,
    lastLimits,
    refusals: (): ReadonlyMap<string, number> => refusals,
    tenantsSeen: (): ReadonlySet<string> => seen,
  };
}

export type QuotaService = ReturnType<typeof createQuotaService>;
