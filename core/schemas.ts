import { posix } from 'node:path';
import { z } from 'zod';
import type { Config } from './config';
import type { RuntimeKind } from './ingress';
import { TideboxError } from './errors';
import { parseCpuMillis, parseMemoryBytes } from './quantities';
import { metadataProblems } from './metadata';
import { OssfsSource, OssfsVolume, ossfsEndpointProblem, ossfsOptionProblem, ossfsSourceProblems } from './mounts';
import { CLAIM_ACCESS_MODES, ClaimAccessMode, HostVolume, PvcVolume, SandboxSpec } from './sandbox';
import { hostVolumePath, isUnderAllowedPrefix, normalizeAbsolute, pvcVolumePaths } from './storage';
import { USER_ID_EXTENSION, userIdOf, type StorageLayout } from './tenants';

/** Request and response shapes of the contract, as zod schemas (validation, types and docs). */

const StringMap = z.record(z.string(), z.string());

const ImageSpec = z.object({
  uri: z.string().trim().min(1, 'image.uri must not be empty').max(512),
  auth: z.object({ username: z.string().optional(), password: z.string().optional() }).strict().optional(),
}).strict();

const VolumeName = z.string().max(63).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label (lowercase letters, digits, hyphens)');

const Ossfs = z.object({
  bucket: z.string().min(3, 'bucket must be 3-63 characters').max(63, 'bucket must be 3-63 characters')
    .regex(/^[a-z0-9][a-z0-9-]*[a-z0-9]$/, 'bucket must be lowercase letters, digits and hyphens'),
  endpoint: z.string().min(1).max(253),
  version: z.enum(['1.0', '2.0']).default('2.0'),
  options: z.array(z.string().max(256)).max(32).default([]),
  accessKeyId: z.string().min(1, 'accessKeyId is required').max(256),
  accessKeySecret: z.string().min(1, 'accessKeySecret is required').max(512),
}).strict();

const Volume = z.object({
  name: VolumeName,
  host: z.object({ path: z.string().min(1) }).strict().optional(),
  pvc: z.object({
    claimName: z.string().max(253).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'claimName must be a DNS label'),
    createIfNotExists: z.boolean().default(true),
    deleteOnSandboxTermination: z.boolean().default(false),
    // Kubernetes provisioning hints for a claim Tidebox creates: ignored by the Docker runtime (as the contract says).
    storageClass: z.string().max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'storageClass must be a DNS subdomain').nullable().optional(),
    storage: z.string().regex(/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei)?$/, 'storage must be a quantity such as 10Gi').nullable().optional(),
    accessModes: z.array(z.enum(CLAIM_ACCESS_MODES)).min(1).nullable().optional(),
  }).strict().optional(),
  ossfs: Ossfs.optional(),
  mountPath: z.string().regex(/^\//, 'must be an absolute path'),
  readOnly: z.boolean().default(false),
  subPath: z.string().optional(),
}).strict();

/** Extension key naming extra container ports to publish: "3000,5173". */
export const PORTS_EXTENSION = 'tidebox.io/ports';

export function createSandboxRequestSchema(limits: Config['sandbox']) {
  return z.object({
    image: ImageSpec.optional(),
    snapshotId: z.string().min(1).max(128).optional(),
    platform: z.object({ os: z.enum(['linux', 'windows']), arch: z.enum(['amd64', 'arm64']) }).strict().optional(),
    timeout: z
      .number().int('timeout must be a whole number of seconds')
      .min(limits.minTimeoutSeconds, `timeout must be at least ${limits.minTimeoutSeconds} seconds`)
      .max(limits.maxTimeoutSeconds, `timeout must be at most ${limits.maxTimeoutSeconds} seconds`)
      .nullable()
      .optional(),
    resourceLimits: StringMap.optional(),
    env: StringMap.optional(),
    metadata: StringMap.optional(),
    entrypoint: z.array(z.string()).min(1, 'entrypoint must name at least the executable').optional(),
    networkPolicy: z.unknown().optional(),
    credentialProxy: z.unknown().optional(),
    secureAccess: z.boolean().optional(),
    volumes: z.array(Volume).max(32).optional(),
    extensions: StringMap.optional(),
  });
}
export type CreateSandboxRequest = z.infer<ReturnType<typeof createSandboxRequestSchema>>;

