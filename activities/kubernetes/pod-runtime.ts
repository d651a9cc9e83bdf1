import { Context } from '@temporalio/activity';
import type { V1Pod } from '@kubernetes/client-node';
import type { Config } from '../../core/config';
import { LABELS } from '../../contracts/labels';
import { storageScopeProblem } from '../../core/storage';
import type { SandboxRuntime, SnapshotRuntime } from '../../contracts/runtime';
import type { RuntimeProgress, SandboxSpec } from '../../core/sandbox';
import { userIdOf } from '../../core/tenants';
import { type CoreV1Api, kubeMessage, kubeStatus, unlessNotFound } from '../../platform/kube';
import { fail, heartbeating, withOneStepCreate } from '../common';
import type { Faults } from '../faults';
import { deleteSandboxPod } from './cluster';
import { adoptionPatch, buildClaim, buildPod, buildPullSecret, podName, podProgress, PodSettings, pullSecretName } from './pod-spec';
import { progressReporter } from './progress-reporter';

export interface PodRuntimeDeps {
  core: CoreV1Api;
  /** Makes sure a tenant namespace has the sandboxes' NetworkPolicy (absent: kubernetes.networkPolicy is off). */
  ensureNetworkPolicy?: (namespace: string) => Promise<void>;
  config: Pick<Config, 'instance' | 'kubernetes' | 'sandbox'>;
  /** A sandbox's declared ports given the ones its request added (configured + requested). */
  declaredPorts: (requested: number[]) => number[];
  template?: Record<string, unknown>;
  faults: Faults;
  /**
   * Tell the sandbox actor why its pod is still pending (best effort: a report that fails is only
   * logged, and the next change of reason is reported again).
   */
  reportProgress?: (sandboxId: string, progress: RuntimeProgress) => Promise<void>;
  /** Poll interval while waiting for a pod (tests shorten nothing; exposed for clarity). */
  pollMs?: number;
}

const unsupported = (what: string) => fail('NOT_SUPPORTED_BY_RUNTIME', `${what} is not supported on the Kubernetes pod runtime`);

/**
 * The sandbox runtime on Kubernetes: one pod per sandbox (`sandbox-<id>`) in the tenant's namespace,
 * behind the same port as the Docker runtime, so the sandbox actor runs unchanged on the cluster's
 * task queue. Each activity is idempotent: a create finds its own pod by name and adopts it, so a
 * retry after a worker crash never makes a second one. Pods cannot be frozen or committed: pause,
 * resume and snapshots fail with NOT_SUPPORTED_BY_RUNTIME (the API answers 501 before that).
 */
