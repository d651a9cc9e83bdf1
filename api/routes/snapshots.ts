import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ListSnapshotsResponseSchema, SnapshotResourceSchema } from '../../core/responses';
import { CreateSnapshotRequestSchema, ListSnapshotsQuery, SandboxIdParams, SnapshotIdParams } from '../../core/schemas';
import { SNAPSHOT_STATES, toSnapshotResource } from '../../core/snapshots';
import type { SnapshotService } from '../temporal';
import { doc, ErrorResponses, linksFrom, NoContent, parseStates, tenantFilter } from './common';

const tag = 'Snapshots';

/** Snapshots: the contract's routes plus `retry` for operators. */
export const snapshotRoutes: FastifyPluginAsyncZod<{ snapshots: SnapshotService }> = async (app, { snapshots }) => {
  app.post(
    '/sandboxes/:sandboxId/snapshots',
    {
      schema: {
        ...doc(tag, 'Snapshot a Running or Paused sandbox (202 Creating; poll GET /snapshots/{id})', 'createSnapshot'),
        params: SandboxIdParams,
        body: CreateSnapshotRequestSchema,
        response: { 202: SnapshotResourceSchema, ...ErrorResponses },
      },
      links: { 202: linksFrom('snapshotId', ['getSnapshot', 'deleteSnapshot', 'retrySnapshot']) },
    },
    async (req, reply) => {
      const view = await snapshots.create(req.caller, req.params.sandboxId, req.body?.name);
      return reply.code(202).header('Location', `/v1/snapshots/${view.id}`).send(toSnapshotResource(view));
    },
  );

  app.get(
    '/snapshots',
    {
      schema: {
        ...doc(tag, 'List snapshots (sandboxId, state OR, newest first)', 'listSnapshots'),
        querystring: ListSnapshotsQuery,
        response: { 200: ListSnapshotsResponseSchema, ...ErrorResponses },
      },
    },
    async (req) => {
      const { sandboxId, page, pageSize } = req.query;
      const tenant = tenantFilter(req.caller, req.query.tenant);
      const states = parseStates(req.query.state, SNAPSHOT_STATES, 'snapshot state');
      const result = await snapshots.list(req.caller, { tenant, ...(sandboxId ? { sandboxId } : {}), states, page, pageSize });
      return { items: result.items.map(toSnapshotResource), pagination: result.pagination };
    },
  );

  app.get(
    '/snapshots/:snapshotId',
    {
      schema: {
        ...doc(tag, 'Fetch a snapshot (with its image reference and steps)', 'getSnapshot'),
        params: SnapshotIdParams,
        response: { 200: SnapshotResourceSchema, ...ErrorResponses },
      },
    },
    async (req) => toSnapshotResource(await snapshots.get(req.caller, req.params.snapshotId)),
  );

  app.delete(
    '/snapshots/:snapshotId',
    {
      schema: {
        ...doc(tag, 'Delete a snapshot and its image (409 while Creating or in use)', 'deleteSnapshot'),
        params: SnapshotIdParams,
        response: { 204: NoContent, ...ErrorResponses },
      },
    },
    async (req, reply) => {
      await snapshots.delete(req.caller, req.params.snapshotId);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/snapshots/:snapshotId/retry',
    {
      schema: {
        ...doc(tag, 'Retry a Failed snapshot from the step that failed (202 Creating)', 'retrySnapshot'),
        params: SnapshotIdParams,
        response: { 202: SnapshotResourceSchema, ...ErrorResponses },
      },
    },
    async (req, reply) => reply.code(202).send(toSnapshotResource(await snapshots.retry(req.caller, req.params.snapshotId))),
  );
};
