/**
 * The ports a sandbox's host implements: activities on the host's task queue
 * (`<taskQueue>-host-<hostId>`), one implementation per runtime (activities/docker/ for a Docker
 * engine, activities/kubernetes/ for a cluster), chosen by the worker from `runtime.type`.
 * Workflows proxy these interfaces and know nothing of the implementations.
 *
 * Method names are the activity types recorded in workflow histories (hence "container" where a
 * runtime may mean a pod): never rename one, add a new activity instead. Every activity is
 * idempotent: it finds what an earlier attempt made (by name or label) before it acts.
 */
import type { OssfsSource } from '../core/mounts';
import type { SandboxNetwork, SandboxSpec } from '../core/sandbox';
import type { RuntimeExitReport } from './sandbox-actor';

/** A host directory bound into the workload (a shared bucket mount, a named volume's directory). */
export interface MountBind {
  hostPath: string;
  mountPath: string;
  readOnly: boolean;
}

/** Which workload: the sandbox, and its tenant's namespace (absent in calls recorded before namespaces were passed). */
export interface WorkloadRef {
  sandboxId: string;
  namespace?: string;
}

export interface CreateWorkloadInput extends WorkloadRef {
  tenant: string;
  spec: SandboxSpec;
  mountBinds?: MountBind[];
  /** A warm pool's member: the pool actor's workflow id, labelled on the workload (the orphan sweep asks that actor). */
  pool?: string;
}

export interface StartWorkloadInput extends WorkloadRef {
  /** The ports the request added to the configured ones. */
  ports?: number[];
}

export interface StartedWorkload {
  /** The runtime's id of the workload (container id, pod uid): exit reports name it. */
  containerId: string;
  network: SandboxNetwork;
}

/** The sandbox actor's one way to its workload. */
export interface SandboxRuntime {
  /** Create the workload, or adopt the one an earlier attempt made. */
  ensureContainer(input: CreateWorkloadInput): Promise<{ containerId: string }>;
  /** Start it and wait until it runs (it must survive the runtime's grace period); fails with the reason it does not. */
  startContainer(input: StartWorkloadInput): Promise<StartedWorkload>;
  /**
   * ensureContainer then startContainer in one activity (one dispatch and one workflow task fewer on
   * a create's path); a retry adopts what an earlier attempt made, as each step does on its own.
   */
  createAndStartContainer(input: CreateWorkloadInput): Promise<StartedWorkload>;
  /**
   * Take over a warm pool member made for this sandbox id (frozen until now): thaw it and answer as a
   * start does. Fails (non-retryable CONTAINER_EXITED) when it is gone or no longer runs.
   */
  adoptContainer(
    input: WorkloadRef & {
      ports?: number[];
      metadata?: Record<string, string>;
      /** What the member's start answered (Docker: frozen since, so still true): the thaw needs no lookup. */
      known?: StartedWorkload;
    },
  ): Promise<StartedWorkload>;
  /**
   * Freeze every process of the workload (idempotent). `primeExecd`: a warm pool member, frozen
   * until a claim — where this host serves execd, its command shell is started in it first, so the
   * claimed sandbox's first command needs no process set up (best effort: a member is frozen anyway).
   */
  pauseContainer(input: { sandboxId: string; primeExecd?: boolean }): Promise<void>;
  /** Thaw it (idempotent). */
  resumeContainer(input: { sandboxId: string }): Promise<void>;
  /** Remove the workload and what belongs to it only; fine when there is none. */
  removeContainers(input: WorkloadRef): Promise<{ removed: number }>;
}

/** The snapshot actor's steps, on the source sandbox's host. */
export interface SnapshotRuntime {
  findSnapshotSource(input: { sandboxId: string }): Promise<{ containerId: string }>;
  /** Commit the workload to the snapshot's image, or adopt the image an earlier attempt committed. */
  commitSnapshot(input: { snapshotId: string; tenant: string; containerId: string }): Promise<{ imageId: string; adopted: boolean }>;
  inspectSnapshotImage(input: { snapshotId: string }): Promise<{ imageId: string; sizeBytes: number }>;
  /** Remove the snapshot's image (only one this snapshot made); `in-use` when a workload still runs it. */
  removeSnapshotImage(input: { snapshotId: string }): Promise<{ outcome: 'removed' | 'absent' | 'in-use' }>;
}

/** The mount actor's host side: shared bucket mounts (FUSE) on a host whose workloads can bind host paths. */
export interface BucketMountHost {
  mountBucket(input: { key: string; source: OssfsSource }): Promise<{ hostPath: string; adopted: boolean }>;
  unmountBucket(input: { key: string }): Promise<{ unmounted: boolean }>;
}

/** A workload that ended on its own, as a runtime's watcher saw it. */
export interface RuntimeExit extends RuntimeExitReport {
  sandboxId: string;
}

/** Where a runtime host reports what happens outside any activity (the worker's log). */
export interface HostLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** One runtime, as the worker runs it: the host-queue activities, and the watcher of workloads that end on their own. */
export interface RuntimeHost {
  activities: SandboxRuntime & SnapshotRuntime & Partial<BucketMountHost>;
  /** Report every workload that stops without Tidebox stopping it, until `signal` aborts. */
  watchExits(signal: AbortSignal): Promise<void>;
}
