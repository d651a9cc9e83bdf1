/**
 * Snapshots: a committed image of a sandbox's filesystem, one SnapshotWorkflow actor each
 * (`snapshot/<snapshotId>`). Types and pure rules only.
 */

export const SNAPSHOT_STATES = ['Creating', 'Ready', 'Failed', 'Deleting'] as const;
export type SnapshotState = (typeof SNAPSHOT_STATES)[number];

/**
 * The steps of taking a snapshot, in order. Each runs once: a retry after a failure resumes at the
 * failed step with what the finished ones produced.
 *  - locate: find the source sandbox's container on its host;
 *  - commit: commit it to the snapshot's image (adopting an image an earlier attempt committed);
 *  - verify: inspect the image, record its id and size.
 */
export const SNAPSHOT_STEPS = ['locate', 'commit', 'verify'] as const;
export type SnapshotStepName = (typeof SNAPSHOT_STEPS)[number];

export interface SnapshotStep {
  name: SnapshotStepName;
  state: 'pending' | 'running' | 'done' | 'failed';
  /** How many times the actor has started this step (a retry of the snapshot adds one). */
  runs: number;
  finishedAt?: string;
  error?: string;
}

export interface SnapshotStatus {
  state: SnapshotState;
  /** snapshot_accepted | snapshot_ready | snapshot_capture_failed | snapshot_retrying | snapshot_deleting */
  reason?: string;
  message?: string;
  lastTransitionAt: string;
}

/** The actor's public state (its memo): what GET /v1/snapshots/{id} answers. */
export interface SnapshotView {
  id: string;
  tenant: string;
  sandboxId: string;
  name?: string;
  hostId: string;
  workflowId: string;
  /** The image reference a restore runs (`tidebox-snapshots:<id>`). */
  image: string;
  imageId?: string;
  sizeBytes?: number;
  status: SnapshotStatus;
  createdAt: string;
  steps: SnapshotStep[];
  /** The step that failed, while Failed. */
  failedStep?: SnapshotStepName;
  retries: number;
}

export interface SnapshotWorkflowInput {
  snapshotId: string;
  tenant: string;
  sandboxId: string;
  hostId: string;
  name?: string;
  createdAt: string;
}

export const snapshotWorkflowId = (snapshotId: string): string => `snapshot/${snapshotId}`;
export const SNAPSHOT_REPOSITORY = 'tidebox-snapshots';
export const snapshotImage = (snapshotId: string): string => `${SNAPSHOT_REPOSITORY}:${snapshotId}`;

/** The view an actor starts with (the API writes it as the start memo, so GET works at once). */
export function initialSnapshotView(input: SnapshotWorkflowInput): SnapshotView {
  return {
    id: input.snapshotId,
    tenant: input.tenant,
    sandboxId: input.sandboxId,
    ...(input.name ? { name: input.name } : {}),
    hostId: input.hostId,
    workflowId: snapshotWorkflowId(input.snapshotId),
    image: snapshotImage(input.snapshotId),
    status: { state: 'Creating', reason: 'snapshot_accepted', message: 'snapshot accepted', lastTransitionAt: input.createdAt },
    createdAt: input.createdAt,
    steps: SNAPSHOT_STEPS.map((name) => ({ name, state: 'pending', runs: 0 })),
    retries: 0,
  };
}

/** The contract's Snapshot resource plus Tidebox's image reference, workflow id and steps. */
export function toSnapshotResource(view: SnapshotView) {
  const { state, reason, message, lastTransitionAt } = view.status;
  return {
    id: view.id,
    sandboxId: view.sandboxId,
    ...(view.name ? { name: view.name } : {}),
    status: { state, lastTransitionAt, ...(reason ? { reason } : {}), ...(message ? { message } : {}) },
    createdAt: view.createdAt,
    image: view.image,
    workflowId: view.workflowId,
    ...(view.failedStep ? { failedStep: view.failedStep } : {}),
    retries: view.retries,
    steps: view.steps.map((s) => ({
      name: s.name,
      state: s.state,
      runs: s.runs,
      ...(s.finishedAt ? { finishedAt: s.finishedAt } : {}),
      ...(s.error ? { error: s.error } : {}),
    })),
  };
}
