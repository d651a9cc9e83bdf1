/**
 * Fair use: what one tenant may hold at once, and what one of its sandboxes may ask for. Limits come
 * from `[quotas]` (defaults for every tenant), overridden per tenant by the tenants file
 * (`quotas = { ... }` on a `[[tenants]]` entry) or the HTTP provider's answer (`quotas`). Pure rules;
 * the tenant actor (workflows/tenant.ts) keeps the usage and admits or refuses atomically.
 */
import { parseCpuMillis, parseMemoryBytes } from './quantities';

/** Every limit is optional: absent means no limit of that kind (the `[quotas]` shape: quota-config.ts). */
export interface Quota {
  /** Live sandboxes (any state but Terminated) at once. */
  maxSandboxes?: number;
  /** Sum of the live sandboxes' CPU limits (a quantity such as "4" or "500m"). */
  maxCpu?: string;
  /** Sum of the live sandboxes' memory limits (a quantity such as "8Gi"). */
  maxMemory?: string;
  /** The most one sandbox may ask for (below sandbox.maxCpu / maxMemory, which bound every tenant). */
  maxSandboxCpu?: string;
  maxSandboxMemory?: string;
  /** The longest timeout one sandbox may ask for (below sandbox.maxTimeoutSeconds). */
  maxTimeoutSeconds?: number;
  /** Whether `timeout: null` (never expires, deleted by hand) is allowed. */
  allowManualCleanup?: boolean;
  /** Snapshots (any state) at once. */
  maxSnapshots?: number;
  /** Warm pools at once (absent here and in the tenant's own: `pools.maxPerTenant`). */
  maxPools?: number;
}

/** A tenant's quota: its own values over the configured defaults. */
export const effectiveQuota = (defaults: Quota, own: Quota | undefined): Quota => ({ ...defaults, ...(own ?? {}) });

/** The limits the tenant actor judges a reservation by: numbers, absent = unlimited. */
export interface UsageLimits {
  maxSandboxes?: number;
  maxCpuMillis?: number;
  maxMemoryBytes?: number;
  maxSnapshots?: number;
  /** Judged only for a pool's reservation (a tenant with no other limit keeps creating without the actor's answer). */
  maxPools?: number;
}

export const usageLimits = (q: Quota): UsageLimits => ({
  ...(q.maxSandboxes !== undefined ? { maxSandboxes: q.maxSandboxes } : {}),
  ...(q.maxCpu !== undefined ? { maxCpuMillis: parseCpuMillis(q.maxCpu)! } : {}),
  ...(q.maxMemory !== undefined ? { maxMemoryBytes: parseMemoryBytes(q.maxMemory)! } : {}),
  ...(q.maxSnapshots !== undefined ? { maxSnapshots: q.maxSnapshots } : {}),
});

/** The limits a pool's reservation is judged by: the usage limits and the number of pools. */
export const poolLimits = (q: Quota): UsageLimits => ({
  ...usageLimits(q),
  ...(q.maxPools !== undefined ? { maxPools: q.maxPools } : {}),
});

export interface Usage {
  sandboxes: number;
  cpuMillis: number;
  memoryBytes: number;
  /** Absent in answers of tenant actors started before snapshots counted. */
  snapshots?: number;
  /** Absent in answers of tenant actors started before pools counted. */
  pools?: number;
}

/**
 * What one sandbox holds while it lives. A snapshot holds a place and nothing else (kind "snapshot");
 * a warm pool holds a place and the most sandboxes it may hold on the host (kind "pool", `sandboxes`
 * of them, CPU and memory already multiplied): its members exist whether or not anyone claims them.
 */
export interface Reservation {
  cpuMillis: number;
  memoryBytes: number;
  kind?: 'snapshot' | 'pool';
  /** Sandboxes this reservation holds (a pool's poolMax); absent: one, or none for a snapshot. */
  sandboxes?: number;
}

/** A reservation as the tenant actor holds it: with the time it was first made (the orphan check's age). */
export type HeldReservation = Reservation & { at: string };

