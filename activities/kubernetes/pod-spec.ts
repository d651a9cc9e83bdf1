/**
 * What the Kubernetes runtime asks the API server for, as plain objects: the sandbox's pod, its image
 * pull secret and a claim made on request, and how a pod's status reads as sandbox progress. No I/O
 * here (and only type imports of the client), so all of it is unit-tested without a cluster.
 */
import type { V1PersistentVolumeClaim, V1Pod, V1Secret } from '@kubernetes/client-node';
import { LABELS } from '../../contracts/labels';
import type { HostVolume, SandboxSpec } from '../../core/sandbox';
import { isUnderAllowedPrefix, normalizeAbsolute } from '../../core/storage';

export const SANDBOX_CONTAINER = 'sandbox';
export const podName = (sandboxId: string): string => `sandbox-${sandboxId}`;
export const pullSecretName = (sandboxId: string): string => `sandbox-${sandboxId}-pull`;
/** Every metadata entry, label-valid or not, as JSON (labels carry only the label-valid ones). */
export const METADATA_ANNOTATION = 'tidebox.io/metadata';
/** The user id, also when it is no label value (then it is only here). */
export const USER_ID_ANNOTATION = 'tidebox.io/user-id';

/** A Kubernetes label value: at most 63 characters, alphanumeric at both ends, `-_.` inside. */
const isLabelValue = (v: string): boolean => v.length <= 63 && /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v);
/** A label key's name part (no prefix): the same alphabet, not empty. */
const isLabelName = (k: string): boolean => k !== '' && isLabelValue(k);
/**
 * User metadata becomes pod labels only under this prefix: a tenant can never set a label that a
 * NetworkPolicy, Service or operator's selector means (`app`, `app.kubernetes.io/component`,
 * `tidebox.io/...`, the pod template's own), whatever key it chooses.
 */
export const METADATA_LABEL_PREFIX = 'metadata.tidebox.io/';

export interface PodSettings {
  instance: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** For sandboxes with image.auth: a private image pulled with one tenant's credentials must not run, cached, for another. */
  authImagePullPolicy: 'Always' | 'IfNotPresent';
  /** ephemeral-storage request = limit of the sandbox container. */
  ephemeralStorage: string;
  runAsNonRoot: boolean;
  /** Container ports the sandbox declares (configured + requested). */
  ports: number[];
  /** Parsed podTemplateFile: deep-merged under the generated pod. */
  template?: Record<string, unknown>;
  /** sandbox.allowedHostPaths: a legacy-layout host volume is confined to the one holding it. */
  allowedHostPaths: string[];
}

export interface PodIdentity {
  sandboxId: string;
  tenant: string;
  namespace: string;
  userId?: string;
  /** A warm pool's member: its pool actor's workflow id (`pool/<tenant>/<name>`). */
  pool?: string;
}

/** A pool member's pod: the label holds the pool's name (a label value), the annotation its actor's workflow id. */
export const POOL_ANNOTATION = 'tidebox.io/pool';

/**
 * The JSON Patch that hands a pool member's pod to the sandbox that claimed it: the pool's label and
 * annotation go, the sandbox's metadata comes (labels and the annotation, as a create would have
 * set them). Built from the pod as read, so a retried adoption removes only what is still there.
 */
export function adoptionPatch(pod: V1Pod, id: PodIdentity, instance: string, metadata: Record<string, string>): object[] {
  const esc = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');
  const labels = sandboxLabels(id, instance, metadata);
  const ops: object[] = Object.entries(labels)
    .filter(([k, v]) => pod.metadata?.labels?.[k] !== v)
    .map(([k, v]) => ({ op: 'add', path: `/metadata/labels/${esc(k)}`, value: v }));
  if (pod.metadata?.labels?.[LABELS.pool] !== undefined) ops.push({ op: 'remove', path: `/metadata/labels/${esc(LABELS.pool)}` });
  if (pod.metadata?.annotations?.[POOL_ANNOTATION] !== undefined)
    ops.push({ op: 'remove', path: `/metadata/annotations/${esc(POOL_ANNOTATION)}` });
  ops.push({ op: 'add', path: `/metadata/annotations/${esc(METADATA_ANNOTATION)}`, value: JSON.stringify(metadata) });
  return ops;
}

