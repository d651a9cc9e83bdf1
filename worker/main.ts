import Dockerode from 'dockerode';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, WorkerOptions } from '@temporalio/worker';
import { watchRuntimeExits } from '../activities/docker/exit-watcher';
import { createActivities } from '../activities';
import { mountRootOf, prepareMountRoot, sweepMountSecrets } from '../activities/ossfs/mount-activities';
import { ensureSearchAttributes } from '../api/temporal-setup';
import type { Config } from '../core/config';
import { loadConfig } from '../core/load-config';
import { payloadCodecsFor } from '../core/payload-codec';
import { hostTaskQueue, sandboxWorkflowId } from '../core/sandbox';
import { runtimeExitedSignal } from '../workflows/sandbox';

/**
 * Worker process: sandbox actors on the shared task queue, Docker activities on this host's queue.
 * A single-host install runs both here. SIGINT/SIGTERM drain in-flight tasks, then exit.
 */
async function main(): Promise<void> {
  const config = loadConfig(process.env, (p) => readFileSync(p, 'utf8'));
  if (config.worker.metricsPort) {
    // The SDK's own Prometheus exporter: workflow/activity task and failure counters, latencies.
    // Must be installed before the first connection.
    Runtime.install({
      telemetryOptions: { metrics: { prometheus: { bindAddress: `${config.worker.metricsHost}:${config.worker.metricsPort}` } } },
    });
  }
  const address = config.temporal.address ?? `127.0.0.1:${config.temporal.devServerPort}`;
  const connection = await NativeConnection.connect({ address });
  await ensureSearchAttributes(connection.operatorService, config.temporal.namespace);

  await prepareMountHost(config);

  const docker = new Dockerode(config.docker.socketPath ? { socketPath: config.docker.socketPath } : undefined);
  const dataConverter = payloadCodecsFor(config.security.payloadKey);
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  const activities = createActivities({ config, docker, client, seccompProfile: readSeccompProfile(config.docker.seccompProfile) });

  // Prefer the bundle made at build time: starting a worker then costs no webpack run.
  const bundlePath = join(__dirname, '..', 'workflow-bundle.js');
  const workflowSource: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> = existsSync(bundlePath)
    ? { workflowBundle: { codePath: bundlePath } }
    : { workflowsPath: require.resolve('../workflows') };

  const workflowWorker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    dataConverter,
    ...workflowSource,
    activities: activities.messaging,
  });
  const hostWorker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: hostTaskQueue(config.temporal.taskQueue, config.docker.hostId),
    dataConverter,
    activities: { ...activities.host, ...activities.mounts },
  });
  console.log(
    JSON.stringify({
      level: 'info',
      msg: 'worker started',
      address,
      namespace: config.temporal.namespace,
      taskQueues: [config.temporal.taskQueue, hostTaskQueue(config.temporal.taskQueue, config.docker.hostId)],
    }),
  );
  const stopWatching = new AbortController();
  const watcher = watchRuntimeExits(
    docker,
    config.instance,
    async ({ sandboxId, containerId, exitCode }) => {
      try {
        await client.withDeadline(Date.now() + 10_000, () =>
          client.workflow.getHandle(sandboxWorkflowId(sandboxId)).signal(runtimeExitedSignal, { containerId, exitCode }),
        );
      } catch (err) {
        // A terminated sandbox has nothing left to tell; anything else surfaces, and the next sweep retries.
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    },
    stopWatching.signal,
    (msg) => console.error(JSON.stringify({ level: "warn", msg })),
  );
  await Promise.all([workflowWorker.run(), hostWorker.run()]);
  stopWatching.abort();
  await watcher;
  await connection.close();
}

/**
 * Mount-related start-up: remove credential directories a crashed worker left behind (between
 * writing and removing them), and create the mount root. Neither stops the worker: a host that
 * never mounts a bucket must still start; the mount activities retry the root themselves.
 */
async function prepareMountHost(config: Config): Promise<void> {
  try {
    const removed = await sweepMountSecrets();
    if (removed.length > 0) console.log(JSON.stringify({ level: 'info', msg: 'removed leftover mount credential directories', count: removed.length }));
  } catch (err) {
    console.error(JSON.stringify({ level: 'warn', msg: 'sweeping mount credential directories failed', error: (err as Error).message }));
  }
  try {
    await prepareMountRoot(mountRootOf(config));
  } catch (err) {
    console.error(JSON.stringify({ level: 'warn', msg: 'cannot prepare the ossfs mount root', error: (err as Error).message }));
  }
}

/** The Engine API wants the profile's JSON text; read and validate it once, at start-up. */
function readSeccompProfile(path: string | undefined): string | undefined {
  if (!path || path === 'unconfined') return path;
  try {
    return JSON.stringify(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new Error(`docker.seccompProfile ${path}: ${(err as Error).message}`);
  }
}

// Exit explicitly once drained: after the Docker event stream was used, an open socket handle
// (seen in process._getActiveHandles) kept the event loop alive after a graceful shutdown.
main().then(() => process.exit(0)).catch((err) => {
  console.error(JSON.stringify({ level: 'fatal', msg: 'worker failed', error: (err as Error).message }));
  process.exit(1);
});
