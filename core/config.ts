import { z } from 'zod';
import { DockerSchema, HostId } from './docker-config';
import { ExecdSchema } from './execd-config';
import { ingressProblems, IngressSchema } from './ingress';
import { controlPlanePorts, NetworkSchema } from './network';
import { sandboxSizingProblem } from './quantities';
import { QuotaSchema } from './quota-config';
import { CLAIM_ACCESS_MODES } from './sandbox';
import { Placement, PlacementSchema, placementProblem } from './placement';
import { nestedPrefixes } from './storage';
import { ServerSchema } from './server-config';
import { TemporalSchema, temporalConfigProblem } from './temporal-config';

/**
 * One schema for every setting. Sources, lowest precedence first: defaults, the TOML file named by
 * TIDEBOX_CONFIG, then environment variables. A bad value stops start-up with a message naming the key.
 */
const DnsLabel = HostId;

/** Test-only crash points (`faults.hangAt`), one per saga step an activity can be killed in (`npm run chaos` drives each). */
export const FAULT_POINTS = [
  'container-created',
  'container-removing',
  'container-pausing',
  'container-resuming',
  'member-adopting',
  'bucket-mounted',
  'bucket-unmounting',
  'snapshot-committing',
] as const;

export const ConfigSchema = z
  .object({
    dataDir: z.string().min(1).default('.tidebox'),
    /** Distinguishes installs sharing one Docker engine; every container carries it as a label. */
    instance: HostId.default('tidebox'),
    server: ServerSchema,
    temporal: TemporalSchema,
    sandbox: z
      .object({
        minTimeoutSeconds: z.number().int().min(1).default(60),
        maxTimeoutSeconds: z
          .number()
          .int()
          .min(1)
          .default(7 * 24 * 3600),
        defaultCpu: z.string().default('1'),
        defaultMemory: z.string().default('512Mi'),
        /** The most one sandbox may ask for (Kubernetes quantities). Set them to what your smallest host can give one sandbox. */
        maxCpu: z.string().default('16'),
        maxMemory: z.string().default('64Gi'),
        /** Host path prefixes a `host` volume may bind; empty = host volumes are refused. */
        allowedHostPaths: z.array(z.string().startsWith('/', 'must be absolute')).default([]),
        /**
         * "scoped": `host` and `pvc` volumes resolve under `<tenant>/users/<userId>/` of their root
         * (allowed host path or named volume), so tenants and users never share a directory.
         * "legacy": paths as requested, shared by everyone (installs from before tenancy; see docs/tenancy.md).
         */
        storageLayout: z.enum(['scoped', 'legacy']).default('scoped'),
      })
      .strict()
      .prefault({}),
    docker: DockerSchema,
    /** Which Docker hosts new sandboxes go to (core/placement.ts); default: this API's own. */
    placement: PlacementSchema,
    /** The execd API Tidebox serves for each sandbox (docs/execd.md). */
    execd: ExecdSchema,
    /**
     * The sandbox read projection LIST reads (platform/sandbox-views.ts, docs/architecture.md "The
     * read projection"). Off without a URL: LIST reads Temporal visibility.
     */
    views: z
      .object({
        /** PostgreSQL URL, `postgres://user:password@host:port/database`. A secret (the password): never logged. */
        postgresUrl: z
          .string()
          .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
          .optional(),
        /** Connections each process keeps to it. */
        poolSize: z.number().int().min(1).max(100).default(10),
        /** How often one worker compares the table with the open sandbox actors (and fills it on first use). */
        reconcileIntervalSeconds: z.number().int().min(5).max(86_400).default(300),
        /**
         * A row written this recently is not repaired (a workflow task may still be completing behind
         * its write); keep it above Temporal's workflow task timeout (10 s).
         */
        reconcileGraceSeconds: z.number().int().min(1).max(3600).default(60),
      })
      .strict()
      .prefault({}),
    /**
     * Where sandboxes run: containers on a Docker engine, or pods on a Kubernetes cluster. `noop`
     * is for scale measurement only (`npm run bench -- scale`): the whole actor path with no
     * workload behind it (activities/noop/host.ts); otherwise it behaves as `docker` (its host id,
     * its API answers), and the worker warns at start.
     */
    runtime: z
      .object({ type: z.enum(['docker', 'kubernetes', 'noop']).default('docker') })
      .strict()
      .prefault({}),
    kubernetes: z
      .object({
        /** kubeconfig path; unset: in-cluster config (service account) when running in a pod, else ~/.kube/config. */
        kubeconfig: z.string().min(1).optional(),
        /** Namespace of the single-tenant install (no [tenants]): the default tenant's pods go here. */
        namespace: DnsLabel.default('default'),
        /** Host id of the cluster: its activities run on task queue `<taskQueue>-host-<hostId>`. */
        hostId: HostId.default('kubernetes'),
        provider: z.enum(['pod']).default('pod'),
        /** YAML deep-merged under the generated pod (tolerations, runtimeClassName, nodeSelector, ...). */
        podTemplateFile: z.string().min(1).optional(),
        imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
        /** Pods with image.auth: "Always" (default) checks the caller's credentials on every start, so a node's cached private image never runs for a tenant without them. */
        authImagePullPolicy: z.enum(['Always', 'IfNotPresent']).default('Always'),
        /** Give each tenant namespace a default-deny NetworkPolicy for sandbox pods before its first pod (docs/security.md). */
        networkPolicy: z.boolean().default(true),
        /** Where the Tidebox API's pods run: the only peer the NetworkPolicy lets connect to sandboxes. */
        apiNamespace: DnsLabel.default('tidebox-system'),
        /** How long a pod may take from create to Running before the sandbox fails with the pod's last reason (inside the 15-minute provisioning activity). */
        readyTimeoutSeconds: z.number().int().min(1).max(600).default(120),
        /**
         * runAsNonRoot on pod and container: with it sandbox pods meet the Pod Security "restricted" profile.
         * Images that run as root then fail to start; set false (documented opt-out) to run them.
         */
        runAsNonRoot: z.boolean().default(true),
        /** Size and class of a claim made for a pvc volume with createIfNotExists. */
        pvcStorageSize: z
          .string()
          .regex(/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$/, 'must be a quantity such as 1Gi')
          .default('1Gi'),
        pvcStorageClass: z.string().min(1).optional(),
        pvcAccessModes: z.array(z.enum(CLAIM_ACCESS_MODES)).min(1).default(['ReadWriteOnce']),
        /** Each sandbox pod's ephemeral-storage (writable layer, logs, emptyDirs) request = limit: the kubelet evicts a pod that writes more. */
        ephemeralStorage: z
          .string()
          .regex(/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$/, 'must be a quantity such as 10Gi')
          .default('10Gi'),
        /** How often each worker compares the cluster's sandbox pods with the open sandboxes (missing pods, orphans). */
        sweepIntervalSeconds: z.number().min(1).max(3600).default(60),
        /** A pod whose sandbox has ended or failed is deleted once it is this old (visibility may lag a new sandbox). */
        orphanGraceSeconds: z.number().min(1).max(86_400).default(120),
      })
      .strict()
      .prefault({}),
    ingress: IngressSchema,
    network: NetworkSchema,
    /** Every tenant's limits unless its own entry says otherwise (core/quotas.ts); empty = unlimited. */
    quotas: QuotaSchema.default({}),
    /**
     * Multi-tenancy: API keys belong to tenants, resolved by a provider. Absent: one tenant
     * ("default") and at most one `server.apiKey`.
     */
    tenants: z
      .object({
        provider: z.enum(['file', 'http']),
        /** file provider: TOML with `[[tenants]]` tables (name, namespace, apiKeys); reloaded on change. */
        file: z.string().min(1).optional(),
        /** file provider: how often the file is re-read when no change event arrives. */
        pollSeconds: z.number().min(0.2).max(60).default(1),
        /** http provider: GET with the caller's key in OPEN-SANDBOX-API-KEY → 200 {name, namespace, ttlSeconds} | 401. */
        endpoint: z.string().url().optional(),
        ttlSeconds: z.number().int().min(0).max(86_400).default(60),
        /** The longest a provider's own ttlSeconds may keep an answer fresh (a revoked key stops working within it). */
        maxTtlSeconds: z.number().int().min(0).max(86_400).default(300),
        /** How long a key the provider refused (401) is refused again without asking it. */
        rejectedTtlSeconds: z.number().int().min(0).max(3600).default(30),
        /** How long past its TTL a cached answer is still served while the provider is unreachable. */
        maxStaleSeconds: z.number().int().min(0).max(86_400).default(300),
        timeoutSeconds: z.number().min(0.1).max(60).default(5),
        /** Extra header (e.g. Authorization) and value the provider wants from Tidebox itself. */
        authHeader: z
          .string()
          .regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name')
          .optional(),
        authToken: z.string().min(1).optional(),
        /** Keys that see and act on every tenant's resources (they do not create sandboxes). */
        adminKeys: z.array(z.string().min(16, 'must be at least 16 characters')).default([]),
      })
      .strict()
      .optional(),
    ossfs: z
      .object({
        /** Absolute directory under which shared bucket mounts live: `<mountRoot>/<mount key>`. Default `<dataDir>/mounts`. */
        mountRoot: z.string().startsWith('/', 'must be absolute').optional(),
        /** ossfs 1.0 binary (an s3fs fork with the same command line; tests use s3fs itself). */
        v1Binary: z.string().min(1).default('ossfs'),
        v2Binary: z.string().min(1).default('ossfs2'),
        fusermountBinary: z.string().min(1).default('fusermount'),
        umountBinary: z.string().min(1).default('umount'),
        /**
         * How long the mount command may run, and then how long the mount may take to appear in
         * /proc/mounts. Both together stay inside the mount activity's 3-minute start-to-close
         * timeout (workflows/mount.ts), hence the cap.
         */
        mountTimeoutSeconds: z.number().int().min(1).max(80).default(60),
      })
      .strict()
      .prefault({}),
    security: z
      .object({
        /**
         * Base64 of 32 random bytes. Encrypts every workflow payload (inputs, results, activity
         * arguments) with AES-256-GCM in the API and worker, so credentials never sit in workflow
         * history in clear text. Required for ossfs volumes. Keep it the same on every process.
         */
        payloadKey: z
          .string()
          .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be base64 of exactly 32 bytes (openssl rand -base64 32)')
          .optional(),
        /** Migration only: until this moment, plaintext payloads (from before the key was set) are still read. */
        acceptPlaintextUntil: z.iso.datetime({ offset: true }).optional(),
      })
      .strict()
      .prefault({}),
    /** Warm pools (docs/pools.md). */
    pools: z
      .object({
        /** The most members one pool may hold (capacitySpec.poolMax is refused above it): members use the host's memory while frozen. */
        maxMembers: z.number().int().min(0).max(1000).default(20),
        /** Pools one tenant may have at once unless its quota says otherwise (`maxPools`): each is an actor and poolMax frozen containers. */
        maxPerTenant: z.number().int().min(0).max(1000).default(10),
        /** A claimed member whose sandbox actor has not taken it over after this long is checked, and destroyed if it has none. */
        claimTimeoutSeconds: z.number().int().min(10).default(120),
        /**
         * A create that names no pool claims from one of its tenant's pools on this host whose members
         * run exactly what it asks for (image, entrypoint, resources, env, volumes, ports; its own
         * timeout and metadata apply), as if it had named it.
         */
        transparentClaims: z.boolean().default(false),
        /** A deleted pool ends after this even if members could not be removed (their host gone); the host's sweep removes them when it is back. */
        drainTimeoutSeconds: z.number().int().min(10).max(86_400).default(600),
        /**
         * After a claim, a pool that still has a ready member makes the replacement this much later
         * (claims meanwhile are replaced together), so a claimed sandbox's first moments — its first
         * commands — do not share the host with a container being made. An empty pool refills at once; 0: always at once.
         */
        refillDelayMs: z.number().int().min(0).max(60_000).default(1000),
      })
      .strict()
      .prefault({}),
    /** What the API and the worker log, and how (docs/operations.md). */
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
        /** auto: one readable line per record on a terminal, JSON lines otherwise (files, collectors). */
        format: z.enum(['auto', 'pretty', 'json']).default('auto'),
      })
      .strict()
      .prefault({}),
    worker: z
      .object({
        /** Port of the worker's Prometheus endpoint (Temporal SDK metrics); unset = off. */
        metricsPort: z.number().int().min(1).max(65535).optional(),
        metricsHost: z.string().min(1).default('127.0.0.1'),
        /**
         * Most workflow runs the worker keeps in memory (the SDK's sticky cache, ≈ 125 KB of heap and
         * ≈ 320 KB of RSS per sandbox actor). An idle actor needs no place there: an evicted one is
         * replayed from its (short, continued-as-new) history when it next has work, so memory stays
         * bounded however many sandboxes live (docs/benchmarks.md, scale). 0 = no cache (every task
         * replays); unset: 2,000, or fewer where the heap is small (worker/main.ts).
         */
        maxCachedWorkflows: z.number().int().min(0).max(100_000).optional(),
      })
      .strict()
      .prefault({}),
    /**
     * Test-only fault points: an activity that reaches a named point records it under
     * `<dataDir>/faults/` and hangs there, so a crash test can SIGKILL the worker at that moment.
     */
    faults: z
      .object({
        hangAt: z.array(z.enum(FAULT_POINTS)).default([]),
        /** Points where an activity fails at once (non-retryable), to drive failure-and-retry paths. */
        failAt: z.array(z.enum(['snapshot-commit'])).default([]),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;

/** What the API and the create rules treat the runtime as: `noop` stands in for Docker (see runtime.type). */
export const runtimeKind = (config: Pick<Config, 'runtime'>): 'docker' | 'kubernetes' =>
  config.runtime.type === 'kubernetes' ? 'kubernetes' : 'docker';

/**
 * Whether creates may ask for bucket (ossfs) volumes: their mount ids are keyed with a key derived
 * from the payload key (none, no ossfs volumes), and they need a host that mounts them (not noop's).
 */
export const bucketVolumesOffered = (config: Pick<Config, 'runtime' | 'security'>): boolean =>
  config.security.payloadKey !== undefined && config.runtime.type !== 'noop';

/** The host new sandboxes go to: the engine's id, the cluster's, or (noop) one no real worker's queue has. */
export const runtimeHostId = (config: Pick<Config, 'runtime' | 'docker' | 'kubernetes'>): string =>
  config.runtime.type === 'kubernetes'
    ? config.kubernetes.hostId
    : `${config.runtime.type === 'noop' ? 'noop-' : ''}${config.docker.hostId}`;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** Placement over `placement.hosts` (or this API's own host), with host ids as the workers name their queues. */
export const placementOf = (config: Pick<Config, 'runtime' | 'docker' | 'kubernetes' | 'placement'>): Placement =>
  new Placement(config.placement, runtimeHostId(config), config.runtime.type === 'noop' ? 'noop-' : '');

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Validate a raw config object (file contents merged with env), naming the offending key on error. */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid ${source}: ${problems.join('; ')}`);
  }
  const config = result.data;
  if (config.sandbox.minTimeoutSeconds > config.sandbox.maxTimeoutSeconds) {
    throw new ConfigError(`invalid ${source}: sandbox.minTimeoutSeconds exceeds sandbox.maxTimeoutSeconds`);
  }
  const temporal = temporalConfigProblem(config.temporal);
  if (temporal) throw new ConfigError(`invalid ${source}: ${temporal}`);
  const placement = placementProblem(config.placement, config.runtime.type);
  if (placement) throw new ConfigError(`invalid ${source}: ${placement}`);
  if (config.execd.enabled && !config.execd.tokenSecret && config.placement.hosts.some((h) => h.id !== config.docker.hostId)) {
    throw new ConfigError(
      `invalid ${source}: execd.tokenSecret: required when placement.hosts lists other hosts (their workers check this API's execd tokens; give every API and worker the same secret)`,
    );
  }
  const sizing = sandboxSizingProblem(config.sandbox);
  if (sizing) throw new ConfigError(`invalid ${source}: ${sizing}`);
  if (['0.0.0.0', '::'].includes(config.docker.publishHost) && !config.docker.endpointHost) {
    throw new ConfigError(
      `invalid ${source}: docker.endpointHost: required when docker.publishHost is a wildcard address (clients need a host name)`,
    );
  }
  if (config.sandbox.storageLayout === 'scoped') {
    const nested = nestedPrefixes(config.sandbox.allowedHostPaths);
    if (nested.length) {
      throw new ConfigError(
        `invalid ${source}: sandbox.allowedHostPaths: ${nested[0]![1]} lies inside ${nested[0]![0]}; with storageLayout "scoped" each allowed path is a storage root and they must not nest`,
      );
    }
  }
  const tenants = config.tenants;
  if (tenants && config.docker.network === 'host') {
    throw new ConfigError(
      `invalid ${source}: docker.network "host" is refused with [tenants]: every sandbox would reach the host's services`,
    );
  }
  // The noop runtime has no workload to run commands in: no execd, in the API or the worker.
  if (config.runtime.type === 'noop') config.execd.enabled = false;
  const hostPortClash =
    config.docker.network === 'host' ? controlPlanePorts(config).filter((p) => config.docker.exposedPorts.includes(p)) : [];
  if (hostPortClash.length) {
    throw new ConfigError(
      `invalid ${source}: docker.exposedPorts ${hostPortClash.join(', ')} on host networking would hand the control plane's port to every sandbox`,
    );
  }
  if (tenants) {
    if (config.server.apiKey) {
      throw new ConfigError(
        `invalid ${source}: server.apiKey and [tenants] are mutually exclusive (give the key to a tenant in the tenants file)`,
      );
    }
    if (tenants.provider === 'file' && !tenants.file)
      throw new ConfigError(`invalid ${source}: tenants.file: required with provider = "file"`);
    if (tenants.provider === 'http' && !tenants.endpoint)
      throw new ConfigError(`invalid ${source}: tenants.endpoint: required with provider = "http"`);
    if ((tenants.authHeader === undefined) !== (tenants.authToken === undefined)) {
      throw new ConfigError(`invalid ${source}: tenants.authHeader and tenants.authToken go together`);
    }
    if (new Set(tenants.adminKeys).size !== tenants.adminKeys.length)
      throw new ConfigError(`invalid ${source}: tenants.adminKeys: a key is listed twice`);
  }
  const ingress = ingressProblems(config.ingress, runtimeKind(config));
  if (ingress.length) throw new ConfigError(`invalid ${source}: ${ingress.join('; ')}`);
  return config;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * Where the API may listen. Without an API key anyone who can reach the port owns every sandbox,
 * so an unauthenticated server only ever binds loopback, whatever host was asked for.
 */
export function listenAddress(server: Config['server'], tenants?: Config['tenants']): { host: string; warning?: string } {
  if (server.apiKey || tenants) return { host: server.host };
  if (!LOOPBACK_HOSTS.has(server.host)) {
    return {
      host: '127.0.0.1',
      warning: `no API key configured: binding 127.0.0.1 instead of ${server.host}; set TIDEBOX_API_KEY to serve other hosts`,
    };
  }
  return { host: server.host, warning: 'no API key configured: the API is open to every local user; set TIDEBOX_API_KEY' };
}
