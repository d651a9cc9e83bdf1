import type { Config } from '../core/config';
import { TideboxError } from '../core/errors';

/** Does a tenant's namespace exist on the cluster? Asked before a create, so a missing one is a 400, not a Failed sandbox. */
export interface NamespaceCheck {
  exists(namespace: string): Promise<boolean>;
}

const POSITIVE_TTL_MS = 30_000;
const MAX_CACHED = 10_000;

/**
 * Reads `GET /api/v1/namespaces/{name}` (RBAC: namespaces get). Existing namespaces are remembered
 * for 30 s; a missing one is asked about again every time, so creating it takes effect at once.
 */
export async function createNamespaceCheck(config: Pick<Config, 'kubernetes'>): Promise<NamespaceCheck> {
  // The client is an ES module: load it only when the Kubernetes runtime is configured.
  const { loadKubeConfig, CoreV1Api, kubeStatus, kubeMessage } = await import('../platform/kube');
  const core = loadKubeConfig(config).makeApiClient(CoreV1Api);
  const known = new Map<string, number>();
  return {
    async exists(namespace) {
      if ((known.get(namespace) ?? 0) > Date.now()) return true;
      try {
        await core.readNamespace({ name: namespace });
      } catch (err) {
        if (kubeStatus(err) === 404) {
          known.delete(namespace);
          return false;
        }
        throw new TideboxError('BACKEND_UNAVAILABLE', `cannot check namespace ${namespace} on the Kubernetes API: ${kubeMessage(err)}`, {
          cause: err,
        });
      }
      if (known.size >= MAX_CACHED) known.clear();
      known.set(namespace, Date.now() + POSITIVE_TTL_MS);
      return true;
    },
  };
}
