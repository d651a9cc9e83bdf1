/** The short workflow a renew schedule (`renew/<sandboxId>`) starts on every tick. */
import type { RenewRunInput, RenewRunOutcome } from '../core/sandbox';

export const RENEW_WORKFLOW_TYPE = 'renewWorkflow';
export type RenewWorkflow = (input: RenewRunInput) => Promise<RenewRunOutcome>;
