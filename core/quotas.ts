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
