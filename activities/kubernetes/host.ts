import type { V1Pod } from '@kubernetes/client-node';
import type { Client } from '@temporalio/client';
import { SANDBOX_WORKFLOW_TYPE } from '../../contracts/sandbox-actor';
import type { HostLog, RuntimeHost } from '../../contracts/runtime';
import type { Config } from '../../core/config';
import type { SandboxView } from '../../core/sandbox';
import { CoreV1Api, loadKubeConfig, NetworkingV1Api } from '../../platform/kube';
import { buildSandboxNetworkPolicy, ensureSandboxNetworkPolicy } from './network-policy';
import { declaredPorts } from '../../core/network';
import { actorGone, poolHolds } from '../actor-liveness';
import { createFaults } from '../faults';
import { sandboxSignals } from '../sandbox-signals';
import { readPodTemplate } from './cluster';
import { createPodRuntime } from './pod-runtime';
import { POOL_ANNOTATION } from './pod-spec';
import { type OpenSandbox, watchPodExits } from './pod-watcher';

/** Open sandboxes one sweep looks at; beyond it, missing pods wait for a later sweep and no pod is judged an orphan. */
const SWEEP_SCAN_LIMIT = 10_000;

/**
 * A Kubernetes cluster as the worker runs it: pods in tenants' namespaces, and one cluster-wide pod
 * watch (with periodic sweeps against the open sandbox actors) for pods that end on their own.
 * Loaded with a dynamic import: the client is an ES module, and a Docker worker has no use for it.
 */
export async function createKubernetesHost(config: Config, client: Client, log: HostLog): Promise<RuntimeHost> {
  const kc = loadKubeConfig(config);
  const core = kc.makeApiClient(CoreV1Api);
  const signals = sandboxSignals(client);
  const { hostId } = config.kubernetes;

  /** The open sandbox actors of this install on this cluster, by visibility (bounded). */
  const openSandboxes = async () => {
    const items: OpenSandbox[] = [];
    const query = `WorkflowType = '${SANDBOX_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND TaskQueue = '${config.temporal.taskQueue}'`;
    let seen = 0;
    for await (const wf of client.workflow.list({ query })) {
      if (++seen > SWEEP_SCAN_LIMIT) return { items, complete: false };
      const view = wf.memo?.view as SandboxView | undefined;
      if (!view) return { items, complete: false }; // cannot tell whose it is: judge nothing
      if (view.hostId !== hostId) continue;
      items.push({
        sandboxId: view.id,
        state: view.status.state,
        namespace: view.namespace ?? 'default',
        ...(view.containerId ? { containerId: view.containerId } : {}),
      });
    }
    return { items, complete: true };
  };

  /**
   * The actor's own word (not visibility): closed, or Failed/Terminated, means its pod is an orphan —
   * unless the pod is a warm pool member its pool still holds (it has no sandbox actor yet).
   */
  const isOrphan = async (sandboxId: string, pod: V1Pod) => {
    const pool = pod.metadata?.annotations?.[POOL_ANNOTATION];
    if (pool && (await poolHolds(client, pool, sandboxId))) return false;
    return actorGone(client, sandboxId, { failedToo: true });
  };

  return {
    activities: createPodRuntime({
      core,
      ...(config.kubernetes.networkPolicy ? { ensureNetworkPolicy: networkPolicies(kc.makeApiClient(NetworkingV1Api), config) } : {}),
      config,
      declaredPorts: (ports) => declaredPorts({ ports }, config.docker),
      template: readPodTemplate(config.kubernetes.podTemplateFile),
      faults: createFaults(config),
      reportProgress: signals.reportProgress,
    }),
    watchExits: (signal) =>
      watchPodExits({
        kc,
        core,
        instance: config.instance,
        report: signals.reportExit,
        openSandboxes,
        isOrphan,
        signal,
        log: (msg) => log.warn(msg),
        sweepIntervalMs: config.kubernetes.sweepIntervalSeconds * 1000,
        orphanGraceMs: config.kubernetes.orphanGraceSeconds * 1000,
      }),
  };
}

/** Each tenant namespace gets the sandboxes' NetworkPolicy before its first pod (checked once per namespace per worker run). */
function networkPolicies(networking: NetworkingV1Api, config: Config): (namespace: string) => Promise<void> {
  const done = new Set<string>();
  return async (namespace) => {
    if (done.has(namespace)) return;
    const api = {
      namespace: config.kubernetes.apiNamespace,
      labels: { 'app.kubernetes.io/name': 'tidebox', 'app.kubernetes.io/component': 'api' },
    };
    await ensureSandboxNetworkPolicy(networking, buildSandboxNetworkPolicy(namespace, config.instance, config.network, api));
    done.add(namespace);
  };
}
