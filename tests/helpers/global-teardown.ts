import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CLUSTER_MARKER, stopCluster } from './temporal-cluster';

/** jest global tear-down: stops the run's Temporal cluster (and PostgreSQL) and removes its state dir. */
export default async function globalTeardown(): Promise<void> {
  const dir = process.env.TIDEBOX_TEST_CLUSTER_DIR;
  if (!dir || !existsSync(dir)) return;
  // Started: the script stops both servers and removes the dir (if it cannot, the next run's set-up retries).
  if (existsSync(join(dir, CLUSTER_MARKER))) {
    if (!(await stopCluster(dir))) console.warn(`could not stop the Temporal test cluster in ${dir}; the next run's set-up retries`);
  } else rmSync(dir, { recursive: true, force: true });
}
