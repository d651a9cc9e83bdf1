import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { listenAddress } from '../core/config';
import { loadConfig } from '../core/load-config';
import { logFormat, prettyStream } from '../platform/log';
import { payloadCodecsFor } from '../platform/payload-codec';
import { sandboxViewStoreOf } from '../platform/sandbox-views';
import {
  prepareNamespace,
  isLoopbackAddress,
  temporalAuthSummary,
  temporalConnectOptions,
  temporalRetryInterceptor,
} from '../platform/temporal-setup';
import { KubeBackend } from '../execd/kube-backend';
import { buildApp } from './app';
import { createNamespaceCheck } from './kube-namespaces';
import { createApiServices } from './temporal';

/** API process: listen, and on SIGINT/SIGTERM stop accepting, finish in-flight requests, exit. */
async function main(): Promise<void> {
  const config = loadConfig(process.env, (p) => readFileSync(p, 'utf8'));
  const connectOptions = temporalConnectOptions(config);
  const connection = await Connection.connect({ ...connectOptions, interceptors: [temporalRetryInterceptor()] });
  await prepareNamespace(connection, config.temporal.namespace);
  const dataConverter = payloadCodecsFor(config.security.payloadKey, config.security.acceptPlaintextUntil);
  const client = new Client({ connection, namespace: config.temporal.namespace, dataConverter });
  // The read projection LIST uses (views.postgresUrl); its failures are logged once the app's log exists.
  let warn = (msg: string, fields: Record<string, unknown>) => console.error(JSON.stringify({ level: 'warn', msg, ...fields }));
  const viewStore = sandboxViewStoreOf(config, dataConverter?.payloadCodecs[0], (msg, fields) => warn(msg, fields));

  const onKubernetes = config.runtime.type === 'kubernetes';
  const namespaces = onKubernetes ? await createNamespaceCheck(config) : undefined;
  // execd on Kubernetes reaches pods through the API server's exec subresource, with the same credentials.
  const execdBackend = onKubernetes
    ? new KubeBackend((await import('../platform/kube')).loadKubeConfig(config), config.kubernetes.namespace)
    : undefined;
  const pretty = logFormat(config.log.format, process.stdout.isTTY) === 'pretty';
  const app = await buildApp({
    logger: { level: config.log.level, ...(pretty ? { stream: prettyStream(process.stdout) } : {}) },
    config,
    services: createApiServices(client, config, viewStore && { store: viewStore, warn: (msg, fields) => warn(msg, fields) }),
    ...(namespaces ? { namespaces } : {}),
    ...(execdBackend ? { execdBackend } : {}),
  });
  warn = (msg, fields) => app.log.warn(fields, msg);
  if (viewStore) {
    app.addHook('onClose', () => viewStore.close());
    viewStore
      .warm()
      .catch((err: Error) => warn('sandbox views: not reachable at start; LIST reads visibility until it is', { error: err.message }));
  }
  const { host, warning } = listenAddress(config.server, config.tenants);
  if (warning) app.log.warn(warning);
  if (!connectOptions.tls && !isLoopbackAddress(connectOptions.address))
    app.log.warn(
      `Temporal at ${connectOptions.address} is reached in plaintext and unauthenticated; set [temporal.tls] (docs/security.md)`,
    );
  await app.listen({ host, port: config.server.port });
  app.log.info({ temporal: connectOptions.address, temporalAuth: temporalAuthSummary(connectOptions) }, 'api started');

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    await app.close();
    await connection.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((err) => {
  console.error(JSON.stringify({ level: 'fatal', msg: 'api failed to start', error: (err as Error).message }));
  process.exit(1);
});
