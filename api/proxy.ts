import { type Agent, IncomingHttpHeaders, IncomingMessage, request as httpRequest, ServerResponse, STATUS_CODES } from 'node:http';
import type { Server } from 'node:http';
import { connect, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { leaveBodiesUnread } from '../execd/http/serve';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../core/config';
import { ErrorCodes, TideboxError } from '../core/errors';
import { hostPort, LocalHost, resolveEndpoint } from '../core/ingress';
import { API_KEY_HEADER } from './auth/api-key';
import type { Caller } from '../core/tenants';
import type { SandboxService } from './temporal';
import type { TenantSlots } from './tenant-slots';

/**
 * The server proxy: `/sandboxes/<id>/proxy/<port>/<path>` (also under `/v1`) forwards HTTP and
 * WebSocket traffic to a port of the caller's sandbox, for clients that cannot reach published
 * ports themselves. Bodies stream both ways; the API key and hop-by-hop headers stay here.
 */

/** This API's host: where clients reach ports published here, and where this server connects to them. */
export function localHost(config: Config): LocalHost {
  const { publishHost, endpointHost, hostId } = config.docker;
  const upstreamHost = publishHost === '0.0.0.0' ? '127.0.0.1' : publishHost === '::' ? '::1' : publishHost;
  return { hostId, endpointHost: endpointHost ?? publishHost, upstreamHost };
}

/** Give up on a sandbox port that does not accept a connection within this time. */
const CONNECT_TIMEOUT_MS = 10_000;

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
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
  } else if (req.headers['transfer-encoding'] !== undefined) {
    // transfer-encoding is hop-by-hop, but the body still needs framing: without it Node would send a
    // chunked DELETE/GET/OPTIONS body raw, and the upstream would read it as a second request.
    out['transfer-encoding'] = 'chunked';
    delete out['content-length'];
  }
  return out;
}

function responseHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((t) => t.trim().toLowerCase());
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
  sandboxes: Pick<SandboxService, 'reach'>;
  /** Open proxied connections per tenant (HTTP requests in flight and WebSocket tunnels), shared by every proxy route. */
  connections: TenantSlots;
}

/** Resolve the upstream of a proxied request: the caller's Running sandbox, a reachable port. */
async function upstreamFor(deps: ProxyDeps, caller: Caller, sandboxId: string, rawPort: string) {
  const port = Number(rawPort);
  if (!/^\d{1,5}$/.test(rawPort) || port < 1 || port > 65535) {
    throw new TideboxError('INVALID_PARAMETER', `port "${rawPort}" must be an integer 1-65535`);
  }
  const view = await deps.sandboxes.reach(caller, sandboxId);
  if (view.status.state !== 'Running') {
    throw new TideboxError('INVALID_STATE', `sandbox ${sandboxId} is ${view.status.state}; only a Running sandbox can be reached`);
  }
  const resolved = resolveEndpoint({ ingress: { mode: 'direct' }, sandbox: view, port, local: localHost(deps.config) });
  if (!resolved.ok) throw new TideboxError('PORT_NOT_AVAILABLE', resolved.reason);
  if (!resolved.upstream) {
    throw new TideboxError(
      'PORT_NOT_AVAILABLE',
      `sandbox ${sandboxId} runs on host ${view.hostId}, whose ports are published on its loopback; use that host's API or set docker.endpointHost there`,
    );
  }
  return resolved.upstream;
}

/** The proxy target's path and query, taken raw from the request line (never re-encoded or decoded). */
function upstreamPath(rawUrl: string | undefined): { sandboxId: string; port: string; path: string } | undefined {
  const match = PROXY_PATH.exec(rawUrl ?? '');
  if (!match) return undefined;
  let sandboxId: string;
  try {
    sandboxId = decodeURIComponent(match[1]!);
  } catch {
    throw new TideboxError('INVALID_PARAMETER', 'sandbox id in the path is not valid percent-encoding');
  }
  return { sandboxId, port: match[2]!, path: `${match[3] ?? '/'}${match[4] ?? ''}` };
}

