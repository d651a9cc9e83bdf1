import { IncomingHttpHeaders, IncomingMessage, request as httpRequest, STATUS_CODES } from 'node:http';
import type { Server } from 'node:http';
import { connect, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../core/config';
import { ErrorCodes, TideboxError } from '../core/errors';
import { resolveEndpoint } from '../core/ingress';
import { API_KEY_HEADER } from './auth/api-key';
import type { SandboxService } from './temporal';

/**
 * The server proxy: `/sandboxes/<id>/proxy/<port>/<path>` (also under `/v1`) forwards HTTP and
 * WebSocket traffic to a port of the caller's sandbox, for clients that cannot reach published
 * ports themselves. Bodies stream both ways; the API key and hop-by-hop headers stay here.
 */

/** Where clients reach published ports, and where this server connects to them itself. */
export function endpointAddresses(config: Config): { endpointHost: string; upstreamHost: string } {
  const { publishHost, endpointHost } = config.docker;
  const upstreamHost = publishHost === '0.0.0.0' ? '127.0.0.1' : publishHost === '::' ? '::1' : publishHost;
  return { endpointHost: endpointHost ?? publishHost, upstreamHost };
}

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'host',
]);

/** Request headers to forward: no hop-by-hop ones (nor those Connection names), no API key. */
export function forwardedRequestHeaders(req: IncomingMessage, opts: { upgrade: boolean }): Record<string, string | string[]> {
  const named = String(req.headers.connection ?? '')
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.includes(name) || name === API_KEY_HEADER) continue;
    out[name] = value;
  }
  const client = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  out['x-forwarded-for'] = prior ? `${String(prior)}, ${client}` : client;
  if (req.headers.host) out['x-forwarded-host'] = req.headers.host;
  out['x-forwarded-proto'] = 'http';
  if (opts.upgrade) {
    out.connection = 'Upgrade';
    if (req.headers.upgrade) out.upgrade = req.headers.upgrade;
  }
  return out;
}

function responseHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const named = String(headers.connection ?? '').split(',').map((t) => t.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

const PROXY_PATH = /^(?:\/v1)?\/sandboxes\/([^/?]+)\/proxy\/([^/?]+)(\/[^?]*)?(\?.*)?$/;

export interface ProxyDeps {
  config: Config;
  sandboxes: SandboxService;
}

/** Resolve the upstream of a proxied request: the caller's Running sandbox, a reachable port. */
async function upstreamFor(deps: ProxyDeps, tenant: string, sandboxId: string, rawPort: string) {
  const port = Number(rawPort);
  if (!/^\d{1,5}$/.test(rawPort) || port < 1 || port > 65535) {
    throw new TideboxError('INVALID_PARAMETER', `port "${rawPort}" must be an integer 1-65535`);
  }
  const view = await deps.sandboxes.get(tenant, sandboxId);
  if (view.status.state !== 'Running') {
    throw new TideboxError('INVALID_STATE', `sandbox ${sandboxId} is ${view.status.state}; only a Running sandbox can be reached`);
  }
  const resolved = resolveEndpoint({ ingress: { mode: 'direct' }, sandbox: view, port, ...endpointAddresses(deps.config) });
  if (!resolved.ok || !resolved.upstream) {
    throw new TideboxError('PORT_NOT_AVAILABLE', resolved.ok ? `port ${port} is not reachable` : resolved.reason);
  }
  return resolved.upstream;
}

export const proxyRoutes: FastifyPluginAsyncZod<ProxyDeps> = async (app, deps) => {
  // Leave every body unread: it is streamed to the sandbox as it arrives, whatever its type or size.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const { sandboxId, port } = req.params as { sandboxId: string; port: string };
    const rest = (req.params as { '*'?: string })['*'] ?? '';
    const upstream = await upstreamFor(deps, req.tenant, sandboxId, port);
    const query = req.raw.url?.includes('?') ? req.raw.url.slice(req.raw.url.indexOf('?')) : '';
    req.log.debug({ sandboxId, port }, 'proxying request');

    return new Promise<FastifyReply>((resolve, reject) => {
      const outgoing = httpRequest({
        host: upstream.host,
        port: upstream.port,
        method: req.method,
        path: `/${rest}${query}`,
        headers: forwardedRequestHeaders(req.raw, { upgrade: false }),
      });
      outgoing.on('response', (res) => {
        reply.code(res.statusCode ?? 502).headers(responseHeaders(res.headers));
        resolve(reply.send(res));
      });
      outgoing.on('error', (err) => {
        if (!reply.sent) reject(new TideboxError('UPSTREAM_UNAVAILABLE', `sandbox ${sandboxId} port ${port} did not answer: ${err.message}`));
      });
      // Client went away: stop talking to the sandbox too.
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) outgoing.destroy();
      });
      req.raw.pipe(outgoing);
    });
  };

  const method = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
  const description = 'Forward an HTTP request (or a WebSocket upgrade) to this port of the sandbox; the rest of the path and the query string are kept.';
  app.route({ method, url: '/sandboxes/:sandboxId/proxy/:port', schema: { description, tags: ['Proxy'] }, handler });
  app.route({ method, url: '/sandboxes/:sandboxId/proxy/:port/*', schema: { hide: true }, handler });
};

