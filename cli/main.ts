#!/usr/bin/env node
/**
 * `tidebox`: the operator's command line over the HTTP API.
 *
 *   tidebox snapshots list [--state S]... [--sandbox ID] [--tenant T] [--json]
 *   tidebox snapshots retry <snapshotId> [--no-wait] [--timeout SECONDS]
 *
 * Talks to TIDEBOX_URL (default http://127.0.0.1:8080) with TIDEBOX_API_KEY (an admin key sees
 * every tenant). Exit codes: 0 done, 1 the operation failed (e.g. the retried snapshot failed
 * again), 2 bad usage or the API refused the request.
 */
import { parseArgs } from 'node:util';

interface Step {
  name: string;
  state: string;
  runs: number;
  error?: string;
}
interface Snapshot {
  id: string;
  sandboxId: string;
  name?: string;
  status: { state: string; reason?: string; message?: string; lastTransitionAt: string };
  createdAt: string;
  failedStep?: string;
  retries: number;
  steps: Step[];
}

const USAGE = `usage:
  tidebox snapshots list [--state Failed] [--sandbox <id>] [--tenant <name>] [--json]
  tidebox snapshots retry <snapshotId> [--no-wait] [--timeout <seconds>]
environment: TIDEBOX_URL (default http://127.0.0.1:8080), TIDEBOX_API_KEY`;

/** Bad usage (shows the usage text) or a request the API refused / could not take: exit 2. */
class UsageError extends Error {}
class ApiError extends Error {}

const baseUrl = (process.env.TIDEBOX_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');

async function api<T>(method: string, path: string): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (process.env.TIDEBOX_API_KEY) headers['OPEN-SANDBOX-API-KEY'] = process.env.TIDEBOX_API_KEY;
  let res: Response;
  try {
    res = await fetch(`${baseUrl}${path}`, { method, headers, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new ApiError(`cannot reach ${baseUrl}: ${(err as Error).message}`);
  }
  const body = (await res.json().catch(() => undefined)) as (T & { code?: string; message?: string }) | undefined;
  if (!res.ok) throw new ApiError(`${method} ${path} → ${res.status} ${body?.code ?? ''}: ${body?.message ?? res.statusText}`);
  return body as T;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const stepLine = (s: Snapshot) => s.steps.map((st) => `${st.name}:${st.state}${st.runs > 1 ? `×${st.runs}` : ''}`).join(' ');

async function list(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      state: { type: 'string', multiple: true },
      sandbox: { type: 'string' },
      tenant: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const items: Snapshot[] = [];
  for (let page = 1; page <= 1000; page++) {
    const q = new URLSearchParams({ page: String(page), pageSize: '200' });
    for (const s of values.state ?? []) q.append('state', s);
    if (values.sandbox) q.set('sandboxId', values.sandbox);
    if (values.tenant) q.set('tenant', values.tenant);
    const r = await api<{ items: Snapshot[]; pagination: { hasNextPage: boolean } }>('GET', `/v1/snapshots?${q}`);
    items.push(...r.items);
    if (!r.pagination.hasNextPage) break;
  }
  if (values.json) {
    console.log(JSON.stringify(items, null, 2));
    return 0;
  }
  if (!items.length) {
    console.log('no snapshots');
    return 0;
  }
  console.log(`${pad('ID', 36)}  ${pad('STATE', 8)}  ${pad('SANDBOX', 36)}  ${pad('CREATED', 24)}  DETAIL`);
  for (const s of items) {
    const detail = s.status.state === 'Failed' ? `failed at ${s.failedStep}: ${s.status.message ?? ''}` : stepLine(s);
    console.log(`${pad(s.id, 36)}  ${pad(s.status.state, 8)}  ${pad(s.sandboxId, 36)}  ${pad(s.createdAt, 24)}  ${detail}`);
  }
  return 0;
}

async function retry(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'no-wait': { type: 'boolean' }, timeout: { type: 'string', default: '600' } },
  });
  const id = positionals[0];
  if (!id || positionals.length > 1) throw new UsageError('retry takes exactly one snapshot id');
  const timeoutMs = Number(values.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout must be a positive number of seconds');

  const before = await api<Snapshot>('GET', `/v1/snapshots/${encodeURIComponent(id)}`);
  console.log(
    `snapshot ${id}: ${before.status.state}${before.failedStep ? ` at ${before.failedStep}` : ''}${before.status.message ? ` (${before.status.message})` : ''}`,
  );
  const accepted = await api<Snapshot>('POST', `/v1/snapshots/${encodeURIComponent(id)}/retry`);
  console.log(`retry accepted (retry #${accepted.retries}): resuming at ${before.failedStep ?? 'the failed step'}`);
  if (values['no-wait']) return 0;

  let last = '';
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await api<Snapshot>('GET', `/v1/snapshots/${encodeURIComponent(id)}`);
    const line = `${s.status.state}  ${stepLine(s)}`;
    if (line !== last) console.log(`  ${line}`);
    last = line;
    if (s.status.state === 'Ready') {
      console.log(`snapshot ${id} is Ready`);
      return 0;
    }
    if (s.status.state === 'Failed') {
      console.log(`snapshot ${id} failed again at ${s.failedStep}: ${s.status.message ?? ''}`);
      return 1;
    }
    if (Date.now() > deadline) {
      console.log(`still ${s.status.state} after ${values.timeout} s; follow it with: tidebox snapshots list --json`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(argv: string[]): Promise<number> {
  const [noun, verb, ...rest] = argv;
  if (noun === 'snapshots' && verb === 'list') return list(rest);
  if (noun === 'snapshots' && verb === 'retry') return retry(rest);
  throw new UsageError(noun === undefined || noun === '--help' || noun === '-h' ? '' : `unknown command: ${argv.join(' ')}`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    if (err instanceof ApiError) {
      console.error(`tidebox: ${err.message}`);
      process.exit(2);
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      if (err.message) console.error(`tidebox: ${err.message}`);
      console.error(USAGE);
      process.exit(2);
    }
    console.error(`tidebox: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
