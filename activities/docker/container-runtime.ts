import { mkdirSync } from 'node:fs';
import { posix } from 'node:path';
import { Context } from '@temporalio/activity';
import { LABELS } from '../../contracts/labels';
import type { CreateWorkloadInput, MountBind, SandboxRuntime, StartedWorkload, StartWorkloadInput } from '../../contracts/runtime';
import { TideboxError } from '../../core/errors';
import { imageReferenceProblem } from '../../core/image-reference';
import type { HostVolume, PvcVolume } from '../../core/sandbox';
import { checkResolvedHostPaths, resolveWithinScope, storageScopeProblem } from '../../core/storage';
import type { StorageLayout } from '../../core/tenants';
import { realpathOrUndefined } from '../../platform/fs';
import { fail, heartbeating } from '../common';
import type { Faults } from '../faults';
import type { BindPins } from './bind-pins';
import { dockerStatus, type DockerEngine } from './docker-engine';

export interface ContainerRuntimeDeps {
  engine: DockerEngine;
  instance: string;
  allowedHostPaths: string[];
  /** sandbox.storageLayout: with "scoped", every volume must lie in the actor's tenant's and user's area. */
  storageLayout: StorageLayout;
  startupGraceMs: number;
  /** docker.imagePullPolicy: whether a missing image is pulled or refused. */
  pullMissingImages: boolean;
  hostNetwork: boolean;
  /** A sandbox's declared ports given the ones its request added (configured + requested). */
  declaredPorts: (requested: number[]) => number[];
  /** The network a tenant's container joins, made ready (its tenant network, or the shared one). */
  networkFor: (tenant: string) => Promise<string>;
  /** Where this host's ports are reached (docker.endpointHost ?? publishHost). */
  advertisedHost: string;
  /** docker.hostVolumeBinding "pinned": host and pvc directories are bound through pins; absent: by resolved path. */
  pins?: BindPins;
  faults: Faults;
  /**
   * Where this process serves execd (the worker's listener): `prime` starts a sandbox's command shell
   * now and resolves once it waits (a warm pool member, before it is frozen; bounded here, failures
   * ignored); `forget` drops what execd keeps for a sandbox whose container was removed; `setPaused`
   * makes it refuse a sandbox while its container is frozen.
   */
  execd?: {
    prime(target: { id: string }): Promise<void>;
    forget(sandboxId: string): void;
    setPaused(sandboxId: string, paused: boolean): void;
  };
}

/** How long priming execd may hold a member's freeze: past it the member is frozen unprimed. */
const PRIME_EXECD_MS = 5_000;

/** A directory to bind, and the resolved area it must stay within. */
interface DirectoryBind extends MountBind {
  volume: string;
  within: string[];
}

/**
 * The sandbox runtime on one Docker host: one container per sandbox (`tidebox-<instance>-<id>`,
 * labelled with the sandbox id). Each activity is idempotent: it looks for the sandbox's container
 * by label before acting, so a retry after a worker crash adopts what the crashed attempt made
 * instead of making a second one.
 */
