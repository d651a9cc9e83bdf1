import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { TideboxError } from '../../core/errors';
import { cpuText, memoryText, type Quota, quotaOfLimits, type Usage } from '../../core/quotas';
import { TenantUsageResponseSchema } from '../../core/responses';
import { DNS_LABEL, tenantOnly } from '../../core/tenants';
import type { QuotaService } from '../temporal';
import { doc, ErrorResponses } from './common';

const tag = 'Tenants';
const usageBody = (tenant: string, limits: Quota, usage: Usage) => ({
  tenant,
  limits,
  usage: {
    sandboxes: usage.sandboxes,
    cpu: cpuText(usage.cpuMillis),
    memory: memoryText(usage.memoryBytes),
    snapshots: usage.snapshots ?? 0,
    pools: usage.pools ?? 0,
  },
});

/** A tenant's quota and usage: its own (`/tenants/me/usage`), or any tenant's for an admin key. */
export const tenantRoutes: FastifyPluginAsyncZod<{ quotas: QuotaService }> = async (app, { quotas }) => {
  app.get(
    '/tenants/me/usage',
    {
      schema: {
        ...doc(tag, "The caller's limits and what it holds now", 'getMyUsage'),
        response: { 200: TenantUsageResponseSchema, ...ErrorResponses },
      },
    },
    async (req) => {
      const caller = tenantOnly(req.caller);
      return usageBody(caller.tenant, quotas.quotaOf(caller), await quotas.usage(caller.tenant));
    },
  );

  app.get(
    '/tenants/:tenant/usage',
    {
      schema: {
        ...doc(tag, "A tenant's limits and usage (admin keys; a tenant may ask for its own)", 'getTenantUsage'),
        params: z.object({ tenant: z.string().regex(DNS_LABEL, 'must be a tenant name (a DNS label)') }),
        response: { 200: TenantUsageResponseSchema, ...ErrorResponses },
      },
    },
    async (req) => {
      const { tenant } = req.params;
      const caller = req.caller;
      if (caller.kind === 'tenant') {
        // Another tenant's usage is as missing as its sandboxes.
        if (caller.tenant !== tenant) throw new TideboxError('NOT_FOUND', `tenant ${tenant} not found`);
        return usageBody(tenant, quotas.quotaOf(caller), await quotas.usage(tenant));
      }
      // An operator sees the limits the tenant's last create was judged by (its own quota lives with its provider).
      const limits = await quotas.lastLimits(tenant);
      return usageBody(tenant, limits ? quotaOfLimits(limits) : {}, await quotas.usage(tenant));
    },
  );
};
