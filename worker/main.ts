import Dockerode from 'dockerode';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { NativeConnection, Worker, WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities';
import { ensureSearchAttributes } from '../api/temporal-setup';
import { hostTaskQueue } from '../core/config';
import { loadConfig } from '../core/load-config';

/**
 * Worker process: sandbox actors on the shared task queue, Docker activities on this host's queue.
 * A single-host install runs both here. SIGINT/SIGTERM drain in-flight tasks, then exit.
 */
async function main(): Promise<void> {
  const config = loadConfig(process.env, (p) => readFileSync(p, 'utf8'));
  const address = config.temporal.address ?? `127.0.0.1:${config.temporal.devServerPort}`;
  const connection = await NativeConnection.connect({ address });
  await ensureSearchAttributes(connection.operatorService, config.temporal.namespace);

  const docker = new Dockerode(config.docker.socketPath ? { socketPath: config.docker.socketPath } : undefined);
  const activities = createActivities({ config, docker });

  // Prefer the bundle made at build time: starting a worker then costs no webpack run.
  const bundlePath = join(__dirname, '..', 'workflow-bundle.js');
  const workflowSource: Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> = existsSync(bundlePath)
    ? { workflowBundle: { codePath: bundlePath } }
    : { workflowsPath: require.resolve('../workflows') };

  const workflowWorker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...workflowSource,
  });
  const hostWorker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: hostTaskQueue(config, config.docker.hostId),
    activities: activities.host,
  });
  console.log(
    JSON.stringify({
      level: 'info',
      msg: 'worker started',
      address,
      namespace: config.temporal.namespace,
      taskQueues: [config.temporal.taskQueue, hostTaskQueue(config, config.docker.hostId)],
    }),
  );
  await Promise.all([workflowWorker.run(), hostWorker.run()]);
  await connection.close();
}

main().catch((err) => {
  console.error(JSON.stringify({ level: 'fatal', msg: 'worker failed', error: (err as Error).message }));
  process.exit(1);
});
