import {
  ScheduleNotFoundError,
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, TypedSearchAttributes } from '@temporalio/common';
import type { Config } from '../core/config';
import { ErrorCodes } from '../core/errors';
import { RenewRunInput, RenewRunOutcome, renewScheduleId, SandboxView, sandboxWorkflowId } from '../core/sandbox';
import { mountView, MountWorkflowInput, mountWorkflowId } from '../core/mounts';
import { SA } from '../core/search-attributes';
import { acquireMountUpdate, mountWorkflow, releaseMountUpdate } from '../workflows/mount';
import { renewUpdate } from '../workflows/sandbox';

/**
 * Activities that talk to other actors through the Temporal client (a workflow cannot send an
 * Update or manage a Schedule itself). They run on the shared task queue: no host needed.
 */
export function createMessagingActivities({ client, config }: { client: Client; config: Config }) {
  const deleteSchedule = async (sandboxId: string): Promise<boolean> => {
    try {
      await client.schedule.getHandle(renewScheduleId(sandboxId)).delete();
      return true;
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) return false;
      throw err;
    }
  };

  return {
    /**
     * Join a shared mount's holders, starting its actor if there is none (update-with-start, so two
     * sandboxes racing for the same new mount land on one actor). Resolves with the host path once
     * mounted; a mount failure comes back as a non-retryable MOUNT_FAILED.
     */
    acquireMount: async (input: MountWorkflowInput & { sandboxId: string }): Promise<{ hostPath: string }> => {
      const { sandboxId, ...mount } = input;
      const start = new WithStartWorkflowOperation(mountWorkflow, {
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
      // Heartbeat while the mount is made, so a worker that dies here is noticed in seconds, not
      // after the whole start-to-close timeout; the retried acquire is idempotent (a holder set).
      const context = Context.current();
      const beat = setInterval(() => context.heartbeat(), 2000);
      try {
        // A cancelled activity (timed out, or its sandbox gave up) stops waiting for the mount.
        return await client.withAbortSignal(context.cancellationSignal, () =>
          client.workflow.executeUpdateWithStart(acquireMountUpdate, { args: [{ sandboxId }], startWorkflowOperation: start }),
        );
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
          throw ApplicationFailure.create({ type: err.cause.type ?? undefined, message: err.cause.message, nonRetryable: true });
        }
        throw err;
      } finally {
        clearInterval(beat);
      }
    },

    /** Leave a shared mount's holders. Idempotent: a mount actor that has already completed is fine. */
    releaseMount: async ({ hostId, key, sandboxId }: { hostId: string; key: string; sandboxId: string }): Promise<void> => {
      try {
        await client.workflow.getHandle(mountWorkflowId(hostId, key)).executeUpdate(releaseMountUpdate, { args: [{ sandboxId }] });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return;
        // Completed between our lookup and the update: nothing held.
        if (err instanceof WorkflowUpdateFailedError || (err as { code?: number }).code === 5) return;
        throw err;
      }
    },

    /** Remove the sandbox's renew schedule, if it has one. Idempotent. */
    deleteRenewSchedule: async ({ sandboxId }: { sandboxId: string }): Promise<{ deleted: boolean }> => ({
      deleted: await deleteSchedule(sandboxId),
    }),

    /**
     * One run of a renew schedule: move expiresAt to now + extendBy (capped by `until` and the
     * maximum lifetime) through the sandbox actor's `renew` Update. A sandbox that has ended takes
     * its schedule with it.
     */
    renewFromSchedule: async ({ sandboxId, tenant, extendBySeconds, until }: RenewRunInput): Promise<RenewRunOutcome> => {
      const handle = client.workflow.getHandle(sandboxWorkflowId(sandboxId));
      let view: SandboxView | undefined;
      try {
        const d = await handle.describe();
        view = d.status.name === 'RUNNING' ? (d.memo?.view as SandboxView | undefined) : undefined;
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
      // The schedule acts only inside its tenant: a sandbox of another tenant under this id is not its sandbox.
      if (view && tenant !== undefined && view.tenant !== tenant) return { outcome: 'rejected', message: 'the sandbox belongs to another tenant' };
      // A Failed sandbox is kept only until it expires or is deleted: renewing it would keep it forever.
      if (!view || view.status.state === 'Terminated' || view.status.state === 'Stopping' || view.status.state === 'Failed') {
        await deleteSchedule(sandboxId);
        return { outcome: 'sandbox-gone' };
      }
      if (view.expiresAt === null) return { outcome: 'not-needed', expiresAt: null };

      const now = Date.now();
      const maxExpiresAt = now + config.sandbox.maxTimeoutSeconds * 1000;
      const target = Math.min(now + extendBySeconds * 1000, until ? Date.parse(until) : Infinity, maxExpiresAt);
      if (target <= Date.parse(view.expiresAt)) return { outcome: 'not-needed', expiresAt: view.expiresAt };

      try {
        const result = await handle.executeUpdate(renewUpdate, {
          args: [{ expiresAt: new Date(target).toISOString(), maxExpiresAt: new Date(maxExpiresAt).toISOString(), actor: 'schedule' }],
        });
        return { outcome: 'renewed', expiresAt: result.expiresAt };
      } catch (err) {
        // The actor's validator said no (ended meanwhile, or nothing to extend): a verdict, not a fault.
        if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
          if (err.cause.type === ErrorCodes.INVALID_STATE.code || err.cause.type === ErrorCodes.NOT_FOUND.code) {
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

export type MessagingActivities = ReturnType<typeof createMessagingActivities>;
