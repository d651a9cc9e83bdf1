/**
 * Tidebox's own lint rules: the layering of docs/architecture.md, checked on every import.
 *
 *   tidebox/layers    a file imports only from the layers its own layer may use, and no module its layer must not touch
 *   tidebox/no-cycle  no import cycle among product files (type-only imports count: a circle of knowledge is still a circle)
 *   tidebox/workflow-weight  nothing workflows/ loads at run time, however indirectly, loads a module on WORKFLOW_FORBIDDEN
 *
 * A layer is a top-level folder. Imports are resolved against the importing file, so the rules see
 * where an import lands, however many "../" it takes. Dynamic import() and require() count too.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..', '..');

const NODE_IO = [
  'node:fs',
  'node:fs/promises',
  'node:child_process',
  'node:http',
  'node:https',
  'node:net',
  'node:os',
  'fs',
  'child_process',
  'http',
  'https',
  'net',
  'os',
];
const RUNTIME_CLIENTS = ['dockerode', '@kubernetes/client-node'];

/**
 * Each layer: the layers it may import, the modules it must not, and why. Keep in step with the
 * layer table in docs/architecture.md.
 */
export const LAYERS = {
  core: {
    may: ['core'],
    why: 'core is pure and shared: it imports nothing of the project',
    modules: [
      ...NODE_IO.filter((m) => !m.endsWith('net')),
      ...RUNTIME_CLIENTS,
      '@temporalio/client',
      '@temporalio/worker',
      '@temporalio/activity',
      '@temporalio/workflow',
    ],
  },
  contracts: {
    may: ['core', 'contracts'],
    why: 'contracts are what two layers agree on: they build on core only',
    modules: [...NODE_IO, ...RUNTIME_CLIENTS, '@temporalio/client', '@temporalio/worker', '@temporalio/activity'],
  },
  platform: {
    may: ['core', 'contracts', 'platform'],
    why: 'platform pieces serve every process and know none of them',
    modules: ['dockerode', '@temporalio/worker', '@temporalio/activity', '@temporalio/workflow'],
  },
  workflows: {
    may: ['core', 'contracts', 'workflows'],
    why: 'workflows know messages and activity ports (contracts), never implementations, HTTP or processes, and stay deterministic',
    modules: [/^node:/, ...NODE_IO, ...RUNTIME_CLIENTS, '@temporalio/client', '@temporalio/worker', '@temporalio/activity'],
  },
  activities: {
    may: ['core', 'contracts', 'platform', 'activities'],
    why: 'activities know the messages (contracts), not the workflow code, the API or the worker',
    modules: ['@temporalio/worker', '@temporalio/workflow'],
  },
  execd: {
    may: ['core', 'contracts', 'platform', 'execd'],
    why: 'the execd data plane talks to the engine for commands and files; it never touches Temporal (command output stays out of workflow history)',
    modules: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/workflow'],
  },
  api: {
    may: ['core', 'contracts', 'platform', 'execd', 'api'],
    why: 'every lifecycle effect goes through a workflow: the API never runs activities, workflow code or the worker (execd, the data plane, is its own layer)',
    modules: [...RUNTIME_CLIENTS, '@temporalio/worker', '@temporalio/activity', '@temporalio/workflow'],
  },
  worker: {
    may: ['core', 'contracts', 'platform', 'activities', 'workflows', 'execd', 'worker'],
    why: 'the worker needs no HTTP code',
    modules: [],
  },
  cli: {
    may: ['core', 'cli'],
    why: 'the CLI talks to the API over HTTP only',
    modules: ['@temporalio/client', '@temporalio/worker', ...RUNTIME_CLIENTS],
  },
};

