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
