import { isGrpcServiceError } from '@temporalio/client';

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
    if (isGrpcServiceError(e)) return { code: e.code, details: e.details };
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return { code, details: (e as { message?: string }).message ?? '' };
  }
  return undefined;
}

export const hasGrpcStatus = (err: unknown, code: GrpcStatusCode): boolean => grpcStatusOf(err)?.code === code;
