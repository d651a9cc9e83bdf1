import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../../core/config';

/** The dashboard's files: ui/ at the repository's root (the image copies it next to dist/), seen from dist/api/routes or api/routes. */
const UI_DIR = [join(__dirname, '..', '..', '..', 'ui'), join(__dirname, '..', '..', 'ui')].find((d) => existsSync(join(d, 'index.html')));
const FILES: Record<string, { file: string; type: string }> = {
  '/ui': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/ui/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
};
export const UI_ROUTES = [...Object.keys(FILES), '/ui/', '/ui/config.json'];

/**
 * The page may load only its own script and style and talk only to this API: nothing injected into
 * it could load or send anything elsewhere, and no other site may frame it.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/**
 * The dashboard at /ui: static files that use only the public API with the key the user types in
 * (kept in the tab's sessionStorage), so a tenant sees exactly what its key sees. The page itself
 * holds no secret and needs no key to load.
 */
export const uiRoutes: FastifyPluginAsync<{ config: Config }> = async (app, { config }) => {
  if (!UI_DIR) throw new Error(`the dashboard's files (ui/index.html) are missing next to ${__dirname}`);
  const files = Object.entries(FILES).map(([url, { file, type }]) => ({ url, type, body: readFileSync(join(UI_DIR, file)) }));
  for (const { url, type, body } of files) {
    app.get(url, { schema: { hide: true } }, async (_req, reply) =>
      reply
        .header('content-type', type)
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', 'no-cache')
        .send(body),
    );
  }
  app.get('/ui/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui'));
  // What the page links to: the Temporal UI (server.temporalUiUrl; npm start sets its dev server's) and the namespace.
  app.get('/ui/config.json', { schema: { hide: true } }, async () => ({
    temporalUi: config.server.temporalUiUrl ?? null,
    namespace: config.temporal.namespace,
  }));
};
