// tests/e2e/noop-runtime.test.ts on the real Temporal cluster (temporal-server on PostgreSQL with advanced
// visibility, scripts/temporal-test-cluster): LIST's windows on SQL visibility. docs/deploy.md.
import '../../helpers/use-temporal-cluster';
import '../noop-runtime.test';
