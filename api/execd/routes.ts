import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import type { Config } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { EXECD_PORT } from '../../core/execd';
import { type Execd, ExecdError } from '../../execd';
import { forwardRequest, leaveBodiesUnread, type ProxyDeps } from '../proxy';
import {
  commandLogs,
  commandStatus,
  CreateSessionBody,
  createSession,
  interruptCommand,
  RunCommandBody,
  runCommand,
  RunInSessionBody,
  runInSession,
} from './commands';
import type { ExecdContext } from './context';
import { download, MoveBody, onePath, paths, PermissionMap, ReplaceBody, upload } from './files';

/**
 * The execd API of every sandbox, served here: `/sandboxes/{id}/proxy/44772/<execd path>` (the
 * endpoint of port 44772 points at it, with the sandbox's access token). A sandbox whose image runs
 * its own execd (`extensions["tidebox.io/execd"] = "image"`) is proxied to it instead. Paths,
 * bodies, event streams and status codes follow the execd contract (docs/execd.md).
 */

export interface ExecdRouteDeps extends ProxyDeps {
  execd: Execd;
}

export const EXECD_ROUTE = `/sandboxes/:sandboxId/proxy/${EXECD_PORT}`;

type Op = (ctx: ExecdContext, deps: ExecdRouteDeps) => Promise<unknown>;

/** Method and execd path → operation; `:id` captures one path segment. */
const OPS: Array<[string, RegExp, (m: RegExpExecArray) => Op]> = [
  ['GET', /^\/ping$/, () => async (ctx) => ctx.reply.code(200).send('')],
  ['POST', /^\/command$/, () => async (ctx, deps) => runCommand(ctx, await body(ctx, RunCommandBody, deps.config))],
  ['DELETE', /^\/command$/, () => (ctx) => interruptCommand(ctx)],
  ['POST', /^\/session$/, () => async (ctx, deps) => createSession(ctx, await body(ctx, CreateSessionBody, deps.config))],
  [
    'POST',
    /^\/session\/([^/]+)\/run$/,
    (m) => async (ctx, deps) => runInSession(ctx, segment(m), await body(ctx, RunInSessionBody, deps.config)),
  ],
  ['DELETE', /^\/session\/([^/]+)$/, (m) => async (ctx) => empty(ctx, await ctx.sandbox.sessions.delete(segment(m)))],
  ['GET', /^\/command\/status\/([^/]+)$/, (m) => async (ctx) => commandStatus(ctx.sandbox, segment(m))],
  ['GET', /^\/command\/([^/]+)\/logs$/, (m) => (ctx) => commandLogs(ctx, segment(m))],
  [
    'GET',
    /^\/files\/info$/,
    () => async (ctx) => Object.fromEntries(await Promise.all(paths(ctx).map(async (p) => [p, await ctx.sandbox.files.info(p)]))),
  ],
  ['DELETE', /^\/files$/, () => async (ctx) => empty(ctx, await ctx.sandbox.paths.removeFiles(paths(ctx)))],
  ['POST', /^\/files\/upload$/, () => (ctx, deps) => upload(ctx, deps.config.execd.maxUploadBytes)],
  ['GET', /^\/files\/download$/, () => (ctx) => download(ctx)],
  ['POST', /^\/files\/mv$/, () => async (ctx, deps) => empty(ctx, await ctx.sandbox.paths.move(await body(ctx, MoveBody, deps.config)))],
  [
    'POST',
    /^\/files\/permissions$/,
    () => async (ctx, deps) => empty(ctx, await ctx.sandbox.paths.setPermissions(await body(ctx, PermissionMap, deps.config))),
  ],
  ['GET', /^\/files\/search$/, () => (ctx) => ctx.sandbox.paths.search(onePath(ctx), ctx.query.get('pattern') ?? '**')],
  [
    'POST',
    /^\/files\/replace$/,
    () => async (ctx, deps) => {
      const counts = await ctx.sandbox.files.replace(await body(ctx, ReplaceBody, deps.config));
      return ctx.query.get('verbose') === 'true' ? counts : empty(ctx);
    },
  ],
  [
    'POST',
    /^\/directories$/,
    () => async (ctx, deps) => empty(ctx, await ctx.sandbox.paths.makeDirs(await body(ctx, PermissionMap, deps.config))),
  ],
  ['DELETE', /^\/directories$/, () => async (ctx) => empty(ctx, await ctx.sandbox.paths.removeDirs(paths(ctx)))],
  ['GET', /^\/directories\/list$/, () => (ctx) => ctx.sandbox.paths.list(onePath(ctx), depth(ctx.query.get('depth')))],
  ['GET', /^\/metrics$/, () => (ctx) => ctx.sandbox.metrics()],
  ['GET', /^\/metrics\/watch$/, () => (ctx) => watchMetrics(ctx)],
];

