/** Sandbox domain types shared by the API, the workflow and the activities. Plain JSON only. */
import { EXECD_EXTENSION } from './execd';
import type { ExpiryPolicy } from './expiry';
import type { OssfsVolume } from './mounts';

export const SANDBOX_STATES = ['Pending', 'Running', 'Pausing', 'Paused', 'Resuming', 'Stopping', 'Terminated', 'Failed'] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];

export type TerminationReason = 'deleted' | 'expired';
/** Who caused a transition, as recorded in the sandbox's history. */
export type EventActor = 'api' | 'expiry' | 'runtime' | 'failure' | 'schedule';

export interface HostVolume {
  name: string;
  /** Absolute host path after applying the storage layout and subPath; checked against allowedHostPaths. */
  hostPath: string;
  /**
   * Scoped layout: `<host.path>/<tenant>/users/<userId>`, the directory hostPath must stay within
   * after resolving symlinks; missing directories below it are created. Absent: legacy layout (the
   * path must exist) or a sandbox created before tenancy.
   */
  scope?: string;
  mountPath: string;
  readOnly: boolean;
}

/** A Docker named volume (contract `pvc`), bound at a path inside it. */
export interface PvcVolume {
  name: string;
  claimName: string;
  /** Path inside the volume, relative: `<tenant>/users/<userId>/<subPath>` (scoped) or `<subPath>`. */
  subPath: string;
  /** Relative directory subPath must stay within after resolving symlinks ("" = the whole volume). */
  scope: string;
  mountPath: string;
  readOnly: boolean;
  createIfNotExists: boolean;
  /** Kubernetes: what a claim made for this volume asks for (else the `kubernetes.pvc*` defaults). */
  claim?: { storage?: string; storageClass?: string; accessModes?: ClaimAccessMode[] };
}

export const CLAIM_ACCESS_MODES = ['ReadWriteOnce', 'ReadWriteMany', 'ReadWriteOncePod', 'ReadOnlyMany'] as const;
export type ClaimAccessMode = (typeof CLAIM_ACCESS_MODES)[number];

/**
 * The create request after validation and normalisation. It travels as the workflow input, which the
 * payload codec encrypts; `ossfs[].source` holds credentials and must never reach memo or logs.
 */
export interface SandboxSpec {
  image: { uri: string };
  /** Set when restoring: the snapshot whose image this sandbox runs. */
  snapshotId?: string;
  entrypoint: string[];
  env: Record<string, string>;
  metadata: Record<string, string>;
  extensions: Record<string, string>;
  platform?: { os: 'linux' | 'windows'; arch: 'amd64' | 'arm64' };
  /** Seconds until expiry; null = manual cleanup. */
  timeoutSeconds: number | null;
  /** Registry credentials for the image (Kubernetes: an image pull secret). Never copied into the view. */
  imageAuth?: { username: string; password: string };
  /** gpu: whole GPUs (Kubernetes `nvidia.com/gpu`). */
  resources: { cpuMillis: number; memoryBytes: number; gpu?: number };
  volumes: HostVolume[];
  /** Shared bucket mounts, acquired before the container is created. */
  ossfs: OssfsVolume[];
  /** Named volumes (absent on sandboxes created before they were supported). */
  pvcs?: PvcVolume[];
  /** Container ports the request asked to publish beyond the configured ones. */
  ports: number[];
}

export interface SandboxStatus {
  state: SandboxState;
  reason?: string;
  message?: string;
  lastTransitionAt: string;
}

export interface SandboxEvent {
  at: string;
  /** The state after the event (a renewal keeps the state it found). */
  state: SandboxState;
  actor: EventActor;
  reason?: string;
  message?: string;
  /** Renewals folded into this entry (consecutive renewals by one actor share an entry). */
  renewals?: number;
}

/** Why a workload is not running yet, as its runtime says (e.g. Kubernetes' `Unschedulable`). */
export interface RuntimeProgress {
  reason: string;
  message: string;
}

/** How the sandbox's ports are reached on its host, recorded by the host's worker when it starts. */
export interface SandboxNetwork {
  /** Host networking: container port N is host port N. */
  hostNetwork: boolean;
  /** Declared container port → host port (published port on bridge, the same port on host networking). */
  ports: Record<string, number>;
  /** Host name or address the ports are reached at, as that host's worker advertises it. */
  host?: string;
}

