// tests/e2e/multi-host.test.ts on the real Temporal cluster: two Docker hosts, two host workers (both
// serving the workflow queue) and two API replicas against temporal-server on PostgreSQL.
import '../../helpers/use-temporal-cluster';
import '../multi-host.test';
