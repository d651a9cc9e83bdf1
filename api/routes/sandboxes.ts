import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type Config, runtimeHostId } from '../../core/config';
import { notOnKubernetes, TideboxError } from '../../core/errors';
import { resolveEndpoint } from '../../core/ingress';
import { metadataFilterProblem } from '../../core/metadata';
import {
  AcceptedActionSchema,
  CreateSandboxResponseSchema,
  EndpointSchema,
  ListSandboxesResponseSchema,
  RenewResponseSchema,
  SandboxEventsResponseSchema,
  SandboxResourceSchema,
} from '../../core/responses';
import { SANDBOX_STATES, toCreateResponse, toSandboxResource } from '../../core/sandbox';
import {
  createSandboxRequestSchema,
  offerOf,
  EndpointParams,
  EndpointQuery,
  ListSandboxesQuery,
  PatchMetadataSchema,
  RenewRequestSchema,
  SandboxIdParams,
} from '../../core/schemas';
import { tenantOnly } from '../../core/tenants';
import type { SpecPreparer } from '../create-sandbox';
import type { TenantSlots } from '../tenant-slots';
import { EXECD_PORT, EXECD_TOKEN_HEADER } from '../../core/execd';
import type { SandboxSpec, SandboxView } from '../../core/sandbox';
import type { ExecdTokens } from '../../execd/tokens';
import { localHost } from '../proxy';
import type { PoolService, SandboxService } from '../temporal';
import type { ClaimObserver } from '../metrics';
import { claimRequest, POOL_NAME, POOL_REF_EXTENSION, poolWorkflowId, runsAsAsked } from '../../core/pools';
import { doc, ErrorResponses, linksFrom, NoContent, parseStates, tenantFilter } from './common';

export interface SandboxRouteDeps {
  config: Config;
  sandboxes: SandboxService;
  prepareSpec: SpecPreparer;
  /** LISTs running per tenant (server.listsInFlightPerTenant; more wait), one count for both route prefixes. */
  lists: TenantSlots;
  pools: PoolService;
  observeClaim?: ClaimObserver;
  /** Set when Tidebox serves execd: the endpoint of port 44772 is its own, with the sandbox's token. */
  execdTokens?: ExecdTokens;
}

const IdempotencyHeaders = z.object({
  'idempotency-key': z.string().min(1).max(255).optional(),
  prefer: z.string().optional(),
});

const tag = 'Sandboxes';