/** The public view of a sandbox: what the actor writes to its memo after every transition. */
export interface SandboxView {
  id: string;
  tenant: string;
  namespace?: string;
  /** Restored from this snapshot (its image is `image.uri`). */
  snapshotId?: string;
  workflowId: string;
  hostId: string;
  image: { uri: string };
  platform?: SandboxSpec['platform'];
  entrypoint: string[];
  metadata: Record<string, string>;
  status: SandboxStatus;
  createdAt: string;
  /** null = manual cleanup. */
  expiresAt: string | null;
  terminationReason?: TerminationReason;
  containerId?: string;
  network?: SandboxNetwork;
  /** "image": the image serves its own execd on 44772 (extensions["tidebox.io/execd"]); absent: Tidebox serves it. */
  execd?: 'image';
}

/**
 * The most entrypoint (characters of its JSON) a memo carries. The memo is rewritten on every
 * transition and metadata patch, so it stays small whatever a create carried: a longer entrypoint
 * is left out of the memo's view (`entrypointElided`) and readers ask the actor for it.
 */
export const MEMO_ENTRYPOINT_CHARS = 4096;

/** A view as the memo holds it. */
export type MemoView = SandboxView & { entrypointElided?: true };

export function memoView(view: SandboxView): MemoView {
  if (JSON.stringify(view.entrypoint).length <= MEMO_ENTRYPOINT_CHARS) return view;
  return { ...view, entrypoint: [], entrypointElided: true };
}

/** The version new sandbox actors start at (SandboxWorkflowInput.actorVersion; workflows/sandbox/versions.ts). */
export const SANDBOX_ACTOR_VERSION = 2;

export interface SandboxWorkflowInput {
  sandboxId: string;
  tenant: string;
  /** The tenant's namespace, fixed at create (labels the container). Absent before tenancy: "default". */
  namespace?: string;
  hostId: string;
  createdAt: string;
  spec: SandboxSpec;
  /** SHA-256 of the normalised request: a repeated Idempotency-Key must come with the same body. */
  requestHash: string;
  /** How far renewals may move expiresAt (absent on actors started before they carried it: the default). */
  expiry?: ExpiryPolicy;
  /**
   * Claimed from a warm pool: the member made for this id is taken over instead of a create (the pool
   * actor's workflow id). With `started`, the pool thawed it inside the claim: the actor starts
   * Running on that workload and only tells the pool it took it over.
   */
  pooled?: {
    pool: string;
    started?: { containerId: string; network: SandboxNetwork };
    /** From then the pool may judge the claim stale (its answer + claim timeout, the pool's clock): an actor started earlier need not check its member. */
    staleFrom?: number;
  };
  /**
   * The actor code version this actor was started at (SANDBOX_ACTOR_VERSION; absent before there
   * were versions: 0). From 1: it began with every earlier patched change (workflows/sandbox/versions.ts),
   * and it is told of a renew schedule before one is made (announceRenewSchedule), so its teardown
   * deletes one only if it was; older actors delete one (or its absence) in every teardown.
   */
  actorVersion?: number;
  /** Present only when continuing as new: the actor's whole state. */
  carried?: SandboxCarriedState;
}

export interface SandboxCarriedState {
  view: SandboxView;
  events: SandboxEvent[];
  deleteRequested: boolean;
  runtimeExit?: { containerId: string; exitCode: number; message?: string };
  /** A pause or resume accepted but not yet carried out. */
  pendingOp?: 'pause' | 'resume';
  /** A renew schedule was announced (it may exist): teardown deletes it. */
  renewScheduled?: true;
}

/** What a sandbox workflow returns when it completes: read for history after termination. */
export interface SandboxOutcome {
  view: SandboxView;
  events: SandboxEvent[];
}

/** Task queue of the activities bound to one host (Docker engine), next to the shared `taskQueue`. */
export const hostTaskQueue = (taskQueue: string, hostId: string): string => `${taskQueue}-host-${hostId}`;

export const sandboxWorkflowId = (sandboxId: string): string => `sandbox/${sandboxId}`;

