import Dockerode from 'dockerode';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { stringify } from 'smol-toml';
import { LABELS } from '../../contracts/labels';
import { ManagedProcess } from '../../scripts/lib/managed-process';
import { TemporalDevServer } from '../../scripts/lib/temporal-dev-server';
import { ClusterTemporal, clusterStateDir } from './temporal-cluster';

export const TEST_IMAGE = 'tidebox/busybox:latest';

/** The repository root (works from sources under jest and from dist/ in the benchmark). */
export function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Poll `probe` until it returns a value other than undefined/false, or fail after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: any;
}

export interface StackOptions {
  /** Extra config (TOML file contents as an object), merged over the test defaults. */
  config?: Record<string, unknown>;
  apiKey?: string;
  /** Environment only the worker gets, on every (re)start (e.g. its own credentials). */
  workerEnv?: NodeJS.ProcessEnv;
  /** Put something in front of the dev server (e.g. a TLS terminator): given its address, answer the one the API and worker use. */
  temporalFront?: (devServerAddress: string) => Promise<string>;
  /** Environment the API and the worker both get. */
  env?: NodeJS.ProcessEnv;
  /** Dynamic config of the test's Temporal dev server (e.g. a lowered server limit). */
  temporalDynamicConfig?: Record<string, unknown>;
  /** On the cluster, LIST reads the read projection (views.postgresUrl) unless this is false. */
  views?: boolean;
}

/**
 * A whole Tidebox on real pieces, isolated per test file: its own Temporal dev server (SQLite file
 * in a temp data dir), worker process, API process on 127.0.0.1, and a unique `instance` label so
 * its containers are found and removed by label afterwards.
 */
export class Stack {
  readonly dataDir = mkdtempSync(join(tmpdir(), 'tidebox-test-'));
  readonly instance = `t${Math.random().toString(36).slice(2, 10)}`;
  readonly docker = new Dockerode();
  /** The stack's own dev server, or the run's real cluster (tests/e2e/cluster): start/stop are crash drills. */
  temporal!: TemporalDevServer | ClusterTemporal;
  /** The Temporal namespace the stack's processes use: its own on the shared cluster. */
  namespace = 'default';
  worker!: ManagedProcess;
  api!: ManagedProcess;
  baseUrl = '';
  /** The worker's execd listener (Docker), on 127.0.0.1. */
  execdPort = 0;
  private env: NodeJS.ProcessEnv = {};
  /** The read projection's database (on the cluster's PostgreSQL), when the stack has one. */
  viewsUrl: string | undefined;
  /** The config the stack's API and worker run with (TOML contents). */
  private config: Record<string, unknown> = {};

  constructor(private readonly options: StackOptions = {}) {}

  static async start(options: StackOptions = {}): Promise<Stack> {
    const stack = new Stack(options);
    try {
      await stack.boot();
    } catch (err) {
      await stack.destroy();
      throw err;
    }
    return stack;
  }

