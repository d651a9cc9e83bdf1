import Dockerode from 'dockerode';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, WorkerOptions } from '@temporalio/worker';
import { RuntimeExit, watchRuntimeExits } from '../activities/docker/exit-watcher';
import { createDockerActivities } from '../activities';
import { declaredPorts } from '../activities/docker/container-spec';
import { createFaults } from '../activities/faults';
import { createMessagingActivities } from '../activities/messaging';
import { mountRootOf, prepareMountRoot, sweepMountSecrets } from '../activities/ossfs/mount-activities';
import { ensureSearchAttributes } from '../api/temporal-setup';
import { Config, runtimeHostId } from '../core/config';
import { loadConfig } from '../core/load-config';
import { payloadCodecsFor } from '../core/payload-codec';
import { hostTaskQueue, sandboxWorkflowId, SandboxView } from '../core/sandbox';
import { runtimeExitedSignal, runtimeProgressSignal } from '../workflows/sandbox';
import type { OpenSandbox } from '../activities/kubernetes/pod-watcher';

/**
 * Worker process: sandbox actors on the shared task queue, runtime activities (Docker engine or
 * Kubernetes cluster) on the host's queue. A single-host install runs both here. SIGINT/SIGTERM drain in-flight tasks, then exit.
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

  const dataConverter = payloadCodecsFor(config.security.payloadKey);
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  const runtime = config.runtime.type === 'kubernetes' ? await kubernetesRuntime(config, client) : await dockerRuntime(config, client);
  const hostId = runtimeHostId(config);

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
    activities: createMessagingActivities({ client, config }),
  });
  const hostWorker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: hostTaskQueue(config.temporal.taskQueue, hostId),
    dataConverter,
    activities: runtime.activities,
    // Cancellations (a delete during a slow start) reach an activity with its next heartbeat sent
    // to the server; send them at least every second instead of every 8 s (0.8 × heartbeat timeout).
    maxHeartbeatThrottleInterval: '1 second',
  });
  console.log(
    JSON.stringify({
      level: 'info',
      msg: 'worker started',
      address,
      namespace: config.temporal.namespace,
      runtime: config.runtime.type,
      taskQueues: [config.temporal.taskQueue, hostTaskQueue(config.temporal.taskQueue, hostId)],
    }),
  );
  const stopWatching = new AbortController();
  const watcher = runtime.watchExits(stopWatching.signal, (msg) => console.error(JSON.stringify({ level: 'warn', msg })));
  await Promise.all([workflowWorker.run(), hostWorker.run()]);
  stopWatching.abort();
  await watcher;
  await connection.close();
}

/** Tell a sandbox actor its workload stopped on its own. */
async function reportExit(client: Client, { sandboxId, containerId, exitCode, message }: RuntimeExit): Promise<void> {
  try {
    await client.withDeadline(Date.now() + 10_000, () =>
      client.workflow.getHandle(sandboxWorkflowId(sandboxId)).signal(runtimeExitedSignal, { containerId, exitCode, ...(message ? { message } : {}) }),
    );
  } catch (err) {
    // A terminated sandbox has nothing left to tell; anything else surfaces, and the next sweep retries.
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

interface RuntimeParts {
  activities: object;
  watchExits: (signal: AbortSignal, log: (msg: string) => void) => Promise<void>;
}

/** Docker: containers on this engine, bucket mounts on this host, the engine's event stream. */
async function dockerRuntime(config: Config, client: Client): Promise<RuntimeParts> {
  await prepareMountHost(config);
  const docker = new Dockerode(config.docker.socketPath ? { socketPath: config.docker.socketPath } : undefined);
  const activities = createDockerActivities({ config, docker, seccompProfile: readSeccompProfile(config.docker.seccompProfile) });
  return {
    activities: { ...activities.host, ...activities.mounts },
    watchExits: (signal, log) => watchRuntimeExits(docker, config.instance, (exit) => reportExit(client, exit), signal, log),
  };
}

/** Kubernetes: pods in tenants' namespaces, one cluster-wide pod watch. */
async function kubernetesRuntime(config: Config, client: Client): Promise<RuntimeParts> {
  // Loaded only here: the client is an ES module, and a Docker worker has no use for it.
  const { loadKubeConfig, readPodTemplate, CoreV1Api } = await import('../activities/kubernetes/kube');
  const { createPodActivities } = await import('../activities/kubernetes/pod-activities');
  const { watchPodExits } = await import('../activities/kubernetes/pod-watcher');
  const kc = loadKubeConfig(config);
  const core = kc.makeApiClient(CoreV1Api);
  const activities = createPodActivities({
    core,
    config,
    declaredPorts: (ports) => declaredPorts({ ports }, config.docker),
    template: readPodTemplate(config.kubernetes.podTemplateFile),
    faults: createFaults(config),
    reportProgress: (sandboxId, progress) =>
      client.withDeadline(Date.now() + 5_000, () => client.workflow.getHandle(sandboxWorkflowId(sandboxId)).signal(runtimeProgressSignal, progress)),
  });
  const hostId = config.kubernetes.hostId;
  /** The open sandbox actors of this install on this cluster, by visibility (bounded). */
  const openSandboxes = async () => {
    const items: OpenSandbox[] = [];
    const query = `WorkflowType = 'sandboxWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${config.temporal.taskQueue}'`;
    let seen = 0;
    for await (const wf of client.workflow.list({ query })) {
      // Bounded: beyond it, missing pods wait for a later sweep and no pod is judged an orphan.
      if (++seen > 10_000) return { items, complete: false };
      const view = wf.memo?.view as SandboxView | undefined;
      if (!view) return { items, complete: false }; // cannot tell whose it is: judge nothing
      if (view.hostId !== hostId) continue;
      items.push({ sandboxId: view.id, state: view.status.state, namespace: view.namespace ?? 'default', ...(view.containerId ? { containerId: view.containerId } : {}) });
    }
    return { items, complete: true };
  };
  /** The actor's own word (not visibility): closed, or Failed/Terminated, means its pod is an orphan. */
  const isOrphan = async (sandboxId: string) => {
    try {
      const described = await client.workflow.getHandle(sandboxWorkflowId(sandboxId)).describe();
      if (described.status.name !== 'RUNNING') return true;
      const state = (described.memo?.view as SandboxView | undefined)?.status.state;
      return state === 'Failed' || state === 'Terminated';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return true;
      throw err;
    }
  };
  return {
    activities,
    watchExits: (signal, log) =>
      watchPodExits({
        kc,
        core,
        instance: config.instance,
        report: (exit) => reportExit(client, exit),
        openSandboxes,
        isOrphan,
        signal,
        log,
        sweepIntervalMs: config.kubernetes.sweepIntervalSeconds * 1000,
        orphanGraceMs: config.kubernetes.orphanGraceSeconds * 1000,
      }),
  };
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
