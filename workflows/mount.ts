import {
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { acquireMountUpdate, describeMountQuery, releaseMountUpdate, type MountWorkflow } from '../contracts/mount-actor';
import type { BucketMountHost } from '../contracts/runtime';
import { SA } from '../contracts/search-attributes';
import { MountState, MountView, mountView, MountWorkflowInput } from '../core/mounts';
import { hostTaskQueue } from '../core/sandbox';
import { failureMessage, reject } from './failures';

/**
 * The mount actor, id `mount/<hostId>/<key>`: the durable reference count of one shared bucket
 * mount. State is the *set* of holder sandbox ids, so a retried acquire or release counts once.
 * First holder in → mount (on the host's queue); last holder out → unmount, then complete. An acquire
 * that arrives while unmounting waits for the unmount to finish and mounts again.
 */
export const mountWorkflow: MountWorkflow = async (input: MountWorkflowInput): Promise<MountView> => {
  const queue = hostTaskQueue(workflowInfo().taskQueue, input.hostId);
  const { mountBucket } = proxyActivities<BucketMountHost>({
    taskQueue: queue,
    startToCloseTimeout: '3 minutes',
    heartbeatTimeout: '20 seconds',
    retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 3 },
  });
  // Unmounting must eventually succeed: a leaked mount is worse than a slow one.
  const { unmountBucket } = proxyActivities<BucketMountHost>({
    taskQueue: queue,
    startToCloseTimeout: '3 minutes',
    heartbeatTimeout: '20 seconds',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  });

  const holders = new Set<string>(input.carried?.holders ?? []);
  let state: MountState = input.carried?.state ?? 'Unmounted';
  let hostPath = input.carried?.hostPath;
  let failures = 0;
  let lastError: string | undefined;

  const view = () => mountView(input, state, holders, { hostPath, lastError, at: new Date().toISOString() });
  const publish = () => {
    upsertMemo({ view: view() });
    upsertSearchAttributes([
      { key: SA.tenant, value: input.tenant },
      { key: SA.state, value: state },
    ]);
  };

  setHandler(describeMountQuery, view);
  setHandler(acquireMountUpdate, async ({ sandboxId }) => {
    holders.add(sandboxId);
    publish();
    const seenFailures = failures;
    await condition(() => (state === 'Mounted' && !!hostPath) || failures > seenFailures || !holders.has(sandboxId));
    if (state === 'Mounted' && hostPath && holders.has(sandboxId)) return { hostPath };
    holders.delete(sandboxId);
    publish();
    throw reject('MOUNT_FAILED', lastError ?? `mount ${input.key} is not available`);
  });
  setHandler(releaseMountUpdate, ({ sandboxId }) => {
    holders.delete(sandboxId);
    publish();
    return view();
  });

  publish();
  for (;;) {
    await condition(
      () =>
        (holders.size > 0 && state === 'Unmounted') ||
        (holders.size === 0 && state === 'Mounted') ||
        (holders.size === 0 && state === 'Unmounted' && allHandlersFinished()) ||
        (workflowInfo().continueAsNewSuggested && allHandlersFinished()),
    );
    if (holders.size > 0 && state === 'Unmounted') {
      state = 'Mounting';
      publish();
      try {
        hostPath = (await mountBucket({ key: input.key, source: input.source })).hostPath;
        state = 'Mounted';
        lastError = undefined;
      } catch (err) {
        lastError = failureMessage(err);
        // Every holder right now was waiting for this attempt: they all fail (and are told so by
        // their acquire), so the loop does not take them for new holders and mount again.
        holders.clear();
        if (patched('mount-failure-counts-before-cleanup')) {
          // Count the failure first: an acquire arriving during the cleanup did not wait for this
          // attempt, so it must not fail with it; it waits for the next mount. The cleanup shows as
          // Unmounting, not as a mount still in progress.
          failures++;
          state = 'Unmounting';
          publish();
          // Whatever a failed attempt left behind goes before anyone retries.
          await unmountBucket({ key: input.key });
          state = 'Unmounted';
        } else {
          // Histories recorded before the patch: counted after the cleanup, no publish before it.
          await unmountBucket({ key: input.key });
          state = 'Unmounted';
          failures++;
        }
      }
      publish();
      continue;
    }
    if (holders.size === 0 && state === 'Mounted') {
      state = 'Unmounting';
      publish();
      await unmountBucket({ key: input.key });
      state = 'Unmounted';
      publish();
      continue;
    }
    if (holders.size === 0 && state === 'Unmounted') return view();
    if (workflowInfo().continueAsNewSuggested && allHandlersFinished()) {
      return await continueAsNew<MountWorkflow>({ ...input, carried: { holders: [...holders], state, hostPath } });
    }
  }
};