  private async boot(): Promise<void> {
    const [temporalPort, apiPort, execdPort] = [await freePort(), await freePort(), await freePort()];
    this.execdPort = execdPort;
    const config = {
      dataDir: this.dataDir,
      instance: this.instance,
      server: { createWaitSeconds: 30, ...((this.options.config?.server as object) ?? {}) },
      sandbox: { minTimeoutSeconds: 2, ...((this.options.config?.sandbox as object) ?? {}) },
      // Tests never pull: a missing image must not send the engine to a public registry.
      // ...and the orphan sweep runs every 2 s through the whole suite: it must never reap a live sandbox.
      docker: {
        imagePullPolicy: 'Never',
        sweepIntervalSeconds: 2,
        orphanGraceSeconds: 2,
        ...((this.options.config?.docker as object) ?? {}),
      },
      // The worker's execd listener (Docker), which the API forwards to: a port of this stack's own.
      execd: { workerPort: execdPort, ...((this.options.config?.execd as object) ?? {}) },
      ...Object.fromEntries(
        Object.entries(this.options.config ?? {}).filter(([k]) => !['server', 'sandbox', 'docker', 'execd'].includes(k)),
      ),
    };
    this.config = config;
    const configPath = join(this.dataDir, 'tidebox.toml');
    writeFileSync(configPath, stringify(config));
    const clusterDir = clusterStateDir();
    if (clusterDir) await this.joinCluster(clusterDir);
    else await this.startDevServer(temporalPort);
    this.env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TIDEBOX_CONFIG: configPath,
      TEMPORAL_ADDRESS: this.options.temporalFront ? await this.options.temporalFront(this.temporal.address) : this.temporal.address,
      TEMPORAL_NAMESPACE: this.namespace,
      TIDEBOX_PORT: String(apiPort),
      ...(this.options.apiKey ? { TIDEBOX_API_KEY: this.options.apiKey } : {}),
      ...(this.viewsUrl ? { TIDEBOX_VIEWS_POSTGRES_URL: this.viewsUrl } : {}),
      ...this.options.env,
    };
    this.baseUrl = `http://127.0.0.1:${apiPort}`;
    this.startWorker();
    // The port was free when picked, but a process started since (another stack's dev server binds
    // side ports of its own choosing) may have taken it: then the API gets a new one, twice at most.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startApi();
        break;
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
        const port = await freePort();
        this.env = { ...this.env, TIDEBOX_PORT: String(port) };
        this.baseUrl = `http://127.0.0.1:${port}`;
      }
    }
    // A worker that died or hangs while starting would show only as 504s in every test: fail here,
    // with its log, instead.
    try {
      await this.workerReady();
    } catch (err) {
      if (!this.worker.running) await this.worker.logFlushed();
      const file = join(this.dataDir, 'worker.log');
      const log = existsSync(file) ? readFileSync(file, 'utf8').slice(-4000) : '(no log)';
      throw new Error(`${(err as Error).message}\nworker.log (tail):\n${log}`, { cause: err });
    }
  }

  private async joinCluster(stateDir: string): Promise<void> {
    if (this.options.temporalDynamicConfig) throw new Error('a stack on the shared Temporal cluster cannot have dynamic config of its own');
    this.temporal = new ClusterTemporal(stateDir);
    await this.temporal.start();
    this.namespace = `tidebox-${this.instance}`;
    // On the cluster, LIST reads the read projection on its PostgreSQL (the production shape).
    if (this.options.views !== false) this.viewsUrl = await this.temporal.viewsUrl();
  }

  private async startDevServer(port: number): Promise<void> {
    // The dev server also binds ports of its own choosing next to the one given (its internal services):
    // one of those taken by another process ends it at start-up. Then it gets a new port, twice at most.
    for (let attempt = 1; ; attempt++) {
      this.temporal = new TemporalDevServer({
        cliPath: process.env.TEMPORAL_CLI_PATH ?? 'temporal',
        dbFile: join(this.dataDir, 'temporal.db'),
        port: attempt === 1 ? port : await freePort(),
        logFile: join(this.dataDir, 'temporal.log'),
        ...(this.options.temporalDynamicConfig ? { dynamicConfig: this.options.temporalDynamicConfig } : {}),
      });
      try {
        await this.temporal.start();
        break;
      } catch (err) {
        if (attempt >= 3 || !/exited during start-up/.test((err as Error).message)) {
          const log = existsSync(join(this.dataDir, 'temporal.log'))
            ? readFileSync(join(this.dataDir, 'temporal.log'), 'utf8').slice(-2000)
            : '';
          throw new Error(`${(err as Error).message}\ntemporal.log (tail):\n${log}`, { cause: err });
        }
      }
    }
  }

  /** Start (or restart) the API process on the same port and wait until it answers. */
  async startApi(): Promise<void> {
    this.api = new ManagedProcess('api', join(repoRoot(), 'dist/api/main.js'), this.env, join(this.dataDir, 'api.log'));
    this.api.start();
    await this.answering(this.api, this.baseUrl, join(this.dataDir, 'api.log'));
  }

  /**
   * Resolves once the API process answers /health; an API that exits at start-up (its port taken) is
   * told at once, not after the wait. The first stack of a fresh run starts cold: allow for it.
   */
  private async answering(api: ManagedProcess, baseUrl: string, logFile: string): Promise<void> {
    try {
      for (const deadline = Date.now() + 90_000; ;) {
        if (!api.running) throw new Error('the API process exited during start-up');
        if (
          await fetch(`${baseUrl}/health`).then(
            (r) => r.ok,
            () => false,
          )
        )
          break;
        if (Date.now() > deadline) throw new Error('timed out after 90000 ms waiting for API health');
        await new Promise((r) => setTimeout(r, 100));
      }
    } catch (err) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-4000) : '(no log)';
      throw new Error(`${(err as Error).message}\napi.log (tail):\n${log}`, { cause: err });
    }
  }

  /** Start a second API process (a replica: same config and Temporal, its own port and log, `extraEnv` over its environment); resolves once it answers. */
  async startApiReplica(name: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ process: ManagedProcess; baseUrl: string }> {
    const baseUrl = `http://127.0.0.1:${await freePort()}`;
    const logFile = join(this.dataDir, `${name}.log`);
    const api = new ManagedProcess(
      name,
      join(repoRoot(), 'dist/api/main.js'),
      { ...this.env, ...extraEnv, TIDEBOX_PORT: new URL(baseUrl).port },
      logFile,
    );
    api.start();
    await this.answering(api, baseUrl, logFile);
    return { process: api, baseUrl };
  }

  /** Start (or restart) the worker, optionally with extra environment such as fault points. */
  startWorker(extraEnv: NodeJS.ProcessEnv = {}): void {
    this.workerStartsBefore = this.workerStarts();
    this.worker = new ManagedProcess(
      'worker',
      join(repoRoot(), 'dist/worker/main.js'),
      { ...this.env, ...this.options.workerEnv, ...extraEnv },
      join(this.dataDir, 'worker.log'),
    );
    this.worker.start();
  }

  private workerStartsBefore = 0;

  /**
   * Start a worker of another host (e.g. a second Docker engine): the stack's config with these
   * sections merged over it, its own data dir and log (`<name>.log`). Resolves once it polls.
   */
  async startHostWorker(name: string, sections: Record<string, Record<string, unknown>>): Promise<ManagedProcess> {
    const dataDir = join(this.dataDir, name);
    mkdirSync(dataDir, { recursive: true });
    const merged: Record<string, unknown> = { ...this.config, dataDir };
    for (const [key, value] of Object.entries(sections)) merged[key] = { ...((this.config[key] as object) ?? {}), ...value };
    const configPath = join(this.dataDir, `${name}.toml`);
    writeFileSync(configPath, stringify(merged));
    const log = join(this.dataDir, `${name}.log`);
    const starts = () => (existsSync(log) ? readFileSync(log, 'utf8').split('"worker started"').length - 1 : 0);
    const before = starts();
    const worker = new ManagedProcess(name, join(repoRoot(), 'dist/worker/main.js'), { ...this.env, TIDEBOX_CONFIG: configPath }, log);
    worker.start();
    await waitFor(`worker ${name} to start`, () => starts() > before || !worker.running, 90_000, 100);
    if (!worker.running) throw new Error(`worker ${name} exited while starting:\n${readFileSync(log, 'utf8').slice(-3000)}`);
    return worker;
  }

  private workerStarts(): number {
    const file = join(this.dataDir, 'worker.log');
    return existsSync(file) ? readFileSync(file, 'utf8').split('"worker started"').length - 1 : 0;
  }

  /**
   * Resolves once the worker last started has logged that it polls its task queues. A restarted
   * worker bundles its workflows first, which on a busy CI machine takes many seconds; a test that
   * times what the worker does after a restart starts its clock here.
   */
  async workerReady(timeoutMs = 90_000): Promise<void> {
    await waitFor('the worker to start', () => this.workerStarts() > this.workerStartsBefore || !this.worker.running, timeoutMs, 100);
    if (!this.worker.running) throw new Error('the worker exited while starting; see worker.log');
  }

  faultFile(point: string, sandboxId: string): string {
    return join(this.dataDir, 'faults', `${point}.${sandboxId}`);
  }

  /**
   * One HTTP request to the API. Uses node:http rather than fetch so that a response the server
   * sends before reading the whole body (e.g. 400 for a 10 MB upload) is still read, not lost to EPIPE.
   */
  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
    return this.requestTo(this.baseUrl, method, path, body, headers);
  }

  /** One HTTP request to the API at `baseUrl` (a replica), as `request`. */
  async requestTo(
    baseUrl: string,
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<HttpResult> {
    const h: Record<string, string> = { ...headers };
    if (this.options.apiKey && !('OPEN-SANDBOX-API-KEY' in h)) h['OPEN-SANDBOX-API-KEY'] = this.options.apiKey;
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    if (payload) {
      h['content-type'] ??= 'application/json';
      h['content-length'] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
      let responded = false;
      const req = httpRequest(`${baseUrl}${path}`, { method, headers: h }, (res) => {
        responded = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON: leave as text
          }
          const out = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out.set(k, String(v));
          resolve({ status: res.statusCode ?? 0, headers: out, body: parsed });
        });
      });
      req.on('error', (err) => {
        if (!responded) reject(err);
      });
      req.end(payload);
    });
  }

  /** Every container of this stack for one sandbox (or all of them). */
  async containers(sandboxId?: string): Promise<Dockerode.ContainerInfo[]> {
    const label = [`${LABELS.instance}=${this.instance}`];
    if (sandboxId) label.push(`${LABELS.sandboxId}=${sandboxId}`);
    return this.docker.listContainers({ all: true, filters: { label } });
  }

  /** Requests as one API key (a tenant's or an admin's). */
  as(key: string): (method: string, path: string, body?: unknown) => Promise<HttpResult> {
    return (method, path, body) => this.request(method, path, body, { 'OPEN-SANDBOX-API-KEY': key });
  }

  /** Run a shell script in the sandbox's container (docker exec); its exit code and output. */
  async exec(sandboxId: string, script: string): Promise<{ code: number; output: string }> {
    const [c] = await this.containers(sandboxId);
    if (!c) throw new Error(`sandbox ${sandboxId} has no container`);
    const e = await this.docker.getContainer(c.Id).exec({ Cmd: ['sh', '-c', script], AttachStdout: true, AttachStderr: true });
    const stream = await e.start({});
    const chunks: Buffer[] = [];
    await new Promise((resolve) => {
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', resolve);
    });
    // Docker multiplexes stdout/stderr in 8-byte-header frames.
    const raw = Buffer.concat(chunks);
    let output = '';
    for (let i = 0; i + 8 <= raw.length; i += 8 + raw.readUInt32BE(i + 4))
      output += raw.subarray(i + 8, i + 8 + raw.readUInt32BE(i + 4)).toString('utf8');
    return { code: (await e.inspect()).ExitCode ?? -1, output };
  }

  async destroy(): Promise<void> {
    await this.api?.stop().catch(() => undefined);
    await this.worker?.stop().catch(() => undefined);
    // The shared cluster outlives the stack (the global tear-down stops it); a dev server is its own.
    if (this.temporal instanceof TemporalDevServer) await this.temporal.stop().catch(() => undefined);
    // Containers, then the tenant networks Tidebox keeps for reuse. A network still has an endpoint
    // while a container that went up during tear-down is there: remove again until both are gone
    // (bounded), and say so if one stays, so a leak shows in the run's output.
    const label = { label: [`${LABELS.instance}=${this.instance}`] };
    let left: string[] = [];
    for (let round = 0; round < 10; round++) {
      for (const c of await this.containers().catch(() => [])) {
        await this.docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => undefined);
      }
      left = [];
      for (const n of await this.docker.listNetworks({ filters: label }).catch(() => [])) {
        await this.docker
          .getNetwork(n.Id)
          .remove()
          .catch(() => left.push(n.Name));
      }
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    if (left.length) console.warn(`stack ${this.instance}: Docker networks left behind: ${left.join(', ')}`);
    if (!process.env.TIDEBOX_KEEP_TEST_DATA) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A create request for the offline test image with overrides. */
export function sandboxRequest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    image: { uri: TEST_IMAGE },
    entrypoint: ['tail', '-f', '/dev/null'],
    timeout: 600,
    resourceLimits: { cpu: '250m', memory: '64Mi' },
    ...overrides,
  };
}

