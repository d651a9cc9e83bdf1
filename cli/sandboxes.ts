/** `tidebox sandboxes …`: list, read, create, delete, renew, pause, resume and the history of sandboxes. */
import { parseArgs } from 'node:util';
import { api, follow, listAll, OperationFailed, UsageError } from './client';
import { age, json, pairs, table, until } from './output';

interface Sandbox {
  id: string;
  image?: { uri: string };
  snapshotId?: string;
  status: { state: string; reason?: string; message?: string };
  metadata?: Record<string, string>;
  expiresAt?: string;
  createdAt: string;
}
interface Events {
  id: string;
  state: string;
  terminationReason?: string;
  events: Array<{ at: string; state: string; actor: string; reason?: string; message?: string }>;
}

const one = (positionals: string[], what: string): string => {
  if (positionals.length !== 1) throw new UsageError(`${what} takes exactly one sandbox id`);
  return positionals[0]!;
};
/** A sandbox's path on the API (the id as typed, encoded once here). */
const sandboxPath = (id: string) => `/sandboxes/${encodeURIComponent(id)}`;
const source = (s: Sandbox) => s.image?.uri ?? (s.snapshotId ? `snapshot:${s.snapshotId}` : '');
const settled = (s: Sandbox) => !['Pending', 'Pausing', 'Resuming', 'Stopping'].includes(s.status.state);

function describe(s: Sandbox): string {
  const meta = Object.entries(s.metadata ?? {}).map(([k, v]) => `${k}=${v}`);
  return [
    `id:        ${s.id}`,
    `state:     ${s.status.state}${s.status.reason ? ` (${s.status.reason}${s.status.message ? `: ${s.status.message}` : ''})` : ''}`,
    `image:     ${source(s)}`,
    `created:   ${s.createdAt} (${age(s.createdAt)} ago)`,
    `expires:   ${s.expiresAt ?? 'never (manual cleanup)'} (${until(s.expiresAt)})`,
    ...(meta.length ? [`metadata:  ${meta.join(', ')}`] : []),
  ].join('\n');
}

async function ls(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      state: { type: 'string', multiple: true },
      metadata: { type: 'string', multiple: true },
      tenant: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const q = new URLSearchParams();
  for (const s of values.state ?? []) q.append('state', s);
  for (const [k, v] of Object.entries(pairs(values.metadata, '--metadata'))) q.append('metadata', `${k}=${v}`);
  if (values.tenant) q.set('tenant', values.tenant);
  const items = await listAll<Sandbox>('/sandboxes', q);
  if (values.json) return print(json(items));
  const now = Date.now();
  return print(
    table(
      ['ID', 'STATE', 'IMAGE', 'AGE', 'EXPIRES'],
      items.map((s) => [s.id, s.status.state, source(s), age(s.createdAt, now), until(s.expiresAt, now)]),
      'no sandboxes',
    ),
  );
}

async function get(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const s = await api<Sandbox>('GET', sandboxPath(one(positionals, 'get')));
  return print(values.json ? json(s) : describe(s));
}

