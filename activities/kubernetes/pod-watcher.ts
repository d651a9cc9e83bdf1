import type { V1Pod } from '@kubernetes/client-node';
import type { RuntimeExit } from '../docker/exit-watcher';
import { LABELS } from '../docker/container-spec';
import { CoreV1Api, KubeConfig } from './kube';
import { Watch } from '@kubernetes/client-node';
import { podProgress } from './pod-spec';

/**
 * Watches the cluster's sandbox pods (every namespace, by the instance label) and reports those that
 * stopped without Tidebox stopping them: the container exited, the pod failed or was evicted, or the
 * pod was deleted behind Tidebox's back. The sandbox actor acts only while Running and only for its
 * own pod uid, so the deletes Tidebox makes itself are ignored there.
 *
 * After every (re)connect it lists the pods (reporting those already finished) and asks
 * `sweepMissing` for Running sandboxes whose pod no longer exists, which covers deletions that
 * happened while no watch ran.
 */
export async function watchPodExits(opts: {
  kc: KubeConfig;
  core: CoreV1Api;
  instance: string;
  report: (exit: RuntimeExit) => Promise<void>;
  /** Running sandboxes on this cluster: their ids and pod uids (from Temporal visibility). */
  runningSandboxes: () => Promise<Array<{ sandboxId: string; containerId: string }>>;
  signal: AbortSignal;
  log: (msg: string) => void;
  sweepIntervalMs?: number;
}): Promise<void> {
  const { kc, core, instance, report, signal, log } = opts;
  const labelSelector = `${LABELS.instance}=${instance}`;
  const safely = (exit: RuntimeExit) => report(exit).catch((err) => log(`reporting the end of pod ${exit.containerId} failed: ${(err as Error).message}`));

  const finished = (pod: V1Pod): RuntimeExit | undefined => {
    const sandboxId = pod.metadata?.labels?.[LABELS.sandboxId];
    const uid = pod.metadata?.uid;
    if (!sandboxId || !uid) return undefined;
    const progress = podProgress(pod);
    // A pod that never ran is the provisioning activity's to judge; only a finished one is reported here.
    if (progress.kind !== 'failed' || progress.code !== 'CONTAINER_EXITED') return undefined;
    return { sandboxId, containerId: uid, exitCode: progress.exitCode ?? -1, message: progress.message };
  };
  const deleted = (pod: V1Pod): RuntimeExit | undefined => {
    const sandboxId = pod.metadata?.labels?.[LABELS.sandboxId];
    const uid = pod.metadata?.uid;
    if (!sandboxId || !uid) return undefined;
    return { sandboxId, containerId: uid, exitCode: -1, message: `pod ${pod.metadata?.namespace}/${pod.metadata?.name} was deleted outside Tidebox` };
  };

  const sweep = async () => {
    const pods = await core.listPodForAllNamespaces({ labelSelector });
    const uids = new Set<string>();
    for (const pod of pods.items) {
      if (pod.metadata?.uid) uids.add(pod.metadata.uid);
      const exit = finished(pod);
      if (exit) await safely(exit);
    }
    for (const s of await opts.runningSandboxes()) {
      if (!uids.has(s.containerId)) await safely({ ...s, exitCode: -1, message: `pod of sandbox ${s.sandboxId} no longer exists` });
    }
    return pods.metadata?.resourceVersion;
  };

  while (!signal.aborted) {
    let controller: AbortController | undefined;
    const sweeper = setInterval(() => void sweep().catch((err) => log(`pod sweep failed: ${(err as Error).message}`)), opts.sweepIntervalMs ?? 60_000);
    try {
      const resourceVersion = await sweep();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          controller?.abort();
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        new Watch(kc)
          .watch(
            '/api/v1/pods',
            { labelSelector, allowWatchBookmarks: true, ...(resourceVersion ? { resourceVersion } : {}) },
            (type: string, pod: V1Pod) => {
              const exit = type === 'DELETED' ? deleted(pod) : type === 'MODIFIED' || type === 'ADDED' ? finished(pod) : undefined;
              if (exit) void safely(exit);
            },
            (err: unknown) => {
              signal.removeEventListener('abort', onAbort);
              if (err && !signal.aborted) reject(err);
              else resolve();
            },
          )
          .then((c) => {
            controller = c;
            if (signal.aborted) c.abort();
          }, reject);
      });
    } catch (err) {
      if (signal.aborted) break;
      log(`pod watch failed: ${(err as Error).message}; reconnecting`);
    } finally {
      clearInterval(sweeper);
    }
    // A watch ends normally every few minutes (server timeout): reconnect, after a pause on errors.
    if (!signal.aborted) await new Promise((r) => setTimeout(r, 1000));
  }
}