export const proxyRoutes: FastifyPluginAsyncZod<ProxyDeps> = async (app, deps) => {
  // Leave every body unread: it is streamed to the sandbox as it arrives, whatever its type or size.
  leaveBodiesUnread(app);
  const handler = (req: FastifyRequest, reply: FastifyReply) => forwardRequest(deps, req, reply);
  const method = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
  const description =
    'Forward an HTTP request (or a WebSocket upgrade) to this port of the sandbox; the rest of the path and the query string are kept.';
  app.route({ method, url: '/sandboxes/:sandboxId/proxy/:port', schema: { description, tags: ['Proxy'] }, handler });
  app.route({ method, url: '/sandboxes/:sandboxId/proxy/:port/*', schema: { hide: true }, handler });
};

/** Forward one HTTP request, body streamed, to the port its path names. */
export async function forwardRequest(deps: ProxyDeps, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const target = upstreamPath(req.raw.url);
  if (!target) throw new TideboxError('ROUTE_NOT_FOUND', `no route ${req.method} ${(req.raw.url ?? '').split('?')[0]}`);
  const { sandboxId, port, path } = target;
  const upstream = await upstreamFor(deps, req.caller, sandboxId, port);
  req.log.debug({ sandboxId, port }, 'proxying request');
  const release = deps.connections.acquire(req.caller);
  reply.raw.once('close', release);

  const headers = forwardedRequestHeaders(req.raw, { upgrade: false });

  return pipeRequest(
    req,
    reply,
    { host: upstream.host, port: upstream.port, path, headers },
    deps.config.server.proxyIdleTimeoutSeconds * 1000,
    (err) => new TideboxError('UPSTREAM_UNAVAILABLE', `sandbox ${sandboxId} port ${port} did not answer: ${err.message}`),
  );
}

/**
 * Send a request on, body streamed, and answer with what comes back, streamed; quiet for idleMs
 * once answered, or the client leaving, ends both. `failed` names a failure before any answer.
 */
