import { mkdirSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { Context } from '@temporalio/activity';
import { TideboxError } from '../../core/errors';
import { fail, heartbeating } from '../common';
import type { HostVolume, PvcVolume, SandboxNetwork, SandboxSpec } from '../../core/sandbox';
import { SNAPSHOT_REPOSITORY } from '../../core/snapshots';
import { checkResolvedHostPaths, resolveWithinScope } from '../../core/storage';
import type { Faults } from '../faults';
import { LABELS, MountBind } from './container-spec';
import { dockerStatus, DockerRuntime } from './docker-runtime';

export interface HostActivityDeps {
  runtime: DockerRuntime;
  instance: string;
  allowedHostPaths: string[];
  startupGraceMs: number;
  hostNetwork: boolean;
  /** A sandbox's declared ports given the ones its request added (configured + requested). */
  declaredPorts: (requested: number[]) => number[];
  /** Where this host's ports are reached (docker.endpointHost ?? publishHost). */
  advertisedHost: string;
  faults: Faults;
}

/**
 * Activities bound to one Docker host (task queue `<queue>-host-<hostId>`). Each is idempotent:
 * it looks for the sandbox's container by label before acting, so a retry after a worker crash
 * adopts what the crashed attempt made instead of making a second one.
 */
export function createHostActivities(deps: HostActivityDeps) {
  const { runtime, instance, allowedHostPaths, startupGraceMs, hostNetwork, faults } = deps;
  /** The sandbox's one container, or a non-retryable failure when it is gone. */
  const theContainer = async (sandboxId: string): Promise<string> => {
    const [container] = await runtime.findSandboxContainers(sandboxId);
    if (!container) throw fail('CONTAINER_EXITED', `the container of sandbox ${sandboxId} no longer exists`);
    return container.Id;
  };

  return {
    ensureContainer: (input: { sandboxId: string; tenant: string; namespace?: string; spec: SandboxSpec; mountBinds?: MountBind[] }) => heartbeating(async (): Promise<{ containerId: string }> => {
      const existing = await runtime.findSandboxContainers(input.sandboxId);
      if (existing[0]) return { containerId: existing[0].Id };


      if (!(await runtime.hasImage(input.spec.image.uri))) {
        try {
          await runtime.pullImage(input.spec.image.uri, () => Context.current().heartbeat('pulling'));
        } catch (err) {
          throw fail('IMAGE_UNAVAILABLE', `image ${input.spec.image.uri} is not available: ${(err as Error).message}`);
        }
      }

      // The API checked too, but this is the host that binds, and links may have changed since: resolve
      // right before create and bind the resolved paths.
      let volumes: SandboxSpec['volumes'];
      const pvcBinds: MountBind[] = [];
      try {
        volumes = input.spec.volumes.map((v) => prepareHostVolume(v, allowedHostPaths));
        for (const pvc of input.spec.pvcs ?? []) {
          const root = await runtime.volumeDirectory(pvc.claimName, pvc.createIfNotExists, {
            [LABELS.managed]: 'true',
            [LABELS.instance]: instance,
            [LABELS.createdBy]: input.sandboxId,
          });
          if (root === undefined) throw new TideboxError('INVALID_PARAMETER', `volume "${pvc.name}": named volume ${pvc.claimName} does not exist (createIfNotExists is false)`);
          pvcBinds.push({ hostPath: preparePvcDirectory(pvc, root), mountPath: pvc.mountPath, readOnly: pvc.readOnly });
        }
      } catch (err) {
        if (err instanceof TideboxError) throw fail('RUNTIME_REJECTED', err.message);
        throw err;
      }
      if (Context.current().cancellationSignal.aborted) throw new Error('attempt cancelled before create');

      let containerId: string;
      try {
        containerId = await runtime.createContainer(
          { instance, sandboxId: input.sandboxId, tenant: input.tenant, namespace: input.namespace ?? 'default' },
          { ...input.spec, volumes },
          [...pvcBinds, ...(input.mountBinds ?? [])],
        );
      } catch (err) {
        const status = dockerStatus(err);
        if (status === 409) {
          // Name taken: a concurrent attempt created it first. Adopt that one.
          const raced = await runtime.findSandboxContainers(input.sandboxId);
          if (raced[0]) return { containerId: raced[0].Id };
        }
        if (status === 400 || status === 404) {
          throw fail('RUNTIME_REJECTED', `Docker rejected the container: ${(err as Error).message}`);
        }
        throw err;
      }
      await faults.reached('container-created', input.sandboxId);
      return { containerId };
    }),

    startContainer: (input: { sandboxId: string; namespace?: string; ports?: number[] }) => heartbeating(async (): Promise<{ containerId: string; network: SandboxNetwork }> => {
      const [container] = await runtime.findSandboxContainers(input.sandboxId);
      if (!container) throw new Error(`container of sandbox ${input.sandboxId} disappeared before start`);
      await runtime.startContainer(container.Id);
      await runtime.exitsWithin(container.Id, startupGraceMs);
      const state = await runtime.inspectState(container.Id);
      if (!state.Running) {
        const logs = await runtime.logsTail(container.Id, 20).catch(() => '');
        throw fail(
          'CONTAINER_EXITED',
          `entrypoint exited with code ${state.ExitCode ?? 'unknown'}${state.Error ? ` (${state.Error})` : ''}` +
            (logs ? `; last output: ${logs.slice(-500)}` : ''),
        );
      }
      const declared = deps.declaredPorts(input.ports ?? []);
      const ports = hostNetwork ? Object.fromEntries(declared.map((p) => [String(p), p])) : await runtime.publishedPorts(container.Id);
      return { containerId: container.Id, network: { hostNetwork, ports, host: deps.advertisedHost } };
    }),

    pauseContainer: (input: { sandboxId: string }) => heartbeating(async (): Promise<void> => {
      const containerId = await theContainer(input.sandboxId);
      await faults.reached('container-pausing', input.sandboxId);
      await runtime.pause(containerId);
    }),

    resumeContainer: (input: { sandboxId: string }) => heartbeating(async (): Promise<void> => {
      await runtime.unpause(await theContainer(input.sandboxId));
    }),

    // ---- snapshots: each step idempotent, so a retried or resumed step never commits twice ----

    /** The container of the snapshot's source sandbox. */
    findSnapshotSource: async (input: { sandboxId: string }): Promise<{ containerId: string }> => {
      const [container] = await runtime.findSandboxContainers(input.sandboxId);
      if (!container) throw fail('SNAPSHOT_SOURCE_GONE', `sandbox ${input.sandboxId} has no container on this host any more`);
      return { containerId: container.Id };
    },

    /**
     * Commit the container to `tidebox-snapshots:<snapshotId>`. An image already carrying this
     * snapshot's label is adopted: the attempt that made it died before reporting.
     */
    commitSnapshot: (input: { snapshotId: string; tenant: string; containerId: string }) => heartbeating(async (): Promise<{ imageId: string; adopted: boolean }> => {
      const ref = `${SNAPSHOT_REPOSITORY}:${input.snapshotId}`;
      const existing = await runtime.imageInfo(ref);
      if (existing && existing.labels[LABELS.snapshotId] === input.snapshotId) return { imageId: existing.id, adopted: true };
      await faults.reached('snapshot-committing', input.snapshotId);
      faults.failIf('snapshot-commit', () => fail('SNAPSHOT_FAILED', 'commit failed: injected fault (faults.failAt = snapshot-commit)'));
      if (Context.current().cancellationSignal.aborted) throw new Error('attempt cancelled before commit');
      try {
        const imageId = await runtime.commit(input.containerId, SNAPSHOT_REPOSITORY, input.snapshotId, {
          [LABELS.managed]: 'true',
          [LABELS.instance]: instance,
          [LABELS.snapshotId]: input.snapshotId,
          [LABELS.tenant]: input.tenant,
        });
        return { imageId, adopted: false };
      } catch (err) {
        if (dockerStatus(err) === 404) throw fail('SNAPSHOT_SOURCE_GONE', `the container ${input.containerId.slice(0, 12)} no longer exists`);
        if (dockerStatus(err) === 409) throw fail('SNAPSHOT_FAILED', `Docker refused the commit: ${(err as Error).message}`);
        throw err;
      }
    }),

    /** The committed image's id and size; fails when it is gone or is not this snapshot's. */
    inspectSnapshotImage: async (input: { snapshotId: string }): Promise<{ imageId: string; sizeBytes: number }> => {
      const info = await runtime.imageInfo(`${SNAPSHOT_REPOSITORY}:${input.snapshotId}`);
      if (!info || info.labels[LABELS.snapshotId] !== input.snapshotId) {
        throw fail('SNAPSHOT_FAILED', `image ${SNAPSHOT_REPOSITORY}:${input.snapshotId} is missing after the commit`);
      }
      return { imageId: info.id, sizeBytes: info.size };
    },

    /** Remove the snapshot's image; `in-use` when a container still runs it (nothing removed). */
    removeSnapshotImage: async (input: { snapshotId: string }): Promise<{ outcome: 'removed' | 'absent' | 'in-use' }> => {
      const ref = `${SNAPSHOT_REPOSITORY}:${input.snapshotId}`;
      const info = await runtime.imageInfo(ref);
      // Only ever remove an image this snapshot made.
      if (!info || info.labels[LABELS.snapshotId] !== input.snapshotId) return { outcome: 'absent' };
      return { outcome: await runtime.removeImage(ref) };
    },

    removeContainers: (input: { sandboxId: string; namespace?: string }) => heartbeating(async (): Promise<{ removed: number }> => {
      const containers = await runtime.findSandboxContainers(input.sandboxId);
      if (containers.length) await faults.reached('container-removing', input.sandboxId);
      let removed = 0;
      for (const c of containers) {
        if (await runtime.removeContainer(c.Id)) removed++;
      }
      return { removed };
    }),
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;

/**
 * Resolve a host volume right before binding it. Scoped volumes: check that symlinks do not lead out
 * of the user's area, create what is missing, and check again (a link placed meanwhile is caught);
 * the resolved path is what Docker binds.
 */
function prepareHostVolume(v: HostVolume, allowedHostPaths: string[]): HostVolume {
  const [checked] = checkResolvedHostPaths([v], allowedHostPaths, realpathOrUndefined);
  if (!v.scope) return checked!;
  mkdirSync(checked!.hostPath, { recursive: true, mode: 0o755 });
  const again = checkResolvedHostPaths([v], allowedHostPaths, realpathOrUndefined)[0]!;
  if (realpathOrUndefined(again.hostPath) !== again.hostPath) throw new TideboxError('INVALID_PARAMETER', `volume "${v.name}": ${v.hostPath} could not be created`);
  return again;
}

/** The host directory to bind for a pvc volume: `<volume root>/<subPath>`, confined to `<root>/<scope>`. */
function preparePvcDirectory(v: PvcVolume, root: string): string {
  const path = posix.join(root, v.subPath);
  const scope = posix.join(root, v.scope);
  const first = resolveWithinScope(v.name, path, scope, realpathOrUndefined);
  if (!first.exists) mkdirSync(first.path, { recursive: true, mode: 0o755 });
  const resolved = resolveWithinScope(v.name, path, scope, realpathOrUndefined);
  if (!resolved.exists) throw new TideboxError('INVALID_PARAMETER', `volume "${v.name}": ${path} could not be created`);
  return resolved.path;
}

function realpathOrUndefined(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
