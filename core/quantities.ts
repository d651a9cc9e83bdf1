/**
 * Kubernetes-style resource quantities, the notation OpenSandbox clients send in `resourceLimits`
 * ("500m", "2", "512Mi", "1G"). Pure parsing; callers turn `undefined` into a 400.
 */
const CPU = /^(\d+(?:\.\d+)?)(m?)$/;
const MEMORY = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$/;

const MEMORY_FACTORS: Record<string, number> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The least CPU an engine enforces: Docker's CFS quota needs at least 1 ms per 100 ms period. */
export const MIN_CPU_MILLIS = 10;
/** The least memory Docker accepts as a limit. */
export const MIN_MEMORY_BYTES = 6 * 2 ** 20;

/** CPU quantity → millicores; undefined when malformed or not positive. */
export function parseCpuMillis(value: string): number | undefined {
  const m = CPU.exec(value.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const millis = m[2] === 'm' ? n : n * 1000;
  if (!Number.isFinite(millis) || millis < 1) return undefined;
  return Math.round(millis);
}

/** Memory quantity → bytes; undefined when malformed or not positive. */
export function parseMemoryBytes(value: string): number | undefined {
  const m = MEMORY.exec(value.trim());
  if (!m) return undefined;
  const bytes = Number(m[1]) * (MEMORY_FACTORS[m[2] ?? ''] ?? NaN);
  if (!Number.isFinite(bytes) || bytes < 1 || bytes > Number.MAX_SAFE_INTEGER) return undefined;
  return Math.floor(bytes);
}

/** Default and maximum sizes must parse, and the defaults must lie between the minimums and the maximums. */
export function sandboxSizingProblem(s: {
  defaultCpu: string;
  maxCpu: string;
  defaultMemory: string;
  maxMemory: string;
}): string | undefined {
  const cpu = [s.defaultCpu, s.maxCpu].map(parseCpuMillis);
  const memory = [s.defaultMemory, s.maxMemory].map(parseMemoryBytes);
  if (cpu.some((c) => c === undefined)) return 'sandbox.defaultCpu and sandbox.maxCpu must be CPU quantities such as "500m" or "2"';
  if (memory.some((m) => m === undefined)) return 'sandbox.defaultMemory and sandbox.maxMemory must be memory quantities such as "512Mi"';
  if (cpu[0]! < MIN_CPU_MILLIS || cpu[0]! > cpu[1]!) return `sandbox.defaultCpu must be between ${MIN_CPU_MILLIS}m and sandbox.maxCpu`;
  if (memory[0]! < MIN_MEMORY_BYTES || memory[0]! > memory[1]!) return 'sandbox.defaultMemory must be between 6Mi and sandbox.maxMemory';
  return undefined;
}
