/**
 * Log records for people and for machines. Both processes write one JSON object per line (pino's
 * shape in the API, the same fields in the worker); on a terminal (`log.format = "auto"`) each record
 * becomes one readable line instead:
 *
 *   16:40:24.123 INFO  POST /v1/sandboxes → 202 (12 ms)  tenant=acme requestId=7f0c…
 *   16:40:25.002 WARN  no API key configured: binding 127.0.0.1 …
 */
export type LogFormat = 'pretty' | 'json';

/** `auto` is pretty on a terminal and JSON anywhere else (a file, a pipe, a collector). */
export const logFormat = (setting: 'auto' | LogFormat, isTTY: boolean | undefined): LogFormat =>
  setting === 'auto' ? (isTTY ? 'pretty' : 'json') : setting;

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every record has, or that the line shows in its own place. */
const SHOWN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'method', 'path', 'status', 'ms', 'err']);

const clock = (t: unknown): string => {
  const d = typeof t === 'number' || typeof t === 'string' ? new Date(t) : new Date();
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().slice(11, 23);
};
/** Control characters shown escaped: a value with a newline cannot forge a line of its own. */
const oneLine = (s: string): string => s.replace(/[\x00-\x1f\x7f]/g, (c) => JSON.stringify(c).slice(1, -1));
const value = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[\s"]/.test(s) ? JSON.stringify(s) : s;
};

/** One record as one line (plus the stack of an error, indented, when it has one). */
export function prettyLine(record: Record<string, unknown>): string {
  const level =
    typeof record.level === 'number' ? (LEVELS[record.level] ?? String(record.level)) : String(record.level ?? 'info').toUpperCase();
  const head =
    record.method !== undefined && record.status !== undefined
      ? `${oneLine(String(record.method))} ${oneLine(String(record.path))} → ${String(record.status)} (${String(record.ms)} ms)`
      : oneLine(String(record.msg ?? ''));
  const err = record.err as { message?: string; stack?: string } | undefined;
  const fields = Object.entries(record)
    .filter(([k, v]) => !SHOWN.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${value(v)}`);
  const line = [`${clock(record.time)} ${level.padEnd(5)} ${head}`, err?.message ? `err=${value(err.message)}` : '', ...fields]
    .filter(Boolean)
    .join('  ');
  const stack = err?.stack && level !== 'INFO' ? `\n    ${err.stack.split('\n').slice(1).join('\n    ').trim()}` : '';
  return line + stack;
}

/** A destination for JSON lines (what pino writes) that prints each as a pretty line. */
export function prettyStream(out: NodeJS.WritableStream): { write(chunk: string): boolean } {
  return {
    write(chunk: string): boolean {
      for (const raw of chunk.split('\n')) {
        if (!raw.trim()) continue;
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          out.write(`${raw}\n`);
          continue;
        }
        out.write(`${prettyLine(record)}\n`);
      }
      return true;
    },
  };
}
