/**
 * Labels Tidebox puts on what it creates in a runtime (containers, pods, images, volumes, secrets).
 * Both runtimes and every operator command that finds Tidebox's objects agree on these names.
 */
export const LABELS = {
  managed: 'tidebox.io/managed',
  instance: 'tidebox.io/instance',
  sandboxId: 'tidebox.io/sandbox-id',
  tenant: 'tidebox.io/tenant',
  /** The tenant's namespace (Kubernetes puts pods there; on Docker it labels the containers). */
  namespace: 'tidebox.io/namespace',
  /** Named volumes Tidebox created on demand (pvc with createIfNotExists). */
  createdBy: 'tidebox.io/created-by',
  /** The user a sandbox was created for (extensions["tidebox.io/user-id"]). */
  userId: 'tidebox.io/user-id',
  /** Warm pool members: the pool actor's workflow id (`pool/<tenant>/<name>`). */
  pool: 'tidebox.io/pool',
  /** Snapshot images: the snapshot they belong to. */
  snapshotId: 'tidebox.io/snapshot-id',
} as const;
