import {
  allHandlersFinished,
  condition,
  patched,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SnapshotRuntime } from '../contracts/runtime';
import { SA } from '../contracts/search-attributes';
import { deleteSnapshotUpdate, describeSnapshotQuery, retrySnapshotUpdate, type SnapshotWorkflow } from '../contracts/snapshot-actor';
import { hostTaskQueue } from '../core/sandbox';
import { initialSnapshotView, SnapshotState, SnapshotStep, SnapshotView, SnapshotWorkflowInput } from '../core/snapshots';
import { snapshotReservationKey } from '../core/quotas';
import { failureMessage, reject } from './failures';
import { releaseQuota } from './quota';

/**
 * The snapshot actor, id `snapshot/<snapshotId>`. Creating → locate → commit → verify → Ready, or
 * Failed at the step that failed (reason and message kept). `retry` resumes at that step with what
 * the finished steps produced; `delete` removes the image (only one this snapshot made) and
 * completes. State is the step list, so a worker crash or a Temporal restart resumes exactly there,
 * and every step's activity is idempotent, so a step that is retried never commits twice.
 */
export const snapshotWorkflow: SnapshotWorkflow = async (input: SnapshotWorkflowInput): Promise<SnapshotView> => {
  const queue = hostTaskQueue(workflowInfo().taskQueue, input.hostId);
  const host = proxyActivities<SnapshotRuntime>({
    taskQueue: queue,
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5 },
  });
  // Removing the image must eventually succeed: an orphaned image is worse than a slow delete.
  const remover = proxyActivities<SnapshotRuntime>({
    taskQueue: queue,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });

  const view = initialSnapshotView(input);
  let containerId: string | undefined;
  let retryRequested = false;
  let deleted = false;

  const publish = () => {
    upsertMemo({ view });
    upsertSearchAttributes([
      { key: SA.tenant, value: input.tenant },
      { key: SA.state, value: view.status.state },
    ]);
  };
  const transition = (state: SnapshotState, reason: string, message: string) => {
    view.status = { state, reason, message, lastTransitionAt: new Date().toISOString() };
    publish();
  };

  const runStep = async (step: SnapshotStep): Promise<void> => {
    switch (step.name) {
      case 'locate':
        containerId = (await host.findSnapshotSource({ sandboxId: input.sandboxId })).containerId;
        return;
      case 'commit':
        view.imageId = (
          await host.commitSnapshot({ snapshotId: input.snapshotId, tenant: input.tenant, containerId: containerId! })
        ).imageId;
        return;
      case 'verify': {
        const { imageId, sizeBytes } = await host.inspectSnapshotImage({ snapshotId: input.snapshotId });
        view.imageId = imageId;
        view.sizeBytes = sizeBytes;
        return;
      }
    }
  };

  /** Run every step not yet done, in order; stop at the first failure (→ Failed). */
  const runSteps = async (): Promise<void> => {
    for (const step of view.steps) {
      if (step.state === 'done') continue;
      step.state = 'running';
      step.runs++;
      delete step.error;
      publish();
      try {
        await runStep(step);
      } catch (err) {
        step.state = 'failed';
        step.error = failureMessage(err);
        view.failedStep = step.name;
        transition('Failed', 'snapshot_capture_failed', `${step.name} failed: ${step.error}`);
        return;
      }
      step.state = 'done';
      step.finishedAt = new Date().toISOString();
    }
    delete view.failedStep;
    transition('Ready', 'snapshot_ready', `image ${view.image} is ready`);
  };

  setHandler(describeSnapshotQuery, () => view);

  setHandler(
    retrySnapshotUpdate,
    () => {
      retryRequested = true;
      view.retries++;
      transition('Creating', 'snapshot_retrying', `retrying from step ${view.failedStep}`);
      return view;
    },
    {
      validator: () => {
        if (view.status.state !== 'Failed')
          throw reject('SNAPSHOT_INVALID_STATE', `only a Failed snapshot can be retried; this one is ${view.status.state}`);
      },
    },
  );

  setHandler(
    deleteSnapshotUpdate,
    async () => {
      if (view.status.state === 'Deleting') {
        // A second delete while the first runs: share its outcome.
        await condition(() => deleted || view.status.state !== 'Deleting');
        if (!deleted) throw reject('SNAPSHOT_IN_USE', 'a sandbox still runs this snapshot; delete the sandbox first');
        return view;
      }
      const before = view.status;
      transition('Deleting', 'snapshot_deleting', 'removing the image');
      const { outcome } = await remover.removeSnapshotImage({ snapshotId: input.snapshotId });
      if (outcome === 'in-use') {
        transition(before.state, before.reason ?? 'snapshot_ready', before.message ?? '');
        throw reject('SNAPSHOT_IN_USE', 'a sandbox still runs this snapshot; delete the sandbox first');
      }
      deleted = true;
      // Give the tenant's snapshot place back before the DELETE is answered.
      if (patched('snapshot-releases-quota')) await releaseQuota(input.tenant, snapshotReservationKey(input.snapshotId));
      return view;
    },
    {
      validator: () => {
        if (view.status.state === 'Creating') {
          throw reject('SNAPSHOT_INVALID_STATE', 'the snapshot is still being created; delete it once it is Ready or Failed');
        }
      },
    },
  );

  for (;;) {
    await runSteps();
    await condition(() => retryRequested || deleted);
    if (deleted) break;
    retryRequested = false;
  }
  view.status = { ...view.status, reason: 'snapshot_deleted', message: 'image removed', lastTransitionAt: new Date().toISOString() };
  await condition(allHandlersFinished);
  return view;
};
