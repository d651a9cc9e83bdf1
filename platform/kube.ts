/**
 * The Kubernetes client, loaded one way for the API (namespace checks) and the worker (pods).
 * @kubernetes/client-node 1.x is an ES module; Node 20.19+ loads it from this CommonJS build with
 * require(), so only code that runs from dist/ imports this file (tests use their own small REST
 * client), and callers that may not need it load it with a dynamic import.
 */
import { ApiException, CoreV1Api, KubeConfig, NetworkingV1Api } from '@kubernetes/client-node';
import type { Config } from '../core/config';

export { CoreV1Api, KubeConfig, NetworkingV1Api };

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
