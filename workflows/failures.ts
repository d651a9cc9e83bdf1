import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { ErrorCodes, type ErrorKind } from '../core/errors';

/** A validator's or handler's refusal: the API maps the type back to the catalogued code and HTTP status. */
export const reject = (kind: ErrorKind, message: string): ApplicationFailure =>
  ApplicationFailure.create({ type: ErrorCodes[kind].code, message, nonRetryable: true });

/**
 * The reason (a catalogued code, else SERVER::INTERNAL_ERROR) and message of a failed activity, as
 * clients read them in a resource's status. Only catalogued failures carry their own message (written
 * for clients); anything else is an internal error whose text stays in the workflow history, where
 * operators read it, and never reaches a client.
 */
export function describeFailure(err: unknown): { reason: string; message: string } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && isCatalogued(cause.type)) return { reason: cause.type!, message: cause.message };
  const step = err instanceof ActivityFailure ? ` in ${err.activityType}` : '';
  return { reason: ErrorCodes.INTERNAL.code, message: `internal error${step}; the cause is in the workflow history` };
}

/** The message an activity failed with, as clients read it (see describeFailure). */
export const failureMessage = (err: unknown): string => describeFailure(err).message;

const CATALOGUED = new Set<string>(Object.values(ErrorCodes).map((c) => c.code));
const isCatalogued = (type: string | undefined | null): boolean => !!type && CATALOGUED.has(type);
