/** What the tenant actor (`tenant/<name>`) answers to. Names are recorded in histories: never rename one. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { CarriedLedger, HeldReservation, Reservation, Usage, UsageLimits } from '../core/quotas';
import type { Config } from '../core/config';

export const TENANT_WORKFLOW_TYPE = 'tenantWorkflow';
/**
 * The same workflow under the name its runs after a continue-as-new take since they carry the ledger
 * packed (`CarriedLedger`): a worker older than the packing has no workflow of this name and fails
 * such a task (another worker takes it) instead of reading an empty ledger and admitting past quota.
 */
export const TENANT_LEDGER_WORKFLOW_TYPE = 'tenantLedgerWorkflow';
export const tenantWorkflowId = (tenant: string): string => `tenant/${tenant}`;

export interface TenantWorkflowInput {
  tenant: string;
  /**
   * How old a reservation must be before its sandbox actor is checked, and how often (seconds); from
   * `server.quotaCheckGraceSeconds` / `quotaCheckIntervalSeconds` when the actor was started.
   */
  check?: { graceSeconds: number; intervalSeconds: number };
  /**
   * Present only when continuing as new: the live reservations, packed (runs of the ledger type), or
   * by key (runs continued before 2026-12-05, still read).
   */
  carried?: { ledger?: CarriedLedger; reservations?: Record<string, HeldReservation> };
}
export type TenantWorkflow = (input: TenantWorkflowInput) => Promise<void>;

/**
 * How a tenant actor is started, by whichever reservation comes first (the API's, or a pool actor's):
 * on the shared task queue, checking its reservations as `[server]` says.
 */
export const tenantWorkflowStart = (
  tenant: string,
  config: {
    temporal: Pick<Config['temporal'], 'taskQueue'>;
    server: Pick<Config['server'], 'quotaCheckGraceSeconds' | 'quotaCheckIntervalSeconds'>;
  },
) => ({
  workflowId: tenantWorkflowId(tenant),
  taskQueue: config.temporal.taskQueue,
  args: [
    { tenant, check: { graceSeconds: config.server.quotaCheckGraceSeconds, intervalSeconds: config.server.quotaCheckIntervalSeconds } },
  ] as [TenantWorkflowInput],
});

export type ReserveOutcome = { admitted: true; usage: Usage } | { admitted: false; message: string; usage: Usage };

/**
 * Admit one more sandbox or refuse it, atomically against every other reservation. Idempotent per
 * sandbox id (a retried create, an Idempotency-Key): an existing reservation is admitted again —
 * unless `replace` (a pool resized): then the new share is judged in the old one's place, which is
 * kept if the new one is refused.
 */
export const reserveUpdate = defineUpdate<
  ReserveOutcome,
  [{ sandboxId: string; reservation: Reservation; limits: UsageLimits; replace?: boolean }]
>('reserve');
/**
 * Record a share without judging it: for a tenant with no usage limit, whose creates must not wait
 * for a worker (a Signal is durable at once; the actor counts it when it next runs). Idempotent.
 */
export const recordSignal = defineSignal<[{ sandboxId: string; reservation: Reservation }]>('record');
/** The sandbox no longer holds anything (it terminated, or never started). Idempotent. */
export const releaseSignal = defineSignal<[{ sandboxId: string }]>('release');
export const usageQuery = defineQuery<Usage>('usage');
/** The limits the last reservation was judged by (they come with each create: the tenant's quota can change). */
export const limitsQuery = defineQuery<UsageLimits | null>('limits');
