/**
 * The Kubernetes client, loaded one way for the API and the worker. @kubernetes/client-node 1.x is
 * an ES module; Node 20.19+ loads it from this CommonJS build with require(), so only code that runs
 * from dist/ imports this file (tests use their own small REST client).
 */
import { readFileSync } from 'node:fs';
import { ApiException, CoreV1Api, KubeConfig, loadYaml } from '@kubernetes/client-node';
import type { Config } from '../../core/config';
import { podName, pullSecretName } from './pod-spec';

export { CoreV1Api, KubeConfig };

/** kubeconfig from the configured path; in a pod without one, the service account; else ~/.kube/config. */
export function loadKubeConfig(config: Pick<Config, 'kubernetes'>): KubeConfig {
  const kc = new KubeConfig();
  if (config.kubernetes.kubeconfig) kc.loadFromFile(config.kubernetes.kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('no Kubernetes cluster configured (set kubernetes.kubeconfig or TIDEBOX_KUBECONFIG)');
  return kc;
}

/** The HTTP status of a failed API call (404, 409, ...), or undefined for a transport error. */
export function kubeStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/** The call's result, or undefined where the object does not exist (404); other failures throw. */
export async function unlessNotFound<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    if (kubeStatus(err) === 404) return undefined;
    throw err;
  }
}

/**
 * Delete a sandbox's pod at once (grace 0) and its pull secret, each if it exists. True when a pod
 * was deleted. The caller has made sure the pod is this install's.
 */
export async function deleteSandboxPod(core: CoreV1Api, namespace: string, sandboxId: string): Promise<boolean> {
  const deleted = await unlessNotFound(() => core.deleteNamespacedPod({ name: podName(sandboxId), namespace, gracePeriodSeconds: 0 }));
  await unlessNotFound(() => core.deleteNamespacedSecret({ name: pullSecretName(sandboxId), namespace }));
  return deleted !== undefined;
}

/** The API server's own message for a failed call (the Status object's `message`), else the error's. */
export function kubeMessage(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      if (body && typeof body.message === 'string') return body.message;
    } catch {
      // not JSON: fall through
    }
  }
  return (err as Error).message ?? String(err);
}

/** The operator's pod template (YAML), read and checked at start-up. */
export function readPodTemplate(path: string | undefined): Record<string, unknown> | undefined {
  if (!path) return undefined;
  const parsed = loadYaml(readFileSync(path, 'utf8'));
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`kubernetes.podTemplateFile ${path}: must hold a YAML mapping (a partial Pod)`);
  const kind = (parsed as { kind?: unknown }).kind;
  if (kind !== undefined && kind !== 'Pod') throw new Error(`kubernetes.podTemplateFile ${path}: kind must be Pod`);
  return parsed as Record<string, unknown>;
}
