import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { Client, Connection } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import { DefaultLogger, type InjectedSinks, NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createMessagingActivities } from '../activities/messaging';
import type { HostLog, RuntimeHost } from '../contracts/runtime';
import type { SandboxViewSinks } from '../contracts/sandbox-views';
import type { Execd } from '../execd';
import { type Config, runtimeHostId } from '../core/config';
import { loadConfig } from '../core/load-config';
import { hostTaskQueue } from '../core/sandbox';
import { type LogFormat, logFormat, prettyLine } from '../platform/log';
import { payloadCodecsFor } from '../platform/payload-codec';
import { keepSandboxViews, sandboxViewStoreOf, SandboxViewWriter } from '../platform/sandbox-views';
import {
  prepareNamespace,
  isLoopbackAddress,
  temporalAuthSummary,
  temporalConnectOptions,
  temporalRetryInterceptor,
} from '../platform/temporal-setup';

/** The worker's log: one JSON object per line, or one readable line on a terminal (`log.format`, set once the config is read). */
let format: LogFormat = 'json';
const log = (level: 'info' | 'warn' | 'error' | 'fatal', msg: string, fields: Record<string, unknown> = {}) => {
  const record = { level, time: Date.now(), msg, ...fields };
  (level === 'info' ? console.log : console.error)(format === 'pretty' ? prettyLine(record) : JSON.stringify(record));
};
const hostLog: HostLog = { info: (msg, fields) => log('info', msg, fields), warn: (msg, fields) => log('warn', msg, fields) };

/**
 * The runtime this worker's host runs, by `runtime.type` (the Kubernetes client is an ES module:
 * loaded only when used). On Docker, `execd` is the data plane this worker serves beside the engine.
 */
async function createRuntimeHost(config: Config, client: Client, execd: Execd | undefined): Promise<RuntimeHost> {
  if (config.runtime.type === 'kubernetes') {
    const { createKubernetesHost } = await import('../activities/kubernetes/host');
    return createKubernetesHost(config, client, hostLog);
  }
  if (config.runtime.type === 'noop') {
    const { createNoopHost } = await import('../activities/noop/host');
    return createNoopHost(hostLog);
  }
  const { createDockerHost } = await import('../activities/docker/host');
  return createDockerHost(config, client, hostLog, execd);
}

/**
 * How many workflow runs each Worker keeps cached: the configured number, else 2,000 — or, where the
 * heap is small, what fits in it at 4,000 runs per GiB above 200 MiB (≈ 1,200 on a 512 MiB heap). A
 * cached sandbox actor holds ≈ 125 KB of live heap and ≈ 320 KB of RSS (measured, docs/benchmarks.md:
 * the SDK's own default assumes ≈ 1.7 MB, as runs were when the bundle carried zod); every run not
 * cached replays its history when it next has work, which is most of an expiry's worker CPU.
 */
function workflowCacheSize(config: Config): number {
  if (config.worker.maxCachedWorkflows !== undefined) return config.worker.maxCachedWorkflows;
  const heapMiB = getHeapStatistics().heap_size_limit / 2 ** 20;
  return Math.max(10, Math.min(2000, Math.floor(((heapMiB - 200) * 4000) / 1024)));
}

/**
 * Worker process: sandbox actors and messaging activities on the shared task queue, the runtime's
 * activities (Docker engine or Kubernetes cluster) and the warm pool actors of this host (Docker) on
 * the host's queue. A single-host install runs both here. SIGINT/SIGTERM drain in-flight tasks, then exit.
 */
