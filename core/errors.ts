/**
 * The one error catalogue. Every failure that reaches a client carries a `code` from here and the
 * HTTP status that goes with it; workflows raise the same codes as ApplicationFailure types so the
 * API can map them back without looking at message text.
 */
export const ErrorCodes = {
  INVALID_PARAMETER: { code: 'SANDBOX::INVALID_PARAMETER', httpStatus: 400 },
  INVALID_EXPIRATION: { code: 'SANDBOX::INVALID_EXPIRATION', httpStatus: 400 },
  UNSUPPORTED: { code: 'SANDBOX::UNSUPPORTED', httpStatus: 400 },
  NOT_FOUND: { code: 'SANDBOX::NOT_FOUND', httpStatus: 404 },
  MANUAL_CLEANUP: { code: 'SANDBOX::MANUAL_CLEANUP', httpStatus: 409 },
  INVALID_STATE: { code: 'SANDBOX::INVALID_STATE', httpStatus: 409 },
  IDEMPOTENCY_CONFLICT: { code: 'SANDBOX::IDEMPOTENCY_CONFLICT', httpStatus: 409 },
  /** A tenant quota (core/quotas.ts) would be exceeded: nothing was created. */
  QUOTA_EXCEEDED: { code: 'SANDBOX::QUOTA_EXCEEDED', httpStatus: 429 },
  MISSING_API_KEY: { code: 'AUTH::MISSING_API_KEY', httpStatus: 401 },
  INVALID_API_KEY: { code: 'AUTH::INVALID_API_KEY', httpStatus: 401 },
  /** An admin key asked for something only a tenant can do (create a sandbox). */
  FORBIDDEN: { code: 'AUTH::FORBIDDEN', httpStatus: 403 },
  /** The HTTP tenant provider cannot be reached and no usable cached answer exists: never a 401. */
  TENANT_PROVIDER_UNAVAILABLE: { code: 'AUTH::TENANT_PROVIDER_UNAVAILABLE', httpStatus: 503 },
  /** Too many requests without a valid API key from one client address (server.unauthenticatedPerMinute). */
  TOO_MANY_REQUESTS: { code: 'AUTH::TOO_MANY_FAILURES', httpStatus: 429 },
  ROUTE_NOT_FOUND: { code: 'SERVER::ROUTE_NOT_FOUND', httpStatus: 404 },
  BACKEND_UNAVAILABLE: { code: 'SERVER::BACKEND_UNAVAILABLE', httpStatus: 503 },
  UPSTREAM_UNAVAILABLE: { code: 'SERVER::UPSTREAM_UNAVAILABLE', httpStatus: 502 },
  PORT_NOT_AVAILABLE: { code: 'SANDBOX::PORT_NOT_AVAILABLE', httpStatus: 404 },
  WORKFLOW_NOT_FOUND: { code: 'SERVER::WORKFLOW_NOT_FOUND', httpStatus: 404 },
  SCHEDULE_NOT_FOUND: { code: 'SANDBOX::RENEW_SCHEDULE_NOT_FOUND', httpStatus: 404 },
  TIMEOUT: { code: 'SERVER::TIMEOUT', httpStatus: 504 },
  /** Too many requests already wait for one actor's turn in this API process (server.updatesQueuedPerActor). */
  BUSY: { code: 'SERVER::BUSY', httpStatus: 429 },
  INTERNAL: { code: 'SERVER::INTERNAL_ERROR', httpStatus: 500 },
  /** The operation exists but this server's runtime cannot do it (pause or snapshots on Kubernetes pods). */
  NOT_SUPPORTED_BY_RUNTIME: { code: 'SANDBOX::NOT_SUPPORTED_BY_RUNTIME', httpStatus: 501 },
  // Provisioning outcomes: they end in a Failed sandbox (status.reason), never in an HTTP error.
  IMAGE_UNAVAILABLE: { code: 'SANDBOX::IMAGE_UNAVAILABLE', httpStatus: 400 },
  RUNTIME_REJECTED: { code: 'SANDBOX::RUNTIME_REJECTED', httpStatus: 400 },
  CONTAINER_EXITED: { code: 'SANDBOX::CONTAINER_EXITED', httpStatus: 409 },
  MOUNT_FAILED: { code: 'SANDBOX::MOUNT_FAILED', httpStatus: 400 },
  /** Kubernetes: no node could take the pod within kubernetes.readyTimeoutSeconds. */
  POD_UNSCHEDULABLE: { code: 'SANDBOX::POD_UNSCHEDULABLE', httpStatus: 503 },
  /** The workload did not become ready within the runtime's start timeout. */
  START_TIMEOUT: { code: 'SANDBOX::START_TIMEOUT', httpStatus: 504 },
  SNAPSHOT_NOT_FOUND: { code: 'SNAPSHOT::NOT_FOUND', httpStatus: 404 },
  POOL_NOT_FOUND: { code: 'POOL::NOT_FOUND', httpStatus: 404 },
  POOL_EXISTS: { code: 'POOL::ALREADY_EXISTS', httpStatus: 409 },
  /** A create with `Prefer: pool-only` found no ready member. */
  POOL_EMPTY: { code: 'POOL::EMPTY', httpStatus: 503 },
  SNAPSHOT_INVALID_STATE: { code: 'SNAPSHOT::INVALID_STATE', httpStatus: 409 },
  /** The snapshot's image is still used by a live sandbox. */
  SNAPSHOT_IN_USE: { code: 'SNAPSHOT::IN_USE', httpStatus: 409 },
  // Snapshot step outcomes: they end in a Failed snapshot (status.message), never in an HTTP error.
  SNAPSHOT_SOURCE_GONE: { code: 'SNAPSHOT::SOURCE_GONE', httpStatus: 409 },
  SNAPSHOT_FAILED: { code: 'SNAPSHOT::CAPTURE_FAILED', httpStatus: 500 },
} as const;

export type ErrorKind = keyof typeof ErrorCodes;
export type ErrorCode = (typeof ErrorCodes)[ErrorKind]['code'];

/**
 * A failure with a catalogued code. `message` is for the client; `cause` (kept for the log, never
 * sent) is what went wrong underneath. Compare failures by `kind`, never by code or message text.
 */
export class TideboxError extends Error {
  readonly kind: ErrorKind;
  readonly code: ErrorCode;
  readonly httpStatus: number;

  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TideboxError';
    this.kind = kind;
    this.code = ErrorCodes[kind].code;
    this.httpStatus = ErrorCodes[kind].httpStatus;
  }
}

const byCode = new Map<string, ErrorKind>((Object.keys(ErrorCodes) as ErrorKind[]).map((kind) => [ErrorCodes[kind].code, kind]));

/** The catalogue entry for a code carried as an ApplicationFailure type, if it is one of ours. */
export function errorKindOf(code: string | undefined | null): ErrorKind | undefined {
  return code ? byCode.get(code) : undefined;
}

/** An operation the Kubernetes pod runtime cannot carry out (pause, snapshots, restore): 501, see docs/kubernetes.md. */
export const notOnKubernetes = (what: string): TideboxError =>
  new TideboxError('NOT_SUPPORTED_BY_RUNTIME', `${what} is not supported on the Kubernetes pod runtime (see docs/kubernetes.md)`);