export function createContainerRuntime(deps: ContainerRuntimeDeps): SandboxRuntime {
  const { engine, instance, allowedHostPaths, storageLayout, startupGraceMs, pullMissingImages, hostNetwork, networkFor, pins, faults } =
    deps;
  /** The sandbox's one container, or a non-retryable failure when it is gone. */
  const theContainer = async (sandboxId: string): Promise<string> => {
    const [container] = await engine.findSandboxContainers(sandboxId);
    if (!container) throw fail('CONTAINER_EXITED', `the container of sandbox ${sandboxId} no longer exists`);
    return container.Id;
  };

  /** The sandbox's container, made now (`made`) or found made by an earlier attempt. */
  const ensure = async (input: CreateWorkloadInput): Promise<{ containerId: string; made: boolean }> => {
    const existing = await engine.findSandboxContainers(input.sandboxId);
    if (existing[0]) return { containerId: existing[0].Id, made: false };

    // The API checked the reference; this host checks again what it hands the engine (the input
    // may come from anyone who can start a workflow), and an engine refusal ends the create.
    const referenceProblem = imageReferenceProblem(input.spec.image.uri);
    if (referenceProblem) throw fail('RUNTIME_REJECTED', referenceProblem);
    let image: Awaited<ReturnType<DockerEngine['imageInfo']>>;
    try {
      image = await engine.imageInfo(input.spec.image.uri);
    } catch (err) {
      if (dockerStatus(err) !== 400) throw err;
      throw fail('IMAGE_UNAVAILABLE', `the engine refused the image reference ${input.spec.image.uri}`, err);
    }
    if (!image) {
      if (!pullMissingImages)
        throw fail('IMAGE_UNAVAILABLE', `image ${input.spec.image.uri} is not on this host, and this host does not pull images`);
      try {
        await engine.pullImage(input.spec.image.uri, () => Context.current().heartbeat('pulling'));
      } catch (err) {
        throw fail('IMAGE_UNAVAILABLE', `image ${input.spec.image.uri} is not available: ${(err as Error).message}`, err);
      }
      image = await engine.imageInfo(input.spec.image.uri);
    }
    // An image Tidebox made for a tenant (a snapshot) runs only for that tenant, whoever names it.
    const owner = image?.labels[LABELS.tenant];
    if (owner !== undefined && owner !== input.tenant)
      throw fail('RUNTIME_REJECTED', `image ${input.spec.image.uri} belongs to another tenant`);

    // Whose storage this is comes from the actor's tenant, never from a path in the input.
    const scopeProblem = storageScopeProblem(input.spec, input.tenant, storageLayout, allowedHostPaths);
    if (scopeProblem) throw fail('RUNTIME_REJECTED', scopeProblem);
    // The API checked too, but this is the host that binds, and links may have changed since: resolve
    // right before create, then bind exactly the directories checked (pinned) or their resolved paths.
    const directories: DirectoryBind[] = [];
    try {
      for (const v of input.spec.volumes) directories.push(prepareHostVolume(v, allowedHostPaths));
      for (const pvc of input.spec.pvcs ?? []) {
        const root = await engine.volumeDirectory(pvc.claimName, pvc.createIfNotExists, {
          [LABELS.managed]: 'true',
          [LABELS.instance]: instance,
          [LABELS.createdBy]: input.sandboxId,
        });
        if (root === undefined)
          throw new TideboxError(
            'INVALID_PARAMETER',
            `volume "${pvc.name}": named volume ${pvc.claimName} does not exist (createIfNotExists is false)`,
          );
        directories.push(preparePvcDirectory(pvc, root));
      }
      if (pins) {
        // A retry starts over: no container exists yet (checked above), so no pin is in use.
        await pins.release(input.sandboxId);
        for (const [i, d] of directories.entries()) {
          d.hostPath = (await pins.pin(input.sandboxId, i, d.volume, d.hostPath, d.within, d.readOnly)).path;
          // The pin is read-only itself. Asking Docker for ":ro" would make runc remount the bind,
          // which clears nosuid and nodev; a plain bind keeps every flag of the pin. (So `docker
          // inspect` shows RW for a read-only volume; the mount inside is ro.)
          d.readOnly = false;
        }
      }
    } catch (err) {
      await pins?.release(input.sandboxId);
      if (err instanceof TideboxError) throw fail('RUNTIME_REJECTED', err.message, err);
      throw err;
    }
    const binds: MountBind[] = directories.map(({ hostPath, mountPath, readOnly }) => ({ hostPath, mountPath, readOnly }));
    if (Context.current().cancellationSignal.aborted) {
      await pins?.release(input.sandboxId);
      throw new Error('attempt cancelled before create');
    }

    let containerId: string;
    const network = await networkFor(input.tenant);
    try {
      containerId = await engine.createContainer(
        {
          instance,
          sandboxId: input.sandboxId,
          tenant: input.tenant,
          namespace: input.namespace ?? 'default',
          network,
          ...(input.pool ? { pool: input.pool } : {}),
        },
        { ...input.spec, volumes: [] },
        [...binds, ...(input.mountBinds ?? [])],
      );
    } catch (err) {
      const status = dockerStatus(err);
      if (status === 409) {
        // Name taken: a concurrent attempt created it first. Adopt that one.
        const raced = await engine.findSandboxContainers(input.sandboxId);
        if (raced[0]) return { containerId: raced[0].Id, made: false };
      }
      await pins?.release(input.sandboxId);
      // An idle tenant network may be removed between ensuring it and creating the container: the retry makes it again.
      if (status === 404 && !(await engine.networkExists(network)))
        throw new Error(`network ${network} vanished before create`, { cause: err });
      if (status === 400 || status === 404) {
        throw fail('RUNTIME_REJECTED', `Docker rejected the container: ${(err as Error).message}`, err);
      }
      throw err;
    }
    await faults.reached('container-created', input.sandboxId);
    return { containerId, made: true };
  };

  /**
   * Start the sandbox's container (`pinned`: this attempt made it and holds its pins) and answer
   * once it runs, with its published ports.
   */
  const start = async (
    input: StartWorkloadInput,
    container: { Id: string; State?: string | undefined; Mounts?: { Source?: string | undefined }[] | null | undefined },
    pinned: boolean,
  ): Promise<StartedWorkload> => {
    if (
      pins &&
      !pinned &&
      container.State === 'created' &&
      !pins.allHeld((container.Mounts ?? []).flatMap((m) => (m.Source ? [m.Source] : [])))
    )
      throw fail('RUNTIME_REJECTED', 'a host volume of this sandbox is no longer pinned (the host restarted between create and start)');
    await engine.startContainer(container.Id);
    // With a grace period, an entrypoint that fails at once fails the create; without one (the
    // default) the create answers as soon as the container runs, and the exit watcher reports a
    // death after that (the sandbox goes Failed with its exit code and last output).
    await engine.exitsWithin(container.Id, startupGraceMs);
    // The running container holds its own copy of every bind: the pins have done their work.
    await pins?.release(input.sandboxId);
    const { state, ports: published } = await engine.stateAndPorts(container.Id);
    if (!state.Running) {
      const logs = await engine.logsTail(container.Id, 20).catch(() => '');
      throw fail(
        'CONTAINER_EXITED',
        `entrypoint exited with code ${state.ExitCode ?? 'unknown'}${state.Error ? ` (${state.Error})` : ''}` +
          (logs ? `; last output: ${logs.slice(-500)}` : ''),
      );
    }
    const declared = deps.declaredPorts(input.ports ?? []);
    const ports = hostNetwork ? Object.fromEntries(declared.map((p) => [String(p), p])) : published;
    return { containerId: container.Id, network: { hostNetwork, ports, host: deps.advertisedHost } };
  };

  /** The container an earlier step made, looked up by label. */
  const lookUp = async (sandboxId: string) => {
    const [container] = await engine.findSandboxContainers(sandboxId);
    if (!container) throw new Error(`container of sandbox ${sandboxId} disappeared before start`);
    return container;
  };

  return {
    ensureContainer: (input) => heartbeating(async () => ({ containerId: (await ensure(input)).containerId })),

    startContainer: (input) => heartbeating(async () => start(input, await lookUp(input.sandboxId), false)),

    createAndStartContainer: (input) =>
      heartbeating(async () => {
        // One step: the container this attempt makes is started as it is, with no second lookup.
        const { containerId, made: fresh } = await ensure(input);
        const container = fresh ? { Id: containerId, State: 'created' } : await lookUp(input.sandboxId);
        const ports = input.spec.ports;
        return start({ sandboxId: input.sandboxId, ...(input.namespace ? { namespace: input.namespace } : {}), ports }, container, fresh);
      }),

    adoptContainer: (input) =>
      heartbeating(async () => {
        await faults.reached('member-adopting', input.sandboxId);
        if (input.known) {
          // One engine call on the claim's path: the member's start said its container and ports.
          try {
            if (await engine.unpauseNow(input.known.containerId)) {
              deps.execd?.setPaused(input.sandboxId, false);
              return input.known;
            }
          } catch (err) {
            if (dockerStatus(err) === 404) throw fail('CONTAINER_EXITED', `the warm pool member for ${input.sandboxId} no longer exists`);
            throw err;
          }
          // Not paused: thawed by an earlier attempt, or no longer running. Look.
        }
        // Three engine calls: find (with its state), thaw, one inspect.
        const [member] = await engine.findSandboxContainers(input.sandboxId);
        if (!member) throw fail('CONTAINER_EXITED', `the warm pool member for ${input.sandboxId} no longer exists`);
        if (member.State === 'paused') await engine.unpauseNow(member.Id);
        const { state, ports } = await engine.stateAndPorts(member.Id);
        if (!state.Running || state.Paused)
          throw fail(
            'CONTAINER_EXITED',
            `the warm pool member for ${input.sandboxId} is not running (exit code ${state.ExitCode ?? 'unknown'})`,
          );
        deps.execd?.setPaused(input.sandboxId, false);
        const declared = deps.declaredPorts(input.ports ?? []);
        const published = hostNetwork ? Object.fromEntries(declared.map((p) => [String(p), p])) : ports;
        return { containerId: member.Id, network: { hostNetwork, ports: published, host: deps.advertisedHost } };
      }),

    pauseContainer: (input) =>
      heartbeating(async () => {
        const containerId = await theContainer(input.sandboxId);
        if (input.primeExecd && deps.execd) await withinOrNot(deps.execd.prime({ id: input.sandboxId }), PRIME_EXECD_MS);
        await faults.reached('container-pausing', input.sandboxId);
        // execd refuses it from now on, not from when the API next reads the sandbox.
        deps.execd?.setPaused(input.sandboxId, true);
        try {
          await engine.pause(containerId);
        } catch (err) {
          deps.execd?.setPaused(input.sandboxId, false);
          throw err;
        }
      }),

    resumeContainer: (input) =>
      heartbeating(async () => {
        const containerId = await theContainer(input.sandboxId);
        await faults.reached('container-resuming', input.sandboxId);
        await engine.unpause(containerId);
        deps.execd?.setPaused(input.sandboxId, false);
      }),

    removeContainers: (input) =>
      heartbeating(async () => {
        const containers = await engine.findSandboxContainers(input.sandboxId);
        if (containers.length) await faults.reached('container-removing', input.sandboxId);
        let removed = 0;
        for (const c of containers) {
          if (await engine.removeContainer(c.Id)) removed++;
        }
        await pins?.release(input.sandboxId);
        deps.execd?.forget(input.sandboxId);
        deps.execd?.setPaused(input.sandboxId, false);
        return { removed };
      }),
  };
}

