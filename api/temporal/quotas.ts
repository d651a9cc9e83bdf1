import { type Client, WithStartWorkflowOperation } from '@temporalio/client';
import {
  limitsQuery,
  recordSignal,
  releaseSignal,
  reserveUpdate,
  TENANT_WORKFLOW_TYPE,
  type TenantWorkflow,
  tenantWorkflowId,
  tenantWorkflowStart,
  usageQuery,
} from '../../contracts/tenant-actor';
import type { Config } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { effectiveQuota, poolLimits, type Quota, type Reservation, type Usage, type UsageLimits, usageLimits } from '../../core/quotas';
import type { TenantCaller } from '../../core/tenants';
import { GrpcStatus, hasGrpcStatus } from '../../platform/grpc-status';
import { isWorkflowGone } from './errors';
import type { TemporalGateway } from './gateway';
import { actorTurns } from './turns';

const NO_USAGE: Usage = { sandboxes: 0, cpuMillis: 0, memoryBytes: 0, snapshots: 0, pools: 0 };

/**
 * Tenants' quotas over their actors (`tenant/<name>`): a create reserves its sandbox's share (an
 * Update-with-start that admits or refuses atomically) before the sandbox actor exists, and gives it
 * back when that actor could not be started. Refusals are counted per tenant for /metrics.
 */
export function createQuotaService(temporal: TemporalGateway, config: Config) {
  const refusals = new Map<string, number>();
  /** Tenants that created through this process (their usage is on /metrics); bounded by the tenants there are. */
  const seen = new Set<string>();

  /** This process's reservations in flight per tenant actor (see ./turns.ts). */
  const turns = actorTurns(config.server, (tenant) => `the quota of tenant ${tenant}`);

  /** The caller's limits: its own over `[quotas]`, and the number of pools (never unlimited). */
  const quotaOf = (caller: TenantCaller): Quota => ({
    maxPools: config.pools.maxPerTenant,
    ...effectiveQuota(config.quotas, caller.quotas),
  });

  /** The limits a reservation is judged by; none: it is only recorded. A pool is never unlimited. */
  const limitsFor = (caller: TenantCaller, kind: Reservation['kind']): UsageLimits =>
    kind === 'pool' ? poolLimits(quotaOf(caller)) : usageLimits(quotaOf(caller));

  /** Whether a sandbox's reservation can refuse (429): the caller has a limit to judge it by. */
  const judgesSandboxes = (caller: TenantCaller): boolean => Object.keys(limitsFor(caller, undefined)).length > 0;

  /** Reserve the sandbox's (or a new pool's) share, or 429 naming the limit and the usage. Idempotent per key. */
  async function reserve(caller: TenantCaller, sandboxId: string, reservation: Reservation): Promise<void> {
    seen.add(caller.tenant);
    const limits = limitsFor(caller, reservation.kind);
    if (Object.keys(limits).length === 0) {
      // Nothing to judge: record the share with a Signal, durable at once, so a create is accepted
      // (202 Pending) even while no worker runs, as it always was. Only a limit needs the actor's answer.
      await record(caller.tenant, sandboxId, reservation);
      return;
    }
    // Every create of a tenant meets at its actor, and Temporal admits only a few Updates in flight per
    // workflow (history.maxInFlightUpdates, 10 by default); beyond that the client backs off for
    // seconds. So this process sends at most server.quotaReservationsInFlight at a time per tenant and
    // queues the rest: the handler never waits, so each one takes a workflow task's time.
    const outcome = await turns.run(caller.tenant, () =>
      temporal.call(
        async (client) => {
          for (let attempt = 1; ; attempt++) {
            try {
              return await reserveOnce(client, caller.tenant, { sandboxId, reservation, limits });
            } catch (err) {
              // The Update met a workflow task failure and was never accepted: send it again.
              if (!hasGrpcStatus(err, GrpcStatus.FAILED_PRECONDITION) || attempt >= 4) throw err;
            }
          }
        },
        { what: 'quota reservation' },
      ),
    );
    if (!outcome.admitted) {
      refusals.set(caller.tenant, (refusals.get(caller.tenant) ?? 0) + 1);
      throw new TideboxError('QUOTA_EXCEEDED', outcome.message);
    }
  }

  const reserveOnce = (client: Client, tenant: string, args: { sandboxId: string; reservation: Reservation; limits: UsageLimits }) =>
    client.workflow.executeUpdateWithStart(reserveUpdate, {
      args: [args],
      startWorkflowOperation: new WithStartWorkflowOperation<TenantWorkflow>(TENANT_WORKFLOW_TYPE, {
        ...tenantStart(tenant),
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });

  const tenantStart = (tenant: string) => tenantWorkflowStart(tenant, config);

  /** Record a share without judging it (an operator's snapshot of a tenant's sandbox: admins are not held to quotas). */
  async function record(tenant: string, key: string, reservation: Reservation): Promise<void> {
    seen.add(tenant);
    await temporal.call((client) =>
      client.workflow.signalWithStart<TenantWorkflow, [{ sandboxId: string; reservation: Reservation }]>(TENANT_WORKFLOW_TYPE, {
        ...tenantStart(tenant),
        signal: recordSignal,
        signalArgs: [{ sandboxId: key, reservation }],
      }),
    );
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
    judgesSandboxes,
    reserve,
    record,
    release,
    usage,
    lastLimits,
    refusals: (): ReadonlyMap<string, number> => refusals,
    tenantsSeen: (): ReadonlySet<string> => seen,
  };
}

export type QuotaService = ReturnType<typeof createQuotaService>;
