import { z } from 'zod';
import { bucketVolumesOffered, type Config, runtimeKind } from './config';
import { IMAGE_REFERENCE, MAX_IMAGE_REFERENCE_LENGTH } from './image-reference';
import { MIN_CPU_MILLIS } from './quantities';
import { CLAIM_ACCESS_MODES } from './sandbox';
import { USER_ID, USER_ID_EXTENSION } from './tenants';

/** Request shapes of the contract, as zod schemas (validation, types and the OpenAPI document). */

const StringMap = z.record(z.string(), z.string());

/** No NUL, no C0/DEL control characters: text that ends up in paths, argv or labels. */
const PRINTABLE = '[^\\x00-\\x1f\\x7f]';
/** An absolute path to bind at or from: Docker's bind syntax (`src:dst:mode`) leaves no room for ":". */
const BIND_PATH = `^/[^\\x00-\\x1f\\x7f:]*$`;
/** Relative, no ".." segment, printable. */
const SUB_PATH = `^(?!/)(?!(?:.*/)?\\.\\.(?:/|$))${PRINTABLE}*$`;
const PORT = '(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
/** Kubernetes-style quantities, the notation `resourceLimits` uses. */
const CPU_QUANTITY_PATTERN = '^[0-9]+(?:\\.[0-9]+)?m?$';
const MEMORY_QUANTITY_PATTERN = '^[0-9]+(?:\\.[0-9]+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$';
/** Metadata keys (Kubernetes label keys, reserved prefixes excluded) and values at create (free text). */
const METADATA_KEY_PATTERN =
  '^(?!(?:opensandbox|tidebox)\\.io/)(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const LABEL_VALUE_PATTERN = '^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$';
/** Environment variable names: anything but "=" and NUL (what execve takes). */
const ENV_NAME_PATTERN = '^[^=\\x00]{1,255}$';

/** Bounds on what one create may carry (it is copied into workflow history and memos). */
export const CREATE_LIMITS = {
  entrypointArgs: 256,
  entrypointBytes: 64 * 1024,
  envEntries: 256,
  envBytes: 64 * 1024,
  pathLength: 4096,
  extensions: 64,
  extensionBytes: 16 * 1024,
};

const encoder = new TextEncoder();
const utf8Length = (strings: string[]) => strings.reduce((n, s) => n + encoder.encode(s).length, 0);

const ImageSpec = (offer: SchemaOffer) =>
  z
    .object({
      uri: z
        .string()
        .min(1, 'image.uri must not be empty')
        .max(MAX_IMAGE_REFERENCE_LENGTH, `image.uri must be at most ${MAX_IMAGE_REFERENCE_LENGTH} characters`)
        .regex(IMAGE_REFERENCE, 'image.uri is not an image reference: [registry[:port]/]name[:tag][@digest], the name in lowercase')
        .describe('Docker/OCI image reference, e.g. "registry.example.com/team/app:1.2" or "busybox@sha256:…"'),
      auth: z
        .object({ username: z.string().max(256).optional(), password: z.string().max(4096).optional() })
        .strict()
        .optional()
        .meta(
          offer.runtime === 'kubernetes'
            ? {
                description: 'Registry credentials (an image pull secret per sandbox); needs security.payloadKey',
                required: ['username', 'password'],
              }
            : { not: {}, description: 'Kubernetes runtime only: refused with 400 SANDBOX::UNSUPPORTED on Docker' },
        ),
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
    endpoint: z.string().min(1).max(253).describe('host[:port], or an http(s) URL without credentials, path or query'),
    version: z.enum(['1.0', '2.0']).default('2.0'),
    options: z
      // The create normalisation says what is wrong with each option; the pattern only documents them.
      .array(z.string().max(256).meta({ pattern: '^[a-z_0-9]+(=[^,\\s]*)?$' }))
      .max(32)
      .default([])
      .describe('name[=value] options from a per-version allowlist (docs/api.md)'),
    accessKeyId: z.string().min(1, 'accessKeyId is required').max(256),
    accessKeySecret: z.string().min(1, 'accessKeySecret is required').max(512),
  })
  .strict();

const pathField = (what: string, pattern: string, message: string) =>
  z
    .string()
    .max(CREATE_LIMITS.pathLength, `${what} must be at most ${CREATE_LIMITS.pathLength} characters`)
    .regex(new RegExp(pattern), message);