/** Inside the API, only the Temporal modules (and the process entry that connects) use the Temporal client. */
const TEMPORAL_CLIENT_OWNERS = [/^api\/temporal\//, /^api\/main\.ts$/];

const PRODUCT = new Set([...Object.keys(LAYERS), 'scripts', 'bench']);

const layerOf = (rel) => rel.split('/')[0];
const toRel = (abs) => relative(ROOT, abs).split(sep).join('/');

/** The file a relative import names (TypeScript's resolution for our sources), or the bare path when none exists. */
function resolveImport(fromAbs, source) {
  const base = resolve(dirname(fromAbs), source);
  for (const candidate of [base, `${base}.ts`, `${base}.mjs`, `${base}.js`, join(base, 'index.ts')]) {
    try {
      if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
    } catch {
      // unreadable: try the next
    }
  }
  return base;
}

const matches = (pattern, source) =>
  pattern instanceof RegExp ? pattern.test(source) : source === pattern || source.startsWith(`${pattern}/`);

/** Every module source a file names: static imports and exports, import(), require(). */
function sourceVisitors(visit) {
  return {
    ImportDeclaration: (n) => visit(n.source, n),
    ExportNamedDeclaration: (n) => n.source && visit(n.source, n),
    ExportAllDeclaration: (n) => visit(n.source, n),
    ImportExpression: (n) => n.source.type === 'Literal' && visit(n.source, n),
    CallExpression: (n) => {
      const callee = n.callee;
      if (callee.type === 'Identifier' && callee.name === 'require' && n.arguments[0]?.type === 'Literal') visit(n.arguments[0], n);
    },
  };
}

const layers = {
  meta: { type: 'problem', docs: { description: 'imports follow the layering in docs/architecture.md' }, schema: [] },
  create(context) {
    const file = context.filename;
    const rel = toRel(file);
    const layer = LAYERS[layerOf(rel)];
    if (!layer || rel.startsWith('..')) return {};
    return sourceVisitors((literal) => {
      const source = String(literal.value);
      if (source.startsWith('.')) {
        const target = toRel(resolveImport(file, source));
        const targetLayer = layerOf(target);
        if (LAYERS[targetLayer] && !layer.may.includes(targetLayer)) {
          context.report({ node: literal, message: `${layerOf(rel)}/ must not import ${targetLayer}/ (${target}): ${layer.why}.` });
        }
        return;
      }
      const forbidden = layer.modules.find((m) => matches(m, source));
      if (forbidden) context.report({ node: literal, message: `${layerOf(rel)}/ must not use ${source}: ${layer.why}.` });
      if (source === '@temporalio/client' && layerOf(rel) === 'api' && !TEMPORAL_CLIENT_OWNERS.some((p) => p.test(rel))) {
        context.report({
          node: literal,
          message: `only api/temporal/ (and api/main.ts) use the Temporal client; ${rel} goes through the services in api/temporal/.`,
        });
      }
    });
  },
};

// ---- cycles ----

const IMPORT_SOURCE =
  /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|require\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
const TYPE_ONLY = /^\s*(?:import|export)\s+type\s/;
const scanned = new Map();

/**
 * Every import a file names, read from disk (cached for the whole lint run): where it lands (a
 * resolved path for a relative one, else the bare module) and whether it is type-only.
 */
function importsOf(abs) {
  if (scanned.has(abs)) return scanned.get(abs);
  let text = '';
  try {
    text = readFileSync(abs, 'utf8');
  } catch {
    // a file that cannot be read imports nothing
  }
  const out = [];
  for (const m of text.matchAll(IMPORT_SOURCE)) {
    const source = m[1] ?? m[2] ?? m[3] ?? m[4];
    if (!source) continue;
    const typeOnly = TYPE_ONLY.test(m[0].replace(/^[;\s]+/, ''));
    out.push(source.startsWith('.') ? { file: resolveImport(abs, source), typeOnly } : { module: source, typeOnly });
  }
  scanned.set(abs, out);
  return out;
}

/** The product files a file imports, type-only imports included. */
const importsOnDisk = (abs) => importsOf(abs).flatMap((i) => (i.file && PRODUCT.has(layerOf(toRel(i.file))) ? [i.file] : []));

/** A path of imports from `start` back to `target`, or undefined. */
function pathBack(start, target, seen = new Set()) {
  if (start === target) return [target];
  if (seen.has(start)) return undefined;
  seen.add(start);
  for (const next of importsOnDisk(start)) {
    const rest = pathBack(next, target, seen);
    if (rest) return [start, ...rest];
  }
  return undefined;
}

const noCycle = {
  meta: { type: 'problem', docs: { description: 'no import cycles among product files' }, schema: [] },
  create(context) {
    const file = context.filename;
    const rel = toRel(file);
    if (!PRODUCT.has(layerOf(rel))) return {};
    return sourceVisitors((literal) => {
      const source = String(literal.value);
      if (!source.startsWith('.')) return;
      const target = resolveImport(file, source);
      if (!PRODUCT.has(layerOf(toRel(target)))) return;
      const cycle = pathBack(target, file);
      if (cycle) context.report({ node: literal, message: `import cycle: ${[rel, ...cycle.map(toRel)].join(' → ')}` });
    });
  },
};

// ---- what workflow code loads ----

/**
 * Modules the workflow bundle must not carry. The SDK evaluates the bundle's modules again for every
 * workflow run it creates (a new run, or a cached run's replay after eviction) and keeps them per
 * cached run: zod in the bundle cost ≈ 8 ms of CPU per run created (a third of a sandbox actor's
 * replay) and its objects in every cached run. Its schemas belong at the edges (config, the API).
 */
const WORKFLOW_FORBIDDEN = ['zod'];

/** What a file loads when it runs: its imports but the type-only ones (TypeScript leaves those out). */
function runtimeImports(abs) {
  const loaded = importsOf(abs).filter((i) => !i.typeOnly);
  return { files: loaded.flatMap((i) => (i.file ? [i.file] : [])), modules: loaded.flatMap((i) => (i.module ? [i.module] : [])) };
}

/** The import path from `start` to a forbidden module it loads at run time, or undefined. */
function pathToForbidden(start, seen = new Set()) {
  if (seen.has(start)) return undefined;
  seen.add(start);
  const { files, modules } = runtimeImports(start);
  const hit = modules.find((m) => WORKFLOW_FORBIDDEN.some((f) => matches(f, m)));
  if (hit) return [toRel(start), hit];
  for (const next of files) {
    const rest = pathToForbidden(next, seen);
    if (rest) return [toRel(start), ...rest];
  }
  return undefined;
}

const workflowWeight = {
  meta: { type: 'problem', docs: { description: 'the workflow bundle carries no module on WORKFLOW_FORBIDDEN' }, schema: [] },
  create(context) {
    const file = context.filename;
    const rel = toRel(file);
    if (layerOf(rel) !== 'workflows') return {};
    return {
      ...sourceVisitors((literal, node) => {
        if (node.importKind === 'type' || node.exportKind === 'type') return;
        const source = String(literal.value);
        const path = source.startsWith('.') ? pathToForbidden(resolveImport(file, source)) : undefined;
        const direct = WORKFLOW_FORBIDDEN.find((f) => matches(f, source));
        if (!path && !direct) return;
        context.report({
          node: literal,
          message: `workflows/ must not load ${direct ?? path.at(-1)} (${[rel, ...(path ?? [source])].join(' → ')}): every workflow run evaluates the bundle's modules again; keep schemas at the edges (config, API).`,
        });
      }),
    };
  },
};

export default { meta: { name: 'tidebox' }, rules: { layers, 'no-cycle': noCycle, 'workflow-weight': workflowWeight } };
