/**
 * Fair use: what one tenant may hold at once, and what one of its sandboxes may ask for. Limits come
 * from `[quotas]` (defaults for every tenant), overridden per tenant by the tenants file
 * (`quotas = { ... }` on a `[[tenants]]` entry) or the HTTP provider's answer (`quotas`). Pure rules;
 * the tenant actor (workflows/tenant.ts) keeps the usage and admits or refuses atomically.
 */
import { z } from 'zod';
import { parseCpuMillis, parseMemoryBytes } from './quantities';

const Cpu = z.string().refine((v) => parseCpuMillis(v) !== undefined, 'must be a CPU quantity such as "4" or "500m"');
const Memory = z.string().refine((v) => parseMemoryBytes(v) !== undefined, 'must be a memory quantity such as "8Gi"');
const Count = z.number().int().min(0);

/** Every limit is optional: absent means no limit of that kind. */
export const QuotaSchema = z
  .object({
    /** Live sandboxes (any state but Terminated) at once. */
    maxSandboxes: Count.optional(),
    /** Sum of the live sandboxes' CPU limits. */
    maxCpu: Cpu.optional(),
    /** Sum of the live sandboxes' memory limits. */
    maxMemory: Memory.optional(),
    /** The most one sandbox may ask for (below sandbox.maxCpu / maxMemory, which bound every tenant). */
    maxSandboxCpu: Cpu.optional(),
    maxSandboxMemory: Memory.optional(),
    /** The longest timeout one sandbox may ask for (below sandbox.maxTimeoutSeconds). */
    maxTimeoutSeconds: z.number().int().min(1).optional(),
    /** Whether `timeout: null` (never expires, deleted by hand) is allowed. */
    allowManualCleanup: z.boolean().optional(),
    /** Snapshots (any state) at once. */
    maxSnapshots: Count.optional(),
  })
  .strict();
export type Quota = z.infer<typeof QuotaSchema>;

/** A tenant's quota: its own values over the configured defaults. */
export const effectiveQuota = (defaults: Quota, own: Quota | undefined): Quota => ({ ...defaults, ...(own ?? {}) });

/** The limits the tenant actor judges a reservation by: numbers, absent = unlimited. */
export interface UsageLimits {
  maxSandboxes?: number;
  maxCpuMillis?: number;
  maxMemoryBytes?: number;
  maxSnapshots?: number;
}

export const usageLimits = (q: Quota): UsageLimits => ({
  ...(q.maxSandboxes !== undefined ? { maxSandboxes: q.maxSandboxes } : {}),
  ...(q.maxCpu !== undefined ? { maxCpuMillis: parseCpuMillis(q.maxCpu)! } : {}),
  ...(q.maxMemory !== undefined ? { maxMemoryBytes: parseMemoryBytes(q.maxMemory)! } : {}),
  ...(q.maxSnapshots !== undefined ? { maxSnapshots: q.maxSnapshots } : {}),
});

export interface Usage {
  sandboxes: number;
  cpuMillis: number;
  memoryBytes: number;
  /** Absent in answers of tenant actors started before snapshots counted. */
  snapshots?: number;
}

/** What one sandbox holds while it lives (a snapshot holds a place and nothing else: kind "snapshot"). */
export interface Reservation {
  cpuMillis: number;
  memoryBytes: number;
  kind?: 'snapshot';
}

/** The tenant actor's key for a snapshot's reservation (a sandbox's is its id). */
export const snapshotReservationKey = (snapshotId: string): string => `snapshot:${snapshotId}`;

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
  if (limits.maxSandboxes !== undefined && usage.sandboxes + 1 > limits.maxSandboxes)
    return `quota exceeded: maxSandboxes is ${limits.maxSandboxes} and ${usage.sandboxes} are live`;
  if (limits.maxCpuMillis !== undefined && usage.cpuMillis + r.cpuMillis > limits.maxCpuMillis)
    return `quota exceeded: maxCpu is ${cpuText(limits.maxCpuMillis)}; live sandboxes hold ${cpuText(usage.cpuMillis)} and this one asks for ${cpuText(r.cpuMillis)}`;
  if (limits.maxMemoryBytes !== undefined && usage.memoryBytes + r.memoryBytes > limits.maxMemoryBytes)
    return `quota exceeded: maxMemory is ${memoryText(limits.maxMemoryBytes)}; live sandboxes hold ${memoryText(usage.memoryBytes)} and this one asks for ${memoryText(r.memoryBytes)}`;
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
});
