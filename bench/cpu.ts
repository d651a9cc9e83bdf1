import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux Node runs on). */
const TICKS_PER_SECOND = 100;

/** utime + stime of one process and its waited-for children, in ms; 0 once it is gone. */
function cpuMsOf(pid: number): number {
  try {
    // The command name (field 2) may hold spaces or parentheses: count fields after its last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14–17 of stat: utime, stime, cutime, cstime (here 0-based from field 3).
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return (ticks * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

const commOf = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
};

/**
 * CPU time spent by groups of processes between two readings: named processes (the worker, the
 * API: by pid) and the Temporal side (by command name: the dev server `temporal`, the cluster's
 * `temporal-server` and `postgres` processes). What a phase of a bench costs each part, and how much
 * of the machine it took.
 */
export class CpuMeter {
  private constructor(
    private readonly pids: Record<string, number>,
    private readonly start: Record<string, number>,
    private readonly startedAt: number,
  ) {}

  static start(pids: Record<string, number>): CpuMeter {
    return new CpuMeter(pids, CpuMeter.read(pids), Date.now());
  }

  private static read(pids: Record<string, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, pid] of Object.entries(pids)) out[name] = cpuMsOf(pid);
    const byComm: Record<string, string> = { temporal: 'temporal', 'temporal-server': 'temporal', postgres: 'postgres' };
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const group = byComm[commOf(Number(entry))];
      if (group) out[group] = (out[group] ?? 0) + cpuMsOf(Number(entry));
    }
    return out;
  }

  /** CPU ms per group since the start, and the wall time (ms). */
  stop(): { wallMs: number; cpuMs: Record<string, number> } {
    const now = CpuMeter.read(this.pids);
    const cpuMs: Record<string, number> = {};
    for (const [name, ms] of Object.entries(now)) cpuMs[name] = Math.max(0, ms - (this.start[name] ?? 0));
    return { wallMs: Date.now() - this.startedAt, cpuMs };
  }
}

/** `worker 12.3 s (21 %), temporal 40.1 s (69 %)`: CPU seconds per group and its share of one core over the wall time. */
export function cpuSummary(
  { wallMs, cpuMs }: { wallMs: number; cpuMs: Record<string, number> },
  per?: { n: number; what: string },
): string {
  return Object.entries(cpuMs)
    .map(([name, ms]) => {
      const each = per ? `, ${(ms / per.n).toFixed(1)} ms per ${per.what}` : '';
      return `${name} ${(ms / 1000).toFixed(1)} s (${((100 * ms) / wallMs).toFixed(0)} % of a core${each})`;
    })
    .join('; ');
}

/**
 * `worker 18.2 ms per expiry; …`: what `n` events cost each group beyond what it spends idle (the
 * `idle` reading's rate over the same wall time), so a server's own background work (pollers, timers,
 * shard upkeep) is not charged to the events.
 */
export function marginalSummary(
  busy: { wallMs: number; cpuMs: Record<string, number> },
  idle: { wallMs: number; cpuMs: Record<string, number> },
  per: { n: number; what: string },
): string {
  return Object.entries(busy.cpuMs)
    .map(([name, ms]) => {
      const background = ((idle.cpuMs[name] ?? 0) / Math.max(1, idle.wallMs)) * busy.wallMs;
      return `${name} ${((ms - background) / per.n).toFixed(1)} ms per ${per.what} (idle: ${((100 * (idle.cpuMs[name] ?? 0)) / Math.max(1, idle.wallMs)).toFixed(0)} % of a core)`;
    })
    .join('; ');
}
