import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ClientEventSchema } from '../../core/schemas';
import type { ClientEventCounter } from '../metrics';
import { doc, ErrorResponses, NoContent } from './common';

/** Client telemetry the OpenSandbox SDKs send (create latency reports): counted in /metrics by name, nothing stored. */
export const clientEventRoutes: FastifyPluginAsyncZod<{ count: ClientEventCounter }> = async (app, { count }) => {
  app.post(
    '/metrics/events',
    {
      schema: {
        ...doc('Operations', 'Report a client event (SDK telemetry): counted by eventType in /metrics, not stored', 'reportClientEvent'),
        body: ClientEventSchema,
        response: { 204: NoContent, ...ErrorResponses },
      },
    },
    async (req, reply) => {
      count(req.body.eventType, req.body.success);
      return reply.code(204).send(null);
    },
  );
};
