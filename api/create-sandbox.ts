import { bucketVolumesOffered, type Config, placementOf, runtimeHostId, runtimeKind } from '../core/config';
import { normalizeCreateRequest } from '../core/create-request';
import { notOnKubernetes, TideboxError } from '../core/errors';
import { mountKey, mountKeyHmacKey } from '../core/mount-key';
import { controlPlanePorts } from '../core/network';
import { effectiveQuota, perSandboxProblem } from '../core/quotas';
import type { SandboxSpec } from '../core/sandbox';
import type { CreateSandboxRequest } from '../core/schemas';
import { checkPvcPaths, checkResolvedHostPaths } from '../core/storage';
import type { Caller, TenantCaller } from '../core/tenants';
import { realpathOrUndefined } from '../platform/fs';
import type { NamespaceCheck } from './kube-namespaces';
import type { SnapshotService } from './temporal';

/**
 * Turns a create request into the spec the sandbox actor runs, refusing early (with a 4xx) what would
 * only fail later: an unknown or unusable snapshot, a missing Kubernetes namespace, host paths that
 * lead outside what the tenant may bind. The host that binds checks paths again right before create.
 */
export function createSpecPreparer(deps: { config: Config; snapshots: SnapshotService; namespaces?: NamespaceCheck }) {
  const { config, snapshots, namespaces } = deps;
  const onKubernetes = config.runtime.type === 'kubernetes';
  const mountKeys = bucketVolumesOffered(config) ? mountKeyHmacKey(config.security.payloadKey!) : undefined;

  const placement = placementOf(config);

  /**
   * A snapshot a new sandbox can start from: the caller's, Ready, and on a host the sandbox may go to —
   * this API's own host or (`placed`, a plain create) one it places on, for the sandbox runs where its image is.
   */
  async function restorable(caller: Caller, snapshotId: string, placed: boolean) {
    const snapshot = await snapshots.get(caller, snapshotId);
    if (snapshot.status.state !== 'Ready') {
      throw new TideboxError(
        'SNAPSHOT_INVALID_STATE',
        `snapshot ${snapshotId} is ${snapshot.status.state}; only a Ready snapshot can be restored`,
      );
    }
    if (placed ? !placement.serves(snapshot.hostId) : snapshot.hostId !== runtimeHostId(config)) {
      throw new TideboxError(
        'SNAPSHOT_INVALID_STATE',
        placed
          ? `snapshot ${snapshotId} lives on Docker host ${snapshot.hostId}, which this API does not place on; restore it through that host's API`
          : `snapshot ${snapshotId} lives on Docker host ${snapshot.hostId}; a pool's members are made on ${runtimeHostId(config)}`,
      );
    }
    return snapshot;
  }

  /** The spec, and the host it must run on (a restored snapshot's; otherwise placement decides). */
  async function prepare(
    caller: TenantCaller,
    body: CreateSandboxRequest,
    placed: boolean,
  ): Promise<{ spec: SandboxSpec; hostId?: string }> {
    if (onKubernetes && body.snapshotId !== undefined) throw notOnKubernetes('restoring a snapshot');
    const snapshot = body.snapshotId && !body.image ? await restorable(caller, body.snapshotId, placed) : undefined;
    const spec = normalizeCreateRequest(body, config.sandbox, {
      tenant: caller.tenant,
      runtime: runtimeKind(config),
      payloadsEncrypted: !!config.security.payloadKey,
      ...(snapshot ? { snapshot: { id: snapshot.id, image: snapshot.image } } : {}),
      ...(mountKeys ? { mountKeyOf: (source) => mountKey(caller.tenant, source, mountKeys) } : {}),
    });
    const tooBig = perSandboxProblem(
      { cpuMillis: spec.resources.cpuMillis, memoryBytes: spec.resources.memoryBytes, timeoutSeconds: spec.timeoutSeconds },
      effectiveQuota(config.quotas, caller.quotas),
    );
    if (tooBig) throw new TideboxError('INVALID_PARAMETER', tooBig);
    if (onKubernetes) {
      // Host paths live on the cluster's nodes, not here: only the lexical checks above apply.
      if (namespaces && !(await namespaces.exists(caller.namespace))) {
        throw new TideboxError(
          'INVALID_PARAMETER',
          `namespace ${caller.namespace} of tenant ${caller.tenant} does not exist on the cluster; an operator must create it first`,
        );
      }
    } else {
      if (config.docker.network === 'host') {
        const reserved = controlPlanePorts(config).filter((port) => spec.ports.includes(port));
        if (reserved.length)
          throw new TideboxError(
            'INVALID_PARAMETER',
            `port ${reserved.join(', ')} belongs to this server's control plane, not to a sandbox`,
          );
      }
      // Early answers for paths this process can see; the host that binds checks again right before create.
      checkResolvedHostPaths(spec.volumes, config.sandbox.allowedHostPaths, realpathOrUndefined);
      checkPvcPaths(spec.pvcs ?? [], config.docker.volumeRoot, realpathOrUndefined);
    }
    return { spec, ...(snapshot ? { hostId: snapshot.hostId } : {}) };
  }

  /** A spec for this API's own host (pool templates, pool claims). */
  const prepareHere = async (caller: TenantCaller, body: CreateSandboxRequest): Promise<SandboxSpec> =>
    (await prepare(caller, body, false)).spec;
  /** A plain create: may restore a snapshot from any host this API places on (`hostId` then says which). */
  return Object.assign(prepareHere, { placed: (caller: TenantCaller, body: CreateSandboxRequest) => prepare(caller, body, true) });
}

export type SpecPreparer = ReturnType<typeof createSpecPreparer>;