export function createPodRuntime(deps: PodRuntimeDeps): SandboxRuntime & SnapshotRuntime {
  const { core, config, faults } = deps;
  const k = config.kubernetes;
  const pollMs = deps.pollMs ?? 500;
  const namespaceOf = (namespace: string | undefined) => namespace ?? k.namespace;

  const readPod = (namespace: string, sandboxId: string): Promise<V1Pod | undefined> =>
    unlessNotFound(() => core.readNamespacedPod({ name: podName(sandboxId), namespace }));
  /** Our pod: the name matches and so do the instance and sandbox labels (a foreign pod is never adopted). */
  const isOurs = (pod: V1Pod, sandboxId: string) =>
    pod.metadata?.labels?.[LABELS.sandboxId] === sandboxId && pod.metadata?.labels?.[LABELS.instance] === config.instance;

  /** Where the sandbox's pod lives: the namespace given, else (calls recorded before namespaces were passed) a label search. */
  const locate = async (sandboxId: string, namespace: string | undefined): Promise<string> => {
    if (namespace) return namespace;
    const list = await core.listPodForAllNamespaces({
      labelSelector: `${LABELS.instance}=${config.instance},${LABELS.sandboxId}=${sandboxId}`,
    });
    return list.items[0]?.metadata?.namespace ?? k.namespace;
  };

  const ensureClaims = async (namespace: string, sandboxId: string, spec: SandboxSpec) => {
    for (const pvc of spec.pvcs ?? []) {
      if (await unlessNotFound(() => core.readNamespacedPersistentVolumeClaim({ name: pvc.claimName, namespace }))) continue;
      if (!pvc.createIfNotExists) {
        throw fail(
          'RUNTIME_REJECTED',
          `volume "${pvc.name}": claim ${pvc.claimName} does not exist in namespace ${namespace} (createIfNotExists is false)`,
        );
      }
      try {
        await core.createNamespacedPersistentVolumeClaim({
          namespace,
          body: buildClaim(namespace, pvc.claimName, config.instance, sandboxId, {
            size: pvc.claim?.storage ?? k.pvcStorageSize,
            storageClass: pvc.claim?.storageClass ?? k.pvcStorageClass,
            accessModes: pvc.claim?.accessModes ?? k.pvcAccessModes,
          }),
        });
      } catch (err) {
        if (kubeStatus(err) !== 409) throw rejected(err, `volume "${pvc.name}": cannot create claim ${pvc.claimName}`);
      }
    }
  };

  /** The API server refused a request for a reason retrying will not fix: the sandbox fails with it. */
  const rejected = (err: unknown, what: string) => {
    const status = kubeStatus(err);
    if (status === 400 || status === 403 || status === 404 || status === 422)
      return fail('RUNTIME_REJECTED', `${what}: ${kubeMessage(err)}`, err);
    return err;
  };

  /**
   * The image pull secret, created before the pod (so the kubelet's first pull has the credentials)
   * and then, given the pod, owned by it (so the cluster's garbage collector removes it with the pod
   * even if Tidebox never gets to). Create, else replace: it never reads secrets.
   */
  const putPullSecret = async (namespace: string, input: { sandboxId: string; tenant: string; spec: SandboxSpec }, pod?: V1Pod) => {
    if (!input.spec.imageAuth) return;
    const owner = pod ? { name: pod.metadata!.name!, uid: pod.metadata!.uid! } : undefined;
    const body = buildPullSecret(
      { sandboxId: input.sandboxId, tenant: input.tenant, namespace },
      config.instance,
      input.spec.image.uri,
      input.spec.imageAuth,
      owner,
    );
    try {
      await core.createNamespacedSecret({ namespace, body });
    } catch (err) {
      if (kubeStatus(err) === 404) throw fail('RUNTIME_REJECTED', `namespace ${namespace} does not exist on the cluster`, err);
      if (kubeStatus(err) !== 409) throw rejected(err, 'cannot create the image pull secret');
      await core.replaceNamespacedSecret({ name: pullSecretName(input.sandboxId), namespace, body });
    }
  };

  const settings = (ports: number[]): PodSettings => ({
    instance: config.instance,
    imagePullPolicy: k.imagePullPolicy,
    authImagePullPolicy: k.authImagePullPolicy,
    ephemeralStorage: k.ephemeralStorage,
    runAsNonRoot: k.runAsNonRoot,
    ports,
    template: deps.template,
    allowedHostPaths: config.sandbox.allowedHostPaths,
  });

  return withOneStepCreate<Omit<SandboxRuntime & SnapshotRuntime, 'createAndStartContainer'>>({
    ensureContainer: (input) =>
      heartbeating(async () => {
        const namespace = namespaceOf(input.namespace);
        const existing = await readPod(namespace, input.sandboxId);
        if (existing) {
          if (!isOurs(existing, input.sandboxId))
            throw fail('RUNTIME_REJECTED', `pod ${namespace}/${podName(input.sandboxId)} exists and is not this sandbox's`);
          await putPullSecret(namespace, input, existing);
          return { containerId: existing.metadata!.uid! };
        }
        // Whose storage this is comes from the actor's tenant, never from a path in the input.
        const scopeProblem = storageScopeProblem(input.spec, input.tenant, config.sandbox.storageLayout, config.sandbox.allowedHostPaths);
        if (scopeProblem) throw fail('RUNTIME_REJECTED', scopeProblem);
        await ensureClaims(namespace, input.sandboxId, input.spec);
        await deps.ensureNetworkPolicy?.(namespace);
        if (input.mountBinds?.length) throw fail('RUNTIME_REJECTED', 'bucket mounts are not supported on the Kubernetes runtime');
        let body: V1Pod;
        try {
          body = buildPod(
            {
              sandboxId: input.sandboxId,
              tenant: input.tenant,
              namespace,
              userId: userIdOf(input.spec.extensions),
              ...(input.pool ? { pool: input.pool } : {}),
            },
            input.spec,
            settings(deps.declaredPorts(input.spec.ports)),
          );
        } catch (err) {
          // A host path no longer allowed by this worker's configuration: retrying cannot help.
          throw fail('RUNTIME_REJECTED', (err as Error).message, err);
        }
        await putPullSecret(namespace, input);
        if (Context.current().cancellationSignal.aborted) throw new Error('attempt cancelled before create');
        let pod: V1Pod;
        try {
          pod = await core.createNamespacedPod({ namespace, body });
        } catch (err) {
          if (kubeStatus(err) === 409) {
            // A concurrent attempt created it first: adopt that one.
            const raced = await readPod(namespace, input.sandboxId);
            if (raced && isOurs(raced, input.sandboxId)) pod = raced;
            else throw fail('RUNTIME_REJECTED', `pod ${namespace}/${podName(input.sandboxId)} exists and is not this sandbox's`);
          } else if (kubeStatus(err) === 404) {
            throw fail('RUNTIME_REJECTED', `namespace ${namespace} does not exist on the cluster`, err);
          } else {
            throw rejected(err, 'the API server rejected the pod');
          }
        }
        await putPullSecret(namespace, input, pod);
        await faults.reached('container-created', input.sandboxId);
        return { containerId: pod.metadata!.uid! };
      }),

    /**
     * Wait for the pod to run (the kubelet starts it; nothing to start here). Fails at once on an
     * image that cannot be pulled or a container that cannot start, and after readyTimeoutSeconds
     * counted from the pod's creation (so a retried attempt does not restart the clock).
     */
    startContainer: (input) =>
      heartbeating(async () => {
        const namespace = await locate(input.sandboxId, input.namespace);
        const ctx = Context.current();
        const report = progressReporter(input.sandboxId, deps.reportProgress, (msg, error) =>
          ctx.log.warn(msg, { sandboxId: input.sandboxId, error }),
        );
        for (;;) {
          const pod = await readPod(namespace, input.sandboxId);
          if (!pod || !isOurs(pod, input.sandboxId))
            throw fail('CONTAINER_EXITED', `pod ${namespace}/${podName(input.sandboxId)} disappeared before it ran`);
          const progress = podProgress(pod);
          if (progress.kind === 'running') {
            const ports = Object.fromEntries(deps.declaredPorts(input.ports ?? []).map((p) => [String(p), p]));
            // Pod networking: every declared port is reached on the pod's IP under its own number.
            return { containerId: pod.metadata!.uid!, network: { hostNetwork: true, ports, host: progress.podIP } };
          }
          if (progress.kind === 'failed') throw fail(progress.code, progress.message);
          const created = Date.parse(String(pod.metadata?.creationTimestamp ?? '')) || Date.now();
          if (Date.now() - created > k.readyTimeoutSeconds * 1000) {
            const unschedulable = progress.reason === 'Unschedulable';
            throw fail(
              unschedulable ? 'POD_UNSCHEDULABLE' : 'START_TIMEOUT',
              `pod not running after ${k.readyTimeoutSeconds} s: ${progress.reason}: ${progress.message}`,
            );
          }
          if (progress.named) report(progress);
          ctx.heartbeat(progress.reason);
          await ctx.sleep(pollMs);
        }
      }),

    /**
     * Take a warm pool member's pod over for the sandbox that claimed it: it must be ours and
     * running; its labels are handed over (the pool's go, the sandbox's metadata comes) in one
     * patch. Pods are not frozen while they wait, so there is nothing to thaw.
     */
    adoptContainer: (input) =>
      heartbeating(async () => {
        const namespace = await locate(input.sandboxId, input.namespace);
        const pod = await readPod(namespace, input.sandboxId);
        if (!pod || !isOurs(pod, input.sandboxId))
          throw fail('CONTAINER_EXITED', `the warm pool member for ${input.sandboxId} no longer exists`);
        await faults.reached('member-adopting', input.sandboxId);
        const progress = podProgress(pod);
        if (progress.kind !== 'running')
          throw fail('CONTAINER_EXITED', `the warm pool member for ${input.sandboxId} is not running: ${progress.reason ?? progress.kind}`);
        const labels = pod.metadata?.labels ?? {};
        const id = { sandboxId: input.sandboxId, tenant: labels[LABELS.tenant] ?? '', namespace, userId: labels[LABELS.userId] };
        const patch = adoptionPatch(pod, id, config.instance, input.metadata ?? {});
        try {
          await core.patchNamespacedPod({ name: podName(input.sandboxId), namespace, body: patch });
        } catch (err) {
          if (kubeStatus(err) === 404) throw fail('CONTAINER_EXITED', `the warm pool member for ${input.sandboxId} no longer exists`);
          throw rejected(err, 'cannot hand the pool member over');
        }
        const ports = Object.fromEntries(deps.declaredPorts(input.ports ?? []).map((p) => [String(p), p]));
        return { containerId: pod.metadata!.uid!, network: { hostNetwork: true, ports, host: progress.podIP } };
      }),
    pauseContainer: async () => {
      throw unsupported('pause');
    },
    resumeContainer: async () => {
      throw unsupported('resume');
    },
    findSnapshotSource: async () => {
      throw unsupported('snapshots');
    },
    commitSnapshot: async () => {
      throw unsupported('snapshots');
    },
    inspectSnapshotImage: async () => {
      throw unsupported('snapshots');
    },
    removeSnapshotImage: async () => ({ outcome: 'absent' as const }),

    /** Delete the pod at once (grace 0) and its pull secret; wait until the pod object is gone. */
    removeContainers: (input) =>
      heartbeating(async () => {
        const namespace = await locate(input.sandboxId, input.namespace);
        const pod = await readPod(namespace, input.sandboxId);
        // Another install's pod of that name (ensureContainer refused to adopt it): neither it nor a
        // secret of its name is ours to delete.
        if (pod && !isOurs(pod, input.sandboxId)) return { removed: 0 };
        if (pod) await faults.reached('container-removing', input.sandboxId);
        const removed = (await deleteSandboxPod(core, namespace, input.sandboxId)) ? 1 : 0;
        // Grace 0 removes the object at once, unless a finalizer holds it: wait (heartbeating) for that.
        const ctx = Context.current();
        while (pod) {
          const left = await readPod(namespace, input.sandboxId);
          if (!left || left.metadata?.uid !== pod.metadata?.uid) break;
          ctx.heartbeat('waiting for the pod to go');
          await ctx.sleep(pollMs);
        }
        return { removed };
      }),
  });
}
