import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { FastifyError, FastifyInstance, FastifyReply, LogController } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Config } from '../core/config';
import { ErrorCodes, TideboxError } from '../core/errors';
import type { Caller } from '../core/tenants';
import { API_KEY_HEADER, createAuthenticator } from './auth';
import { readBodiesLeniently } from './bodies';
import { createSpecPreparer } from './create-sandbox';
import type { NamespaceCheck } from './kube-namespaces';
import { registerMetrics } from './metrics';
import { handleProxyUpgrades, proxyRoutes } from './proxy';
import { TenantSlots } from './tenant-slots';
import { clientEventRoutes } from './routes/client-events';
import { operationsRoutes } from './routes/operations';
import { renewScheduleRoutes } from './routes/renew-schedules';
import { poolRoutes } from './routes/pools';
import { sandboxRoutes } from './routes/sandboxes';
import { snapshotRoutes } from './routes/snapshots';
import { tenantRoutes } from './routes/tenants';
import { UI_ROUTES, uiRoutes } from './routes/ui';
import type { ApiServices } from './temporal';
import { EXECD_TOKEN_HEADER } from '../core/execd';
import { Execd, type ExecdBackend, ExecdError } from '../execd';
import { ExecdTokens } from '../execd/tokens';
import { EXECD_ROUTE, execdRoutes } from './execd/routes';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling (a tenant, or an admin), set by the auth hook before any route runs. */
    caller: Caller;
  }
}

