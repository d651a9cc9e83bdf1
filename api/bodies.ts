import type { FastifyInstance } from 'fastify';
import { TideboxError } from '../core/errors';

/**
 * How request bodies are read, leniently where clients differ and strictly where input is wrong:
 * - an empty body is no body, whatever Content-Type came with it (generated clients, axios setups and
 *   shell aliases send `Content-Type: application/json` on every call, DELETE and pause included);
 * - a non-empty body is JSON (prototype poisoning refused), or a clear 400 naming what was sent;
 * - a route that takes no body refuses a non-empty one, rather than silently ignoring it.
 * The proxy routes read nothing: they register their own parsers and stream the body upstream.
 */
export function readBodiesLeniently(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if ((body as string).trim() === '') return done(null, undefined);
    json(req, body as string, done);
  });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    if ((body as Buffer).length === 0) return done(null, undefined);
    const type = String(req.headers['content-type'] ?? '').split(';')[0] || '(none)';
    done(new TideboxError('INVALID_PARAMETER', `request body must be JSON (Content-Type: application/json), not ${type}`), undefined);
  });
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined || req.routeOptions.schema?.body !== undefined) return;
    throw new TideboxError('INVALID_PARAMETER', `${req.method} ${req.routeOptions.url} takes no request body`);
  });
}
