// tests/e2e/expiry.test.ts on the real Temporal cluster (temporal-server on PostgreSQL with advanced
// visibility, scripts/temporal-test-cluster) instead of the dev server: docs/deploy.md.
import '../../helpers/use-temporal-cluster';
import '../expiry.test';