export interface AppDeps {
  config: Config;
  services: ApiServices;
  /** Kubernetes runtime: whether a tenant's namespace exists (checked before every create). */
  namespaces?: NamespaceCheck;
  /**
   * Kubernetes: execd served in this process through pod exec (api/main.ts passes the backend).
   * Absent (Docker): execd requests are forwarded to the host worker, which holds the engine's socket.
   */
  execdBackend?: ExecdBackend;
  /** Where and what to log (api/main.ts: `log.level`, and a pretty stream on a terminal); false in unit tests. */
  logger?: boolean | { level: string; stream?: { write(chunk: string): unknown } };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Reachable without an API key: liveness, metrics (counts only) and the API description. */
const PUBLIC_ROUTES = new Set([
  ...UI_ROUTES,
  '/health',
  '/metrics',
  '/openapi.json',
  '/docs',
  '/docs/',
  '/docs/*',
  '/docs/static/*',
  '/docs/json',
  '/docs/yaml',
]);

/** The Fastify app: plugins, auth, routes (at `/` and `/v1`) and the one error → HTTP mapping. */
export async function buildApp({ config, services, namespaces, execdBackend, logger = true }: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger,
    bodyLimit: config.server.bodyLimitBytes,
    // Slow or idle clients cannot hold connections open for ever.
    requestTimeout: config.server.requestTimeoutSeconds * 1000,
    keepAliveTimeout: config.server.keepAliveTimeoutSeconds * 1000,
    maxRequestsPerSocket: config.server.maxRequestsPerSocket,
    http: { headersTimeout: config.server.headersTimeoutSeconds * 1000 },
    requestIdHeader: false,
    // One line per request, written when it is answered (the onResponse hook below), not two.
    logController: new LogController({ requestIdLogLabel: 'requestId', disableRequestLogging: true }),
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Ids are at most 128 characters: longer ones reach validation and get its 400; far longer ones
    // and malformed URLs (bad percent-encoding) get the same envelope from the router.
    routerOptions: { maxParamLength: 1024 },
    // Node's own answers to requests it cannot parse (a request line or headers over its size limit,
    // a malformed request) carry Fastify's shape: answer with the contract's envelope instead.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) return socket.destroy(err);
      const message = err.code === 'HPE_HEADER_OVERFLOW' ? 'the request line and headers are too large' : 'the HTTP request is malformed';
      const body = JSON.stringify({ code: ErrorCodes.INVALID_PARAMETER.code, message });
      socket.end(
        `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    },
    frameworkErrors: (err, _req, reply) =>
      (reply as unknown as FastifyReply).code(400).send({
        code: ErrorCodes.INVALID_PARAMETER.code,
        message: err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path parameter is too long' : 'the URL is malformed',
      }),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  readBodiesLeniently(app);

  const auth = await createAuthenticator(config, app.log);
  app.addHook('onClose', () => auth.close());
  const authenticate = (presented: string | string[] | undefined, address: string) => auth.authenticate(presented, address);
  const execd = config.execd.enabled && execdBackend ? new Execd(execdBackend, config.execd) : undefined;
  const execdTokens = config.execd.enabled ? ExecdTokens.open({ secret: config.execd.tokenSecret, dataDir: config.dataDir }) : undefined;
  if (execd) app.addHook('onClose', () => execd.close());
  const execdRoutesUrls = new Set(['', '/v1'].flatMap((p) => [`${p}${EXECD_ROUTE}`, `${p}${EXECD_ROUTE}/*`]));
  app.decorateRequest('caller', null as never);
  app.addHook('onRequest', async (req, reply) => {
    reply.header('X-Request-ID', req.id);
    if (PUBLIC_ROUTES.has(req.routeOptions.url ?? '')) return;
    const token = req.headers[EXECD_TOKEN_HEADER];
    if (
      execdTokens &&
      execdRoutesUrls.has(req.routeOptions.url ?? '') &&
      token !== undefined &&
      req.headers[API_KEY_HEADER] === undefined
    ) {
      // A sandbox's execd token opens that sandbox's execd and nothing else: any other sandbox
      // answers as if it did not exist.
      const { sandboxId } = req.params as { sandboxId: string };
      if (typeof token !== 'string' || !execdTokens.verify(sandboxId, token))
        throw new TideboxError('NOT_FOUND', `sandbox ${sandboxId} not found`);
      req.caller = { kind: 'admin' };
      req.log = reply.log = req.log.child({ execdToken: true });
      return;
    }
    req.caller = await authenticate(req.headers[API_KEY_HEADER], req.ip);
    // Every log line of the request says whose it is (the tenant name, never the key).
    req.log = reply.log = req.log.child({ tenant: req.caller.kind === 'admin' ? '(admin)' : req.caller.tenant });
  });
  // Every log line about a sandbox carries its id next to the request id.
  app.addHook('preHandler', async (req, reply) => {
    const sandboxId = (req.params as { sandboxId?: unknown } | undefined)?.sandboxId;
    if (typeof sandboxId === 'string') req.log = reply.log = req.log.child({ sandboxId });
  });

  // One line per request: method, path (never the query: signed URLs carry tokens there), status, time,
  // request id and tenant (bound above). Reads that succeeded — health checks, the SDKs' polling — at
  // debug; writes and refusals at info; server failures at error.
  app.addHook('onResponse', async (req, reply) => {
    const status = reply.statusCode;
    const level = status >= 500 ? 'error' : (req.method === 'GET' || req.method === 'HEAD') && status < 400 ? 'debug' : 'info';
    // A proxied app's own path may carry its tokens: for those, the route's pattern only.
    const route = req.routeOptions.url;
    const path = route?.includes('/proxy/') ? route : req.url.split('?')[0];
    reply.log[level]({ method: req.method, path, status, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
  });

  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    const { status, code, message } = toErrorBody(err, req.body === undefined);
    if (status >= 500) req.log.error({ err }, 'request failed');
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      // Answering while the client is still uploading makes it see EPIPE/RST instead of our 400:
      // read and discard the rest first, bounded in time, then close the connection.
      await drainRequest(req.raw, 5000);
      reply.header('Connection', 'close');
    }
    return reply.code(status).send({ code, message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ code: ErrorCodes.ROUTE_NOT_FOUND.code, message: `no route ${req.method} ${req.url.split('?')[0]}` }),
  );

  // The OpenAPI document is generated from the same zod schemas that validate requests.
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tidebox sandbox lifecycle API',
        version: '1',
        description: 'The OpenSandbox Lifecycle API, served on Temporal workflows; see docs/api.md.',
      },
      components: { securitySchemes: { apiKeyAuth: { type: 'apiKey', in: 'header', name: 'OPEN-SANDBOX-API-KEY' } } },
      security: [{ apiKeyAuth: [] }],
    },
    // One documented copy of each route, under /v1 (the unprefixed aliases answer the same; docs/api.md).
    transform: (route) => (route.url.startsWith('/v1/') ? jsonSchemaTransform(route) : { schema: { hide: true }, url: route.url }),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/health', { schema: { hide: true } }, async () => ({ status: 'healthy' }));
  await app.register(uiRoutes, { config });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  const { countClientEvent, observeClaim } = registerMetrics(app, services.workflows, services.quotas, services.pools);
  const { sandboxes, snapshots } = services;
  const prepareSpec = createSpecPreparer({ config, snapshots, ...(namespaces ? { namespaces } : {}) });
  const connections = new TenantSlots(config.server.proxyConnectionsPerTenant, 'open proxied connections');
  const lists = new TenantSlots(config.server.listsInFlightPerTenant, 'LISTs', config.server.listsQueuedPerTenant);
  for (const prefix of ['', '/v1']) {
    await app.register(sandboxRoutes, {
      prefix,
      config,
      sandboxes,
      pools: services.pools,
      observeClaim,
      prepareSpec,
      lists,
      ...(execdTokens ? { execdTokens } : {}),
    });
    await app.register(poolRoutes, { prefix, config, pools: services.pools, prepareSpec });
    await app.register(renewScheduleRoutes, { prefix, renewSchedules: services.renewSchedules });
    await app.register(snapshotRoutes, { prefix, snapshots });
    await app.register(operationsRoutes, { prefix, mounts: services.mounts, workflows: services.workflows });
    await app.register(clientEventRoutes, { prefix, count: countClientEvent });
    await app.register(tenantRoutes, { prefix, quotas: services.quotas });
    await app.register(proxyRoutes, { prefix, config, sandboxes, connections });
    if (execdTokens)
      await app.register(execdRoutes, { prefix, config, sandboxes, connections, tokens: execdTokens, ...(execd ? { execd } : {}) });
  }
  handleProxyUpgrades(app.server, { config, sandboxes, connections, authenticate, log: app.log });
  return app;
}

function drainRequest(raw: IncomingMessage, maxMs: number): Promise<void> {
  if (raw.complete || raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, maxMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    raw.once('end', done);
    raw.once('close', done);
    raw.once('error', done);
    raw.resume();
  });
}

function toErrorBody(err: FastifyError, bodyless: boolean): { status: number; code: string; message: string } {
  if (err instanceof TideboxError) return { status: err.httpStatus, code: err.code, message: err.message };
  if (err instanceof ExecdError) return { status: err.status, code: err.code, message: err.message };
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = err.validationContext ?? 'request';
    if (where === 'body' && bodyless)
      return { status: 400, code: ErrorCodes.INVALID_PARAMETER.code, message: 'a JSON request body is required' };
    const message = err.validation
      .map((v) => {
        const path = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
        return `${where}${path ? `.${path}` : ''}: ${v.message}`;
      })
      .join('; ');
    return { status: 400, code: ErrorCodes.INVALID_PARAMETER.code, message };
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    // Fastify's own 4xx (malformed JSON, body too large, wrong media type): all are bad input.
    const message =
      err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? 'request body is too large'
        : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'request body must be JSON (Content-Type: application/json)'
          : err.message;
    return { status: 400, code: ErrorCodes.INVALID_PARAMETER.code, message };
  }
  return { status: 500, code: ErrorCodes.INTERNAL.code, message: 'internal error; see the server log for the request id' };
}
