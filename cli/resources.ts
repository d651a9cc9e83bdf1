/** `tidebox mounts|schedules|pools|usage …`: what sandboxes share and hold. */
import { parseArgs } from 'node:util';
import { api, listAll, RefusedError, UsageError } from './client';
import { json, table, until } from './output';

interface Mount {
  key: string;
  hostId: string;
  bucket: string;
  prefix: string;
  state: string;
  holders: string[];
  lastError?: string;
}
interface Schedule {
  scheduleId: string;
  intervalSeconds?: number;
  extendBySeconds?: number;
  until?: string;
  nextRunAt?: string;
  lastRunAt?: string;
  runs: number;
}
interface Pool {
  name: string;
  tenant: string;
  capacitySpec: { bufferMin: number; bufferMax: number; poolMin: number; poolMax: number };
  status: { total: number; allocated: number; available: number; warming: number; draining: number };
  claims?: number;
  misses?: number;
  lastError?: string;
}

const listOptions = { tenant: { type: 'string' }, json: { type: 'boolean' } } as const;
const tenantQuery = (tenant: string | undefined) => (tenant ? `?tenant=${encodeURIComponent(tenant)}` : '');

async function mountsLs(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: listOptions });
  const { items } = await api<{ items: Mount[] }>('GET', `/mounts${tenantQuery(values.tenant)}`);
  if (values.json) return out(json(items));
  const rows = items.map((m) => [
    m.key,
    m.state,
    `${m.bucket}/${m.prefix}`.replace(/\/$/, ''),
    m.hostId,
    m.holders.join(','),
    m.lastError ?? '',
  ]);
  return out(table(['KEY', 'STATE', 'BUCKET', 'HOST', 'HOLDERS', 'ERROR'], rows, 'no mounts'));
}

/** Renew schedules belong to sandboxes: every live sandbox's, asked a few at a time. */
async function schedulesLs(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: listOptions });
  const q = new URLSearchParams(values.tenant ? { tenant: values.tenant } : {});
  const ids = (await listAll<{ id: string }>('/sandboxes', q, 2000)).map((s) => s.id);
  const found: Array<Schedule & { sandboxId: string }> = [];
  for (let i = 0; i < ids.length; i += 8) {
    const batch = await Promise.all(
      ids.slice(i, i + 8).map(async (id) => {
        try {
          return { sandboxId: id, ...(await api<Schedule>('GET', `/sandboxes/${encodeURIComponent(id)}/renew-schedule`)) };
        } catch (err) {
          if (err instanceof RefusedError && /→ 404/.test(err.message)) return undefined; // no schedule (or the sandbox ended meanwhile)
          throw err;
        }
      }),
    );
    for (const s of batch) if (s) found.push(s);
  }
  if (values.json) return out(json(found));
  const rows = found.map((s) => [
    s.sandboxId,
    s.intervalSeconds ? `${s.intervalSeconds}s` : '',
    s.extendBySeconds ? `+${s.extendBySeconds}s` : '',
    s.until ?? '',
    until(s.nextRunAt),
    String(s.runs),
  ]);
  return out(table(['SANDBOX', 'EVERY', 'EXTEND', 'UNTIL', 'NEXT', 'RUNS'], rows, 'no renew schedules'));
}

const poolRow = (p: Pool) => [
  p.name,
  p.tenant,
  String(p.status.available),
  String(p.status.allocated),
  String(p.status.warming),
  `${p.capacitySpec.bufferMin}-${p.capacitySpec.bufferMax}/${p.capacitySpec.poolMax}`,
  `${p.claims ?? 0}/${p.misses ?? 0}`,
  p.lastError ?? '',
];
const POOL_HEADERS = ['NAME', 'TENANT', 'READY', 'CLAIMED', 'WARMING', 'BUFFER/MAX', 'HITS/MISSES', 'ERROR'];

async function pools(verb: string | undefined, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: listOptions });
  if (verb === 'ls' || verb === 'list') {
    const { items } = await api<{ items: Pool[] }>('GET', `/pools${tenantQuery(values.tenant)}`);
    return out(values.json ? json(items) : table(POOL_HEADERS, items.map(poolRow), 'no pools'));
  }
  if (positionals.length !== 1) throw new UsageError(`pools ${verb ?? ''} takes exactly one pool name`);
  const path = `/pools/${encodeURIComponent(positionals[0]!)}${tenantQuery(values.tenant)}`;
  if (verb === 'get') {
    const p = await api<Pool>('GET', path);
    return out(values.json ? json(p) : table(POOL_HEADERS, [poolRow(p)], ''));
  }
  if (verb === 'rm' || verb === 'delete') {
    await api('DELETE', path);
    return out(`${positionals[0]}  deleting (unclaimed members are removed, then the pool ends)`);
  }
  throw new UsageError(`unknown command: pools ${verb ?? ''}`);
}

async function usage(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: listOptions });
  const u = await api<{ tenant: string; limits: Record<string, unknown>; usage: Record<string, unknown> }>(
    'GET',
    values.tenant ? `/tenants/${encodeURIComponent(values.tenant)}/usage` : '/tenants/me/usage',
  );
  if (values.json) return out(json(u));
  const keys = ['sandboxes', 'cpu', 'memory', 'snapshots', 'pools'];
  const limitOf: Record<string, string> = {
    sandboxes: 'maxSandboxes',
    cpu: 'maxCpu',
    memory: 'maxMemory',
    snapshots: 'maxSnapshots',
    pools: 'maxPools',
  };
  const rows = keys.map((k) => [
    k,
    String(u.usage[k] ?? 0),
    u.limits[limitOf[k]!] === undefined ? 'unlimited' : String(u.limits[limitOf[k]!]),
  ]);
  return out(`tenant ${u.tenant}\n${table(['RESOURCE', 'USED', 'LIMIT'], rows, '')}`);
}

function out(text: string): number {
  console.log(text);
  return 0;
}

export async function resources(noun: string, verb: string | undefined, args: string[]): Promise<number> {
  if (noun === 'mounts' && (verb === 'ls' || verb === 'list')) return mountsLs(args);
  if (noun === 'schedules' && (verb === 'ls' || verb === 'list')) return schedulesLs(args);
  if (noun === 'pools') return pools(verb, args);
  if (noun === 'usage') return usage(verb === undefined ? args : [verb, ...args]);
  throw new UsageError(`unknown command: ${noun} ${verb ?? ''}`);
}