/**
 * Tidebox's labels, and the metadata entries whose key is a label name and whose value is a label
 * value, as `metadata.tidebox.io/<key>` (all entries are in the annotation `tidebox.io/metadata`).
 */
export function sandboxLabels(id: PodIdentity, instance: string, metadata: Record<string, string>): Record<string, string> {
  const user: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata))
    if (isLabelName(key) && isLabelValue(value)) user[`${METADATA_LABEL_PREFIX}${key}`] = value;
  return {
    ...user,
    [LABELS.managed]: 'true',
    [LABELS.instance]: instance,
    [LABELS.sandboxId]: id.sandboxId,
    [LABELS.tenant]: id.tenant,
    ...(id.userId && isLabelValue(id.userId) ? { [LABELS.userId]: id.userId } : {}),
  };
}

/**
 * A host volume as a hostPath volume and a subPath inside it. The hostPath is the directory the
 * volume must stay in — the user's area (scoped layout) or the allowed prefix holding the path
 * (legacy) — and the rest is the mount's subPath: the kubelet resolves a subPath's symlinks and
 * refuses one that leads out of its volume, while a hostPath itself would follow a link planted by
 * another sandbox anywhere on the node.
 */
export function hostVolumeSource(
  v: HostVolume,
  allowedHostPaths: string[],
): { path: string; type: 'DirectoryOrCreate' | 'Directory'; subPath: string } {
  const root = v.scope ?? allowedHostPaths.map(normalizeAbsolute).find((prefix) => isUnderAllowedPrefix(v.hostPath, [prefix]));
  // The API admitted only paths under an allowed prefix; a sandbox recorded under another configuration is refused here.
  if (root === undefined) throw new Error(`host path ${v.hostPath} is outside the allowed host paths`);
  const subPath = v.hostPath === root ? '' : v.hostPath.slice(root === '/' ? 1 : root.length + 1);
  // Scoped: the user's area may not exist yet on the node. Legacy: the allowed prefix must.
  return { path: root, type: v.scope ? 'DirectoryOrCreate' : 'Directory', subPath };
}

const quantityMillis = (millis: number): string => (millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`);
const quantityBytes = (bytes: number): string => (bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)}Mi` : String(bytes));

