import { Context } from '@temporalio/activity';
import {
  ScheduleNotFoundError,
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure, TypedSearchAttributes } from '@temporalio/common';
import type { MessagingActivities } from '../contracts/messaging';
import { acquireMountUpdate, MOUNT_WORKFLOW_TYPE, releaseMountUpdate, type MountWorkflow } from '../contracts/mount-actor';
import { renewUpdate, SANDBOX_WORKFLOW_TYPE } from '../contracts/sandbox-actor';
import {
  releaseSignal,
  reserveUpdate,
  TENANT_WORKFLOW_TYPE,
  type TenantWorkflow,
  tenantWorkflowId,
  tenantWorkflowStart,
} from '../contracts/tenant-actor';
import { SA } from '../contracts/search-attributes';
import { visibilityQuery } from '../contracts/visibility';
import type { Config } from '../core/config';
import { errorKindOf } from '../core/errors';
import { scheduledExpiry } from '../core/expiry';
import { mountView, mountWorkflowId } from '../core/mounts';
import { poolOfReservationKey } from '../core/quotas';
import { renewScheduleId, sandboxWorkflowId, type SandboxView } from '../core/sandbox';
import { snapshotWorkflowId } from '../core/snapshots';
import { GrpcStatus, hasGrpcStatus } from '../platform/grpc-status';
import { poolReservationHeld, workflowOpen } from './actor-liveness';
import { heartbeating } from './common';

/**
 * Activities that talk to other actors through the Temporal client (a workflow cannot send an
 * Update or manage a Schedule itself). They run on the shared task queue: no host needed.
 */