async function create(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      image: { type: 'string' },
      snapshot: { type: 'string' },
      pool: { type: 'string' },
      timeout: { type: 'string' },
      cpu: { type: 'string' },
      memory: { type: 'string' },
      env: { type: 'string', multiple: true },
      metadata: { type: 'string', multiple: true },
      'no-wait': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const sources = [values.image, values.snapshot, values.pool].filter((v) => v !== undefined).length;
  if (sources !== 1) throw new UsageError('create takes one of --image <uri>, --snapshot <id> or --pool <name>');
  let timeout: number | null | undefined;
  if (values.timeout === 'none') timeout = null;
  else if (values.timeout !== undefined) {
    timeout = Number(values.timeout);
    if (!Number.isInteger(timeout) || timeout <= 0) throw new UsageError('--timeout is a whole number of seconds, or "none"');
  }
  const env = pairs(values.env, '--env');
  const metadata = pairs(values.metadata, '--metadata');
  if (positionals.length && !values.image) throw new UsageError('a command (after --) goes with --image only');
  const limits = { ...(values.cpu ? { cpu: values.cpu } : {}), ...(values.memory ? { memory: values.memory } : {}) };
  const body = {
    ...(values.image ? { image: { uri: values.image }, entrypoint: positionals.length ? positionals : ['tail', '-f', '/dev/null'] } : {}),
    ...(values.snapshot ? { snapshotId: values.snapshot } : {}),
    ...(values.pool ? { extensions: { poolRef: values.pool } } : {}),
    ...(timeout !== undefined ? { timeout } : { timeout: 600 }),
    ...(Object.keys(limits).length ? { resourceLimits: limits } : {}),
    ...(Object.keys(env).length ? { env } : {}),
    ...(Object.keys(metadata).length ? { metadata } : {}),
  };
  const created = await api<Sandbox & { workflowId: string }>('POST', '/sandboxes', body);
  let s: Sandbox = created;
  if (!values['no-wait'] && !settled(s)) {
    if (!values.json) process.stderr.write(`sandbox ${s.id}: ${s.status.state}…\n`);
    s = await follow(() => api<Sandbox>('GET', sandboxPath(s.id)), settled, { timeoutMs: 300_000, what: `sandbox ${s.id}` });
  }
  print(values.json ? json(s) : `${s.id}  ${s.status.state}${s.expiresAt ? `  expires ${until(s.expiresAt)}` : ''}`);
  if (s.status.state === 'Failed') throw new OperationFailed(`sandbox ${s.id} failed: ${s.status.reason ?? ''} ${s.status.message ?? ''}`);
  return 0;
}

async function rm(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (!positionals.length) throw new UsageError('rm takes one or more sandbox ids');
  for (const id of positionals) {
    await api('DELETE', sandboxPath(id));
    print(`${id}  deleted`);
  }
  return 0;
}

async function renew(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { for: { type: 'string' }, until: { type: 'string' }, json: { type: 'boolean' } },
  });
  const id = one(positionals, 'renew');
  if ((values.for === undefined) === (values.until === undefined))
    throw new UsageError('renew takes --for <seconds> or --until <ISO time>');
  let expiresAt = values.until;
  if (values.for !== undefined) {
    const seconds = Number(values.for);
    if (!Number.isInteger(seconds) || seconds <= 0) throw new UsageError('--for is a whole number of seconds');
    expiresAt = new Date(Date.now() + seconds * 1000).toISOString();
  } else if (Number.isNaN(Date.parse(expiresAt!))) throw new UsageError('--until is an ISO 8601 time, e.g. 2030-01-01T00:00:00Z');
  const r = await api<{ expiresAt: string }>('POST', `${sandboxPath(id)}/renew-expiration`, { expiresAt });
  return print(values.json ? json(r) : `${id}  expires ${r.expiresAt} (${until(r.expiresAt)})`);
}

async function pauseOrResume(op: 'pause' | 'resume', args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { 'no-wait': { type: 'boolean' } } });
  const id = one(positionals, op);
  await api('POST', `${sandboxPath(id)}/${op}`);
  if (values['no-wait']) return print(`${id}  ${op} accepted`);
  const target = op === 'pause' ? 'Paused' : 'Running';
  const s = await follow(() => api<Sandbox>('GET', sandboxPath(id)), settled, { timeoutMs: 120_000, what: `${op} of ${id}` });
  print(`${s.id}  ${s.status.state}`);
  if (s.status.state !== target) throw new OperationFailed(`${op} of ${s.id} ended ${s.status.state}: ${s.status.message ?? ''}`);
  return 0;
}

async function events(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const h = await api<Events>('GET', `${sandboxPath(one(positionals, 'events'))}/events`);
  if (values.json) return print(json(h));
  return print(
    table(
      ['AT', 'STATE', 'BY', 'REASON'],
      h.events.map((e) => [e.at, e.state, e.actor, [e.reason, e.message].filter(Boolean).join(': ')]),
      'no events',
    ),
  );
}

function print(text: string): number {
  console.log(text);
  return 0;
}

export async function sandboxes(verb: string | undefined, args: string[]): Promise<number> {
  switch (verb) {
    case 'ls':
    case 'list':
      return ls(args);
    case 'get':
      return get(args);
    case 'create':
      return create(args);
    case 'rm':
    case 'delete':
      return rm(args);
    case 'renew':
      return renew(args);
    case 'pause':
    case 'resume':
      return pauseOrResume(verb, args);
    case 'events':
      return events(args);
    default:
      throw new UsageError(`unknown command: sandboxes ${verb ?? ''}`);
  }
}
