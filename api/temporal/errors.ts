import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { errorKindOf, TideboxError } from '../../core/errors';
import { GrpcStatus, grpcStatusOf } from '../../platform/grpc-status';

/** What a call into Temporal was about, so its failures read right to the client. */
export interface CallContext {
  /** The 404 for "no such workflow" (a sandbox, snapshot, … of this id); without it a missing workflow is an internal error. */
  notFound?: () => TideboxError;
  /** The message the actor was sent ("renewal", "delete"): a deadline then means no worker took it in time. */
  what?: string;
  /**
   * The 409 for an Update the actor's run closed under (it continued as new, or ended while the Update
   * was in flight) while the actor itself lives on: the resource was in transition; the client retries.
   */
  inTransition?: () => TideboxError;
}

/**
 * The one mapping from Temporal's failures to the error catalogue:
 * - an actor's validator refused (its ApplicationFailure type is a catalogued code) → that code;
 * - no such workflow → the caller's 404;
 * - deadline exceeded → 504 (no worker accepted the message in time, or the service was slow);
 * - invalid argument → 400; resource exhausted or unavailable → 503.
 * Anything else is returned unchanged: the app answers 500 and logs it with its cause.
 */
export function toTideboxError(err: unknown, ctx: CallContext = {}): Error {
  if (err instanceof TideboxError) return err;
  if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
    const kind = errorKindOf(err.cause.type);
    if (kind) return new TideboxError(kind, err.cause.message, { cause: err });
  }
  if (err instanceof WorkflowNotFoundError && ctx.notFound) return withCause(ctx.notFound(), err);
  // An Update-with-start cut off by its deadline ends CANCELLED, not DEADLINE_EXCEEDED (the API cancels no call otherwise).
  const status =
    err instanceof WorkflowUpdateRPCTimeoutOrCancelledError
      ? { code: GrpcStatus.DEADLINE_EXCEEDED, details: err.message }
      : grpcStatusOf(err);
  switch (status?.code) {
    case GrpcStatus.NOT_FOUND:
      if (ctx.notFound) return withCause(ctx.notFound(), err);
      break;
    case GrpcStatus.INVALID_ARGUMENT:
      return new TideboxError('INVALID_PARAMETER', `rejected by the workflow service: ${status.details}`, { cause: err });
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new TideboxError(
        'TIMEOUT',
        ctx.what
          ? `no worker accepted the ${ctx.what} in time; retry the request`
          : 'the workflow service did not answer in time; retry the request',
        { cause: err },
      );
    case GrpcStatus.RESOURCE_EXHAUSTED:
    case GrpcStatus.UNAVAILABLE:
      return new TideboxError('BACKEND_UNAVAILABLE', 'the workflow service is unavailable or overloaded; retry shortly', { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** Whether the workflow a call named was not found: none, closed, or its run closed under an Update. */
export function isWorkflowGone(err: unknown): boolean {
  return err instanceof WorkflowNotFoundError || grpcStatusOf(err)?.code === GrpcStatus.NOT_FOUND;
}

export const withCause = (error: TideboxError, cause: unknown): TideboxError => new TideboxError(error.kind, error.message, { cause });
