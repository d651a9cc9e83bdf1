import { readFileSync } from 'node:fs';
import { loadYaml, type CoreV1Api } from '@kubernetes/client-node';
import { unlessNotFound } from '../../platform/kube';
import { podName, pullSecretName } from './pod-spec';

/**
 * Delete a sandbox's pod at once (grace 0) and its pull secret, each if it exists. True when a pod
 * was deleted. The caller has made sure the pod is this install's.
 */
export async function deleteSandboxPod(core: CoreV1Api, namespace: string, sandboxId: string): Promise<boolean> {
  const deleted = await unlessNotFound(() => core.deleteNamespacedPod({ name: podName(sandboxId), namespace, gracePeriodSeconds: 0 }));
  await unlessNotFound(() => core.deleteNamespacedSecret({ name: pullSecretName(sandboxId), namespace }));
  return deleted !== undefined;
}

/** The operator's pod template (YAML), read and checked at start-up. */
export function readPodTemplate(path: string | undefined): Record<string, unknown> | undefined {
  if (!path) return undefined;
  const parsed = loadYaml(readFileSync(path, 'utf8'));
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Error(`kubernetes.podTemplateFile ${path}: must hold a YAML mapping (a partial Pod)`);
  const kind = (parsed as { kind?: unknown }).kind;
  if (kind !== undefined && kind !== 'Pod') throw new Error(`kubernetes.podTemplateFile ${path}: kind must be Pod`);
  return parsed as Record<string, unknown>;
}
