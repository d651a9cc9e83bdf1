import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type ScheduleOptions } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { RENEW_WORKFLOW_TYPE, type RenewWorkflow } from '../../contracts/renew-run';
import { SA } from '../../contracts/search-attributes';
import type { Config } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { renewScheduleProblem } from '../../core/expiry';
import type { RenewScheduleRequest } from '../../core/schemas';
import { type RenewRunInput, renewScheduleId } from '../../core/sandbox';
import type { Caller } from '../../core/tenants';
import type { TemporalGateway } from './gateway';
import type { SandboxService } from './sandboxes';

const scheduleNotFound = (sandboxId: string) => new TideboxError('SCHEDULE_NOT_FOUND', `sandbox ${sandboxId} has no renew schedule`);

/** What a schedule's memo says of its settings and owner. */
interface ScheduleMemo {
  tenant?: string;
  intervalSeconds?: number;
  extendBySeconds?: number;
  until?: string;
}

/**
 * Renew schedules: a Temporal Schedule `renew/<sandboxId>` per sandbox whose every tick starts a
 * short renew run (workflows/renew.ts). The schedule belongs to the sandbox's tenant and is removed
 * by the sandbox actor when the sandbox ends.
 */
export function createRenewScheduleService(temporal: TemporalGateway, config: Config, sandboxes: SandboxService) {
  async function get(caller: Caller, sandboxId: string) {
    const view = await sandboxes.get(caller, sandboxId);
    const d = await temporal.call(async (client) => {
      try {
        return await client.schedule.getHandle(renewScheduleId(sandboxId)).describe();
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) throw scheduleNotFound(sandboxId);
        throw err;
      }
    });
    const memo = (d.memo ?? {}) as ScheduleMemo;
    if (memo.tenant !== view.tenant) throw scheduleNotFound(sandboxId);
    const last = d.info.recentActions.at(-1);
    return {
      scheduleId: d.scheduleId,
      intervalSeconds: memo.intervalSeconds,
      extendBySeconds: memo.extendBySeconds,
      until: memo.until,
      nextRunAt: d.info.nextActionTimes[0]?.toISOString(),
      lastRunAt: last?.takenAt.toISOString(),
      lastRunWorkflowId: last?.action.workflow.workflowId,
      runs: d.info.numActionsTaken,
    };
  }

  /** Create or replace the sandbox's renew schedule. */
  async function put(caller: Caller, sandboxId: string, req: RenewScheduleRequest) {
    const view = await sandboxes.get(caller, sandboxId);
    // The schedule belongs to the sandbox's tenant, also when an admin sets it up.
    const tenant = view.tenant;
    if (view.expiresAt === null) {
      throw new TideboxError('MANUAL_CLEANUP', 'sandbox was created for manual cleanup (no timeout); there is nothing to renew');
    }
    if (view.status.state === 'Failed') {
      throw new TideboxError('INVALID_STATE', 'sandbox has failed; it is kept only until it expires or is deleted, so it is not renewed');
    }
    const problem = renewScheduleProblem(req, Date.now(), config.sandbox);
    if (problem) throw new TideboxError('INVALID_PARAMETER', problem);
    const scheduleId = renewScheduleId(sandboxId);
    const until = req.until === undefined ? undefined : new Date(Date.parse(req.until)).toISOString();
    const args: RenewRunInput = { sandboxId, tenant, extendBySeconds: req.extendBySeconds, ...(until ? { until } : {}) };
    const memo: ScheduleMemo = {
      tenant,
      intervalSeconds: req.intervalSeconds,
      extendBySeconds: req.extendBySeconds,
      ...(until ? { until } : {}),
    };
    const options: ScheduleOptions = {
      scheduleId,
      spec: { intervals: [{ every: req.intervalSeconds * 1000 }], ...(until ? { endAt: new Date(until) } : {}) },
      action: {
        type: 'startWorkflow',
        workflowType: RENEW_WORKFLOW_TYPE,
        workflowId: scheduleId,
        taskQueue: config.temporal.taskQueue,
        args: [args] satisfies Parameters<RenewWorkflow>,
        typedSearchAttributes: new TypedSearchAttributes([{ key: SA.tenant, value: tenant }]),
        workflowExecutionTimeout: 5 * 60_000,
      },
      // A run stuck on a dead worker must not block the next tick: only the newest renewal matters.
      policies: { overlap: ScheduleOverlapPolicy.TERMINATE_OTHER, catchupWindow: Math.max(60, req.intervalSeconds) * 1000 },
      memo: { ...memo },
      typedSearchAttributes: new TypedSearchAttributes([{ key: SA.tenant, value: tenant }]),
    };
    // First the actor's word that it knows (and that it is not being deleted): its teardown deletes
    // the schedule (one made after a teardown that did not know of it would live on until its next
    // tick found the sandbox gone).
    await sandboxes.announceRenewSchedule(sandboxId);
    await temporal.call(async (client) => {
      try {
        await client.schedule.create(options);
        return;
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      }
      // Replace: a schedule's memo cannot be updated, so recreate it with the new settings.
      try {
        await client.schedule.getHandle(scheduleId).delete();
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err; // a concurrent PUT deleted it first
      }
      try {
        await client.schedule.create(options);
      } catch (err) {
        if (err instanceof ScheduleAlreadyRunning) {
          throw new TideboxError('INVALID_STATE', 'a concurrent request replaced the renew schedule; read it or retry', { cause: err });
        }
        throw err;
      }
    });
    return get(caller, sandboxId);
  }

  async function remove(caller: Caller, sandboxId: string): Promise<void> {
    await get(caller, sandboxId);
    await temporal.call(async (client) => {
      try {
        await client.schedule.getHandle(renewScheduleId(sandboxId)).delete();
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      }
    });
  }

  return { get, put, delete: remove };
}

export type RenewScheduleService = ReturnType<typeof createRenewScheduleService>;
