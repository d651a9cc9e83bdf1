import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { RenewScheduleResponseSchema } from '../../core/responses';
import { RenewScheduleRequestSchema, SandboxIdParams } from '../../core/schemas';
import type { RenewScheduleService } from '../temporal';
import { doc, ErrorResponses, NoContent } from './common';

const tag = 'Renew schedules';

/** A sandbox's renew schedule: `/sandboxes/{id}/renew-schedule`. */
export const renewScheduleRoutes: FastifyPluginAsyncZod<{ renewSchedules: RenewScheduleService }> = async (app, { renewSchedules }) => {
  app.put(
    '/sandboxes/:sandboxId/renew-schedule',
    {
      schema: {
        ...doc(tag, 'Create or replace the renew schedule', 'putRenewSchedule'),
        params: SandboxIdParams,
        body: RenewScheduleRequestSchema,
        response: { 200: RenewScheduleResponseSchema, ...ErrorResponses },
      },
    },
    async (req) => renewSchedules.put(req.caller, req.params.sandboxId, req.body),
  );

  app.get(
    '/sandboxes/:sandboxId/renew-schedule',
    {
      schema: {
        ...doc(tag, 'Describe the renew schedule', 'getRenewSchedule'),
        params: SandboxIdParams,
        response: { 200: RenewScheduleResponseSchema, ...ErrorResponses },
      },
    },
    async (req) => renewSchedules.get(req.caller, req.params.sandboxId),
  );

  app.delete(
    '/sandboxes/:sandboxId/renew-schedule',
    {
      schema: {
        ...doc(tag, 'Remove the renew schedule', 'deleteRenewSchedule'),
        params: SandboxIdParams,
        response: { 204: NoContent, ...ErrorResponses },
      },
    },
    async (req, reply) => {
      await renewSchedules.delete(req.caller, req.params.sandboxId);
      return reply.code(204).send(null);
    },
  );
};