/**
 * The tenant actor's reservations by key, with their sum kept as they come and go: a reserve judges
 * against the usage in constant time however many sandboxes the tenant holds, where it summed every
 * reservation (10,000 at 10,000 live) on each create and on each replay of the run's creates.
 */
export class QuotaLedger {
  private readonly held = new Map<string, HeldReservation>();
  private readonly sum = { sandboxes: 0, cpuMillis: 0, memoryBytes: 0, snapshots: 0, pools: 0 };

  constructor(entries: Iterable<[string, HeldReservation]> = []) {
    for (const [key, r] of entries) this.set(key, r);
  }

  get size(): number {
    return this.held.size;
  }
  get(key: string): HeldReservation | undefined {
    return this.held.get(key);
  }
  has(key: string): boolean {
    return this.held.has(key);
  }
  entries(): IterableIterator<[string, HeldReservation]> {
    return this.held.entries();
  }

  set(key: string, r: HeldReservation): void {
    this.delete(key);
    this.held.set(key, r);
    this.count(r, 1);
  }

  delete(key: string): boolean {
    const r = this.held.get(key);
    if (!r) return false;
    this.held.delete(key);
    this.count(r, -1);
    return true;
  }

  usage(): Usage {
    return { ...this.sum };
  }

  private count(r: Reservation, sign: 1 | -1): void {
    if (r.kind === 'snapshot') {
      this.sum.snapshots += sign;
      return;
    }
    if (r.kind === 'pool') this.sum.pools += sign;
    this.sum.sandboxes += sign * sandboxesHeld(r);
    this.sum.cpuMillis += sign * r.cpuMillis;
    this.sum.memoryBytes += sign * r.memoryBytes;
  }
}

/**
 * The ledger as a tenant actor carries it into its next run: reservations grouped by what they hold,
 * sandbox ids (UUIDs) packed 16 bytes each into one base64 string — ≈ 22 bytes a sandbox where a
 * JSON object each took ≈ 113 (1.1 MB of input at 10,000 live sandboxes, written twice per
 * continue-as-new, and Temporal refuses an input over 2 MB). Only reservations younger than the
 * check's grace keep their time; the others are old (checked), whenever they were made.
 */
export interface CarriedLedger {
  groups: Array<{ holds: Reservation; uuids: string; keys: string[] }>;
  young: Record<string, string>;
}

/** What an old reservation's time reads as after a continue-as-new: older than any grace. */
export const LONG_AGO = '1970-01-01T00:00:00.000Z';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const HEX = '0123456789abcdef';

/** Base64 (with padding) in plain code, no Buffer: it runs in the workflow sandbox. */
function bytesToBase64(bytes: number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const [a, b, c] = [bytes[i]!, bytes[i + 1] ?? 0, bytes[i + 2] ?? 0];
    const n = (a << 16) | (b << 8) | c;
    out += BASE64[(n >> 18) & 63]! + BASE64[(n >> 12) & 63]!;
    out += i + 1 < bytes.length ? BASE64[(n >> 6) & 63]! : '=';
    out += i + 2 < bytes.length ? BASE64[n & 63]! : '=';
  }
  return out;
}

function base64ToBytes(text: string): number[] {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i += 4) {
    const [a, b, c, d] = [0, 1, 2, 3].map((k) => (text[i + k] === '=' ? -1 : BASE64.indexOf(text[i + k]!)));
    if (a! < 0 || b! < 0) throw new Error('carried ledger: bad base64');
    const n = (a! << 18) | (b! << 12) | (Math.max(c!, 0) << 6) | Math.max(d!, 0);
    bytes.push((n >> 16) & 255);
    if (c! >= 0) bytes.push((n >> 8) & 255);
    if (d! >= 0) bytes.push(n & 255);
  }
  return bytes;
}

const holdsKey = (r: Reservation): string => `${r.cpuMillis}/${r.memoryBytes}/${r.kind ?? ''}/${r.sandboxes ?? ''}`;

