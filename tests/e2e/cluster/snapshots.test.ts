// tests/e2e/snapshots.test.ts on the real Temporal cluster (temporal-server on PostgreSQL with advanced
// visibility, scripts/temporal-test-cluster) instead of the dev server: docs/deploy.md.
import '../../helpers/use-temporal-cluster';
import '../snapshots.test';
