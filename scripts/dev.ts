import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { listenAddress } from '../core/config';
import { loadConfig } from '../core/load-config';
import { ManagedProcess } from './lib/managed-process';
import { TemporalDevServer } from './lib/temporal-dev-server';

/**
 * `npm start`: the embedded Temporal dev server (unless TEMPORAL_ADDRESS names one), the worker and
 * the API, as three processes. Ctrl-C stops them in reverse order; if one dies, all stop.
 */
const started: Array<{ stop(): Promise<unknown> }> = [];

async function main(): Promise<void> {
  const config = loadConfig(process.env, (p) => readFileSync(p, 'utf8'));
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });

  let temporal: TemporalDevServer | undefined;
  let address = config.temporal.address;
  if (!address) {
    const cliPath = config.temporal.cliPath ?? 'temporal';
    temporal = new TemporalDevServer({
      cliPath,
      dbFile: join(dataDir, 'temporal.db'),
      port: config.temporal.devServerPort,
      uiPort: config.temporal.devServerUiPort,
      logFile: join(dataDir, 'temporal.log'),
      namespace: config.temporal.namespace,
    });
    started.push(temporal);
    await temporal.start();
    address = temporal.address;
  }

  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: address,
    TIDEBOX_DATA_DIR: dataDir,
    // The dashboard links sandboxes to their workflows in the dev server's UI.
    ...(temporal && !process.env.TIDEBOX_TEMPORAL_UI_URL
      ? { TIDEBOX_TEMPORAL_UI_URL: `http://127.0.0.1:${config.temporal.devServerUiPort}` }
      : {}),
    // One payload key for both processes; made once and kept next to the dev server's database.
    ...(config.security.payloadKey ? {} : { TIDEBOX_PAYLOAD_KEY: devPayloadKey(dataDir) }),
  };
  const worker = new ManagedProcess('worker', join(__dirname, '..', 'worker', 'main.js'), env, 'inherit');
  const api = new ManagedProcess('api', join(__dirname, '..', 'api', 'main.js'), env, 'inherit');
  started.push(worker, api);
  worker.start();
  api.start();

  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await api.stop();
    await worker.stop();
    await temporal?.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  for (const p of [worker, api]) {
    void p.exited().then((code) => {
      if (!stopping) {
        console.error(`tidebox: ${p.name} exited (code ${code}); stopping everything`);
        void stopAll(1);
      }
    });
  }

  const { host } = listenAddress(config.server, config.tenants);
  const apiUrl = `http://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`;
  await waitForHealth(`${apiUrl}/health`, 60_000);
  console.log(
    [
      '',
      `  Tidebox API   ${apiUrl}   (OpenSandbox Lifecycle API at / and /v1)`,
      `  Dashboard     ${apiUrl}/ui`,
      temporal ? `  Temporal UI   http://127.0.0.1:${config.temporal.devServerUiPort}` : `  Temporal      ${address}`,
      `  Data          ${dataDir}`,
      '  Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
}

async function waitForHealth(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`API did not become healthy at ${url} within ${timeoutMs} ms`);
}

main().catch(async (err) => {
  console.error(`tidebox: ${(err as Error).message}`);
  for (const p of started.reverse()) await p.stop().catch(() => undefined);
  process.exit(1);
});

/** The dev install's payload key: `<dataDir>/payload.key` (0600), created on first start. */
function devPayloadKey(dataDir: string): string {
  const file = join(dataDir, 'payload.key');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  }
  return readFileSync(file, 'utf8').trim();
}