/** The ledger to carry: `now` and `graceMs` decide which reservations keep their time. */
export function packLedger(entries: Iterable<[string, HeldReservation]>, now: number, graceMs: number): CarriedLedger {
  const groups = new Map<string, { holds: Reservation; bytes: number[]; keys: string[] }>();
  const young: Record<string, string> = {};
  for (const [key, { at, ...holds }] of entries) {
    const k = holdsKey(holds);
    let group = groups.get(k);
    if (!group) groups.set(k, (group = { holds, bytes: [], keys: [] }));
    if (UUID.test(key)) {
      const hex = key.replace(/-/g, '');
      for (let i = 0; i < 32; i += 2) group.bytes.push(HEX.indexOf(hex[i]!) * 16 + HEX.indexOf(hex[i + 1]!));
    } else group.keys.push(key);
    if (now - Date.parse(at) <= graceMs) young[key] = at;
  }
  return { groups: [...groups.values()].map(({ holds, bytes, keys }) => ({ holds, uuids: bytesToBase64(bytes), keys })), young };
}

/** The reservations a carried ledger holds, group by group. */
export function unpackLedger(carried: CarriedLedger): Array<[string, HeldReservation]> {
  const out: Array<[string, HeldReservation]> = [];
  for (const { holds, uuids, keys } of carried.groups) {
    const bytes = base64ToBytes(uuids);
    const ids: string[] = [];
    for (let i = 0; i + 16 <= bytes.length; i += 16) {
      const hex = bytes
        .slice(i, i + 16)
        .map((b) => HEX[b >> 4]! + HEX[b & 15]!)
        .join('');
      ids.push(`${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`);
    }
    for (const key of [...ids, ...keys]) out.push([key, { ...holds, at: carried.young[key] ?? LONG_AGO }]);
  }
  return out;
}

/** A pool's reservation: `poolMax` sandboxes of the template's size. */
export const poolReservation = (each: { cpuMillis: number; memoryBytes: number }, poolMax: number): Reservation => ({
  kind: 'pool',
  sandboxes: poolMax,
  cpuMillis: each.cpuMillis * poolMax,
  memoryBytes: each.memoryBytes * poolMax,
});

/** Sandboxes a reservation counts for. */
export const sandboxesHeld = (r: Reservation): number => (r.kind === 'snapshot' ? 0 : (r.sandboxes ?? 1));

/** The tenant actor's key for a snapshot's reservation (a sandbox's is its id). */
export const snapshotReservationKey = (snapshotId: string): string => `snapshot:${snapshotId}`;

/**
 * The tenant actor's key for a pool's reservation: its actor's id and a nonce made by the create
 * that reserved it, so two creates of one name never share a key (a refused one gives back only its
 * own), and a pool made again under the name holds a key of its own. The pool keeps its key in its
 * input and answers for it (`reservation` query).
 */
export const poolReservationKey = (poolWorkflowId: string, nonce: string): string => `${poolWorkflowId}@${nonce}`;
/** The pool actor a pool reservation key names; undefined for any other key. */
export function poolOfReservationKey(key: string): { workflowId: string } | undefined {
  const at = key.lastIndexOf('@');
  if (!key.startsWith('pool/') || at < 0) return undefined;
  return { workflowId: key.slice(0, at) };
}

