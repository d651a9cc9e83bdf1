import { Agent } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { TideboxError } from '../../core/errors';
import { EXECD_PORT, EXECD_TOKEN_HEADER } from '../../core/execd';
import type { SandboxView } from '../../core/sandbox';
import type { Execd } from '../../execd';
import { execdLimits } from '../../execd/http/limits';
import { execdPath, findOperation, leaveBodiesUnread, runOperation } from '../../execd/http/serve';
import { WORKER_EXECD_PREFIX } from '../../execd/http/server';
import type { ExecdTokens } from '../../execd/tokens';
import { forwardedRequestHeaders, forwardRequest, localHost, pipeRequest, type ProxyDeps } from '../proxy';

/**
 * The execd API of every sandbox: `/sandboxes/{id}/proxy/44772/<execd path>` (the endpoint of port
 * 44772 points here, with the sandbox's access token). This route authorises — the caller's
 * tenant, the sandbox's state, the tenant's connection slots — then the data plane serves it:
 *  - Docker: the host worker, which holds the engine's socket; the request is forwarded, streamed,
 *    to its listener (`execd.workerUrl`) with the sandbox's token;
 *  - Kubernetes: this process, through the API server's pod exec (`execd` given).
 * A sandbox whose image runs its own execd (`extensions["tidebox.io/execd"] = "image"`) is proxied
 * to it instead. Paths, bodies, event streams and status codes follow the execd contract (docs/execd.md).
 */

export interface ExecdRouteDeps extends ProxyDeps {
  tokens: ExecdTokens;
  /** In-process data plane (Kubernetes); absent: forward to the host worker (Docker). */
  execd?: Execd;
}

export const EXECD_ROUTE = `/sandboxes/:sandboxId/proxy/${EXECD_PORT}`;

/** Kept-alive connections to the workers' execd listeners: a command's round trip pays no TCP set-up. */
const workerAgent = new Agent({ keepAlive: true, maxSockets: 256 });

export const execdRoutes: FastifyPluginAsyncZod<ExecdRouteDeps> = async (app, deps) => {
  // Bodies are read by the operation that takes one, or streamed on unread.
  leaveBodiesUnread(app);
  const limits = execdLimits(deps.config);
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const { sandboxId } = req.params as { sandboxId: string };
    const { path, query } = execdPath(req.raw.url ?? '', `/proxy/${EXECD_PORT}`);
    const view = await deps.sandboxes.reach(req.caller, sandboxId);
    if (view.execd === 'image') return forwardRequest(deps, req, reply);
    if (view.status.state === 'Paused')
      throw new TideboxError('INVALID_STATE', `sandbox ${sandboxId} is Paused; resume it to run commands or reach its files`);
    if (view.status.state !== 'Running')
      throw new TideboxError('INVALID_STATE', `sandbox ${sandboxId} is ${view.status.state}; only a Running sandbox has execd`);
    const op = findOperation(req.method, path); // 404/405/501 here, before any work
    // Every execd request holds one of the tenant's proxied-connection slots while it is open
    // (streams included), counted against the sandbox's tenant whether a key or a token opened it.
    const release = deps.connections.acquireFor(view.tenant);
    reply.raw.once('close', release);
    if (deps.execd) {
      const sandbox = await deps.execd.open({ id: sandboxId, ...(view.namespace ? { namespace: view.namespace } : {}) });
      return runOperation(op, { req, reply, sandboxId, sandbox, query }, limits, deps.execd);
    }
    return toWorker(deps, req, reply, view, `${path}${query.size ? `?${query}` : ''}`);
  };
  const method = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'];
  app.route({ method, url: EXECD_ROUTE, schema: { hide: true }, handler });
  app.route({ method, url: `${EXECD_ROUTE}/*`, schema: { hide: true }, handler });
};

/**
 * The execd listener of the worker on the sandbox's host: the host's `placement.hosts` execdUrl,
 * else `execd.workerUrl` ({hostId} replaced), else — this API's own host only — 127.0.0.1:workerPort.
 * Undefined: this API has no way to reach that host's worker.
 */
export function workerOrigin(config: ExecdRouteDeps['config'], hostId: string): URL | undefined {
  // A plain lookup on every forward (execd is off on noop, so ids carry no queue prefix here).
  const placed = config.placement.hosts.find((h) => h.id === hostId)?.execdUrl;
  if (placed) return new URL(placed);
  const { workerUrl, workerPort } = config.execd;
  if (workerUrl?.includes('{hostId}')) return new URL(workerUrl.replaceAll('{hostId}', hostId));
  if (hostId !== localHost(config).hostId) return undefined;
  return new URL(workerUrl ?? `http://127.0.0.1:${workerPort}`);
}

function toWorker(deps: ExecdRouteDeps, req: FastifyRequest, reply: FastifyReply, view: SandboxView, rest: string): Promise<FastifyReply> {
  const origin = workerOrigin(deps.config, view.hostId);
  if (!origin)
    throw new TideboxError(
      'PORT_NOT_AVAILABLE',
      `sandbox ${view.id} runs on host ${view.hostId}; give that host an execdUrl in placement.hosts (or set execd.workerUrl with {hostId}) so this API reaches its worker`,
    );
  const headers = forwardedRequestHeaders(req.raw, { upgrade: false });
  headers[EXECD_TOKEN_HEADER] = deps.tokens.mint(view.id);
  const path = `/sandboxes/${encodeURIComponent(view.id)}${WORKER_EXECD_PREFIX}${rest}`;
  // Event streams may be quiet for long (a command that prints nothing): pings come every 3 s.
  return pipeRequest(
    req,
    reply,
    { host: origin.hostname.replace(/^\[|\]$/g, ''), port: Number(origin.port || 80), path, headers, agent: workerAgent },
    deps.config.server.proxyIdleTimeoutSeconds * 1000,
    (err) =>
      new TideboxError(
        'UPSTREAM_UNAVAILABLE',
        `the execd of host ${view.hostId} (its worker, ${origin.host}) did not answer: ${err.message}`,
      ),
  );
}
