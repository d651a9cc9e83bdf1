import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Usage } from '../core/quotas';
import { SANDBOX_STATES } from '../core/sandbox';
import type { PoolView } from '../core/pools';
import { sharedRead } from './shared-reads';
import type { PoolService, QuotaService, WorkflowService } from './temporal';

/**
 * Prometheus metrics of the API process, on its own registry (several apps can share a process in
 * tests). Sandbox and workflow counts come from Temporal's visibility store at scrape time, cached
 * briefly, so every API replica reports the same numbers. Activity-level metrics come from the
 * worker's own endpoint (Temporal SDK metrics, `worker.metricsPort`).
 */
export function registerMetrics(
  app: FastifyInstance,
  workflows: Pick<WorkflowService, 'counts'>,
  quotas: Pick<QuotaService, 'refusals' | 'usage' | 'tenantsSeen'>,
  pools: Pick<PoolService, 'list'>,
  cacheMs = 5000,
): { countClientEvent: ClientEventCounter; observeClaim: ClaimObserver } {
  const registry = new Registry();

  const duration = new Histogram({
    name: 'tidebox_http_request_duration_seconds',
    help: 'HTTP request latency by method, route template and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  app.addHook('onResponse', async (req, reply) => {
    duration.observe(
      { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  // The promise is shared, not the value: the three gauges collect in parallel and must share one
  // round of visibility queries; a failed round is not kept.
  const counts = sharedRead(cacheMs, () => workflows.counts());

  new Gauge({
    name: 'tidebox_sandboxes',
    help: 'Live sandboxes by state (all tenants)',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const { byState } = await counts();
      for (const state of SANDBOX_STATES) if (state !== 'Terminated') this.set({ state }, byState[state] ?? 0);
    },
  });
  new Gauge({
    name: 'tidebox_sandboxes_failed',
    help: 'Sandboxes in state Failed (provisioning failed or their process died), all tenants',
    registers: [registry],
    async collect() {
      this.set((await counts()).byState.Failed ?? 0);
    },
  });
  new Gauge({
    name: 'tidebox_workflow_failures',
    help: 'Closed workflows that failed or timed out, by workflow type, within the namespace retention',
    labelNames: ['type', 'status'] as const,
    registers: [registry],
    async collect() {
      for (const f of (await counts()).workflowFailures) this.set({ type: f.type, status: f.status }, f.count);
    },
  });

  new Gauge({
    name: 'tidebox_quota_refusals',
    help: 'Creates refused with 429 QUOTA_EXCEEDED by this API process since it started, by tenant',
    labelNames: ['tenant'] as const,
    registers: [registry],
    collect() {
      for (const [tenant, n] of quotas.refusals()) this.set({ tenant }, n);
    },
  });
  const usage = sharedRead(cacheMs, () =>
    Promise.all([...quotas.tenantsSeen()].map(async (t): Promise<[string, Usage]> => [t, await quotas.usage(t)])),
  );
  new Gauge({
    name: 'tidebox_quota_usage',
    help: 'What each tenant that created through this API process holds now (its tenant actor): sandboxes, cpu_millis, memory_bytes, snapshots, pools (sandboxes, cpu and memory include what pools hold)',
    labelNames: ['tenant', 'resource'] as const,
    registers: [registry],
    async collect() {
      for (const [tenant, u] of await usage()) {
        this.set({ tenant, resource: 'sandboxes' }, u.sandboxes);
        this.set({ tenant, resource: 'cpu_millis' }, u.cpuMillis);
        this.set({ tenant, resource: 'memory_bytes' }, u.memoryBytes);
        this.set({ tenant, resource: 'snapshots' }, u.snapshots ?? 0);
        this.set({ tenant, resource: 'pools' }, u.pools ?? 0);
      }
    },
  });

  const poolViews = sharedRead(cacheMs, (): Promise<PoolView[]> => pools.list({ kind: 'admin' }));
  new Gauge({
    name: 'tidebox_pool_members',
    help: 'Warm pool members by state: available (ready to claim), allocated (claimed, being adopted), warming, draining',
    labelNames: ['tenant', 'pool', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const p of await poolViews())
        for (const state of ['available', 'allocated', 'warming', 'draining'] as const)
          this.set({ tenant: p.tenant, pool: p.name, state }, p.status[state]);
    },
  });
  new Gauge({
    name: 'tidebox_pool_claims',
    help: 'Creates that named a pool since it was made, by outcome: hit (got a member) or miss (none ready: made cold or refused)',
    labelNames: ['tenant', 'pool', 'outcome'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const p of (await poolViews()) as Array<PoolView & { claims?: number; misses?: number }>) {
        this.set({ tenant: p.tenant, pool: p.name, outcome: 'hit' }, p.claims ?? 0);
        this.set({ tenant: p.tenant, pool: p.name, outcome: 'miss' }, p.misses ?? 0);
      }
    },
  });
  const claimSeconds = new Histogram({
    name: 'tidebox_pool_claim_seconds',
    help: 'Create → answered, for creates that named a pool, by outcome (hit: a member was adopted; miss: made cold)',
    labelNames: ['outcome'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const observeClaim: ClaimObserver = (outcome, seconds) => claimSeconds.observe({ outcome }, seconds);

  const clientEvents = new Counter({
    name: 'tidebox_client_events_total',
    help: `Events clients reported on POST /v1/metrics/events, by eventType (the first ${MAX_CLIENT_EVENT_NAMES} names seen; later ones as "other") and success`,
    labelNames: ['event', 'success'] as const,
    registers: [registry],
  });
  // Any caller picks the name: bound the label values so nobody can grow the registry without limit.
  const eventNames = new Set<string>();
  const countClientEvent: ClientEventCounter = (eventType, success) => {
    if (!eventNames.has(eventType) && eventNames.size < MAX_CLIENT_EVENT_NAMES) eventNames.add(eventType);
    clientEvents.inc({ event: eventNames.has(eventType) ? eventType : 'other', success: success === undefined ? '' : String(success) });
  };

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('Content-Type', registry.contentType);
    return registry.metrics();
  });
  return { countClientEvent, observeClaim };
}

export type ClaimObserver = (outcome: 'hit' | 'miss', seconds: number) => void;

/** How many distinct client event names get their own series. */
export const MAX_CLIENT_EVENT_NAMES = 32;
export type ClientEventCounter = (eventType: string, success: boolean | undefined) => void;