/** The sandbox's pod: one container, requests = limits, locked-down security context, never restarted. */
export function buildPod(id: PodIdentity, spec: SandboxSpec, settings: PodSettings): V1Pod {
  const limits: Record<string, string> = {
    cpu: quantityMillis(spec.resources.cpuMillis),
    memory: quantityBytes(spec.resources.memoryBytes),
    ...(spec.resources.gpu ? { 'nvidia.com/gpu': String(spec.resources.gpu) } : {}),
    'ephemeral-storage': settings.ephemeralStorage,
  };
  const volumes: NonNullable<NonNullable<V1Pod['spec']>['volumes']> = [];
  const volumeMounts: Array<{ name: string; mountPath: string; readOnly: boolean; subPath?: string }> = [];
  spec.volumes.forEach((v, i) => {
    const name = `host-${i}`;
    const { path, type, subPath } = hostVolumeSource(v, settings.allowedHostPaths);
    volumes.push({ name, hostPath: { path, type } });
    volumeMounts.push({ name, mountPath: v.mountPath, readOnly: v.readOnly, ...(subPath ? { subPath } : {}) });
  });
  (spec.pvcs ?? []).forEach((v, i) => {
    const name = `pvc-${i}`;
    volumes.push({ name, persistentVolumeClaim: { claimName: v.claimName, readOnly: v.readOnly } });
    volumeMounts.push({ name, mountPath: v.mountPath, readOnly: v.readOnly, ...(v.subPath ? { subPath: v.subPath } : {}) });
  });

  const generated: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(id.sandboxId),
      namespace: id.namespace,
      labels: {
        ...sandboxLabels(id, settings.instance, spec.metadata),
        ...(id.pool ? { [LABELS.pool]: id.pool.slice(id.pool.lastIndexOf('/') + 1) } : {}),
      },
      annotations: {
        [METADATA_ANNOTATION]: JSON.stringify(spec.metadata),
        ...(id.userId ? { [USER_ID_ANNOTATION]: id.userId } : {}),
        ...(id.pool ? { [POOL_ANNOTATION]: id.pool } : {}),
      },
    },
    spec: {
      restartPolicy: 'Never',
      // A sandbox runs untrusted code: no API credentials, no service environment variables.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: {
        seccompProfile: { type: 'RuntimeDefault' },
        ...(settings.runAsNonRoot ? { runAsNonRoot: true } : {}),
      },
      ...(spec.imageAuth ? { imagePullSecrets: [{ name: pullSecretName(id.sandboxId) }] } : {}),
      containers: [
        {
          name: SANDBOX_CONTAINER,
          image: spec.image.uri,
          command: spec.entrypoint,
          env: Object.entries(spec.env).map(([name, value]) => ({ name, value })),
          ...(spec.imageAuth
            ? { imagePullPolicy: settings.authImagePullPolicy }
            : settings.imagePullPolicy
              ? { imagePullPolicy: settings.imagePullPolicy }
              : {}),
          resources: { requests: { ...limits }, limits },
          securityContext: {
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
            ...(settings.runAsNonRoot ? { runAsNonRoot: true } : {}),
          },
          ports: settings.ports.map((containerPort) => ({ containerPort, protocol: 'TCP' })),
          ...(volumeMounts.length ? { volumeMounts } : {}),
        },
      ],
      ...(volumes.length ? { volumes } : {}),
    },
  };
  return settings.template ? (deepMerge(settings.template, generated as unknown as Record<string, unknown>) as V1Pod) : generated;
}

/**
 * `over` merged onto `base`: objects recursively, lists of named items (containers, volumes, env)
 * by name, other lists replaced. What Tidebox generates always wins over the template.
 */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (Array.isArray(base) && Array.isArray(over)) {
    const named = (items: unknown[]) => items.every((x) => isObject(x) && typeof x.name === 'string');
    if (!named(base) || !named(over)) return over;
    const merged = base.map((b) => {
      const match = over.find((o) => (o as { name: string }).name === (b as { name: string }).name);
      return match ? deepMerge(b, match) : b;
    });
    for (const o of over) if (!base.some((b) => (b as { name: string }).name === (o as { name: string }).name)) merged.push(o);
    return merged;
  }
  if (isObject(base) && isObject(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(over)) out[key] = key in base ? deepMerge(base[key], value) : value;
    return out;
  }
  return over === undefined ? base : over;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Which registry an image reference pulls from, as a docker config `auths` key. */
export function registryOf(image: string): string {
  const first = image.split('/')[0]!;
  const hasRegistry = image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  return hasRegistry ? first : 'https://index.docker.io/v1/';
}

/** The image pull secret (type dockerconfigjson); given its pod, owned by it so it never outlives it. */
export function buildPullSecret(
  id: PodIdentity,
  instance: string,
  image: string,
  auth: { username: string; password: string },
  owner?: { name: string; uid: string },
): V1Secret {
  const config = {
    auths: {
      [registryOf(image)]: {
        username: auth.username,
        password: auth.password,
        auth: Buffer.from(`${auth.username}:${auth.password}`).toString('base64'),
      },
    },
  };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/dockerconfigjson',
    metadata: {
      name: pullSecretName(id.sandboxId),
      namespace: id.namespace,
      labels: { [LABELS.managed]: 'true', [LABELS.instance]: instance, [LABELS.sandboxId]: id.sandboxId, [LABELS.tenant]: id.tenant },
      ...(owner
        ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: owner.name, uid: owner.uid, blockOwnerDeletion: false }] }
        : {}),
    },
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') },
  };
}

