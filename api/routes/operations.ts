import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { TideboxError } from '../../core/errors';
import { MountListSchema, WorkflowStatusResponseSchema } from '../../core/responses';
import { ListSandboxesQuery } from '../../core/schemas';
import type { MountService, WorkflowService } from '../temporal';
import { doc, ErrorResponses, tenantFilter } from './common';

const TenantQuery = ListSandboxesQuery.pick({ tenant: true });
const tag = 'Operations';

/** What operators look at: shared bucket mounts, and the status of any workflow a response named. */
export const operationsRoutes: FastifyPluginAsyncZod<{ mounts: MountService; workflows: WorkflowService }> = async (
  app,
  { mounts, workflows },
) => {
  app.get(
    '/mounts',
    {
      schema: {
        ...doc(
          tag,
          'Shared bucket mounts of this tenant (admin keys: every tenant, or ?tenant=): key, host, path, holders, state (never credentials)',
          'listMounts',
        ),
        querystring: TenantQuery,
        response: { 200: MountListSchema, ...ErrorResponses },
      },
    },
    async (req) => ({ items: await mounts.list(req.caller, tenantFilter(req.caller, req.query.tenant)) }),
  );

  // Workflow ids contain "/" (sandbox/<id>, renew/<id>/...): take the rest of the path, or an encoded id.
  app.get(
    '/workflows/*',
    {
      schema: {
        ...doc(tag, 'Status of a workflow a response returned (path = the workflow id)', 'getWorkflowStatus'),
        response: { 200: WorkflowStatusResponseSchema, ...ErrorResponses },
      },
    },
    async (req) => {
      // Fastify has already decoded the wildcard: `sandbox%2F<id>` and `sandbox/<id>` both arrive as `sandbox/<id>`.
      const workflowId = (req.params as { '*': string })['*'];
      if (!workflowId) throw new TideboxError('INVALID_PARAMETER', 'workflow id is required');
      return workflows.status(req.caller, workflowId);
    },
  );
};
