import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  CreateSnapshotRequestSchema,
  ErrorResponseSchema,
  ListSnapshotsQuery,
  ListSnapshotsResponseSchema,
  SandboxIdParams,
  SnapshotIdParams,
  SnapshotResourceSchema,
} from '../../core/schemas';
import { toSnapshotResource } from '../../core/snapshots';
import { parseSnapshotStates, SnapshotService } from '../snapshots';
import { tenantFilter } from './sandboxes';

const Errors = {
  400: ErrorResponseSchema, 401: ErrorResponseSchema, 404: ErrorResponseSchema, 409: ErrorResponseSchema,
  500: ErrorResponseSchema, 503: ErrorResponseSchema,
};
const doc = (summary: string) => ({ tags: ['Snapshots'], summary });

/** Snapshots: the contract's routes plus `retry` for operators. */
export const snapshotRoutes: FastifyPluginAsyncZod<{ snapshots: SnapshotService }> = async (app, { snapshots }) => {
  app.post('/sandboxes/:sandboxId/snapshots', {
    schema: {
      ...doc('Snapshot a Running or Paused sandbox (202 Creating; poll GET /snapshots/{id})'),
      params: SandboxIdParams,
      body: CreateSnapshotRequestSchema,
      response: { 202: SnapshotResourceSchema, ...Errors },
    },
  }, async (req, reply) => {
    const view = await snapshots.create(req.caller, req.params.sandboxId, req.body?.name);
    return reply.code(202).header('Location', `/v1/snapshots/${view.id}`).send(toSnapshotResource(view));
  });

  app.get('/snapshots', {
    schema: { ...doc('List snapshots (sandboxId, state OR, newest first)'), querystring: ListSnapshotsQuery, response: { 200: ListSnapshotsResponseSchema, ...Errors } },
  }, async (req) => {
    const { sandboxId, page, pageSize } = req.query;
    const result = await snapshots.list(req.caller, {
      tenant: tenantFilter(req.caller, req.query.tenant),
      ...(sandboxId ? { sandboxId } : {}),
      states: parseSnapshotStates(req.query.state),
      page,
      pageSize,
    });
    return { items: result.items.map(toSnapshotResource), pagination: result.pagination };
  });

  app.get('/snapshots/:snapshotId', {
    schema: { ...doc('Fetch a snapshot (with its image reference and steps)'), params: SnapshotIdParams, response: { 200: SnapshotResourceSchema, ...Errors } },
  }, async (req) => toSnapshotResource(await snapshots.get(req.caller, req.params.snapshotId)));

  app.delete('/snapshots/:snapshotId', {
    schema: { ...doc('Delete a snapshot and its image (409 while Creating or in use)'), params: SnapshotIdParams, response: { 204: z.null().describe('No content'), ...Errors } },
  }, async (req, reply) => {
    await snapshots.delete(req.caller, req.params.snapshotId);
    return reply.code(204).send(null);
  });

  app.post('/snapshots/:snapshotId/retry', {
    schema: { ...doc('Retry a Failed snapshot from the step that failed (202 Creating)'), params: SnapshotIdParams, response: { 202: SnapshotResourceSchema, ...Errors } },
  }, async (req, reply) => reply.code(202).send(toSnapshotResource(await snapshots.retry(req.caller, req.params.snapshotId))));
};
