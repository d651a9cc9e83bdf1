/** Response shapes of the contract and Tidebox's additions: serialisation and the OpenAPI document. */
import { z } from 'zod';
import { SANDBOX_STATES } from './sandbox';

export const ErrorResponseSchema = z
  .object({ code: z.string().describe('Catalogued error code, e.g. SANDBOX::NOT_FOUND'), message: z.string() })
  .describe('Every error has this shape');

const SandboxStatusSchema = z.object({
  state: z.enum(SANDBOX_STATES),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastTransitionAt: z.string(),
});

export const SandboxResourceSchema = z.object({
  id: z.string(),
  tenant: z.string().optional().describe('The tenant that owns the sandbox (a Tidebox addition)'),
  image: z.object({ uri: z.string() }).optional(),
  snapshotId: z.string().optional().describe('Set when restored from a snapshot (then image is absent)'),
  platform: z.object({ os: z.string(), arch: z.string() }).optional(),
  status: SandboxStatusSchema,
  metadata: z.record(z.string(), z.string()).optional(),
  entrypoint: z.array(z.string()).optional(),
  expiresAt: z.string().optional().describe('Absent for manual-cleanup sandboxes'),
  createdAt: z.string(),
});

export const CreateSandboxResponseSchema = SandboxResourceSchema.omit({ image: true, snapshotId: true }).extend({
  workflowId: z.string().describe('The sandbox actor workflow; see GET /v1/workflows/{workflowId}'),
});

const PaginationSchema = z.object({
  page: z.number(),
  pageSize: z.number(),
  totalItems: z.number(),
  totalPages: z.number(),
  hasNextPage: z.boolean(),
});

export const SnapshotResourceSchema = z.object({
  id: z.string(),
  sandboxId: z.string(),
  name: z.string().optional(),
  status: z.object({
    state: z.string().describe('Creating | Ready | Failed | Deleting'),
    reason: z.string().optional(),
    message: z.string().optional(),
    lastTransitionAt: z.string(),
  }),
  createdAt: z.string(),
  image: z.string().describe('Image reference a restore runs'),
  workflowId: z.string().describe('The snapshot actor workflow'),
  failedStep: z.string().optional().describe('While Failed: the step a retry resumes at'),
  retries: z.number(),
  steps: z.array(
    z.object({
      name: z.string(),
      state: z.string(),
      runs: z.number().describe('How often the step was started'),
      finishedAt: z.string().optional(),
      error: z.string().optional(),
    }),
  ),
});

export const ListSnapshotsResponseSchema = z.object({ items: z.array(SnapshotResourceSchema), pagination: PaginationSchema });

export const ListSandboxesResponseSchema = z.object({
  items: z.array(SandboxResourceSchema),
  pagination: z.object({
    page: z.number(),
    pageSize: z.number(),
    totalItems: z.number(),
    totalPages: z.number(),
    hasNextPage: z.boolean(),
  }),
});

export const RenewResponseSchema = z.object({ expiresAt: z.string() });

export const AcceptedActionSchema = z.object({ state: SandboxStatusSchema.shape.state, workflowId: z.string() });

export const SandboxEventsResponseSchema = z.object({
  id: z.string(),
  state: SandboxStatusSchema.shape.state,
  terminationReason: z.enum(['deleted', 'expired']).optional(),
  events: z.array(
    z.object({
      at: z.string(),
      state: SandboxStatusSchema.shape.state,
      actor: z.enum(['api', 'expiry', 'runtime', 'failure', 'schedule']),
      reason: z.string().optional(),
      message: z.string().optional(),
    }),
  ),
});

export const RenewScheduleResponseSchema = z.object({
  scheduleId: z.string(),
  intervalSeconds: z.number().optional(),
  extendBySeconds: z.number().optional(),
  until: z.string().optional(),
  nextRunAt: z.string().optional(),
  lastRunAt: z.string().optional(),
  lastRunWorkflowId: z.string().optional(),
  runs: z.number(),
});

/** GET /v1/tenants/me/usage and /v1/tenants/{name}/usage: a tenant's limits (absent = unlimited) and what it holds. */
export const TenantUsageResponseSchema = z.object({
  tenant: z.string(),
  limits: z.object({
    maxSandboxes: z.number().int().optional(),
    maxCpu: z.string().optional(),
    maxMemory: z.string().optional(),
    maxSandboxCpu: z.string().optional(),
    maxSandboxMemory: z.string().optional(),
    maxTimeoutSeconds: z.number().int().optional(),
    allowManualCleanup: z.boolean().optional(),
    maxSnapshots: z.number().int().optional(),
    maxPools: z.number().int().optional(),
  }),
  usage: z.object({
    /** Live sandboxes (any state but Terminated), including ones still starting. */
    sandboxes: z.number().int(),
    /** Sum of their CPU limits, e.g. "1500m". */
    cpu: z.string(),
    /** Sum of their memory limits, e.g. "768Mi". */
    memory: z.string(),
    /** Snapshots (any state) the tenant holds. */
    snapshots: z.number().int(),
    /** Warm pools the tenant has; each holds poolMax sandboxes' worth of the counts above. */
    pools: z.number().int(),
  }),
});

export const WorkflowStatusResponseSchema = z.object({
  workflowId: z.string(),
  runId: z.string(),
  type: z.string(),
  status: z.string().describe('RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, CONTINUED_AS_NEW or TIMED_OUT'),
  taskQueue: z.string(),
  startTime: z.string(),
  closeTime: z.string().optional(),
  historyLength: z.number(),
  failure: z.string().optional(),
});

export const MountListSchema = z.object({
  items: z.array(
    z.object({
      key: z.string(),
      hostId: z.string(),
      hostPath: z.string().optional(),
      bucket: z.string(),
      endpoint: z.string(),
      prefix: z.string(),
      version: z.string(),
      state: z.enum(['Unmounted', 'Mounting', 'Mounted', 'Unmounting']),
      holders: z.array(z.string()),
      lastError: z.string().optional(),
      updatedAt: z.string(),
    }),
  ),
});

export const EndpointSchema = z.object({
  endpoint: z.string(),
  headers: z.record(z.string(), z.string()).optional(),
});