/** A claim made for a pvc volume with createIfNotExists. */
export function buildClaim(
  namespace: string,
  claimName: string,
  instance: string,
  sandboxId: string,
  settings: { size: string; storageClass?: string; accessModes: string[] },
): V1PersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: claimName,
      namespace,
      labels: { [LABELS.managed]: 'true', [LABELS.instance]: instance, [LABELS.createdBy]: sandboxId },
    },
    spec: {
      accessModes: settings.accessModes,
      resources: { requests: { storage: settings.size } },
      ...(settings.storageClass ? { storageClassName: settings.storageClass } : {}),
    },
  };
}

/**
 * Container waiting reasons that will not resolve by waiting: the sandbox fails at once. Not
 * `ErrImagePull`: the kubelet's first failed pull (a registry hiccup, a rate limit) is retried, and
 * only its back-off after that failure is the verdict.
 */
const IMAGE_ERRORS = new Set(['ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);
const CONFIG_ERRORS = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError', 'CrashLoopBackOff']);

export type PodProgress =
  | { kind: 'running'; podIP: string }
  /** `named`: the scheduler or kubelet says why it waits (not merely "not scheduled yet"). */
  | { kind: 'pending'; reason: string; message: string; named: boolean }
  | {
      kind: 'failed';
      code: 'IMAGE_UNAVAILABLE' | 'RUNTIME_REJECTED' | 'CONTAINER_EXITED';
      reason: string;
      message: string;
      exitCode?: number;
    };

/** How far a pod has come, from its phase, conditions and the sandbox container's state. */
export function podProgress(pod: V1Pod): PodProgress {
  const status = pod.status ?? {};
  const container = status.containerStatuses?.find((c) => c.name === SANDBOX_CONTAINER) ?? status.containerStatuses?.[0];
  const terminated = container?.state?.terminated;
  if (status.phase === 'Failed' || status.phase === 'Succeeded' || terminated) {
    const exitCode = terminated?.exitCode;
    const why = terminated?.reason ?? status.reason ?? status.phase ?? 'Terminated';
    const detail = terminated?.message ?? status.message;
    return {
      kind: 'failed',
      code: 'CONTAINER_EXITED',
      reason: why,
      message: `pod ${status.phase ?? 'terminated'}: ${why}${exitCode !== undefined ? ` (exit code ${exitCode})` : ''}${detail ? `: ${detail}` : ''}`,
      ...(exitCode !== undefined ? { exitCode } : {}),
    };
  }
  const waiting = container?.state?.waiting;
  if (waiting?.reason && IMAGE_ERRORS.has(waiting.reason)) {
    const image = pod.spec?.containers?.find((c) => c.name === SANDBOX_CONTAINER)?.image ?? container?.image ?? '';
    return {
      kind: 'failed',
      code: 'IMAGE_UNAVAILABLE',
      reason: waiting.reason,
      message: `image ${image} cannot be pulled: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`,
    };
  }
  if (waiting?.reason && CONFIG_ERRORS.has(waiting.reason)) {
    return {
      kind: 'failed',
      code: 'RUNTIME_REJECTED',
      reason: waiting.reason,
      message: `the container cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`,
    };
  }
  if (status.phase === 'Running' && container?.state?.running && status.podIP) return { kind: 'running', podIP: status.podIP };
  const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') {
    return {
      kind: 'pending',
      reason: scheduled.reason ?? 'Unschedulable',
      message: scheduled.message ?? 'the pod cannot be scheduled',
      named: true,
    };
  }
  // Node names stay out: these messages reach the tenant, the cluster's layout is the operator's.
  if (waiting?.reason) return { kind: 'pending', reason: waiting.reason, message: waiting.message ?? waiting.reason, named: true };
  return {
    kind: 'pending',
    reason: status.phase ?? 'Pending',
    message: pod.spec?.nodeName ? 'scheduled, starting' : 'waiting to be scheduled',
    named: false,
  };
}