/** The sandbox resource of the contract: create, read, list, delete, renew, pause/resume, metadata, history, endpoints. */
export const sandboxRoutes: FastifyPluginAsyncZod<SandboxRouteDeps> = async (
  app,
  { config, sandboxes, pools, observeClaim, prepareSpec, lists, execdTokens },
) => {
  const onKubernetes = config.runtime.type === 'kubernetes';

  app.post(
    '/sandboxes',
    {
      schema: {
        ...doc(tag, 'Create a sandbox (answers when Running or Failed, or at once with Prefer: respond-async)', 'createSandbox'),
        body: createSandboxRequestSchema(config.sandbox, offerOf(config)),
        headers: IdempotencyHeaders,
        response: { 202: CreateSandboxResponseSchema, ...ErrorResponses },
      },
      links: {
        202: linksFrom('sandboxId', [
          'getSandbox',
          'deleteSandbox',
          'renewSandboxExpiration',
          'pauseSandbox',
          'resumeSandbox',
          'patchSandboxMetadata',
          'getSandboxEvents',
          'getSandboxEndpoint',
          'createSnapshot',
          'putRenewSchedule',
          'getRenewSchedule',
          'deleteRenewSchedule',
        ]),
      },
    },
    async (req, reply) => {
      const caller = tenantOnly(req.caller);
      const prefer = req.headers.prefer ?? '';
      const respondAsync = /(^|[,;\s])respond-async($|[,;\s])/i.test(prefer);
      const idempotencyKey = req.headers['idempotency-key'];
      const explicitRef = req.body.extensions?.[POOL_REF_EXTENSION];
      const started = process.hrtime.bigint();
      let poolRef: string;
      let asked: SandboxSpec;
      if (explicitRef === undefined) {
        const { spec, hostId } = await prepareSpec.placed(caller, req.body);
        // Transparent claims (opt-in): a pool of this tenant here whose members run exactly this.
        const matched =
          config.pools.transparentClaims && idempotencyKey === undefined
            ? await pools.matching(caller, spec).catch(() => undefined) // no answer: a cold create is always right
            : undefined;
        if (matched === undefined) {
          const view = await sandboxes.create(caller, spec, { idempotencyKey, respondAsync, ...(hostId ? { hostId } : {}) });
          return reply.code(202).header('Location', `/v1/sandboxes/${view.id}`).send(toCreateResponse(view));
        }
        [poolRef, asked] = [matched, spec];
      } else {
        // A claim: the pool's template with this request's timeout and metadata, a ready member if any.
        poolRef = explicitRef;
        if (!POOL_NAME.test(poolRef))
          throw new TideboxError('INVALID_PARAMETER', `extensions.${POOL_REF_EXTENSION} must name a pool (a DNS label)`);
        const { template, hostId } = await pools.template(caller, poolRef);
        // Members live on the pool's host: only that host's API can hand one over (as with snapshots).
        if (hostId !== runtimeHostId(config))
          throw new TideboxError('INVALID_STATE', `pool ${poolRef} lives on Docker host ${hostId}; create through that host's API`);
        // Validates the claim's own timeout and metadata against the template (the view's: env left out)…
        asked = await prepareSpec(caller, claimRequest(template, req.body) as typeof req.body);
      }
      const claimed = await pools.claim(caller, poolRef, idempotencyKey);
      let { memberId, spec: poolSpec } = claimed;
      let thawed = claimed.started && { started: claimed.started, ...(claimed.staleFrom ? { staleFrom: claimed.staleFrom } : {}) };
      if (explicitRef === undefined && !runsAsAsked(poolSpec, asked)) {
        // The pool's template changed since it matched: its member is not what was asked for.
        if (memberId !== null) await pools.unclaim(caller.tenant, poolRef, memberId);
        [memberId, poolSpec, thawed] = [null, asked, undefined];
      }
      // …and the sandbox runs exactly what the pool's members are made with, with those two.
      const spec = { ...poolSpec, metadata: asked.metadata, timeoutSeconds: asked.timeoutSeconds };
      if (memberId === null && /(^|[,;\s])pool-only($|[,;\s])/i.test(prefer))
        throw new TideboxError('POOL_EMPTY', `pool ${poolRef} has no ready member (Prefer: pool-only)`);
      const member = memberId === null ? undefined : { id: memberId, pool: poolWorkflowId(caller.tenant, poolRef), ...thawed };
      const view = await sandboxes
        // A pool's sandboxes (claimed or made on a miss) run on the pool's host: this API's own.
        .create(caller, spec, { idempotencyKey, respondAsync, hostId: runtimeHostId(config), ...(member ? { member } : {}) })
        .catch(async (err: unknown) => {
          // Over quota is decided before the actor starts: the member never ran anything of this create.
          // Any other failure may come after the start (the actor then owns the member): no give-back.
          if (memberId !== null && err instanceof TideboxError && err.kind === 'QUOTA_EXCEEDED')
            await pools.unclaim(caller.tenant, poolRef, memberId);
          throw err;
        });
      observeClaim?.(member ? 'hit' : 'miss', Number(process.hrtime.bigint() - started) / 1e9);
      return reply.code(202).header('Location', `/v1/sandboxes/${view.id}`).send(toCreateResponse(view));
    },
  );

  app.get(
    '/sandboxes',
    {
      schema: {
        ...doc(tag, 'List sandboxes (state OR, metadata AND, newest first)', 'listSandboxes'),
        querystring: ListSandboxesQuery,
        response: { 200: ListSandboxesResponseSchema, ...ErrorResponses },
      },
    },
    async (req) => {
      const { page, pageSize } = req.query;
      const states = parseStates(req.query.state, SANDBOX_STATES);
      const metadata = Object.fromEntries(new URLSearchParams(req.query.metadata ?? ''));
      const filterProblem = metadataFilterProblem(metadata);
      if (filterProblem) throw new TideboxError('INVALID_PARAMETER', filterProblem);
      const tenant = tenantFilter(req.caller, req.query.tenant);
      const result = await lists.queued(req.caller, () => sandboxes.list(req.caller, { tenant, states, metadata, page, pageSize }));
      return { items: result.items.map(toSandboxResource), pagination: result.pagination };
    },
  );

  app.get(
    '/sandboxes/:sandboxId',
    {
      schema: {
        ...doc(tag, 'Fetch a sandbox', 'getSandbox'),
        params: SandboxIdParams,
        response: { 200: SandboxResourceSchema, ...ErrorResponses },
      },
    },
    async (req) => toSandboxResource(await sandboxes.get(req.caller, req.params.sandboxId)),
  );

  app.delete(
    '/sandboxes/:sandboxId',
    {
      schema: {
        ...doc(tag, 'Delete a sandbox (from any state)', 'deleteSandbox'),
        params: SandboxIdParams,
        response: { 204: NoContent, ...ErrorResponses },
      },
    },
    async (req, reply) => {
      await sandboxes.delete(req.caller, req.params.sandboxId);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/sandboxes/:sandboxId/renew-expiration',
    {
      schema: {
        ...doc(tag, 'Renew the expiration', 'renewSandboxExpiration'),
        params: SandboxIdParams,
        body: RenewRequestSchema,
        response: { 200: RenewResponseSchema, ...ErrorResponses },
      },
    },
    async (req) => sandboxes.renew(req.caller, req.params.sandboxId, req.body.expiresAt),
  );

  // Pause and resume answer 202 once the actor accepted the request (state Pausing/Resuming).
  for (const op of ['pause', 'resume'] as const) {
    app.post(
      `/sandboxes/:sandboxId/${op}`,
      {
        schema: {
          ...doc(
            tag,
            op === 'pause' ? 'Pause a Running sandbox (Pausing → Paused)' : 'Resume a Paused sandbox (Resuming → Running)',
            `${op}Sandbox`,
          ),
          params: SandboxIdParams,
          response: { 202: AcceptedActionSchema, ...ErrorResponses },
        },
      },
      async (req, reply) => {
        if (onKubernetes) {
          await sandboxes.get(req.caller, req.params.sandboxId); // a missing sandbox is still a 404
          throw notOnKubernetes(op);
        }
        const view = await sandboxes[op](req.caller, req.params.sandboxId);
        return reply.code(202).send({ state: view.status.state, workflowId: view.workflowId });
      },
    );
  }

  app.patch(
    '/sandboxes/:sandboxId/metadata',
    {
      schema: {
        ...doc(tag, 'Patch metadata (JSON merge patch; null deletes)', 'patchSandboxMetadata'),
        params: SandboxIdParams,
        body: PatchMetadataSchema,
        response: { 200: SandboxResourceSchema, ...ErrorResponses },
      },
    },
    async (req) => toSandboxResource(await sandboxes.patchMetadata(req.caller, req.params.sandboxId, req.body)),
  );

  app.get(
    '/sandboxes/:sandboxId/events',
    {
      schema: {
        ...doc('History', 'Lifecycle history (also after termination, for the retention period)', 'getSandboxEvents'),
        params: SandboxIdParams,
        response: { 200: SandboxEventsResponseSchema, ...ErrorResponses },
      },
    },
    async (req) => {
      const { view, events } = await sandboxes.events(req.caller, req.params.sandboxId);
      return {
        id: view.id,
        state: view.status.state,
        ...(view.terminationReason ? { terminationReason: view.terminationReason } : {}),
        events,
      };
    },
  );

  app.get(
    '/sandboxes/:sandboxId/endpoints/:port',
    {
      schema: {
        ...doc(tag, 'Endpoint of a port (direct, gateway or server proxy)', 'getSandboxEndpoint'),
        params: EndpointParams,
        querystring: EndpointQuery,
        response: { 200: EndpointSchema, ...ErrorResponses },
      },
    },
    async (req) => {
      const { sandboxId, port } = req.params;
      if (req.query.expires !== undefined) {
        if (req.query.use_server_proxy)
          throw new TideboxError('INVALID_PARAMETER', 'expires cannot be combined with use_server_proxy=true');
        throw new TideboxError('UNSUPPORTED', 'signed endpoints (expires) are not supported by this server');
      }
      const view = await sandboxes.reach(req.caller, sandboxId);
      const host = config.server.publicHost ?? req.headers.host ?? `${config.server.host}:${config.server.port}`;
      if (port === EXECD_PORT && execdTokens && view.execd !== 'image') return execdEndpoint(view, host, execdTokens);
      const resolved = resolveEndpoint({ ingress: config.ingress, sandbox: view, port, local: localHost(config) });
      if (!resolved.ok) throw new TideboxError('PORT_NOT_AVAILABLE', resolved.reason);
      if (!req.query.use_server_proxy) return resolved.endpoint;
      return { endpoint: `${host}/sandboxes/${encodeURIComponent(sandboxId)}/proxy/${port}` };
    },
  );
};

/**
 * Port 44772 of a sandbox: Tidebox's execd for it, on this API, with the sandbox's access token
 * (the SDKs send the endpoint's headers with every execd call). The address is given in any state
 * (the SDK asks right after resume); execd calls answer 409 until Running.
 */
function execdEndpoint(view: SandboxView, host: string, tokens: ExecdTokens) {
  return {
    endpoint: `${host}/sandboxes/${encodeURIComponent(view.id)}/proxy/${EXECD_PORT}`,
    headers: { [EXECD_TOKEN_HEADER.toUpperCase()]: tokens.mint(view.id) },
  };
}
