import { ActivityCancellationType, proxyActivities, proxyLocalActivities, workflowInfo } from '@temporalio/workflow';
import type { MessagingActivities } from '../../contracts/messaging';
import type { SandboxRuntime } from '../../contracts/runtime';
import { hostTaskQueue } from '../../core/sandbox';

/**
 * The activities the sandbox actor calls, by purpose: each purpose has its own timeouts, retries and
 * cancellation. Runtime activities run on the sandbox's host queue, messaging on the shared one.
 */
export function sandboxActivities(hostId: string) {
  const taskQueue = hostTaskQueue(workflowInfo().taskQueue, hostId);
  const runtimeCall = {
    taskQueue,
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '500ms', maximumInterval: '10s', maximumAttempts: 8 },
  } as const;
  return {
    /** Pause and resume. (Their recorded cancellations did not wait: replay must see the same commands.) */
    runtime: proxyActivities<SandboxRuntime>(runtimeCall),
    /** Create and start: a cancelled create must have stopped before its compensation removes what it made. */
    provisioner: proxyActivities<SandboxRuntime>({
      ...runtimeCall,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }),
    /** Removal must eventually succeed: a leaked container is worse than a slow delete. */
    teardown: proxyActivities<SandboxRuntime>({
      taskQueue,
      startToCloseTimeout: '2 minutes',
      heartbeatTimeout: '10 seconds',
      retry: { initialInterval: '500ms', maximumInterval: '30s' },
    }),
    messaging: proxyActivities<MessagingActivities>({
      startToCloseTimeout: '1 minute',
      retry: { initialInterval: '1s', maximumInterval: '30s' },
    }),
    /**
     * Messaging run inside the actor's own workflow task (the worker that runs the actor has the
     * messaging activities): no task of their own. Only what is quick and idempotent — a local
     * activity runs again if its task is retried — and must eventually succeed.
     */
    local: proxyLocalActivities<MessagingActivities>({
      startToCloseTimeout: '30 seconds',
      retry: { initialInterval: '1s', maximumInterval: '30s' },
    }),
    /** Acquiring waits for the mount itself (up to ossfs.mountTimeoutSeconds on the host). */
    mounting: proxyActivities<MessagingActivities>({
      startToCloseTimeout: '5 minutes',
      heartbeatTimeout: '10 seconds',
      retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 5 },
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }),
  };
}

export type SandboxActivities = ReturnType<typeof sandboxActivities>;
