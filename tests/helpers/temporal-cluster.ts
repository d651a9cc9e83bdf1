/**
 * The real Temporal cluster of a test run (scripts/temporal-test-cluster: temporal-server built from
 * Go modules, on PostgreSQL with advanced visibility), shared by every stack that asks for it. The
 * jest global set-up names its state dir (TIDEBOX_TEST_CLUSTER_DIR) and the global tear-down stops
 * it; the first stack that needs it starts it. Each stack gets a namespace of its own, registered by
 * Tidebox's own start-up code, so stacks never see each other's workflows or task queues.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { repoRoot } from './stack';

/** The read projection's database on the cluster's PostgreSQL. */
const VIEWS_DATABASE = 'tidebox_views';

const run = promisify(execFile);
const script = () => join(repoRoot(), 'scripts/temporal-test-cluster');

/** The file scripts/temporal-test-cluster marks a state dir with once it uses it. */
export const CLUSTER_MARKER = '.tidebox-temporal-test-cluster';

/** Set by the files under tests/e2e/cluster before they import a suite: its stacks use the cluster. */
export const USE_CLUSTER_ENV = 'TIDEBOX_TEST_TEMPORAL_CLUSTER';

/** The cluster's state dir when this test file runs against the real cluster, else undefined. */
export function clusterStateDir(): string | undefined {
  if (!process.env[USE_CLUSTER_ENV]) return undefined;
  const dir = process.env.TIDEBOX_TEST_CLUSTER_DIR;
  if (!dir) throw new Error(`${USE_CLUSTER_ENV} is set but TIDEBOX_TEST_CLUSTER_DIR is not (the jest global set-up names it)`);
  return dir;
}

/** The cluster as a stack sees it: the same start/stop/address as the dev server's, for crash drills. */
export class ClusterTemporal {
  address = '';

  constructor(readonly stateDir: string) {}

  /** Start the cluster, or only its server after {@link stop}; the address stays the same. */
  async start(): Promise<void> {
    const { stdout } = await run('bash', [script(), 'start', this.stateDir], { timeout: 900_000, maxBuffer: 16 * 1024 * 1024 });
    this.address = stdout.trim().split('\n').pop()!;
  }

  /**
   * A database on the cluster's PostgreSQL for the read projection (views.postgresUrl), made once
   * per cluster; stacks share it, each under its own namespace. The cluster's test password.
   */
  async viewsUrl(): Promise<string> {
    const info = JSON.parse(readFileSync(join(this.stateDir, 'cluster.json'), 'utf8')) as { postgres: { port: number } };
    const server = `postgres://temporal:temporal@127.0.0.1:${info.postgres.port}`;
    const admin = new pg.Client({ connectionString: `${server}/postgres` });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${VIEWS_DATABASE}`);
    } catch (err) {
      // Another stack made it first (duplicate_database, or the catalog's unique index in a race).
      if (!['42P04', '23505'].includes((err as { code?: string }).code ?? '')) throw err;
    } finally {
      await admin.end();
    }
    return `${server}/${VIEWS_DATABASE}`;
  }

  /** Stop the Temporal server only (PostgreSQL keeps its data): a crash drill's "Temporal restarts". */
  async stop(): Promise<void> {
    await run('bash', [script(), 'stop-server', this.stateDir], { timeout: 60_000 });
  }
}

/** Stop a cluster and remove its state dir; false when the script could not (the dir is then left for a later run). */
export async function stopCluster(dir: string): Promise<boolean> {
  return run('bash', [script(), 'stop', dir], { timeout: 120_000 }).then(
    () => true,
    () => false,
  );
}