export function pipeRequest(
  req: FastifyRequest,
  reply: FastifyReply,
  target: { host: string; port: number; path: string; headers: Record<string, string | string[]>; agent?: Agent },
  idleMs: number,
  failed: (err: Error) => Error,
): Promise<FastifyReply> {
  return new Promise<FastifyReply>((resolve, reject) => {
    const outgoing = httpRequest({
      host: target.host,
      port: target.port,
      method: req.method,
      path: target.path,
      headers: target.headers,
      timeout: CONNECT_TIMEOUT_MS,
      ...(target.agent ? { agent: target.agent } : {}),
    });
    outgoing.on('response', (res) => {
      // Long polls and streams may be quiet a while once answered, but not for ever.
      outgoing.setTimeout(idleMs, () => outgoing.destroy(new Error(`no traffic for ${idleMs} ms`)));
      reply.code(res.statusCode ?? 502).headers(responseHeaders(res.headers));
      resolve(reply.send(res));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`)));
    outgoing.on('error', (err) => {
      if (!reply.sent) reject(failed(err));
    });
    // Client went away: stop talking upstream too.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) outgoing.destroy();
    });
    req.raw.pipe(outgoing);
  });
}

type UpgradeDeps = ProxyDeps & {
  authenticate: (key: string | string[] | undefined, address: string) => Promise<Caller>;
  log: FastifyBaseLogger;
};

/**
 * WebSocket (and any other Upgrade) through the same proxy paths, authenticated like every route.
 * An Upgrade on any other path (e.g. curl's h2c offer) is served as a plain request: Node hands every
 * Upgrade request to this listener once one exists.
 */
export function handleProxyUpgrades(server: Server, deps: UpgradeDeps): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!PROXY_PATH.test(req.url ?? '')) {
      serveAsPlainRequest(server, req, socket as Socket, head);
      return;
    }
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
      } else {
        socket.destroy();
      }
    });
  });
}

/** Answer an Upgrade request we do not upgrade as the ordinary HTTP request it also is, then close. */
function serveAsPlainRequest(server: Server, req: IncomingMessage, socket: Socket, head: Buffer): void {
  if (head.length) socket.unshift(head);
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.on('finish', () => {
    res.detachSocket(socket);
    socket.end();
  });
  server.emit('request', req, res);
}

async function proxyUpgrade(deps: UpgradeDeps, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  // Watch the client from the first moment: it may leave while we look the sandbox up or connect.
  let clientGone = false;
  const onClientGone = () => (clientGone = true);
  socket.on('error', () => socket.destroy());
  socket.once('close', onClientGone);
  // Only WebSocket: any other Upgrade would turn this server into a raw TCP tunnel to the sandbox.
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket')
    throw new TideboxError('INVALID_PARAMETER', 'only WebSocket upgrades (Upgrade: websocket) are proxied');
  const target = upstreamPath(req.url)!;
  const caller = await deps.authenticate(req.headers[API_KEY_HEADER], req.socket.remoteAddress ?? '');
  const upstream = await upstreamFor(deps, caller, target.sandboxId, target.port);
  if (clientGone) return;
  const release = deps.connections.acquire(caller);
  socket.once('close', release);

  const upstreamSocket: Socket = await new Promise((resolve, reject) => {
    const s = connect({ port: upstream.port, host: upstream.host, timeout: CONNECT_TIMEOUT_MS });
    s.once('connect', () => {
      s.setTimeout(0);
      resolve(s);
    });
    s.once('timeout', () => s.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`)));
    s.once('error', (err) =>
      reject(new TideboxError('UPSTREAM_UNAVAILABLE', `sandbox ${target.sandboxId} port ${target.port} did not answer: ${err.message}`)),
    );
  });
  if (clientGone) {
    upstreamSocket.destroy();
    return;
  }
  const headers = forwardedRequestHeaders(req, { upgrade: true });
  const lines = [`${req.method} ${target.path} HTTP/1.1`, `host: ${hostPort(upstream.host, upstream.port)}`];
  for (const [name, value] of Object.entries(headers)) {
    for (const v of [value].flat()) lines.push(`${name}: ${v}`);
  }
  upstreamSocket.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length) upstreamSocket.write(head);
  socket.off('close', onClientGone);
  upstreamSocket.on('error', () => socket.destroy());
  socket.on('close', () => upstreamSocket.destroy());
  upstreamSocket.on('close', () => socket.destroy());
  // Either side quiet for the idle timeout closes both.
  const idleMs = deps.config.server.proxyIdleTimeoutSeconds * 1000;
  for (const s of [socket as Socket, upstreamSocket]) s.setTimeout(idleMs, () => s.destroy());

  // The sandbox's answer first: only its 101 opens the tunnel. Anything else is relayed and closed.
  const answer = await responseHead(upstreamSocket, CONNECT_TIMEOUT_MS);
  socket.write(answer.bytes);
  if (answer.status !== 101) {
    upstreamSocket.pipe(socket);
    return;
  }
  deps.log.info(
    { sandboxId: target.sandboxId, port: target.port, tenant: caller.kind === 'admin' ? '(admin)' : caller.tenant },
    'proxying upgrade',
  );
  // From here on the two sockets are one pipe; either side closing closes both.
  upstreamSocket.pipe(socket);
  socket.pipe(upstreamSocket);
}

/** The most of a response head read before the tunnel opens. */
const MAX_RESPONSE_HEAD = 16 * 1024;

/**
 * Read the upstream's response head (and whatever arrived with it) off a socket, bounded in size and
 * time; the socket is paused again afterwards so piping it loses nothing.
 */
function responseHead(s: Socket, timeoutMs: number): Promise<{ status: number; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const done = (err?: Error, result?: { status: number; bytes: Buffer }) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      s.pause();
      if (err) reject(err);
      else resolve(result!);
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buffered.length > MAX_RESPONSE_HEAD)
          done(new TideboxError('UPSTREAM_UNAVAILABLE', 'the sandbox answered the upgrade with an oversized head'));
        return;
      }
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(buffered.subarray(0, end).toString('latin1'))?.[1]);
      if (!status)
        return done(new TideboxError('UPSTREAM_UNAVAILABLE', 'the sandbox answered the upgrade with something that is not HTTP'));
      done(undefined, { status, bytes: buffered });
    };
    const onClose = () =>
      done(new TideboxError('UPSTREAM_UNAVAILABLE', 'the sandbox closed the connection instead of answering the upgrade'));
    const timer = setTimeout(
      () => done(new TideboxError('UPSTREAM_UNAVAILABLE', `the sandbox did not answer the upgrade within ${timeoutMs} ms`)),
      timeoutMs,
    );
    s.on('data', onData);
    s.once('close', onClose);
    s.resume();
  });
}
