import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { type CapacitySpec, capacityProblem, POOL_NAME, POOL_REF_EXTENSION } from '../../core/pools';
import type { SandboxSpec } from '../../core/sandbox';
import { createSandboxRequestSchema, offerOf } from '../../core/schemas';
import { DNS_LABEL, type TenantCaller, tenantOnly } from '../../core/tenants';
import type { SpecPreparer } from '../create-sandbox';
import type { PoolService } from '../temporal';
import { doc, ErrorResponses, NoContent } from './common';

const tag = 'Pools';

const CapacitySpecSchema = z
  .object({
    bufferMin: z.number().int().min(0),
    bufferMax: z.number().int().min(0),
    poolMin: z.number().int().min(0),
    poolMax: z.number().int().min(0),
  })
  .strict() satisfies z.ZodType<CapacitySpec>;

const PoolStatusSchema = z.object({
  total: z.number().int(),
  allocated: z.number().int(),
  available: z.number().int(),
  warming: z.number().int(),
  draining: z.number().int(),
});
const PoolSchema = z.object({
  name: z.string(),
  tenant: z.string(),
  template: z.record(z.string(), z.unknown()),
  capacitySpec: CapacitySpecSchema,
  status: PoolStatusSchema,
  createdAt: z.string(),
  hostId: z.string().optional().describe('The Docker host whose engine holds the members'),
  deleting: z.boolean().optional(),
  claims: z.number().int().optional().describe('Creates that got a member'),
  misses: z.number().int().optional().describe('Creates that found none ready (went cold)'),
  lastError: z.string().optional().describe('Why the last member could not be made, until one is'),
});
const NameParams = z.object({ name: z.string().regex(POOL_NAME, 'a pool name is a DNS label (a-z, 0-9, "-", at most 63)') });
const TenantQuery = z.object({ tenant: z.string().regex(DNS_LABEL, 'must be a tenant name').optional() });

export interface PoolRouteDeps {
  config: Config;
  pools: PoolService;
  prepareSpec: SpecPreparer;
}

/** Warm pools (docs/pools.md): a tenant's named sets of sandboxes made ahead of demand from a template. */
export const poolRoutes: FastifyPluginAsyncZod<PoolRouteDeps> = async (app, { config, pools, prepareSpec }) => {
  const Template = createSandboxRequestSchema(config.sandbox, offerOf(config));
  const PoolBody = z.object({ template: Template, capacitySpec: CapacitySpecSchema }).strict();

  /** The spec members are made with: the template as a create would run it, minus what cannot be made ahead. */
  const templateSpec = async (caller: TenantCaller, template: z.infer<typeof Template>, capacity: CapacitySpec) => {
    const problem = capacityProblem(capacity, config.pools.maxMembers);
    if (problem) throw new TideboxError('INVALID_PARAMETER', problem);
    if (template.snapshotId !== undefined)
      throw new TideboxError('INVALID_PARAMETER', 'a pool template cannot restore a snapshot (snapshotId)');
    if (template.extensions?.[POOL_REF_EXTENSION] !== undefined)
      throw new TideboxError('INVALID_PARAMETER', `a pool template cannot itself name a pool (extensions.${POOL_REF_EXTENSION})`);
    const spec: SandboxSpec = await prepareSpec(caller, template);
    if (spec.ossfs.length)
      throw new TideboxError(
        'INVALID_PARAMETER',
        'a pool template cannot have ossfs volumes (a shared mount is held per sandbox, from its create)',
      );
    return spec;
  };

  app.post(
    '/pools',
    {
      schema: {
        ...doc(tag, 'Create a warm pool (members are made in the background)', 'createPool'),
        body: PoolBody.extend({ name: NameParams.shape.name }),
        response: { 201: PoolSchema, ...ErrorResponses },
      },
    },
    async (req, reply) => {
      const caller = tenantOnly(req.caller);
      const { name, template, capacitySpec } = req.body;
      const spec = await templateSpec(caller, template, capacitySpec);
      return reply.code(201).send(await pools.create(caller, name, template, spec, capacitySpec));
    },
  );

  app.get(
    '/pools',
    {
      schema: {
        ...doc(tag, "The caller's pools (an admin: every tenant's, or one with ?tenant=)", 'listPools'),
        querystring: TenantQuery,
        response: { 200: z.object({ items: z.array(PoolSchema) }), ...ErrorResponses },
      },
    },
    async (req) => ({ items: await pools.list(req.caller, req.query.tenant) }),
  );

  app.get(
    '/pools/:name',
    {
      schema: {
        ...doc(tag, 'A pool with its status (total, allocated, available)', 'getPool'),
        params: NameParams,
        querystring: TenantQuery,
        response: { 200: PoolSchema, ...ErrorResponses },
      },
    },
    async (req) => pools.get(req.caller, req.params.name, req.query.tenant),
  );

  app.put(
    '/pools/:name',
    {
      schema: {
        ...doc(tag, "Change a pool's template or capacity (members of an older template drain)", 'putPool'),
        params: NameParams,
        body: PoolBody,
        response: { 200: PoolSchema, ...ErrorResponses },
      },
    },
    async (req) => {
      const caller = tenantOnly(req.caller);
      const { template, capacitySpec } = req.body;
      const spec = await templateSpec(caller, template, capacitySpec);
      return pools.configure(caller, req.params.name, template, spec, capacitySpec);
    },
  );

  app.delete(
    '/pools/:name',
    {
      schema: {
        ...doc(tag, 'Delete a pool: its unclaimed members are removed, then it ends', 'deletePool'),
        params: NameParams,
        querystring: TenantQuery,
        response: { 204: NoContent, ...ErrorResponses },
      },
    },
    async (req, reply) => {
      await pools.delete(req.caller, req.params.name, req.query.tenant);
      return reply.code(204).send(null);
    },
  );
};
