import { proxyActivities } from '@temporalio/workflow';
import type { MessagingActivities } from '../contracts/messaging';
import type { RenewWorkflow } from '../contracts/renew-run';
import type { RenewRunInput, RenewRunOutcome } from '../core/sandbox';

const { renewFromSchedule } = proxyActivities<MessagingActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5 },
});

/**
 * Started by the Temporal Schedule `renew/<sandboxId>` on every tick: one renewal through the
 * sandbox actor. Short-lived on purpose, so the schedule's history shows every run's outcome.
 */
export const renewWorkflow: RenewWorkflow = async (input: RenewRunInput): Promise<RenewRunOutcome> => await renewFromSchedule(input);
