// Removes compiled files whose source is gone, before tsc runs (tsc never deletes outputs). Without
// this, a checkout that moved api/temporal.ts to api/temporal/index.ts kept a stale
// dist/api/temporal.js, which Node resolves first: the API started old code (and the workflow bundle
// could pick up a stale dist/workflows/sandbox.js the same way).
import { readdirSync, rmSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';

// The checkout to prune: this one, or the one given (tests).
const root = process.argv[2] ?? join(new URL('.', import.meta.url).pathname, '..');
const dist = join(root, 'dist');
/** Build outputs with no source of their own. */
const KEEP = new Set(['workflow-bundle.js']);

function prune(dir) {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      prune(path);
      continue;
    }
    const rel = relative(dist, path);
    const match = /^(.*)\.(js|js\.map|d\.ts)$/.exec(rel);
    if (!match || KEEP.has(rel)) continue;
    const stem = join(root, match[1]);
    if (!['.ts', '.mjs', '.js'].some((ext) => existsSync(stem + ext))) rmSync(path);
  }
}

prune(dist);
