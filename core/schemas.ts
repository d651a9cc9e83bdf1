import { z } from 'zod';
import type { Config } from './config';
import { CLAIM_ACCESS_MODES } from './sandbox';

/** Request shapes of the contract, as zod schemas (validation, types and the OpenAPI document). */

const StringMap = z.record(z.string(), z.string());

const ImageSpec = z
  .object({
    uri: z.string().trim().min(1, 'image.uri must not be empty').max(512),
    auth: z.object({ username: z.string().optional(), password: z.string().optional() }).strict().optional(),
  })
  .strict();

const VolumeName = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label (lowercase letters, digits, hyphens)');

const Ossfs = z
  .object({
    bucket: z
      .string()
      .min(3, 'bucket must be 3-63 characters')
      .max(63, 'bucket must be 3-63 characters')
      .regex(/^[a-z0-9][a-z0-9-]*[a-z0-9]$/, 'bucket must be lowercase letters, digits and hyphens'),
    endpoint: z.string().min(1).max(253),
    version: z.enum(['1.0', '2.0']).default('2.0'),
    options: z.array(z.string().max(256)).max(32).default([]),
    accessKeyId: z.string().min(1, 'accessKeyId is required').max(256),
    accessKeySecret: z.string().min(1, 'accessKeySecret is required').max(512),
  })
  .strict();

const Volume = z
  .object({
    name: VolumeName,
    host: z
      .object({ path: z.string().min(1) })
      .strict()
      .optional(),
    pvc: z
      .object({
        claimName: z
          .string()
          .max(253)
          .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'claimName must be a DNS label'),
        createIfNotExists: z.boolean().default(true),
        deleteOnSandboxTermination: z.boolean().default(false),
        // Kubernetes provisioning hints for a claim Tidebox creates: ignored by the Docker runtime (as the contract says).
        storageClass: z
          .string()
          .max(253)
          .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'storageClass must be a DNS subdomain')
          .nullable()
          .optional(),
        storage: z
          .string()
          .regex(/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei)?$/, 'storage must be a quantity such as 10Gi')
          .nullable()
          .optional(),
        accessModes: z.array(z.enum(CLAIM_ACCESS_MODES)).min(1).nullable().optional(),
      })
      .strict()
      .optional(),
    ossfs: Ossfs.optional(),
    mountPath: z.string().regex(/^\//, 'must be an absolute path'),
    readOnly: z.boolean().default(false),
    subPath: z.string().optional(),
  })
  .strict();

/** Extension key naming extra container ports to publish: "3000,5173". */
export const PORTS_EXTENSION = 'tidebox.io/ports';

export function createSandboxRequestSchema(limits: Config['sandbox']) {
  return z.object({
    image: ImageSpec.optional(),
    snapshotId: z.string().min(1).max(128).optional(),
    platform: z
      .object({ os: z.enum(['linux', 'windows']), arch: z.enum(['amd64', 'arm64']) })
      .strict()
      .optional(),
    timeout: z
      .number()
      .int('timeout must be a whole number of seconds')
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

export const RenewRequestSchema = z
  .object({
    expiresAt: z.iso.datetime({ offset: true, message: 'expiresAt must be an RFC 3339 date-time' }),
  })
  .strict();

export const SandboxIdParams = z.object({ sandboxId: z.string().min(1).max(128) });
export const SnapshotIdParams = z.object({ snapshotId: z.string().min(1).max(128) });

export const CreateSnapshotRequestSchema = z
  .object({
    name: z
      .string()
      .min(1, 'name must not be empty')
      .max(253, 'name must be at most 253 characters')
      .regex(/^[^\x00-\x1f\x7f]*$/, 'name must not contain control characters')
      .optional(),
  })
  .strict()
  .nullish();

export const ListSnapshotsQuery = z.object({
  sandboxId: z.string().min(1).max(128).optional(),
  state: z.union([z.string(), z.array(z.string())]).optional(),
  /** Admin keys only: one tenant's snapshots. */
  tenant: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'tenant must be a DNS label')
    .optional(),
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

export const PatchMetadataSchema = z.record(z.string(), z.string().nullable());

export const RenewScheduleRequestSchema = z
  .object({
    intervalSeconds: z
      .number()
      .int()
      .min(1)
      .max(24 * 3600),
    extendBySeconds: z.number().int().min(1),
    until: z.iso.datetime({ offset: true, message: 'until must be an RFC 3339 date-time' }).optional(),
  })
  .strict();
export type RenewScheduleRequest = z.infer<typeof RenewScheduleRequestSchema>;

export const ListSandboxesQuery = z.object({
  /** Admin keys only: one tenant's sandboxes. */
  tenant: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'tenant must be a DNS label')
    .optional(),
  state: z.union([z.string(), z.array(z.string())]).optional(),
  metadata: z.string().optional(),
  page: z.coerce.number().int().min(1, 'page must be at least 1').default(1),
  pageSize: z.coerce.number().int().min(1, 'pageSize must be at least 1').max(200, 'pageSize must be at most 200').default(20),
});