export const RenewRequestSchema = z.object({
  expiresAt: z.iso.datetime({ offset: true, message: 'expiresAt must be an RFC 3339 date-time' }),
}).strict();

export const SandboxIdParams = z.object({ sandboxId: z.string().min(1).max(128) });
export const SnapshotIdParams = z.object({ snapshotId: z.string().min(1).max(128) });

export const CreateSnapshotRequestSchema = z
  .object({ name: z.string().min(1, 'name must not be empty').max(253, 'name must be at most 253 characters').regex(/^[^\x00-\x1f\x7f]*$/, 'name must not contain control characters').optional() })
  .strict()
  .nullish();

export const ListSnapshotsQuery = z.object({
  sandboxId: z.string().min(1).max(128).optional(),
  state: z.union([z.string(), z.array(z.string())]).optional(),
  /** Admin keys only: one tenant's snapshots. */
  tenant: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'tenant must be a DNS label').optional(),
  page: z.coerce.number().int().min(1, 'page must be at least 1').default(1),
  pageSize: z.coerce.number().int().min(1, 'pageSize must be at least 1').max(200, 'pageSize must be at most 200').default(20),
});

export const EndpointParams = SandboxIdParams.extend({
  port: z.coerce.number().int('port must be an integer').min(1, 'port must be 1-65535').max(65535, 'port must be 1-65535'),
});

export const EndpointQuery = z.object({
  use_server_proxy: z
    .enum(['true', 'false', '1', '0'], { message: 'use_server_proxy must be true or false' })
    .optional()
    .transform((v) => v === 'true' || v === '1'),
  expires: z.string().optional(),
});

export const EndpointSchema = z.object({
  endpoint: z.string(),
  headers: z.record(z.string(), z.string()).optional(),
});

export const PatchMetadataSchema = z.record(z.string(), z.string().nullable());

export const RenewScheduleRequestSchema = z
  .object({
    intervalSeconds: z.number().int().min(1).max(24 * 3600),
    extendBySeconds: z.number().int().min(1),
    until: z.iso.datetime({ offset: true, message: 'until must be an RFC 3339 date-time' }).optional(),
  })
  .strict();
export type RenewScheduleRequest = z.infer<typeof RenewScheduleRequestSchema>;

export const ListSandboxesQuery = z.object({
  /** Admin keys only: one tenant's sandboxes. */
  tenant: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'tenant must be a DNS label').optional(),
  state: z.union([z.string(), z.array(z.string())]).optional(),
  metadata: z.string().optional(),
  page: z.coerce.number().int().min(1, 'page must be at least 1').default(1),
  pageSize: z.coerce.number().int().min(1, 'pageSize must be at least 1').max(200, 'pageSize must be at most 200').default(20),
});

const invalid = (message: string) => new TideboxError('INVALID_PARAMETER', message);
const unsupported = (message: string) => new TideboxError('UNSUPPORTED', message);

/** Who a create request is for: its tenant (storage scoping) and how ossfs mounts are keyed. */
export interface CreateContext {
  tenant: string;
  /** The Ready snapshot a request with `snapshotId` restores (the API looked it up in the tenant). */
  snapshot?: { id: string; image: string };
  /** Names the shared mount an ossfs volume uses (keyed with the payload key); absent = ossfs refused. */
  mountKeyOf?: (source: OssfsSource) => string;
  /** Where the sandbox will run (default docker): decides which fields are offered. */
  runtime?: RuntimeKind;
  /** Workflow payloads are encrypted (security.payloadKey): credentials may travel in the input. */
  payloadsEncrypted?: boolean;
}

