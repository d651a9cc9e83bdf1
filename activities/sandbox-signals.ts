import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { RuntimeExit } from '../contracts/runtime';
import { runtimeExitedSignal, runtimeProgressSignal } from '../contracts/sandbox-actor';
import { type RuntimeProgress, sandboxWorkflowId } from '../core/sandbox';

/** What a runtime tells sandbox actors from outside any activity: workloads that ended, pods still waiting. */
export function sandboxSignals(client: Client) {
  const handle = (sandboxId: string) => client.workflow.getHandle(sandboxWorkflowId(sandboxId));
  return {
    /** The workload stopped on its own. A sandbox that has ended has nothing left to be told. */
    async reportExit({ sandboxId, containerId, exitCode, message }: RuntimeExit): Promise<void> {
      try {
        await client.withDeadline(Date.now() + 10_000, () =>
          handle(sandboxId).signal(runtimeExitedSignal, { containerId, exitCode, ...(message ? { message } : {}) }),
        );
      } catch (err) {
        // Anything but a missing sandbox surfaces; the watcher's next sweep reports the exit again.
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },
    /** Why the workload is still pending (best effort: the caller logs a failure and reports again). */
    reportProgress: (sandboxId: string, progress: RuntimeProgress): Promise<void> =>
      client.withDeadline(Date.now() + 5_000, () => handle(sandboxId).signal(runtimeProgressSignal, progress)),
  };
}
