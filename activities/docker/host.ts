import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import Dockerode from 'dockerode';
import type { HostLog, RuntimeExit, RuntimeHost } from '../../contracts/runtime';
import type { Config } from '../../core/config';
import { createFaults } from '../faults';
import { createMountActivities, mountRootOf, prepareMountRoot, sweepMountSecrets } from '../ossfs/mount-activities';
import { sandboxSignals } from '../sandbox-signals';
import { declaredPorts } from '../../core/network';
import { usesHostNetwork } from './container-spec';
import { BindPins } from './bind-pins';
import { type ContainerRuntimeDeps, createContainerRuntime } from './container-runtime';
import { actorGone, poolHolds, workflowOpen } from '../actor-liveness';
import { createMountSweep } from '../ossfs/mount-sweep';
import { mountWorkflowId } from '../../core/mounts';
import { DockerEngine } from './docker-engine';
import { startOrphanReaper } from './orphan-reaper';
import { prepareNetworks } from './network-host';
import { watchRuntimeExits } from './exit-watcher';
import { createDockerSnapshotRuntime } from './snapshot-runtime';

/** A container that dies this soon after its start reports its last output with its exit code. */
const EARLY_EXIT_MS = 10_000;

/**
 * A Docker host as the worker runs it: containers and snapshot images on this engine, shared bucket
 * mounts on this machine, and the engine's event stream for containers that die on their own.
 */
export async function createDockerHost(
  config: Config,
  client: Client,
  log: HostLog,
  /** The execd this worker serves (worker/main.ts): warm pool members get their command shell before they are frozen. */
  execd?: ContainerRuntimeDeps['execd'],
): Promise<RuntimeHost> {
  await prepareMountHost(config, log);
  const docker = new Dockerode(config.docker.socketPath ? { socketPath: config.docker.socketPath } : undefined);
  const engine = new DockerEngine(docker, config, readSeccompProfile(config.docker.seccompProfile));
  await checkRuntime(docker, config.docker.runtime);
  const faults = createFaults(config);
  const { reportExit } = sandboxSignals(client);
  const networkFor = await prepareNetworks(config, engine, log);
  const pins = config.docker.hostVolumeBinding === 'pinned' ? new BindPins(resolve(config.dataDir, 'binds')) : undefined;
  return {
    activities: {
      ...createContainerRuntime({
        engine,
        instance: config.instance,
        allowedHostPaths: config.sandbox.allowedHostPaths,
        storageLayout: config.sandbox.storageLayout,
        startupGraceMs: config.docker.startupGraceMs,
        pullMissingImages: config.docker.imagePullPolicy !== 'Never',
        hostNetwork: usesHostNetwork(config.docker),
        declaredPorts: (ports) => declaredPorts({ ports }, config.docker),
        advertisedHost: config.docker.endpointHost ?? config.docker.publishHost,
        networkFor,
        ...(pins ? { pins } : {}),
        faults,
        ...(execd ? { execd } : {}),
      }),
      ...createDockerSnapshotRuntime({ engine, instance: config.instance, faults }),
      ...createMountActivities({ config, faults }),
    },
    watchExits: (signal) => {
      startOrphanReaper({
        engine,
        actorGone: (sandboxId) => actorGone(client, sandboxId),
        poolHolds: (pool, memberId) => poolHolds(client, pool, memberId),
        graceMs: config.docker.orphanGraceSeconds * 1000,
        intervalMs: config.docker.sweepIntervalSeconds * 1000,
        log,
        signal,
        ...(pins ? { pins } : {}),
        sweeps: [
          {
            name: 'bucket mounts',
            sweep: createMountSweep({
              config,
              actorOpen: (key) => workflowOpen(client, mountWorkflowId(config.docker.hostId, key)),
              graceMs: config.docker.orphanGraceSeconds * 1000,
              log,
            }),
          },
        ],
      });
      // A death soon after start is most likely the entrypoint failing: say why, as a failed start would.
      const report = async (exit: RuntimeExit) => {
        const message = await engine.earlyExitMessage(exit.containerId, EARLY_EXIT_MS).catch(() => undefined);
        await reportExit(message ? { ...exit, message } : exit);
      };
      return watchRuntimeExits(docker, config.instance, report, signal, (msg) => log.warn(msg));
    },
  };
}

/**
 * Mount-related start-up: remove credential directories a crashed worker left behind (between
 * writing and removing them), and create the mount root. Neither stops the worker: a host that
 * never mounts a bucket must still start; the mount activities retry the root themselves.
 */
async function prepareMountHost(config: Config, log: HostLog): Promise<void> {
  try {
    const removed = await sweepMountSecrets();
    if (removed.length > 0) log.info('removed leftover mount credential directories', { count: removed.length });
  } catch (err) {
    log.warn('sweeping mount credential directories failed', { error: (err as Error).message });
  }
  try {
    await prepareMountRoot(mountRootOf(config));
  } catch (err) {
    log.warn('cannot prepare the ossfs mount root', { error: (err as Error).message });
  }
}

/** The Engine API wants the profile's JSON text; read and validate it once, at start-up. */
function readSeccompProfile(path: string | undefined): string | undefined {
  if (!path || path === 'unconfined') return path;
  try {
    return JSON.stringify(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new Error(`docker.seccompProfile ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** A configured OCI runtime must be registered with the engine: refuse to start rather than fail every create. */
export async function checkRuntime(docker: Dockerode, runtime: string | undefined): Promise<void> {
  if (!runtime) return;
  const registered = Object.keys(((await docker.info()) as { Runtimes?: Record<string, unknown> }).Runtimes ?? {});
  if (!registered.includes(runtime))
    throw new Error(
      `docker.runtime "${runtime}" is not registered with the Docker engine (it has: ${registered.join(', ') || 'none'}); add it to daemon.json "runtimes"`,
    );
}
