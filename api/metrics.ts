import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Usage } from '../core/quotas';
import { SANDBOX_STATES } from '../core/sandbox';
import type { QuotaService, WorkflowService } from './temporal';

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
  cacheMs = 5000,
): { countClientEvent: ClientEventCounter } {
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

  // Cache the promise, not the value: the three gauges collect in parallel and must share one round
  // of visibility queries; a failed round is not kept.
  let cached: { at: number; value: ReturnType<WorkflowService['counts']> } | undefined;
  const counts = () => {
    if (!cached || Date.now() - cached.at > cacheMs) {
      const value = workflows.counts();
      const entry = { at: Date.now(), value };
      cached = entry;
      value.catch(() => {
        if (cached === entry) cached = undefined;
      });
    }
    return cached.value;
  };

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
  let usageCache: { at: number; value: Promise<Array<[string, Usage]>> } | undefined;
  new Gauge({
    name: 'tidebox_quota_usage',
    help: 'What each tenant that created through this API process holds now (its tenant actor): sandboxes, cpu_millis, memory_bytes, snapshots',
    labelNames: ['tenant', 'resource'] as const,
    registers: [registry],
    async collect() {
      if (!usageCache || Date.now() - usageCache.at > cacheMs) {
        const value = Promise.all([...quotas.tenantsSeen()].map(async (t): Promise<[string, Usage]> => [t, await quotas.usage(t)]));
        usageCache = { at: Date.now(), value };
        value.catch(() => (usageCache = undefined));
      }
      for (const [tenant, u] of await usageCache.value) {
        this.set({ tenant, resource: 'sandboxes' }, u.sandboxes);
        this.set({ tenant, resource: 'cpu_millis' }, u.cpuMillis);
        this.set({ tenant, resource: 'memory_bytes' }, u.memoryBytes);
        this.set({ tenant, resource: 'snapshots' }, u.snapshots ?? 0);
      }
    },
  });

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
  return { countClientEvent };
}

/** How many distinct client event names get their own series. */
export const MAX_CLIENT_EVENT_NAMES = 32;
export type ClientEventCounter = (eventType: string, success: boolean | undefined) => void;
