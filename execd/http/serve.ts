import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { z } from 'zod';
import { ExecdError, type Execd } from '../index';
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
import type { ExecdLimits } from './limits';

/**
 * The execd paths (the contract's, docs/execd.md) as operations on a sandbox's data plane: found by
 * method and path, then run with the sandbox's SandboxExecd. Whoever serves them — the API in
 * process (Kubernetes), the host worker's listener (Docker) — authorises first and calls these.
 */

type Op = (ctx: ExecdContext, limits: ExecdLimits) => Promise<unknown>;

/** Method and execd path → operation; `:id` captures one path segment. */
const OPS: Array<[string, RegExp, (m: RegExpExecArray) => Op]> = [
  ['GET', /^\/ping$/, () => async (ctx) => ctx.reply.code(200).send('')],
  ['POST', /^\/command$/, () => async (ctx, limits) => runCommand(ctx, await body(ctx, RunCommandBody, limits))],
  ['DELETE', /^\/command$/, () => (ctx) => interruptCommand(ctx)],
  ['POST', /^\/session$/, () => async (ctx, limits) => createSession(ctx, await body(ctx, CreateSessionBody, limits))],
  [
    'POST',
    /^\/session\/([^/]+)\/run$/,
    (m) => async (ctx, limits) => runInSession(ctx, segment(m), await body(ctx, RunInSessionBody, limits)),
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
  ['POST', /^\/files\/upload$/, () => (ctx, limits) => upload(ctx, limits)],
  ['GET', /^\/files\/download$/, () => (ctx) => download(ctx)],
  ['POST', /^\/files\/mv$/, () => async (ctx, limits) => empty(ctx, await ctx.sandbox.paths.move(await body(ctx, MoveBody, limits)))],
  [
    'POST',
    /^\/files\/permissions$/,
    () => async (ctx, limits) => empty(ctx, await ctx.sandbox.paths.setPermissions(await body(ctx, PermissionMap, limits))),
  ],
  ['GET', /^\/files\/search$/, () => (ctx) => ctx.sandbox.paths.search(onePath(ctx), ctx.query.get('pattern') ?? '**')],
  [
    'POST',
    /^\/files\/replace$/,
    () => async (ctx, limits) => {
      const counts = await ctx.sandbox.files.replace(await body(ctx, ReplaceBody, limits));
      return ctx.query.get('verbose') === 'true' ? counts : empty(ctx);
    },
  ],
  [
    'POST',
    /^\/directories$/,
    () => async (ctx, limits) => empty(ctx, await ctx.sandbox.paths.makeDirs(await body(ctx, PermissionMap, limits))),
  ],
  ['DELETE', /^\/directories$/, () => async (ctx) => empty(ctx, await ctx.sandbox.paths.removeDirs(paths(ctx)))],
  ['GET', /^\/directories\/list$/, () => (ctx) => ctx.sandbox.paths.list(onePath(ctx), depth(ctx.query.get('depth')))],
  ['GET', /^\/metrics$/, () => (ctx) => ctx.sandbox.metrics()],
  ['GET', /^\/metrics\/watch$/, () => (ctx) => watchMetrics(ctx)],
];

export type ExecdOperation = (ctx: ExecdContext, limits: ExecdLimits) => Promise<unknown>;

/** The operation for a method and execd path; 404/405 for paths the contract lacks, 501 for /code. */
export function findOperation(method: string, path: string): ExecdOperation {
  if (/^\/code(\/|$)/.test(path))
    throw new ExecdError(
      501,
      'NOT_SUPPORTED',
      'code interpreting (/code) is not served by Tidebox; run an interpreter with /command, or use an image with its own execd (extensions["tidebox.io/execd"]="image")',
    );
  const found = OPS.find(([m, pattern]) => m === method && pattern.test(path));
  if (!found) {
    const known = OPS.some(([, pattern]) => pattern.test(path));
    throw new ExecdError(known ? 405 : 404, known ? 'INVALID_REQUEST_BODY' : 'NOT_FOUND', `no execd route ${method} ${path}`);
  }
  return found[2](found[1].exec(path)!);
}

/**
 * Run an operation and answer with its result. The runtime failing under it (the container or pod
 * gone or frozen) drops what is kept for the sandbox and answers 409; the next call looks again.
 */
export async function runOperation(op: ExecdOperation, ctx: ExecdContext, limits: ExecdLimits, execd: Execd): Promise<FastifyReply> {
  try {
    const result = await op(ctx, limits);
    if (!ctx.reply.sent && result !== ctx.reply && result !== undefined) return ctx.reply.code(200).send(result);
    return ctx.reply;
  } catch (err) {
    if (err instanceof ExecdError) throw err;
    const status = (err as { statusCode?: number }).statusCode;
    if (status === 404 || status === 409) {
      execd.forget(ctx.sandboxId);
      throw new ExecdError(
        409,
        'SANDBOX::INVALID_STATE',
        `the workload of sandbox ${ctx.sandboxId} is not running (stopped or replaced); try again`,
      );
    }
    throw err;
  }
}

/** The execd path (after `marker`, still percent-encoded) and the query of a request URL. */
export function execdPath(url: string, marker: string): { path: string; query: URLSearchParams } {
  const q = url.indexOf('?');
  const pathPart = q < 0 ? url : url.slice(0, q);
  const at = pathPart.indexOf(marker);
  const path = (at < 0 ? '' : pathPart.slice(at + marker.length)) || '/';
  return { path, query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)) };
}

/** Leave every body unread: the operation that takes one reads it (or it is streamed on). */
export function leaveBodiesUnread(app: Pick<FastifyInstance, 'removeAllContentTypeParsers' | 'addContentTypeParser'>): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));
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

/** Read and validate a JSON body (bounded by bodyLimitBytes); empty means {}. */
async function body<T extends z.ZodType>(ctx: ExecdContext, schema: T, limits: ExecdLimits): Promise<z.infer<T>> {
  const limit = limits.bodyLimitBytes;
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
