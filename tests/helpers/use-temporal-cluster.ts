// Imported first by the files under tests/e2e/cluster: the suite imported after it runs its stacks on
// the real Temporal cluster (tests/helpers/temporal-cluster.ts). jest gives each test file its own
// copy of process.env, so this reaches no other file.
import { USE_CLUSTER_ENV } from './temporal-cluster';

process.env[USE_CLUSTER_ENV] = '1';
