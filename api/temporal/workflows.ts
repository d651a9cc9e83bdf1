import { WorkflowFailedError } from '@temporalio/client';
import { RENEW_WORKFLOW_TYPE } from '../../contracts/renew-run';
import { SANDBOX_WORKFLOW_TYPE } from '../../contracts/sandbox-actor';
import { SA } from '../../contracts/search-attributes';
import { TideboxError } from '../../core/errors';
import { SANDBOX_STATES, type SandboxState } from '../../core/sandbox';
import { type Caller, canSee } from '../../core/tenants';
import type { TemporalGateway } from './gateway';

const workflowNotFound = (workflowId: string) => new TideboxError('WORKFLOW_NOT_FOUND', `workflow ${workflowId} not found`);

export interface WorkflowCounts {
  byState: Partial<Record<SandboxState, number>>;
  workflowFailures: Array<{ type: string; status: string; count: number }>;
}

/** Operations views: any workflow a response named, and counts for metrics, from visibility. */
export function createWorkflowService(temporal: TemporalGateway) {
  return {
    /** Type, status and times of a workflow this tenant owns (any id a response returned); admins see all. */
    async status(caller: Caller, workflowId: string) {
      const d = await temporal.describe(workflowId);
      if (!d || !canSee(caller, d.typedSearchAttributes.get(SA.tenant))) throw workflowNotFound(workflowId);
      let failure: string | undefined;
      if (d.status.name === 'FAILED' || d.status.name === 'TIMED_OUT') {
        failure = await temporal.call(async (client) => {
          try {
            await client.workflow.getHandle(workflowId).result();
            return undefined;
          } catch (err) {
            if (err instanceof WorkflowFailedError) return err.cause?.message ?? err.message;
            throw err;
          }
        });
      }
      return {
        workflowId: d.workflowId,
        runId: d.runId,
        type: d.type,
        status: d.status.name,
        taskQueue: d.taskQueue,
        startTime: d.startTime.toISOString(),
        closeTime: d.closeTime?.toISOString(),
        historyLength: d.historyLength,
        failure,
      };
    },

    /** Sandboxes by state and failed workflows by type, all tenants (for metrics). */
    async counts(): Promise<WorkflowCounts> {
      const byState: Partial<Record<SandboxState, number>> = {};
      const workflowFailures: WorkflowCounts['workflowFailures'] = [];
      await Promise.all([
        ...SANDBOX_STATES.filter((s) => s !== 'Terminated').map(async (state) => {
          byState[state] = await temporal.count({ type: SANDBOX_WORKFLOW_TYPE, states: [state] });
        }),
        ...[SANDBOX_WORKFLOW_TYPE, RENEW_WORKFLOW_TYPE].flatMap((type) =>
          (['Failed', 'TimedOut'] as const).map(async (status) => {
            workflowFailures.push({ type, status, count: await temporal.count({ type, executionStatus: status }) });
          }),
        ),
      ]);
      return { byState, workflowFailures };
    },
  };
}

export type WorkflowService = ReturnType<typeof createWorkflowService>;
