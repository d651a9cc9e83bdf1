import type { NetworkingV1Api, V1NetworkPolicy } from '@kubernetes/client-node';
import { LABELS } from '../../contracts/labels';
import { ALWAYS_DENIED, type NetworkConfig } from '../../core/network';
import { kubeStatus } from '../../platform/kube';

export const SANDBOX_POLICY_NAME = 'tidebox-sandboxes';

/** Who may open connections to sandboxes: the Tidebox API (endpoint proxy), found by namespace and labels. */
export interface ApiPeer {
  namespace: string;
  labels: Record<string, string>;
}

/**
 * The default-deny NetworkPolicy of a tenant's namespace, for this install's sandbox pods:
 * - ingress only from the Tidebox API's pods and from the tenant's own sandboxes;
 * - egress to DNS (kube-dns), and to every address but link-local and the deny list — which by default
 *   holds the private ranges, so the cluster's control plane, Temporal and other tenants' pods are
 *   out of reach.
 * Enforced by the cluster's CNI (Calico, Cilium, ...); a CNI without NetworkPolicy ignores it.
 */
export function buildSandboxNetworkPolicy(
  namespace: string,
  instance: string,
  network: Pick<NetworkConfig, 'denyCidrs' | 'allowCidrs'>,
  api: ApiPeer,
): V1NetworkPolicy {
  const sandboxes = { matchLabels: { [LABELS.managed]: 'true', [LABELS.instance]: instance } };
  const except = [...new Set([...ALWAYS_DENIED, ...network.denyCidrs])];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: SANDBOX_POLICY_NAME, namespace, labels: { [LABELS.managed]: 'true', [LABELS.instance]: instance } },
    spec: {
      podSelector: sandboxes,
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        {
          _from: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': api.namespace } },
              podSelector: { matchLabels: api.labels },
            },
            { podSelector: sandboxes },
          ],
        },
      ],
      egress: [
        {
          to: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
              podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
            },
          ],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
        { to: [{ podSelector: sandboxes }] },
        ...network.allowCidrs.map((cidr) => ({ to: [{ ipBlock: { cidr } }] })),
        { to: [{ ipBlock: { cidr: '0.0.0.0/0', except } }] },
      ],
    },
  };
}

/** Create the namespace's policy, or bring an existing one up to date (create-or-replace; idempotent). */
export async function ensureSandboxNetworkPolicy(networking: NetworkingV1Api, policy: V1NetworkPolicy): Promise<void> {
  const namespace = policy.metadata!.namespace!;
  try {
    await networking.createNamespacedNetworkPolicy({ namespace, body: policy });
    return;
  } catch (err) {
    if (kubeStatus(err) !== 409) throw err;
  }
  const current = await networking.readNamespacedNetworkPolicy({ name: SANDBOX_POLICY_NAME, namespace });
  await networking.replaceNamespacedNetworkPolicy({
    name: SANDBOX_POLICY_NAME,
    namespace,
    body: { ...policy, metadata: { ...policy.metadata, resourceVersion: current.metadata?.resourceVersion } },
  });
}
