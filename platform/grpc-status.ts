import { isGrpcServiceError } from '@temporalio/client';
import { google, temporal } from '@temporalio/proto';

/** The gRPC status codes Tidebox tells apart (grpc/status.proto), by name. */
export const GrpcStatus = {
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/**
 * The first gRPC status in an error's cause chain (the Temporal client wraps service errors), if any.
 * Errors that carry a numeric `code` without gRPC metadata (a call cut off by its deadline) count too.
 */
export function grpcStatusOf(err: unknown): { code: number; details: string } | undefined {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (isGrpcServiceError(e))
      return {
        code: e.code,
        details: withOperationReasons(
          e.details,
          typeof e.metadata?.get === 'function' ? e.metadata.get('grpc-status-details-bin')[0] : undefined,
        ),
      };
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return { code, details: (e as { message?: string }).message ?? '' };
  }
  return undefined;
}

export const hasGrpcStatus = (err: unknown, code: GrpcStatusCode): boolean => grpcStatusOf(err)?.code === code;

const MULTI_OPERATION_FAILURE = 'type.googleapis.com/temporal.api.errordetails.v1.MultiOperationExecutionFailure';

/**
 * An Update-with-Start the service refused says only "could not be executed"; why (an unknown search
 * attribute, a refused id policy, ...) is in the per-operation statuses of its details. Those are
 * added to the text, so the client's 400 and the log say what was wrong.
 */
function withOperationReasons(details: string, bin: unknown): string {
  if (!Buffer.isBuffer(bin)) return details;
  try {
    const reasons = google.rpc.Status.decode(bin)
      .details.filter((any) => any.type_url === MULTI_OPERATION_FAILURE && any.value)
      .flatMap((any) => temporal.api.errordetails.v1.MultiOperationExecutionFailure.decode(any.value!).statuses)
      .map((status) => status.message)
      .filter((message): message is string => !!message && !/^Operation was aborted/.test(message));
    return reasons.length ? `${details} ${[...new Set(reasons)].join('; ')}` : details;
  } catch {
    return details;
  }
}
