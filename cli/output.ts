/** How the CLI prints: aligned tables for people, `--json` for scripts, short relative times. */
import { UsageError } from './client';

/** An aligned table: a header row, then one line per row; an empty list says so in one line. */
export function table(headers: string[], rows: string[][], empty: string): string {
  if (!rows.length) return empty;
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export const json = (v: unknown): string => JSON.stringify(v, null, 2);

/** "3m 05s", "2h 10m", "4d 3h": the larger two units of a duration. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

/** Time left until `iso` ("in 4m 12s", "due"), or "never" for none. */
export const until = (iso: string | undefined, now = Date.now()): string => {
  if (!iso) return 'never';
  const left = Date.parse(iso) - now;
  return left <= 0 ? 'due' : `in ${duration(left)}`;
};

/** How long ago `iso` was ("5m 02s"). */
export const age = (iso: string, now = Date.now()): string => duration(now - Date.parse(iso));

/** `k=v` pairs into a record; a pair without "=" is bad usage (exit 2). */
export function pairs(list: string[] | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list ?? []) {
    const at = p.indexOf('=');
    if (at <= 0) throw new UsageError(`${what} takes key=value, got "${p}"`);
    out[p.slice(0, at)] = p.slice(at + 1);
  }
  return out;
}
