import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { EXECD_TOKEN_HEADER } from '../../core/execd';
import { type Execd, ExecdError } from '../index';
import type { ExecdTokens } from '../tokens';
import type { ExecdLimits } from './limits';
import { execdPath, findOperation, leaveBodiesUnread, runOperation } from './serve';

/**
 * The host worker's execd listener (Docker): the engine's socket stays with the worker, the API —
 * the process that faces clients — authorises each request (tenant, state) and forwards it here
 * with the sandbox's token, which this listener checks (HMAC under the shared execd key): a caller
 * that reaches the port without the API still opens no sandbox it has no token for.
 * Paths: `/sandboxes/{id}/execd/<execd path>`.
 */

export const WORKER_EXECD_PREFIX = '/execd';

export interface ExecdServerOptions {
  execd: Execd;
  tokens: ExecdTokens;
  limits: ExecdLimits;
  host: string;
  port: number;
  maxConnections: number;
  log: { error(fields: Record<string, unknown>, msg: string): void };
}

export async function startExecdServer(opts: ExecdServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    routerOptions: { maxParamLength: 1024 },
    // Bodies and answers may stream for long (uploads, logs, metrics/watch): no whole-request timeout.
    requestTimeout: 0,
  });
  // The API sends a request's headers at once; a connection that does not is let go soon.
  app.server.headersTimeout = 10_000;
  app.server.maxConnections = opts.maxConnections;
  leaveBodiesUnread(app);
  app.setErrorHandler(async (err: Error & { statusCode?: number }, req, reply) => {
    if (err instanceof ExecdError) return reply.code(err.status).send({ code: err.code, message: err.message });
    opts.log.error({ err: err.message, url: req.url }, 'execd request failed');
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    return reply
      .code(status)
      .send({ code: status === 500 ? 'RUNTIME_ERROR' : 'INVALID_REQUEST_BODY', message: status === 500 ? 'internal error' : err.message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` }),
  );
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const { sandboxId } = req.params as { sandboxId: string };
    const token = req.headers[EXECD_TOKEN_HEADER];
    if (typeof token !== 'string' || !opts.tokens.verify(sandboxId, token))
      throw new ExecdError(404, 'SANDBOX::NOT_FOUND', `sandbox ${sandboxId} not found`);
    const { path, query } = execdPath(req.raw.url ?? '', WORKER_EXECD_PREFIX);
    const op = findOperation(req.method, path);
    const sandbox = await opts.execd.open({ id: sandboxId });
    return runOperation(op, { req, reply, sandboxId, sandbox, query }, opts.limits, opts.execd);
  };
  const method = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'];
  app.route({ method, url: `/sandboxes/:sandboxId${WORKER_EXECD_PREFIX}`, handler });
  app.route({ method, url: `/sandboxes/:sandboxId${WORKER_EXECD_PREFIX}/*`, handler });
  app.addHook('onClose', async () => opts.execd.close());
  await app.listen({ host: opts.host, port: opts.port });
  return app;
}