/** WebSocket (and any other Upgrade) through the same proxy paths, authenticated like every route. */
export function handleProxyUpgrades(
  server: Server,
  deps: ProxyDeps & { authenticate: (key: string | string[] | undefined) => string; log: FastifyBaseLogger },
): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void proxyUpgrade(deps, req, socket, head).catch((err: unknown) => {
      const known = err instanceof TideboxError;
      if (!known) deps.log.error({ err }, 'upgrade proxy failed');
      const status = known ? err.httpStatus : 500;
      const body = JSON.stringify(
        known ? { code: err.code, message: err.message } : { code: ErrorCodes.INTERNAL.code, message: 'internal error' },
      );
      if (socket.writable) {
        socket.end(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
    });
  });
}

async function proxyUpgrade(
  deps: ProxyDeps & { authenticate: (key: string | string[] | undefined) => string; log: FastifyBaseLogger },
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  socket.on('error', () => socket.destroy());
  const match = PROXY_PATH.exec(req.url ?? '');
  if (!match) throw new TideboxError('ROUTE_NOT_FOUND', `no upgrade route ${(req.url ?? '').split('?')[0]}`);
  const tenant = deps.authenticate(req.headers[API_KEY_HEADER]);
  const sandboxId = decodeURIComponent(match[1]!);
  const upstream = await upstreamFor(deps, tenant, sandboxId, match[2]!);
  const path = `${match[3] ?? '/'}${match[4] ?? ''}`;

  const target: Socket = await new Promise((resolve, reject) => {
    const s = connect(upstream.port, upstream.host);
    s.once('connect', () => resolve(s));
    s.once('error', (err) => reject(new TideboxError('UPSTREAM_UNAVAILABLE', `sandbox ${sandboxId} port ${upstream.port} did not answer: ${err.message}`)));
  });
  const headers = forwardedRequestHeaders(req, { upgrade: true });
  const lines = [`${req.method} ${path} HTTP/1.1`, `host: ${upstream.host}:${upstream.port}`];
  for (const [name, value] of Object.entries(headers)) {
    for (const v of [value].flat()) lines.push(`${name}: ${v}`);
  }
  target.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length) target.write(head);
  deps.log.info({ sandboxId, port: match[2], tenant }, 'proxying upgrade');
  // From here on the two sockets are one pipe; either side closing closes both.
  target.on('error', () => socket.destroy());
  socket.on('close', () => target.destroy());
  target.on('close', () => socket.destroy());
  target.pipe(socket);
  socket.pipe(target);
}
