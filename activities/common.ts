import { ApplicationFailure, Context } from '@temporalio/activity';
import { ErrorCodes } from '../core/errors';

/** Heartbeat every 2 s while `fn` runs, so a dead worker is noticed and a timed-out attempt learns it was cancelled. */
export async function heartbeating<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(), 2000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** A non-retryable failure carrying a catalogued code: the workflow reads it as the failure's reason. */
export const fail = (kind: keyof typeof ErrorCodes, message: string) =>
  ApplicationFailure.create({ type: ErrorCodes[kind].code, message, nonRetryable: true });
