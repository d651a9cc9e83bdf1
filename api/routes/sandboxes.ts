import { realpathSync } from 'node:fs';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { SANDBOX_STATES, SandboxState, toCreateResponse, toSandboxResource } from '../../core/sandbox';
import { resolveEndpoint } from '../../core/ingress';
import { mountKey, mountKeyHmacKey } from '../../core/mount-key';
import {
  AcceptedActionSchema,
  CreateSandboxResponseSchema,
  createSandboxRequestSchema,
  EndpointSchema,
  ErrorResponseSchema,
  ListSandboxesResponseSchema,
  RenewResponseSchema,
  RenewScheduleResponseSchema,
  SandboxEventsResponseSchema,
  SandboxResourceSchema,
  MountListSchema,
  WorkflowStatusResponseSchema,
  EndpointParams,
  EndpointQuery,
  ListSandboxesQuery,
  normalizeCreateRequest,
  PatchMetadataSchema,
  RenewRequestSchema,
  RenewScheduleRequestSchema,
  SandboxIdParams,
} from '../../core/schemas';
import { checkPvcPaths, checkResolvedHostPaths } from '../../core/storage';
import type { Caller } from '../../core/tenants';
import { localHost } from '../proxy';
import type { NamespaceCheck } from '../kube-namespaces';
import type { SnapshotService } from '../snapshots';
import type { SandboxService } from '../temporal';

export interface SandboxRouteDeps {
  config: Config;
  /** Kubernetes runtime: checks the tenant's namespace before a create. */
  namespaces?: NamespaceCheck;
  sandboxes: SandboxService;
  snapshots: SnapshotService;
}

const IdempotencyHeaders = z.object({
  'idempotency-key': z.string().min(1).max(255).optional(),
  prefer: z.string().optional(),
});

const Errors = {
  400: ErrorResponseSchema, 401: ErrorResponseSchema, 403: ErrorResponseSchema, 404: ErrorResponseSchema,
  409: ErrorResponseSchema, 500: ErrorResponseSchema, 503: ErrorResponseSchema,
};
const NoContent = z.null().describe('No content');
/** Operations the Kubernetes pod runtime cannot carry out: 501, documented in docs/kubernetes.md. */
export const notOnKubernetes = (what: string) =>
  new TideboxError('NOT_SUPPORTED_BY_RUNTIME', `${what} is not supported on the Kubernetes pod runtime (see docs/kubernetes.md)`);

const doc = (tag: string, summary: string) => ({ tags: [tag], summary });

