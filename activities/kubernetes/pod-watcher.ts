import { Watch, type V1Pod } from '@kubernetes/client-node';
import { LABELS } from '../../contracts/labels';
import type { RuntimeExit } from '../../contracts/runtime';
import type { SandboxState } from '../../core/sandbox';
import { type CoreV1Api, type KubeConfig, unlessNotFound } from '../../platform/kube';
import { deleteSandboxPod } from './cluster';
import { podName, podProgress } from './pod-spec';

/** A sandbox actor that is still open, as visibility shows it. */
export interface OpenSandbox {
  sandboxId: string;
  state: SandboxState;
  namespace?: string;
  /** The pod's uid once the sandbox runs. */
  containerId?: string;
}

/**
 * Watches the cluster's sandbox pods (every namespace, by the instance label) and reports those that
 * stopped without Tidebox stopping them: the container exited, the pod failed or was evicted, or the
 * pod was deleted behind Tidebox's back. The sandbox actor acts only while Running and only for its
 * own pod uid, so the deletes Tidebox makes itself are ignored there.
 *
 * After every (re)connect, and every `sweepIntervalMs`, it sweeps: pods already finished are
 * reported; Running sandboxes whose pod no longer exists (deleted while no watch ran) are reported;
 * and orphans — pods older than `orphanGraceMs` whose sandbox is closed or has failed (a create that
 * landed after its sandbox gave up, a workflow terminated by hand) — are deleted.
 */
export async function watchPodExits(opts: {
  kc: KubeConfig;
  core: CoreV1Api;
  instance: string;
  report: (exit: RuntimeExit) => Promise<void>;
  /**
   * The open sandbox actors on this cluster (from Temporal visibility). `complete` is false when the
   * list was cut short: then no pod is judged an orphan.
   */
  openSandboxes: () => Promise<{ items: OpenSandbox[]; complete: boolean }>;
  /**
   * Asked of the sandbox actor itself (not visibility) before a pod is deleted: true when it is closed
   * or Failed/Terminated (a warm pool member: when its pool no longer holds it either). Visibility can
   * briefly miss a live sandbox (a continue-as-new in flight).
   */
  isOrphan: (sandboxId: string, pod: V1Pod) => Promise<boolean>;
  signal: AbortSignal;
  log: (msg: string) => void;
  sweepIntervalMs?: number;
  orphanGraceMs?: number;
}): Promise<void> {
  const { kc, core, instance, report, signal, log } = opts;
  const labelSelector = `${LABELS.instance}=${instance}`;
  const safely = (exit: RuntimeExit) =>
    report(exit).catch((err) => log(`reporting the end of pod ${exit.containerId} failed: ${(err as Error).message}`));

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
    return {
      sandboxId,
      containerId: uid,
      exitCode: -1,
      message: `pod ${pod.metadata?.namespace}/${pod.metadata?.name} was deleted outside Tidebox`,
    };
  };

  /** Still no pod with that uid, asked by name: the list may predate a pod that started since. */
  const gone = async (s: OpenSandbox & { namespace: string; containerId: string }) =>
    (await unlessNotFound(() => core.readNamespacedPod({ name: podName(s.sandboxId), namespace: s.namespace })))?.metadata?.uid !==
    s.containerId;

  const removeOrphan = async (pod: V1Pod, sandboxId: string, why: string) => {
    await deleteSandboxPod(core, pod.metadata!.namespace!, sandboxId);
    log(`removed orphaned pod ${pod.metadata!.namespace}/${pod.metadata!.name}: ${why}`);
  };

  const sweep = async () => {
    // Sandboxes first, pods second: a sandbox that starts running in between has its pod listed.
    const open = await opts.openSandboxes();
    const pods = await core.listPodForAllNamespaces({ labelSelector });
    const uids = new Set<string>();
    for (const pod of pods.items) {
      if (pod.metadata?.uid) uids.add(pod.metadata.uid);
      const exit = finished(pod);
      if (exit) await safely(exit);
    }
    for (const s of open.items) {
      if (s.state !== 'Running' || !s.containerId || !s.namespace || uids.has(s.containerId)) continue;
      if (await gone({ ...s, namespace: s.namespace, containerId: s.containerId })) {
        await safely({
          sandboxId: s.sandboxId,
          containerId: s.containerId,
          exitCode: -1,
          message: `pod of sandbox ${s.sandboxId} no longer exists`,
        });
      }
    }
    if (open.complete) {
      const byId = new Map(open.items.map((s) => [s.sandboxId, s]));
      const grace = opts.orphanGraceMs ?? 120_000;
      for (const pod of pods.items) {
        const sandboxId = pod.metadata?.labels?.[LABELS.sandboxId];
        const created = Date.parse(String(pod.metadata?.creationTimestamp ?? ''));
        // Only pods by Tidebox's own name for their sandbox: that is what removal deletes.
        if (!sandboxId || pod.metadata?.name !== podName(sandboxId) || pod.metadata?.deletionTimestamp || !(Date.now() - created > grace))
          continue;
        const s = byId.get(sandboxId);
        const why = !s
          ? 'its sandbox has ended'
          : s.state === 'Failed' || s.state === 'Terminated'
            ? `its sandbox is ${s.state}`
            : undefined;
        if (!why) continue;
        await (async () => {
          if (await opts.isOrphan(sandboxId, pod)) await removeOrphan(pod, sandboxId, why);
        })().catch((err) => log(`removing orphaned pod ${pod.metadata?.name} failed: ${(err as Error).message}`));
      }
    }
    return pods.metadata?.resourceVersion;
  };

  while (!signal.aborted) {
    let controller: AbortController | undefined;
    const sweeper = setInterval(
      () => void sweep().catch((err) => log(`pod sweep failed: ${(err as Error).message}`)),
      opts.sweepIntervalMs ?? 60_000,
    );
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
