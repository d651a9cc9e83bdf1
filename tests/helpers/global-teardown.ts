import { existsSync } from 'node:fs';
import { stopCluster } from './temporal-cluster';

/** jest global tear-down: stops the run's Temporal cluster (and PostgreSQL) if a stack started it. */
export default async function globalTeardown(): Promise<void> {
  const dir = process.env.TIDEBOX_TEST_CLUSTER_DIR;
  if (dir && existsSync(dir)) await stopCluster(dir);
}