export const cpuText = (millis: number) => (millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`);
export const memoryText = (bytes: number) =>
  bytes === 0 ? '0' : bytes % 2 ** 30 === 0 ? `${bytes / 2 ** 30}Gi` : `${Math.round(bytes / 2 ** 20)}Mi`;

/** Why `usage` plus one more sandbox holding `r` breaks a limit (naming it and the usage), or undefined. */
export function admissionProblem(usage: Usage, r: Reservation, limits: UsageLimits): string | undefined {
  if (r.kind === 'snapshot') {
    const held = usage.snapshots ?? 0;
    return limits.maxSnapshots !== undefined && held + 1 > limits.maxSnapshots
      ? `quota exceeded: maxSnapshots is ${limits.maxSnapshots} and ${held} exist`
      : undefined;
  }
  const what = r.kind === 'pool' ? 'this pool' : 'this one';
  const holders = usage.pools ? 'live sandboxes and pools' : 'live sandboxes';
  if (r.kind === 'pool' && limits.maxPools !== undefined && (usage.pools ?? 0) + 1 > limits.maxPools)
    return `quota exceeded: maxPools is ${limits.maxPools} and ${usage.pools ?? 0} exist`;
  const n = sandboxesHeld(r);
  if (limits.maxSandboxes !== undefined && usage.sandboxes + n > limits.maxSandboxes)
    return r.kind === 'pool'
      ? `quota exceeded: maxSandboxes is ${limits.maxSandboxes}; ${holders} hold ${usage.sandboxes} and this pool may hold ${n} (poolMax)`
      : `quota exceeded: maxSandboxes is ${limits.maxSandboxes} and ${usage.sandboxes} are live${usage.pools ? ' or held by pools' : ''}`;
  if (limits.maxCpuMillis !== undefined && usage.cpuMillis + r.cpuMillis > limits.maxCpuMillis)
    return `quota exceeded: maxCpu is ${cpuText(limits.maxCpuMillis)}; ${holders} hold ${cpuText(usage.cpuMillis)} and ${what} asks for ${cpuText(r.cpuMillis)}`;
  if (limits.maxMemoryBytes !== undefined && usage.memoryBytes + r.memoryBytes > limits.maxMemoryBytes)
    return `quota exceeded: maxMemory is ${memoryText(limits.maxMemoryBytes)}; ${holders} hold ${memoryText(usage.memoryBytes)} and ${what} asks for ${memoryText(r.memoryBytes)}`;
  return undefined;
}

/** Why one sandbox asks for more than the tenant's per-sandbox maxima allow (a 400), or undefined. */
export function perSandboxProblem(
  ask: { cpuMillis: number; memoryBytes: number; timeoutSeconds: number | null },
  q: Quota,
): string | undefined {
  if (q.maxSandboxCpu !== undefined && ask.cpuMillis > parseCpuMillis(q.maxSandboxCpu)!)
    return `resourceLimits.cpu ${cpuText(ask.cpuMillis)} is above this tenant's maxSandboxCpu ${q.maxSandboxCpu}`;
  if (q.maxSandboxMemory !== undefined && ask.memoryBytes > parseMemoryBytes(q.maxSandboxMemory)!)
    return `resourceLimits.memory ${memoryText(ask.memoryBytes)} is above this tenant's maxSandboxMemory ${q.maxSandboxMemory}`;
  if (ask.timeoutSeconds === null && q.allowManualCleanup === false)
    return 'timeout null (manual cleanup) is not allowed for this tenant; give a timeout in seconds';
  if (ask.timeoutSeconds !== null && q.maxTimeoutSeconds !== undefined && ask.timeoutSeconds > q.maxTimeoutSeconds)
    return `timeout ${ask.timeoutSeconds} is above this tenant's maxTimeoutSeconds ${q.maxTimeoutSeconds}`;
  return undefined;
}

/** Usage limits as a quota (what the tenant actor last judged by), for an operator's view. */
export const quotaOfLimits = (l: UsageLimits): Quota => ({
  ...(l.maxSandboxes !== undefined ? { maxSandboxes: l.maxSandboxes } : {}),
  ...(l.maxCpuMillis !== undefined ? { maxCpu: cpuText(l.maxCpuMillis) } : {}),
  ...(l.maxMemoryBytes !== undefined ? { maxMemory: memoryText(l.maxMemoryBytes) } : {}),
  ...(l.maxSnapshots !== undefined ? { maxSnapshots: l.maxSnapshots } : {}),
  ...(l.maxPools !== undefined ? { maxPools: l.maxPools } : {}),
});
