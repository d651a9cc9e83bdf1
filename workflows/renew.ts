import { proxyActivities } from '@temporalio/workflow';
import type { MessagingActivities } from '../activities/messaging';
import type { RenewRunInput, RenewRunOutcome } from '../core/sandbox';

const { renewFromSchedule } = proxyActivities<MessagingActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5 },
});

/**
 * Started by the Temporal Schedule `renew/<sandboxId>` on every tick: one renewal through the
 * sandbox actor. Short-lived on purpose, so the schedule's history shows every run's outcome.
 */
export async function renewWorkflow(input: RenewRunInput): Promise<RenewRunOutcome> {
  return await renewFromSchedule(input);
}