/**
 * Resolve a host volume right before binding it. Scoped volumes: check that symlinks do not lead out
 * of the user's area, create what is missing, and check again (a link placed meanwhile is caught);
 * the resolved path is what Docker binds.
 */
function prepareHostVolume(v: HostVolume, allowedHostPaths: string[]): DirectoryBind {
  const bind = (checked: HostVolume, within: string[]): DirectoryBind => ({
    volume: v.name,
    hostPath: checked.hostPath,
    mountPath: v.mountPath,
    readOnly: v.readOnly,
    within,
  });
  const [checked] = checkResolvedHostPaths([v], allowedHostPaths, realpathOrUndefined);
  if (!v.scope)
    return bind(
      checked!,
      allowedHostPaths.map((p) => realpathOrUndefined(p) ?? p),
    );
  mkdirSync(checked!.hostPath, { recursive: true, mode: 0o755 });
  const again = checkResolvedHostPaths([v], allowedHostPaths, realpathOrUndefined)[0]!;
  if (realpathOrUndefined(again.hostPath) !== again.hostPath)
    throw new TideboxError('INVALID_PARAMETER', `volume "${v.name}": ${v.hostPath} could not be created`);
  return bind(again, [realpathOrUndefined(v.scope) ?? v.scope]);
}

/** The host directory to bind for a pvc volume: `<volume root>/<subPath>`, confined to `<root>/<scope>`. */
function preparePvcDirectory(v: PvcVolume, root: string): DirectoryBind {
  const path = posix.join(root, v.subPath);
  const scope = posix.join(root, v.scope);
  const first = resolveWithinScope(v.name, path, scope, realpathOrUndefined);
  if (!first.exists) mkdirSync(first.path, { recursive: true, mode: 0o755 });
  const resolved = resolveWithinScope(v.name, path, scope, realpathOrUndefined);
  if (!resolved.exists) throw new TideboxError('INVALID_PARAMETER', `volume "${v.name}": ${path} could not be created`);
  return {
    volume: v.name,
    hostPath: resolved.path,
    mountPath: v.mountPath,
    readOnly: v.readOnly,
    within: [realpathOrUndefined(scope) ?? scope],
  };
}

/** Wait for `work` at most `ms`; whether it finished, failed or is still going, go on (it is an optimisation). */
async function withinOrNot(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
