import { realpathSync } from 'node:fs';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { SANDBOX_STATES, SandboxState, toCreateResponse, toSandboxResource } from '../../core/sandbox';
import {
  checkResolvedHostPaths,
  createSandboxRequestSchema,
  ListSandboxesQuery,
  normalizeCreateRequest,
  RenewRequestSchema,
  SandboxIdParams,
} from '../../core/schemas';
import type { SandboxService } from '../temporal';

export interface SandboxRouteDeps {
  config: Config;
  sandboxes: SandboxService;
}

const IdempotencyHeaders = z.object({
  'idempotency-key': z.string().min(1).max(255).optional(),
  prefer: z.string().optional(),
});

export const sandboxRoutes: FastifyPluginAsyncZod<SandboxRouteDeps> = async (app, { config, sandboxes }) => {
  const CreateBody = createSandboxRequestSchema(config.sandbox);

  app.post('/sandboxes', { schema: { body: CreateBody, headers: IdempotencyHeaders } }, async (req, reply) => {
    const spec = normalizeCreateRequest(req.body, config.sandbox);
    checkResolvedHostPaths(spec.volumes, config.sandbox.allowedHostPaths, realpathOrUndefined);
    const respondAsync = /(^|[,;\s])respond-async($|[,;\s])/i.test(req.headers.prefer ?? '');
    const view = await sandboxes.create(req.tenant, spec, { idempotencyKey: req.headers['idempotency-key'], respondAsync });
    return reply.code(202).header('Location', `/v1/sandboxes/${view.id}`).send(toCreateResponse(view));
  });

  app.get('/sandboxes', { schema: { querystring: ListSandboxesQuery } }, async (req) => {
    const { page, pageSize } = req.query;
    const states = [req.query.state ?? []].flat().flatMap((s) => s.split(',')).filter(Boolean);
    const unknown = states.filter((s) => !(SANDBOX_STATES as readonly string[]).includes(s));
    if (unknown.length) {
      throw new TideboxError('INVALID_PARAMETER', `unknown state ${unknown.join(', ')}; expected one of ${SANDBOX_STATES.join(', ')}`);
    }
    const metadata = Object.fromEntries(new URLSearchParams(req.query.metadata ?? ''));
    const result = await sandboxes.list(req.tenant, { states: states as SandboxState[], metadata, page, pageSize });
    return { items: result.items.map(toSandboxResource), pagination: result.pagination };
  });

  app.get('/sandboxes/:sandboxId', { schema: { params: SandboxIdParams } }, async (req) =>
    toSandboxResource(await sandboxes.get(req.tenant, req.params.sandboxId)),
  );

  app.delete('/sandboxes/:sandboxId', { schema: { params: SandboxIdParams } }, async (req, reply) => {
    await sandboxes.delete(req.tenant, req.params.sandboxId);
    return reply.code(204).send();
  });

  app.post(
    '/sandboxes/:sandboxId/renew-expiration',
    { schema: { params: SandboxIdParams, body: RenewRequestSchema } },
    async (req) => sandboxes.renew(req.tenant, req.params.sandboxId, req.body.expiresAt),
  );
};

function realpathOrUndefined(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
