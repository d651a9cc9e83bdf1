/** `tidebox snapshots …`: list, retry (following the steps to Ready or Failed) and delete snapshots. */
import { parseArgs } from 'node:util';
import { api, listAll, OperationFailed, UsageError } from './client';
import { json, table } from './output';

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

const stepLine = (s: Snapshot) => s.steps.map((st) => `${st.name}:${st.state}${st.runs > 1 ? `×${st.runs}` : ''}`).join(' ');
const oneId = (positionals: string[], what: string): string => {
  if (positionals.length !== 1) throw new UsageError(`${what} takes exactly one snapshot id`);
  return positionals[0]!;
};

async function ls(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      state: { type: 'string', multiple: true },
      sandbox: { type: 'string' },
      tenant: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const q = new URLSearchParams();
  for (const s of values.state ?? []) q.append('state', s);
  if (values.sandbox) q.set('sandboxId', values.sandbox);
  if (values.tenant) q.set('tenant', values.tenant);
  const items = await listAll<Snapshot>('/snapshots', q);
  if (values.json) {
    console.log(json(items));
    return 0;
  }
  const rows = items.map((s) => [
    s.id,
    s.status.state,
    s.sandboxId,
    s.createdAt,
    s.status.state === 'Failed' ? `failed at ${s.failedStep}: ${s.status.message ?? ''}` : stepLine(s),
  ]);
  console.log(table(['ID', 'STATE', 'SANDBOX', 'CREATED', 'DETAIL'], rows, 'no snapshots'));
  return 0;
}

async function retry(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'no-wait': { type: 'boolean' }, timeout: { type: 'string', default: '600' } },
  });
  const id = oneId(positionals, 'retry');
  const timeoutMs = Number(values.timeout) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new UsageError('--timeout must be a positive number of seconds');
  const path = `/snapshots/${encodeURIComponent(id)}`;

  const before = await api<Snapshot>('GET', path);
  console.log(
    `snapshot ${id}: ${before.status.state}${before.failedStep ? ` at ${before.failedStep}` : ''}${before.status.message ? ` (${before.status.message})` : ''}`,
  );
  const accepted = await api<Snapshot>('POST', `${path}/retry`);
  console.log(`retry accepted (retry #${accepted.retries}): resuming at ${before.failedStep ?? 'the failed step'}`);
  if (values['no-wait']) return 0;

  let last = '';
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await api<Snapshot>('GET', path);
    const line = `${s.status.state}  ${stepLine(s)}`;
    if (line !== last) console.log(`  ${line}`);
    last = line;
    if (s.status.state === 'Ready') {
      console.log(`snapshot ${id} is Ready`);
      return 0;
    }
    if (s.status.state === 'Failed') throw new OperationFailed(`snapshot ${id} failed again at ${s.failedStep}: ${s.status.message ?? ''}`);
    if (Date.now() > deadline)
      throw new OperationFailed(
        `snapshot ${id} still ${s.status.state} after ${values.timeout} s; follow it with: tidebox snapshots ls --json`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function rm(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (!positionals.length) throw new UsageError('rm takes one or more snapshot ids');
  for (const id of positionals) {
    await api('DELETE', `/snapshots/${encodeURIComponent(id)}`);
    console.log(`${id}  deleted`);
  }
  return 0;
}

export async function snapshots(verb: string | undefined, args: string[]): Promise<number> {
  if (verb === 'ls' || verb === 'list') return ls(args);
  if (verb === 'retry') return retry(args);
  if (verb === 'rm' || verb === 'delete') return rm(args);
  throw new UsageError(`unknown command: snapshots ${verb ?? ''}`);
}