async function main(): Promise<void> {
  const config = loadConfig(process.env, (p) => readFileSync(p, 'utf8'));
  format = logFormat(config.log.format, process.stdout.isTTY);
  // Before the first connection: the SDK's log through ours (its routine INFO lines — worker state
  // changes, pollers — only at log.level debug), and its Prometheus exporter when asked for.
  const verbose = config.log.level === 'debug' || config.log.level === 'trace';
  Runtime.install({
    logger: new DefaultLogger(verbose ? 'DEBUG' : 'WARN', ({ level, message, meta }) => {
      const fields = Object.fromEntries(Object.entries(meta ?? {}).map(([k, v]) => [k, v instanceof Error ? v.message : v]));
      log(level === 'ERROR' ? 'error' : level === 'WARN' ? 'warn' : 'info', message, fields);
    }),
    ...(config.worker.metricsPort
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `${config.worker.metricsHost}:${config.worker.metricsPort}` } } } }
      : {}),
  });
  const connectOptions = temporalConnectOptions(config);
  const { address } = connectOptions;
  const connection = await NativeConnection.connect(connectOptions);
  await prepareNamespace(connection, config.temporal.namespace);

  const dataConverter = payloadCodecsFor(config.security.payloadKey, config.security.acceptPlaintextUntil);
  // Activities and the views' reconciliation message other actors through a client of their own, on
  // the SDK's JavaScript connection: its retries can be tuned (a Signal to a tenant actor that is
  // continuing as new is tried again every 50–200 ms, not after 1 s, 2 s, 4 s); the workers poll on the native one.
  const clientConnection = await Connection.connect({ ...connectOptions, interceptors: [temporalRetryInterceptor()] });
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace, dataConverter });
  // Docker: the execd data plane lives here, beside the engine's socket; the API forwards to it.
  const execd = config.runtime.type === 'docker' && config.execd.enabled ? await dockerExecd(config) : undefined;
  const runtime = await createRuntimeHost(config, client, execd);
  const hostQueue = hostTaskQueue(config.temporal.taskQueue, runtimeHostId(config));

  // Prefer the bundle made at build time: starting a worker then costs no webpack run.
  const bundlePath = join(__dirname, '..', 'workflow-bundle.js');
  const workflowSource: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> = existsSync(bundlePath)
    ? { workflowBundle: { codePath: bundlePath } }
    : { workflowsPath: require.resolve('../workflows') };

  const views = viewsOf(config, dataConverter?.payloadCodecs[0]);
  const maxCachedWorkflows = workflowCacheSize(config);
  const workflowWorker = await Worker.create({
    connection,
    maxCachedWorkflows,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    dataConverter,
    ...workflowSource,
    sinks: views.sinks,
    activities: createMessagingActivities({ client, config }),
  });
  const hostWorker = await Worker.create({
    connection,
    maxCachedWorkflows,
    namespace: config.temporal.namespace,
    taskQueue: hostQueue,
    dataConverter,
    // Warm pools run on their host's queue: a claim thaws its member here, with a local activity
    // beside the engine, in the claim's own workflow task (docs/pools.md).
    ...workflowSource,
    activities: runtime.activities,
    // Cancellations (a delete during a slow start) reach an activity with its next heartbeat sent
    // to the server; send them at least every second instead of every 8 s (0.8 × heartbeat timeout).
    maxHeartbeatThrottleInterval: '1 second',
  });
  if (!connectOptions.tls && !isLoopbackAddress(address))
    log('warn', `Temporal at ${address} is reached in plaintext and unauthenticated; set [temporal.tls] (docs/security.md)`);
  log('info', 'worker started', {
    address,
    temporalAuth: temporalAuthSummary(connectOptions),
    namespace: config.temporal.namespace,
    runtime: config.runtime.type,
    taskQueues: [config.temporal.taskQueue, hostQueue],
    maxCachedWorkflows,
  });
  const execdServer = execd ? await startExecd(config, execd) : undefined;
  const stopWatching = new AbortController();
  const watcher = runtime.watchExits(stopWatching.signal);
  const reconciling = views.store
    ? keepSandboxViews(
        views.store,
        client,
        config.views.reconcileIntervalSeconds * 1000,
        config.views.reconcileGraceSeconds * 1000,
        stopWatching.signal,
        ({ report, error, ms }) =>
          error
            ? log('warn', 'sandbox views: reconciliation failed; next at the next interval', { error: error.message, ms })
            : log('info', 'sandbox views reconciled', { ...report, ms }),
      )
    : undefined;
  await Promise.all([workflowWorker.run(), hostWorker.run()]);
  stopWatching.abort();
  await Promise.all([watcher, reconciling, views.writer?.drain()]);
  await views.store?.close();
  await execdServer?.close();
  await clientConnection.close();
  await connection.close();
}

/**
 * The read projection's writer (views.postgresUrl), behind the sink sandbox actors publish through;
 * without a URL the sink does nothing (LIST reads visibility).
 */
function viewsOf(config: Config, codec: PayloadCodec | undefined) {
  const store = sandboxViewStoreOf(config, codec, (msg, fields) => log('warn', msg, fields));
  const writer = store
    ? new SandboxViewWriter(store, (err, failures) => {
        // The first failure and then every 20th: a database away for minutes is one line a minute or so.
        if (failures === 1 || failures % 20 === 0) log('warn', 'sandbox views: write failed; retrying', { error: err.message, failures });
      })
    : undefined;
  const sinks: InjectedSinks<SandboxViewSinks> = {
    sandboxViews: { publish: { fn: (_info, view, at) => writer?.publish(view, at), callDuringReplay: false } },
  };
  return { store, writer, sinks };
}

/** Commands and files of this host's sandboxes, against its engine. */
async function dockerExecd(config: Config): Promise<Execd> {
  const [{ Execd }, { DockerBackend }] = await Promise.all([import('../execd'), import('../execd/docker-backend')]);
  return new Execd(DockerBackend.connect(config), config.execd);
}

/** The execd listener (execd/http/server.ts) on execd.workerHost:workerPort. */
async function startExecd(config: Config, execd: Execd) {
  const [{ ExecdTokens }, { startExecdServer }, { execdLimits }] = await Promise.all([
    import('../execd/tokens'),
    import('../execd/http/server'),
    import('../execd/http/limits'),
  ]);
  const server = await startExecdServer({
    execd,
    tokens: ExecdTokens.open({ secret: config.execd.tokenSecret, dataDir: config.dataDir }),
    limits: execdLimits(config),
    host: config.execd.workerHost,
    port: config.execd.workerPort,
    maxConnections: config.execd.workerMaxConnections,
    log: { error: (fields, msg) => log('error', msg, fields) },
  });
  log('info', 'execd listening', { host: config.execd.workerHost, port: config.execd.workerPort });
  return server;
}

// Exit explicitly once drained: after the Docker event stream was used, an open socket handle
// (seen in process._getActiveHandles) kept the event loop alive after a graceful shutdown.
main()
  .then(() => process.exit(0))
  .catch((err) => {
    log('fatal', 'worker failed', { error: (err as Error).message });
    process.exit(1);
  });