/**
 * Turn a schema-valid create request into the spec the sandbox actor runs. Without `mountKeyOf`
 * ossfs volumes are refused, because their credentials could not be kept out of workflow history.
 */
export function normalizeCreateRequest(req: CreateSandboxRequest, config: Config['sandbox'], ctx: CreateContext): SandboxSpec {
  if (req.snapshotId !== undefined && req.image) throw invalid('image and snapshotId are mutually exclusive');
  if (req.snapshotId === undefined && !req.image) throw invalid('image (image.uri) or snapshotId is required');
  if (req.snapshotId !== undefined && ctx.snapshot?.id !== req.snapshotId) throw new TideboxError('SNAPSHOT_NOT_FOUND', `snapshot ${req.snapshotId} not found`);
  const runtime = ctx.runtime ?? 'docker';
  let imageAuth: SandboxSpec['imageAuth'];
  if (req.image?.auth) {
    if (runtime !== 'kubernetes') throw unsupported('image.auth is supported only on the Kubernetes runtime (an image pull secret per sandbox)');
    if (!ctx.payloadsEncrypted) throw unsupported('image.auth needs security.payloadKey on this server (registry credentials are kept only encrypted)');
    const { username, password } = req.image.auth;
    if (!username || !password) throw invalid('image.auth needs both username and password');
    if (/[\x00-\x1f\x7f:]/.test(username)) throw invalid('image.auth.username must not contain ":" or control characters');
    imageAuth = { username, password };
  }
  if (req.image && !req.entrypoint) throw invalid('entrypoint is required when image is provided');
  // A restored sandbox runs the snapshot's image; without an entrypoint it just stays up.
  const entrypoint = req.entrypoint ?? ['tail', '-f', '/dev/null'];
  const image = req.image ? { uri: req.image.uri } : { uri: ctx.snapshot!.image };
  if (req.networkPolicy != null) throw unsupported('networkPolicy is not supported by this server; egress is not restricted');
  if (req.credentialProxy != null) throw unsupported('credentialProxy is not supported by this server');
  if (req.secureAccess) throw unsupported('secureAccess is supported only for Kubernetes gateway ingress');
  if (req.platform && req.platform.os !== 'linux') throw unsupported('only platform.os "linux" is supported');

  const limits: Record<string, string> = { cpu: config.defaultCpu, memory: config.defaultMemory, ...(req.resourceLimits ?? {}) };
  const offered = runtime === 'kubernetes' ? ['cpu', 'memory', 'gpu'] : ['cpu', 'memory'];
  const unknown = Object.keys(limits).filter((k) => !offered.includes(k));
  if (unknown.length) throw unsupported(`resourceLimits ${unknown.join(', ')} not supported on this runtime (${offered.join(', ')})`);
  let gpu: number | undefined;
  if (limits.gpu !== undefined) {
    if (!/^\d{1,3}$/.test(limits.gpu)) throw invalid(`resourceLimits.gpu "${limits.gpu}" must be a whole number of GPUs`);
    gpu = Number(limits.gpu) || undefined;
  }
  const cpuMillis = parseCpuMillis(limits.cpu ?? config.defaultCpu);
  if (cpuMillis === undefined) throw invalid(`resourceLimits.cpu "${limits.cpu}" is not a CPU quantity (e.g. "500m", "2")`);
  const memoryBytes = parseMemoryBytes(limits.memory ?? config.defaultMemory);
  if (memoryBytes === undefined) throw invalid(`resourceLimits.memory "${limits.memory}" is not a memory quantity (e.g. "512Mi", "1Gi")`);
  if (memoryBytes < 6 * 1024 * 1024) throw invalid('resourceLimits.memory must be at least 6Mi (Docker minimum)');

  const env = req.env ?? {};
  for (const key of Object.keys(env)) {
    if (!/^[^=\0]+$/.test(key)) throw invalid(`env key "${key}" must be non-empty and contain no "=" or NUL`);
    if (env[key]!.includes('\0')) throw invalid(`env ${key} must not contain NUL`);
  }

  const metadata = req.metadata ?? {};
  const problems = metadataProblems(metadata, { strictValues: false });
  if (problems.length) throw invalid(problems.join('; '));
  const extensions = req.extensions ?? {};
  const userId = userIdOf(extensions);
  if (userId === undefined) throw invalid(`extensions["${USER_ID_EXTENSION}"] must be 1-128 letters, digits, "_" or "-"`);

  return {
    image,
    ...(req.snapshotId ? { snapshotId: req.snapshotId } : {}),
    entrypoint,
    env,
    metadata,
    extensions,
    ...(req.platform ? { platform: req.platform } : {}),
    timeoutSeconds: req.timeout ?? null,
    ...(imageAuth ? { imageAuth } : {}),
    resources: { cpuMillis, memoryBytes, ...(gpu ? { gpu } : {}) },
    ...normalizeVolumes(req.volumes ?? [], config.allowedHostPaths, runtime === 'kubernetes' ? undefined : ctx.mountKeyOf, { layout: config.storageLayout, tenant: ctx.tenant, userId }, runtime),
    ports: parsePortList(extensions[PORTS_EXTENSION]),
  };
}