/**
 * A sandbox whose entrypoint exits at once, once it is Failed. Without a grace window (the default)
 * its create answers Running or Failed, whichever the engine showed first, and the exit watcher
 * fails it within moments: this waits for that and answers the sandbox as GET shows it.
 */
export async function failedSandbox(
  req: (method: string, path: string, body?: unknown) => Promise<HttpResult>,
  script = 'echo boom; exit 3',
): Promise<Record<string, any>> {
  const created = await req('POST', '/v1/sandboxes', sandboxRequest({ entrypoint: ['sh', '-c', script] }));
  if (created.status !== 202) throw new Error(`create answered ${created.status}: ${JSON.stringify(created.body)}`);
  return waitFor(
    'the sandbox to be Failed',
    async () => {
      const got = await req('GET', `/v1/sandboxes/${created.body.id}`);
      return got.body?.status?.state === 'Failed' ? got.body : undefined;
    },
    20_000,
    100,
  );
}

/** A tenants file (the file provider's TOML) with one tenant per name, each in the namespace of its name, with one key. */
export function writeTenantsFile(file: string, keys: Record<string, string>): void {
  const tenants = Object.entries(keys).map(([name, key]) => ({ name, namespace: name, apiKeys: [key] }));
  writeFileSync(file, stringify({ tenants }));
}
