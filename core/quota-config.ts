import { z } from 'zod';
import { parseCpuMillis, parseMemoryBytes } from './quantities';
import type { Quota } from './quotas';

const Cpu = z.string().refine((v) => parseCpuMillis(v) !== undefined, 'must be a CPU quantity such as "4" or "500m"');
const Memory = z.string().refine((v) => parseMemoryBytes(v) !== undefined, 'must be a memory quantity such as "8Gi"');
const Count = z.number().int().min(0);

/**
 * `[quotas]`, a tenant's `quotas` in the tenants file and the HTTP provider's answer: core/quotas.ts's
 * Quota (documented there). The schema lives apart so the workflow code, which uses Quota's rules,
 * does not carry zod.
 */
export const QuotaSchema = z
  .object({
    maxSandboxes: Count.optional(),
    maxCpu: Cpu.optional(),
    maxMemory: Memory.optional(),
    maxSandboxCpu: Cpu.optional(),
    maxSandboxMemory: Memory.optional(),
    maxTimeoutSeconds: z.number().int().min(1).optional(),
    allowManualCleanup: z.boolean().optional(),
    maxSnapshots: Count.optional(),
    maxPools: Count.optional(),
  })
  .strict();

// The schema and the interface describe one shape: a field added to one and not the other fails to compile.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameShape: Same<z.infer<typeof QuotaSchema>, Quota> = true;
void sameShape;
