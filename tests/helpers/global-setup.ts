import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** jest global set-up: names the run's Temporal cluster state dir; the first stack that needs the cluster starts it. */
export default function globalSetup(): void {
  process.env.TIDEBOX_TEST_CLUSTER_DIR ??= join(tmpdir(), `tidebox-temporal-cluster-${process.pid}`);
}