export const sandboxRoutes: FastifyPluginAsyncZod<SandboxRouteDeps> = async (app, { config, sandboxes, snapshots, namespaces }) => {
  const onKubernetes = config.runtime.type === 'kubernetes';
  const CreateBody = createSandboxRequestSchema(config.sandbox);
  // Mount ids are keyed with a key derived from the payload key; no payload key, no ossfs volumes.
  const mountKeys = config.security.payloadKey ? mountKeyHmacKey(config.security.payloadKey) : undefined;

  app.post('/sandboxes', {
    schema: {
      ...doc('Sandboxes', 'Create a sandbox (answers when Running or Failed, or at once with Prefer: respond-async)'),
      body: CreateBody,
      headers: IdempotencyHeaders,
      response: { 202: CreateSandboxResponseSchema, ...Errors },
    },
  }, async (req, reply) => {
    const { caller } = req;
    if (caller.kind !== 'tenant') throw new TideboxError('FORBIDDEN', "admin keys act on existing sandboxes; create sandboxes with a tenant's key");
    if (onKubernetes && req.body.snapshotId !== undefined) throw notOnKubernetes('restoring a snapshot');
    const snapshot = req.body.snapshotId && !req.body.image ? await restorable(caller, req.body.snapshotId) : undefined;
    const spec = normalizeCreateRequest(req.body, config.sandbox, {
      tenant: caller.tenant,
      runtime: config.runtime.type,
      payloadsEncrypted: !!config.security.payloadKey,
      ...(snapshot ? { snapshot: { id: snapshot.id, image: snapshot.image } } : {}),
      ...(mountKeys ? { mountKeyOf: (source) => mountKey(caller.tenant, source, mountKeys) } : {}),
    });
    if (onKubernetes) {
      // Host paths live on the cluster's nodes, not here: only the lexical checks above apply.
      if (namespaces && !(await namespaces.exists(caller.namespace))) {
        throw new TideboxError('INVALID_PARAMETER', `namespace ${caller.namespace} of tenant ${caller.tenant} does not exist on the cluster; an operator must create it first`);
      }
    } else {
      // Early answers for paths this process can see; the host that binds checks again right before create.
      checkResolvedHostPaths(spec.volumes, config.sandbox.allowedHostPaths, realpathOrUndefined);
      checkPvcPaths(spec.pvcs ?? [], config.docker.volumeRoot, realpathOrUndefined);
    }
    const respondAsync = /(^|[,;\s])respond-async($|[,;\s])/i.test(req.headers.prefer ?? '');
    const view = await sandboxes.create(caller, spec, { idempotencyKey: req.headers['idempotency-key'], respondAsync });
    return reply.code(202).header('Location', `/v1/sandboxes/${view.id}`).send(toCreateResponse(view));
  });

  /** A snapshot a new sandbox can start from: the caller's, Ready, and on this API's Docker host. */
  async function restorable(caller: Caller, snapshotId: string) {
    const snapshot = await snapshots.get(caller, snapshotId);
    if (snapshot.status.state !== 'Ready') {
      throw new TideboxError('SNAPSHOT_INVALID_STATE', `snapshot ${snapshotId} is ${snapshot.status.state}; only a Ready snapshot can be restored`);
    }
    if (snapshot.hostId !== config.docker.hostId) {
      throw new TideboxError('SNAPSHOT_INVALID_STATE', `snapshot ${snapshotId} lives on Docker host ${snapshot.hostId}; restore it through that host's API`);
    }
    return snapshot;
  }

  app.get('/sandboxes', {
    schema: { ...doc('Sandboxes', 'List sandboxes (state OR, metadata AND, newest first)'), querystring: ListSandboxesQuery, response: { 200: ListSandboxesResponseSchema, ...Errors } },
  }, async (req) => {
    const { page, pageSize } = req.query;
    const states = [req.query.state ?? []].flat().flatMap((s) => s.split(',')).filter(Boolean);
    const unknown = states.filter((s) => !(SANDBOX_STATES as readonly string[]).includes(s));
    if (unknown.length) {
      throw new TideboxError('INVALID_PARAMETER', `unknown state ${unknown.join(', ')}; expected one of ${SANDBOX_STATES.join(', ')}`);
    }
    const metadata = Object.fromEntries(new URLSearchParams(req.query.metadata ?? ''));
    const tenant = tenantFilter(req.caller, req.query.tenant);
    const result = await sandboxes.list(req.caller, { tenant, states: states as SandboxState[], metadata, page, pageSize });
    return { items: result.items.map(toSandboxResource), pagination: result.pagination };
  });

  app.get('/sandboxes/:sandboxId', {
    schema: { ...doc('Sandboxes', 'Fetch a sandbox'), params: SandboxIdParams, response: { 200: SandboxResourceSchema, ...Errors } },
  }, async (req) =>
    toSandboxResource(await sandboxes.get(req.caller, req.params.sandboxId)),
  );

  app.delete('/sandboxes/:sandboxId', {
    schema: { ...doc('Sandboxes', 'Delete a sandbox (from any state)'), params: SandboxIdParams, response: { 204: NoContent, ...Errors } },
  }, async (req, reply) => {
    await sandboxes.delete(req.caller, req.params.sandboxId);
    return reply.code(204).send(null);
  });

  app.post(
    '/sandboxes/:sandboxId/renew-expiration',
    { schema: { ...doc('Sandboxes', 'Renew the expiration'), params: SandboxIdParams, body: RenewRequestSchema, response: { 200: RenewResponseSchema, ...Errors } } },
    async (req) => sandboxes.renew(req.caller, req.params.sandboxId, req.body.expiresAt),
  );

  // Pause and resume answer 202 once the actor accepted the request (state Pausing/Resuming).
  for (const op of ['pause', 'resume'] as const) {
    app.post(`/sandboxes/:sandboxId/${op}`, {
      schema: {
        ...doc('Sandboxes', op === 'pause' ? 'Pause a Running sandbox (Pausing → Paused)' : 'Resume a Paused sandbox (Resuming → Running)'),
        params: SandboxIdParams,
        response: { 202: AcceptedActionSchema, ...Errors },
      },
    }, async (req, reply) => {
      if (onKubernetes) {
        await sandboxes.get(req.caller, req.params.sandboxId); // a missing sandbox is still a 404
        throw notOnKubernetes(op);
      }
      const view = await sandboxes[op](req.caller, req.params.sandboxId);
      return reply.code(202).send({ state: view.status.state, workflowId: view.workflowId });
    });
  }

  app.patch(
    '/sandboxes/:sandboxId/metadata',
    { schema: { ...doc('Sandboxes', 'Patch metadata (JSON merge patch; null deletes)'), params: SandboxIdParams, body: PatchMetadataSchema, response: { 200: SandboxResourceSchema, ...Errors } } },
    async (req) => toSandboxResource(await sandboxes.patchMetadata(req.caller, req.params.sandboxId, req.body)),
  );

  app.get('/sandboxes/:sandboxId/events', {
    schema: { ...doc('History', 'Lifecycle history (also after termination, for the retention period)'), params: SandboxIdParams, response: { 200: SandboxEventsResponseSchema, ...Errors } },
  }, async (req) => {
    const { view, events } = await sandboxes.events(req.caller, req.params.sandboxId);
    return {
      id: view.id,
      state: view.status.state,
      ...(view.terminationReason ? { terminationReason: view.terminationReason } : {}),
      events,
    };
  });

  app.get(
    '/sandboxes/:sandboxId/endpoints/:port',
    { schema: { ...doc('Sandboxes', 'Endpoint of a port (direct, gateway or server proxy)'), params: EndpointParams, querystring: EndpointQuery, response: { 200: EndpointSchema, ...Errors } } },
    async (req) => {
      const { sandboxId, port } = req.params;
      if (req.query.expires !== undefined) {
        if (req.query.use_server_proxy) throw new TideboxError('INVALID_PARAMETER', 'expires cannot be combined with use_server_proxy=true');
        throw new TideboxError('UNSUPPORTED', 'signed endpoints (expires) are not supported by this server');
      }
      const view = await sandboxes.get(req.caller, sandboxId);
      const resolved = resolveEndpoint({ ingress: config.ingress, sandbox: view, port, local: localHost(config) });
      if (!resolved.ok) throw new TideboxError('PORT_NOT_AVAILABLE', resolved.reason);
      if (req.query.use_server_proxy) {
        const host = config.server.publicHost ?? req.headers.host ?? `${config.server.host}:${config.server.port}`;
        return { endpoint: `${host}/sandboxes/${encodeURIComponent(sandboxId)}/proxy/${port}` };
      }
      return resolved.endpoint;
    },
  );

  app.put(
    '/sandboxes/:sandboxId/renew-schedule',
    { schema: { ...doc('Renew schedules', 'Create or replace the renew schedule'), params: SandboxIdParams, body: RenewScheduleRequestSchema, response: { 200: RenewScheduleResponseSchema, ...Errors } } },
    async (req) => sandboxes.putRenewSchedule(req.caller, req.params.sandboxId, req.body),
  );
  app.get('/sandboxes/:sandboxId/renew-schedule', {
    schema: { ...doc('Renew schedules', 'Describe the renew schedule'), params: SandboxIdParams, response: { 200: RenewScheduleResponseSchema, ...Errors } },
  }, async (req) =>
    sandboxes.getRenewSchedule(req.caller, req.params.sandboxId),
  );
  app.delete('/sandboxes/:sandboxId/renew-schedule', {
    schema: { ...doc('Renew schedules', 'Remove the renew schedule'), params: SandboxIdParams, response: { 204: NoContent, ...Errors } },
  }, async (req, reply) => {
    await sandboxes.deleteRenewSchedule(req.caller, req.params.sandboxId);
    return reply.code(204).send(null);
  });

  app.get('/mounts', {
    schema: {
      ...doc('Operations', 'Shared bucket mounts of this tenant (admin keys: every tenant, or ?tenant=): key, host, path, holders, state (never credentials)'),
      querystring: TenantQuery,
      response: { 200: MountListSchema, ...Errors },
    },
  }, async (req) => ({ items: await sandboxes.mounts(req.caller, tenantFilter(req.caller, req.query.tenant)) }));

  // Workflow ids contain "/" (sandbox/<id>, renew/<id>/...): take the rest of the path, or an encoded id.
  app.get('/workflows/*', {
    schema: { ...doc('Operations', 'Status of a workflow a response returned (path = the workflow id)'), response: { 200: WorkflowStatusResponseSchema, ...Errors } },
  }, async (req) => {
    // Fastify has already decoded the wildcard: `sandbox%2F<id>` and `sandbox/<id>` both arrive as `sandbox/<id>`.
    const workflowId = (req.params as { '*': string })['*'];
    if (!workflowId) throw new TideboxError('INVALID_PARAMETER', 'workflow id is required');
    return sandboxes.workflow(req.caller, workflowId);
  });
};

const TenantQuery = ListSandboxesQuery.pick({ tenant: true });

/** The `tenant` filter: admins pick any tenant; a tenant key may only name its own. */
export function tenantFilter(caller: Caller, tenant: string | undefined): string | undefined {
  if (tenant === undefined || caller.kind === 'admin') return tenant;
  if (tenant !== caller.tenant) throw new TideboxError('INVALID_PARAMETER', 'the tenant filter needs an admin key');
  return tenant;
}

function realpathOrUndefined(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
