import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { ErrorCodes, type ErrorKind } from '../core/errors';

/** A validator's or handler's refusal: the API maps the type back to the catalogued code and HTTP status. */
export const reject = (kind: ErrorKind, message: string): ApplicationFailure =>
  ApplicationFailure.create({ type: ErrorCodes[kind].code, message, nonRetryable: true });

/** The reason (a catalogued code, else SERVER::INTERNAL_ERROR) and message of a failed activity. */
export function describeFailure(err: unknown): { reason: string; message: string } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.type) return { reason: cause.type, message: cause.message };
  return { reason: ErrorCodes.INTERNAL.code, message: cause instanceof Error ? cause.message : String(cause) };
}

/**
 * The message an activity failed with: its own ApplicationFailure's (our catalogued message, not
 * that of the runtime error kept as its cause), else the innermost message of the chain.
 */
export function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.message;
  let e: unknown = err;
  while (e && (e as { cause?: unknown }).cause) e = (e as { cause?: unknown }).cause;
  return e instanceof Error ? e.message : String(e);
}
