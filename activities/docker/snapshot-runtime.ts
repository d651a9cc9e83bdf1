import { Context } from '@temporalio/activity';
import { LABELS } from '../../contracts/labels';
import type { SnapshotRuntime } from '../../contracts/runtime';
import { SNAPSHOT_REPOSITORY, snapshotImage } from '../../core/snapshots';
import { fail, heartbeating } from '../common';
import type { Faults } from '../faults';
import { dockerStatus, type DockerEngine } from './docker-engine';

/**
 * The snapshot steps on a Docker host: commit a sandbox's container to `tidebox-snapshots:<id>`.
 * Each step is idempotent (an image carrying the snapshot's label is adopted), so a retried or
 * resumed step never commits twice, and only an image this snapshot made is ever removed.
 */
export function createDockerSnapshotRuntime(deps: { engine: DockerEngine; instance: string; faults: Faults }): SnapshotRuntime {
  const { engine, instance, faults } = deps;
  /** The snapshot's image, if it is this snapshot's (a foreign image of that name is never touched). */
  const ownImage = async (snapshotId: string) => {
    const info = await engine.imageInfo(snapshotImage(snapshotId));
    return info && info.labels[LABELS.snapshotId] === snapshotId ? info : undefined;
  };

  return {
    findSnapshotSource: async ({ sandboxId }) => {
      const [container] = await engine.findSandboxContainers(sandboxId);
      if (!container) throw fail('SNAPSHOT_SOURCE_GONE', `sandbox ${sandboxId} has no container on this host any more`);
      return { containerId: container.Id };
    },

    /** An image already carrying this snapshot's label is adopted: the attempt that made it died before reporting. */
    commitSnapshot: ({ snapshotId, tenant, containerId }) =>
      heartbeating(async () => {
        const existing = await ownImage(snapshotId);
        if (existing) return { imageId: existing.id, adopted: true };
        await faults.reached('snapshot-committing', snapshotId);
        faults.failIf('snapshot-commit', () => fail('SNAPSHOT_FAILED', 'commit failed: injected fault (faults.failAt = snapshot-commit)'));
        if (Context.current().cancellationSignal.aborted) throw new Error('attempt cancelled before commit');
        try {
          const imageId = await engine.commit(containerId, SNAPSHOT_REPOSITORY, snapshotId, {
            [LABELS.managed]: 'true',
            [LABELS.instance]: instance,
            [LABELS.snapshotId]: snapshotId,
            [LABELS.tenant]: tenant,
          });
          return { imageId, adopted: false };
        } catch (err) {
          if (dockerStatus(err) === 404)
            throw fail('SNAPSHOT_SOURCE_GONE', `the container ${containerId.slice(0, 12)} no longer exists`, err);
          if (dockerStatus(err) === 409) throw fail('SNAPSHOT_FAILED', `Docker refused the commit: ${(err as Error).message}`, err);
          throw err;
        }
      }),

    inspectSnapshotImage: async ({ snapshotId }) => {
      const info = await ownImage(snapshotId);
      if (!info) throw fail('SNAPSHOT_FAILED', `image ${snapshotImage(snapshotId)} is missing after the commit`);
      return { imageId: info.id, sizeBytes: info.size };
    },

    removeSnapshotImage: async ({ snapshotId }) => {
      if (!(await ownImage(snapshotId))) return { outcome: 'absent' as const };
      return { outcome: await engine.removeImage(snapshotImage(snapshotId)) };
    },
  };
}