export const execdRoutes: FastifyPluginAsyncZod<ExecdRouteDeps> = async (app, deps) => {
  // Bodies are read by the operation that takes one (or streamed on to an image's own execd).
  leaveBodiesUnread(app);
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const { sandboxId } = req.params as { sandboxId: string };
    const { path, query } = execdPath(req.raw.url ?? '');
    const view = await deps.sandboxes.get(req.caller, sandboxId);
    if (view.execd === 'image') return forwardRequest(deps, req, reply);
    if (view.status.state === 'Paused')
      throw new TideboxError('INVALID_STATE', `sandbox ${sandboxId} is Paused; resume it to run commands or reach its files`);
    if (view.status.state !== 'Running')
      throw new TideboxError('INVALID_STATE', `sandbox ${sandboxId} is ${view.status.state}; only a Running sandbox has execd`);
    if (/^\/code(\/|$)/.test(path))
      throw new ExecdError(
        501,
        'NOT_SUPPORTED',
        'code interpreting (/code) is not served by Tidebox; run an interpreter with /command, or use an image with its own execd (extensions["tidebox.io/execd"]="image")',
      );
    const found = OPS.find(([method, pattern]) => method === req.method && pattern.test(path));
    if (!found) {
      const known = OPS.some(([, pattern]) => pattern.test(path));
      throw new ExecdError(known ? 405 : 404, known ? 'INVALID_REQUEST_BODY' : 'NOT_FOUND', `no execd route ${req.method} ${path}`);
    }
    // Every execd request holds one of the tenant's proxied-connection slots while it is open
    // (streams included), counted against the sandbox's tenant whether a key or a token opened it.
    const release = deps.connections.acquireFor(view.tenant);
    reply.raw.once('close', release);
    const sandbox = await deps.execd.open({ id: sandboxId, ...(view.namespace ? { namespace: view.namespace } : {}) });
    const ctx: ExecdContext = { req, reply, sandboxId, sandbox, query };
    try {
      const result = await found[2](found[1].exec(path)!)(ctx, deps);
      if (!reply.sent && result !== reply && result !== undefined) return reply.code(200).send(result);
      return reply;
    } catch (err) {
      if (err instanceof ExecdError) throw err;
      // The container went away or froze under us: drop what is kept for it; the next call looks again.
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404 || status === 409) {
        deps.execd.forget(sandboxId);
        throw new ExecdError(
          409,
          'SANDBOX::INVALID_STATE',
          `the workload of sandbox ${sandboxId} is not running (stopped or replaced); try again`,
        );
      }
      throw err;
    }
  };
  const method = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'];
  app.route({ method, url: EXECD_ROUTE, schema: { hide: true }, handler });
  app.route({ method, url: `${EXECD_ROUTE}/*`, schema: { hide: true }, handler });
};

/** The execd path (after `/proxy/44772`, still percent-encoded) and the query of a request URL. */
function execdPath(url: string): { path: string; query: URLSearchParams } {
  const q = url.indexOf('?');
  const pathPart = q < 0 ? url : url.slice(0, q);
  const marker = `/proxy/${EXECD_PORT}`;
  const path = pathPart.slice(pathPart.indexOf(marker) + marker.length) || '/';
  return { path, query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)) };
}

/** One path segment, percent-decoded. */
function segment(m: RegExpExecArray): string {
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    throw new ExecdError(400, 'INVALID_REQUEST_BODY', 'the id in the path is not valid percent-encoding');
  }
}

/** A success with an empty body (Content-Length: 0, which the SDKs read as "no content"). */
function empty(ctx: ExecdContext, _done?: unknown): FastifyReply {
  return ctx.reply.code(200).send('');
}

function depth(raw: string | null): number {
  if (raw === null || raw === '') return 1;
  if (!/^\d+$/.test(raw)) throw new ExecdError(400, 'INVALID_REQUEST_BODY', `depth "${raw}" must be an integer ≥ 0`);
  return Number(raw);
}

/** Read and validate a JSON body (bounded by server.bodyLimitBytes); empty means {}. */
async function body<T extends z.ZodType>(ctx: ExecdContext, schema: T, config: Config): Promise<z.infer<T>> {
  const limit = config.server.bodyLimitBytes;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req.raw) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new ExecdError(413, 'INVALID_REQUEST_BODY', `the request body is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let json: unknown = {};
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new ExecdError(400, 'INVALID_REQUEST_BODY', `error parsing request: ${(err as Error).message}`);
    }
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const message = parsed.error.issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ');
    throw new ExecdError(400, 'INVALID_REQUEST_BODY', message);
  }
  return parsed.data;
}

/** GET /metrics/watch: the sandbox's stats as JSON lines, about every second, until the client leaves. */
async function watchMetrics(ctx: ExecdContext): Promise<void> {
  const out = new PassThrough();
  out.on('error', () => undefined);
  const stop = await ctx.sandbox.watchMetrics(
    (m) => out.write(`${JSON.stringify(m)}\n`),
    () => out.end(),
  );
  out.once('close', stop);
  await ctx.reply.code(200).headers({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }).send(out);
}