export function createMessagingActivities({ client, config }: { client: Client; config: Config }): MessagingActivities {
  const deleteSchedule = async (sandboxId: string): Promise<boolean> => {
    try {
      await client.schedule.getHandle(renewScheduleId(sandboxId)).delete();
      return true;
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return false;
      throw err;
    }
  };

  /**
   * The workflow ids of the tenant's open sandbox actors, as visibility has them now: the raw
   * listing, ids only. (The client's listing decodes every memo: at 10,000 live that was 10,000
   * memos a minute on the worker's event loop, holding up every activity and view write meanwhile.)
   */
  const openSandboxActors = async (tenant: string): Promise<Set<string>> => {
    const ids = new Set<string>();
    const query = visibilityQuery({ type: SANDBOX_WORKFLOW_TYPE, tenant });
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await client.workflowService.listWorkflowExecutions({
        namespace: config.temporal.namespace,
        query,
        pageSize: 1000,
        nextPageToken,
      });
      for (const e of page.executions ?? []) if (e.execution?.workflowId) ids.add(e.execution.workflowId);
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
      Context.current().heartbeat();
    } while (nextPageToken);
    return ids;
  };

  return {
    /**
     * Update-with-start, so two sandboxes racing for the same new mount land on one actor. Heartbeats
     * while the mount is made, so a worker that dies here is noticed in seconds, not after the whole
     * start-to-close timeout; the retried acquire is idempotent (a holder set).
     */
    acquireMount: (input) =>
      heartbeating(async () => {
        const { sandboxId, ...mount } = input;
        const start = new WithStartWorkflowOperation<MountWorkflow>(MOUNT_WORKFLOW_TYPE, {
          workflowId: mountWorkflowId(mount.hostId, mount.key),
          taskQueue: config.temporal.taskQueue,
          args: [mount],
          workflowIdConflictPolicy: 'USE_EXISTING',
          memo: { view: mountView(mount, 'Unmounted', [], { at: new Date().toISOString() }) },
          typedSearchAttributes: new TypedSearchAttributes([
            { key: SA.tenant, value: mount.tenant },
            { key: SA.state, value: 'Unmounted' },
          ]),
        });
        try {
          // A cancelled activity (timed out, or its sandbox gave up) stops waiting for the mount.
          return await client.withAbortSignal(Context.current().cancellationSignal, () =>
            client.workflow.executeUpdateWithStart(acquireMountUpdate, { args: [{ sandboxId }], startWorkflowOperation: start }),
          );
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
            throw ApplicationFailure.create({
              type: err.cause.type ?? undefined,
              message: err.cause.message,
              nonRetryable: true,
              cause: err,
            });
          }
          throw err;
        }
      }),

    /** A mount actor that has already completed holds nobody: fine. */
    releaseMount: async ({ hostId, key, sandboxId }) => {
      try {
        await client.workflow.getHandle(mountWorkflowId(hostId, key)).executeUpdate(releaseMountUpdate, { args: [{ sandboxId }] });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return;
        // Completed between our lookup and the update: nothing held.
        if (err instanceof WorkflowUpdateFailedError || hasGrpcStatus(err, GrpcStatus.NOT_FOUND)) return;
        throw err;
      }
    },

    deleteRenewSchedule: async ({ sandboxId }) => ({ deleted: await deleteSchedule(sandboxId) }),

    reserveQuota: async ({ tenant, key, reservation, limits, replace }) =>
      client.workflow.executeUpdateWithStart(reserveUpdate, {
        args: [{ sandboxId: key, reservation, limits, replace }],
        startWorkflowOperation: new WithStartWorkflowOperation<TenantWorkflow>(TENANT_WORKFLOW_TYPE, {
          ...tenantWorkflowStart(tenant, config),
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      }),

    sandboxesOpen: async ({ sandboxIds, tenant }) => {
      // One listing instead of a describe per live sandbox every check: a tenant's reservations are
      // almost all live sandboxes, checked every minute. Visibility may lag, so a key it does not
      // list is asked of its actor before its share goes back; one it lists that has just closed
      // waits for the next check.
      const plain = sandboxIds.some((id) => !id.startsWith('snapshot:') && !poolOfReservationKey(id));
      const listed = tenant === undefined || !plain ? new Set<string>() : await openSandboxActors(tenant);
      const open: string[] = [];
      for (const id of sandboxIds) {
        const pool = poolOfReservationKey(id);
        const actor = id.startsWith('snapshot:') ? snapshotWorkflowId(id.slice('snapshot:'.length)) : sandboxWorkflowId(id);
        if (listed.has(actor) || (pool ? await poolReservationHeld(client, pool.workflowId, id) : await workflowOpen(client, actor)))
          open.push(id);
        Context.current().heartbeat();
      }
      return { open };
    },

    releaseQuota: async ({ tenant, key }) => {
      try {
        await client.workflow.getHandle(tenantWorkflowId(tenant)).signal(releaseSignal, { sandboxId: key });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },

    /**
     * Move expiresAt to now + extendBy (capped by `until` and the expiry policy) through the sandbox
     * actor's `renew` Update, which judges it. A sandbox that has ended takes its schedule with it.
     */
    renewFromSchedule: async ({ sandboxId, tenant, extendBySeconds, until }) => {
      const handle = client.workflow.getHandle(sandboxWorkflowId(sandboxId));
      let view: SandboxView | undefined;
      try {
        const d = await handle.describe();
        view = d.status.name === 'RUNNING' ? (d.memo?.view as SandboxView | undefined) : undefined;
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
      // The schedule acts only inside its tenant: a sandbox of another tenant under this id is not its sandbox.
      if (view && tenant !== undefined && view.tenant !== tenant)
        return { outcome: 'rejected', message: 'the sandbox belongs to another tenant' };
      // A Failed sandbox is kept only until it expires or is deleted: renewing it would keep it forever.
      if (!view || view.status.state === 'Terminated' || view.status.state === 'Stopping' || view.status.state === 'Failed') {
        await deleteSchedule(sandboxId);
        return { outcome: 'sandbox-gone' };
      }
      if (view.expiresAt === null) return { outcome: 'not-needed', expiresAt: null };
      const expiresAt = scheduledExpiry(view.expiresAt, Date.now(), extendBySeconds, until, config.sandbox);
      if (expiresAt === undefined) return { outcome: 'not-needed', expiresAt: view.expiresAt };

      try {
        const result = await handle.executeUpdate(renewUpdate, { args: [{ expiresAt, actor: 'schedule' }] });
        return { outcome: 'renewed', expiresAt: result.expiresAt };
      } catch (err) {
        // The actor's validator said no (ended meanwhile, or nothing to extend): a verdict, not a fault.
        if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
          const kind = errorKindOf(err.cause.type);
          if (kind === 'INVALID_STATE' || kind === 'NOT_FOUND') {
            await deleteSchedule(sandboxId);
            return { outcome: 'sandbox-gone' };
          }
          return { outcome: 'rejected', message: err.cause.message };
        }
        throw err;
      }
    },
  };
}