function parsePortList(value: string | undefined): number[] {
  if (value === undefined || value.trim() === '') return [];
  const ports = value.split(',').map((p) => p.trim());
  const bad = ports.filter((p) => !/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535);
  if (bad.length) throw invalid(`extensions["${PORTS_EXTENSION}"]: ${bad.map((b) => `"${b}"`).join(', ')} is not a port (1-65535)`);
  if (ports.length > 32) throw invalid(`extensions["${PORTS_EXTENSION}"]: at most 32 ports`);
  return [...new Set(ports.map(Number))].sort((a, b) => a - b);
}

/** The request's sizing of a claim to create, without the nulls the contract allows. */
function claimHints(pvc: { storage?: string | null; storageClass?: string | null; accessModes?: ClaimAccessMode[] | null }): Pick<PvcVolume, 'claim'> {
  const claim = {
    ...(pvc.storage ? { storage: pvc.storage } : {}),
    ...(pvc.storageClass ? { storageClass: pvc.storageClass } : {}),
    ...(pvc.accessModes ? { accessModes: pvc.accessModes } : {}),
  };
  return Object.keys(claim).length ? { claim } : {};
}

function hasDotDot(path: string): boolean {
  return path.split(/[\\/]/).includes('..');
}

function normalizeVolumes(
  volumes: NonNullable<CreateSandboxRequest['volumes']>,
  allowed: string[],
  mountKeyOf: ((source: OssfsSource) => string) | undefined,
  storage: { layout: StorageLayout; tenant: string; userId: string },
  runtime: RuntimeKind,
): { volumes: HostVolume[]; ossfs: OssfsVolume[]; pvcs: PvcVolume[] } {
  const names = new Set<string>();
  const mountPaths = new Set<string>();
  const host: HostVolume[] = [];
  const ossfs: OssfsVolume[] = [];
  const pvcs: PvcVolume[] = [];
  for (const v of volumes) {
    if (names.has(v.name)) throw invalid(`volume name "${v.name}" is used twice`);
    names.add(v.name);
    const backends = [v.host, v.pvc, v.ossfs].filter((b) => b !== undefined).length;
    if (backends !== 1) throw invalid(`volume "${v.name}" must specify exactly one backend (host, pvc or ossfs)`);
    if (hasDotDot(v.mountPath)) throw invalid(`volume "${v.name}": mountPath must not contain ".."`);
    const mountPath = normalizeAbsolute(v.mountPath);
    if (mountPaths.has(mountPath)) throw invalid(`volume "${v.name}": mountPath ${mountPath} is used twice`);
    mountPaths.add(mountPath);
    if (v.subPath !== undefined && (v.subPath.startsWith('/') || hasDotDot(v.subPath) || /[\x00-\x1f\x7f]/.test(v.subPath))) {
      throw invalid(`volume "${v.name}": subPath must be relative and must not contain ".." or control characters`);
    }

    if (v.pvc) {
      if (v.pvc.deleteOnSandboxTermination) {
        throw unsupported(`volume "${v.name}": deleteOnSandboxTermination is not supported (named volumes hold every user's data under ${storage.layout === 'scoped' ? '<tenant>/users/<user>' : 'one root'})`);
      }
      pvcs.push({
        name: v.name,
        claimName: v.pvc.claimName,
        mountPath,
        readOnly: v.readOnly,
        createIfNotExists: v.pvc.createIfNotExists,
        ...pvcVolumePaths(v.subPath, storage),
        ...(runtime === 'kubernetes' ? claimHints(v.pvc) : {}),
      });
      continue;
    }

    if (v.ossfs) {
      if (runtime === 'kubernetes') {
        throw unsupported(`volume "${v.name}": ossfs volumes are not supported on the Kubernetes runtime (use a pvc backed by a CSI driver for the bucket)`);
      }
      const o = v.ossfs;
      const endpointProblem = ossfsEndpointProblem(o.endpoint);
      if (endpointProblem) throw invalid(`volume "${v.name}": ${endpointProblem}`);
      const optionProblem = o.options.map((option) => ossfsOptionProblem(option, o.version)).find(Boolean);
      if (optionProblem) throw invalid(`volume "${v.name}": ${optionProblem}`);
      if (!mountKeyOf) {
        throw unsupported(`volume "${v.name}": ossfs volumes need security.payloadKey on this server (credentials are kept only encrypted)`);
      }
      const prefix = v.subPath ? posix.normalize(v.subPath).replace(/^\.\/?/, '').replace(/\/$/, '') : '';
      const source: OssfsSource = {
        bucket: o.bucket,
        endpoint: o.endpoint,
        version: o.version,
        prefix: prefix === '.' ? '' : prefix,
        options: o.options,
        accessKeyId: o.accessKeyId,
        accessKeySecret: o.accessKeySecret,
      };
      // The whole source once more, as the mount activity will see it (bucket, prefix, credentials).
      const sourceProblem = ossfsSourceProblems(source)[0];
      if (sourceProblem) throw invalid(`volume "${v.name}": ${sourceProblem}`);
      ossfs.push({ name: v.name, mountPath, readOnly: v.readOnly, key: mountKeyOf(source), source });
      continue;
    }

    const raw = v.host!.path;
    if (!raw.startsWith('/')) throw invalid(`volume "${v.name}": host.path must be absolute`);
    if (hasDotDot(raw)) throw invalid(`volume "${v.name}": host.path must not contain ".."`);
    if (!isUnderAllowedPrefix(normalizeAbsolute(raw), allowed)) {
      throw invalid(
        allowed.length
          ? `volume "${v.name}": host path ${normalizeAbsolute(raw)} is outside the allowed host paths`
          : `volume "${v.name}": host volumes are disabled (no allowedHostPaths configured)`,
      );
    }
    host.push({ name: v.name, ...hostVolumePath(v.name, raw, v.subPath, allowed, storage), mountPath, readOnly: v.readOnly });
  }
  return { volumes: host, ossfs, pvcs };
}

// ---- response shapes (serialisation and the OpenAPI document) ----

export const ErrorResponseSchema = z
  .object({ code: z.string().describe('Catalogued error code, e.g. SANDBOX::NOT_FOUND'), message: z.string() })
  .describe('Every error has this shape');

const SandboxStatusSchema = z.object({
  state: z.enum(['Pending', 'Running', 'Pausing', 'Paused', 'Resuming', 'Stopping', 'Terminated', 'Failed']),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastTransitionAt: z.string(),
});

export const SandboxResourceSchema = z.object({
  id: z.string(),
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
  steps: z.array(z.object({
    name: z.string(),
    state: z.string(),
    runs: z.number().describe('How often the step was started'),
    finishedAt: z.string().optional(),
    error: z.string().optional(),
  })),
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