/** The sandbox's initial view, before any worker has touched it (the API writes it as the start memo). */
export function initialView(input: SandboxWorkflowInput): SandboxView {
  const { spec } = input;
  // The status is the last of the first events: accepted, or Running on a member its claim thawed.
  const last = firstEvents(input).at(-1)!;
  return {
    id: input.sandboxId,
    tenant: input.tenant,
    ...(input.namespace ? { namespace: input.namespace } : {}),
    ...(spec.snapshotId ? { snapshotId: spec.snapshotId } : {}),
    workflowId: sandboxWorkflowId(input.sandboxId),
    hostId: input.hostId,
    image: { uri: spec.image.uri },
    ...(spec.platform ? { platform: spec.platform } : {}),
    entrypoint: spec.entrypoint,
    metadata: spec.metadata,
    ...(spec.extensions[EXECD_EXTENSION] === 'image' ? { execd: 'image' as const } : {}),
    status: { state: last.state, reason: last.reason, message: last.message, lastTransitionAt: last.at },
    ...(input.pooled?.started ? { containerId: input.pooled.started.containerId, network: input.pooled.started.network } : {}),
    createdAt: input.createdAt,
    expiresAt: spec.timeoutSeconds === null ? null : new Date(Date.parse(input.createdAt) + spec.timeoutSeconds * 1000).toISOString(),
  };
}

/** The history of a new actor: accepted, and Running at once for a member thawed by its claim. */
export const firstEvents = (input: SandboxWorkflowInput): SandboxEvent[] => [
  acceptedEvent(input),
  ...(input.pooled?.started
    ? [{ at: input.createdAt, state: 'Running' as const, actor: 'runtime' as const, reason: 'started', message: 'sandbox is running' }]
    : []),
];

/** The first history entry: written by the API with the start request. */
export const acceptedEvent = (input: SandboxWorkflowInput): SandboxEvent => ({
  at: input.createdAt,
  state: 'Pending',
  actor: 'api',
  reason: 'provisioning',
  message: 'sandbox accepted',
});

/** The contract's Sandbox resource. Internal fields (tenant, host, container) stay inside; absent values are omitted. */
export function toSandboxResource(view: SandboxView) {
  const { state, lastTransitionAt, reason, message } = view.status;
  return {
    id: view.id,
    // Tidebox's addition: whose it is (an operator's list mixes tenants; a tenant sees only its own name).
    tenant: view.tenant,
    // The contract: image when created from an image, snapshotId when restored from a snapshot.
    ...(view.snapshotId ? { snapshotId: view.snapshotId } : { image: view.image }),
    ...(view.platform ? { platform: view.platform } : {}),
    status: { state, lastTransitionAt, ...(reason ? { reason } : {}), ...(message ? { message } : {}) },
    metadata: view.metadata,
    entrypoint: view.entrypoint,
    ...(view.expiresAt ? { expiresAt: view.expiresAt } : {}),
    createdAt: view.createdAt,
  };
}

/** The contract's CreateSandboxResponse plus Tidebox's `workflowId`. */
export function toCreateResponse(view: SandboxView) {
  const {
    image: _image,
    snapshotId: _snapshotId,
    ...rest
  } = toSandboxResource(view) as ReturnType<typeof toSandboxResource> & { image?: unknown; snapshotId?: unknown };
  return { ...rest, workflowId: view.workflowId };
}

/** The Temporal Schedule that renews a sandbox periodically (at most one per sandbox). */
export const renewScheduleId = (sandboxId: string): string => `renew/${sandboxId}`;

/** What a renew schedule's workflow is started with. */
export interface RenewRunInput {
  sandboxId: string;
  /** The sandbox's tenant: a run renews only a sandbox of this tenant. Absent on schedules made before tenancy. */
  tenant?: string;
  extendBySeconds: number;
  /** RFC 3339; renewals never move expiresAt past it. */
  until?: string;
}

export type RenewRunOutcome =
  | { outcome: 'renewed'; expiresAt: string }
  | { outcome: 'not-needed'; expiresAt: string | null }
  | { outcome: 'sandbox-gone' }
  | { outcome: 'rejected'; message: string };