const Volume = (offer: SchemaOffer) =>
  z
    .object({
      name: VolumeName,
      host: z
        .object({ path: pathField('host.path', BIND_PATH, 'host.path must be an absolute path without ":" or control characters') })
        .strict()
        .optional(),
      pvc: z
        .object({
          claimName: z
            .string()
            .max(253)
            .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'claimName must be a DNS label'),
          createIfNotExists: z.boolean().default(true),
          deleteOnSandboxTermination: z
            .boolean()
            .default(false)
            .meta({ const: false, description: 'true is refused (400 SANDBOX::UNSUPPORTED)' }),
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
      mountPath: pathField(
        'mountPath',
        `${BIND_PATH.slice(0, -2)}+$`,
        'mountPath must be an absolute path (not "/") without ":" or control characters',
      ),
      readOnly: z.boolean().default(false),
      subPath: pathField('subPath', SUB_PATH, 'subPath must be relative, without ".." segments or control characters').optional(),
    })
    .strict()
    .meta({
      description: 'Exactly one backend: ' + volumeBackends(offer).join(', '),
      oneOf: volumeBackends(offer).map((backend) => ({ required: [backend] })),
    });

/** The volume backends this server offers, as the document describes them. */
function volumeBackends(offer: SchemaOffer): string[] {
  return [...(offer.hostVolumes ? ['host'] : []), 'pvc', ...(offer.runtime !== 'kubernetes' && offer.ossfs ? ['ossfs'] : [])];
}

/** Extension key naming extra container ports to publish: "3000,5173". */
export const PORTS_EXTENSION = 'tidebox.io/ports';

/** What this server offers, which the published document describes (validation refuses the rest with a 400 either way). */
export interface SchemaOffer {
  runtime?: 'docker' | 'kubernetes';
  /** ossfs volumes are accepted (bucketVolumesOffered: a payload key, a runtime that mounts buckets). */
  ossfs?: boolean;
  /** sandbox.allowedHostPaths is not empty. */
  hostVolumes?: boolean;
}

/** What a Config offers, for the create schema's document. */
export const offerOf = (config: Config): SchemaOffer => ({
  runtime: runtimeKind(config),
  ossfs: bucketVolumesOffered(config),
  hostVolumes: config.sandbox.allowedHostPaths.length > 0,
});

const notOffered = (what: string) => ({
  type: 'null',
  description: `${what} is not supported: anything but null is refused (400 SANDBOX::UNSUPPORTED)`,
});

export function createSandboxRequestSchema(limits: Config['sandbox'], offer: SchemaOffer = {}) {
  return z
    .object({
      image: ImageSpec(offer).optional(),
      snapshotId: z.string().min(1).max(128).optional().describe('Start from this Ready snapshot instead of an image'),
      platform: z
        .object({ os: z.enum(['linux', 'windows']).meta({ enum: ['linux'] }), arch: z.enum(['amd64', 'arm64']) })
        .strict()
        .optional(),
      timeout: z
        .number()
        .int('timeout must be a whole number of seconds')
        .min(limits.minTimeoutSeconds, `timeout must be at least ${limits.minTimeoutSeconds} seconds`)
        .max(limits.maxTimeoutSeconds, `timeout must be at most ${limits.maxTimeoutSeconds} seconds`)
        .nullable()
        .optional()
        .describe('Seconds until expiry; null or absent: no expiry (manual cleanup)'),
      resourceLimits: z
        .object({
          cpu: z
            .string()
            .regex(new RegExp(CPU_QUANTITY_PATTERN), 'resourceLimits.cpu is not a CPU quantity (e.g. "500m", "2")')
            .optional()
            .describe(`At least ${MIN_CPU_MILLIS}m, at most ${limits.maxCpu}`),
          memory: z
            .string()
            .regex(new RegExp(MEMORY_QUANTITY_PATTERN), 'resourceLimits.memory is not a memory quantity (e.g. "512Mi", "1Gi")')
            .optional()
            .describe(`At least 6Mi, at most ${limits.maxMemory}`),
          gpu: z
            .string()
            .optional()
            .meta(
              offer.runtime === 'kubernetes'
                ? { pattern: '^[0-9]{1,3}$', description: 'Whole GPUs (nvidia.com/gpu)' }
                : { not: {}, description: 'Kubernetes runtime only' },
            ),
        })
        .catchall(z.string())
        .optional()
        .meta({ additionalProperties: false }),
      env: z
        .record(z.string(), z.string().regex(/^[^\x00]*$/, 'env values must not contain NUL'))
        .refine((m) => Object.keys(m).length <= CREATE_LIMITS.envEntries, `env may have at most ${CREATE_LIMITS.envEntries} variables`)
        .refine(
          (m) => utf8Length(Object.entries(m).flat()) <= CREATE_LIMITS.envBytes,
          `env may hold at most ${CREATE_LIMITS.envBytes} bytes`,
        )
        .optional()
        .meta({ propertyNames: { pattern: ENV_NAME_PATTERN }, maxProperties: CREATE_LIMITS.envEntries }),
      metadata: StringMap.optional().meta({
        propertyNames: { pattern: METADATA_KEY_PATTERN },
        additionalProperties: { type: 'string', pattern: `^${PRINTABLE}{0,256}$` },
        description: 'Label-style keys; free-text values of at most 256 characters; at most 1800 bytes in all',
      }),
      entrypoint: z
        .array(z.string().regex(/^[^\x00]*$/, 'entrypoint arguments must not contain NUL'))
        .min(1, 'entrypoint must name at least the executable')
        .max(CREATE_LIMITS.entrypointArgs, `entrypoint may have at most ${CREATE_LIMITS.entrypointArgs} arguments`)
        .refine((a) => a[0] !== '', 'entrypoint[0] (the executable) must not be empty')
        .refine((a) => utf8Length(a) <= CREATE_LIMITS.entrypointBytes, `entrypoint may hold at most ${CREATE_LIMITS.entrypointBytes} bytes`)
        .optional()
        .meta({ prefixItems: [{ type: 'string', minLength: 1 }] }),
      networkPolicy: z.unknown().optional().meta(notOffered('networkPolicy')),
      credentialProxy: z.unknown().optional().meta(notOffered('credentialProxy')),
      secureAccess: z.boolean().optional().meta({ const: false, description: 'true is refused (400 SANDBOX::UNSUPPORTED)' }),
      volumes: z.array(Volume(offer)).max(32).optional(),
      extensions: z
        .object({
          // Enforced by the create normalisation, which names each entry that is not a port.
          [PORTS_EXTENSION]: z
            .string()
            .optional()
            .meta({
              pattern: `^\\s*(?:${PORT}\\s*(?:,\\s*${PORT}\\s*){0,31})?$`,
              description: 'Up to 32 extra container ports to publish, comma-separated: "3000,5173"',
            }),
          [USER_ID_EXTENSION]: z
            .string()
            .regex(USER_ID, `extensions["${USER_ID_EXTENSION}"] must be 1-128 letters, digits, "_" or "-"`)
            .optional()
            .describe('The user whose storage volumes resolve to'),
        })
        .catchall(z.string().max(4096, 'extension values must be at most 4096 characters'))
        .refine((m) => Object.keys(m).length <= CREATE_LIMITS.extensions, `extensions may have at most ${CREATE_LIMITS.extensions} keys`)
        .refine((m) => Object.keys(m).every((k) => k.length <= 253), 'extension keys must be at most 253 characters')
        .refine(
          (m) => utf8Length(Object.entries(m).flat()) <= CREATE_LIMITS.extensionBytes,
          `extensions may hold at most ${CREATE_LIMITS.extensionBytes} bytes`,
        )
        .optional()
        .meta({ maxProperties: CREATE_LIMITS.extensions, propertyNames: { maxLength: 253 } }),
    })
    .meta({
      oneOf: [{ required: ['image'] }, { required: ['snapshotId'] }],
      dependentRequired: { image: ['entrypoint'] },
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

export const PatchMetadataSchema = z.record(z.string(), z.string().nullable()).meta({
  propertyNames: { pattern: METADATA_KEY_PATTERN },
  additionalProperties: { anyOf: [{ type: 'string', pattern: LABEL_VALUE_PATTERN }, { type: 'null' }] },
  description: 'JSON merge patch: a string sets a key (label rules), null deletes it',
});

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
  metadata: z
    .string()
    .max(4096)
    .optional()
    .describe('Metadata to match, all of them: URL-encoded "k=v&k2=v2" (keys by the label rules, values printable, at most 32 pairs)'),
  page: z.coerce.number().int().min(1, 'page must be at least 1').default(1),
  pageSize: z.coerce.number().int().min(1, 'pageSize must be at least 1').max(200, 'pageSize must be at most 200').default(20),
});

/**
 * A client telemetry event (`POST /v1/metrics/events`), as the OpenSandbox SDKs send one after each
 * create: counted by name, never stored. Other fields the SDKs may add are accepted and ignored.
 */
export const ClientEventSchema = z
  .object({
    eventType: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9._-]{0,63}$/, 'eventType must be 1-64 letters, digits, ".", "_" or "-", starting with a letter'),
    success: z.boolean().optional(),
    createDurationMs: z.number().min(0).optional(),
    sandboxId: z.string().max(128).optional(),
    image: z.string().max(512).optional(),
  })
  .loose();
