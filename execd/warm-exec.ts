import { WARM_EXEC_SCRIPT } from '../core/execd';
import type { Process, ProcessStarter, StreamName } from './process';

/** How long a started exec may take to say its pid. */
const WARM_START_MS = 10_000;

/** A started shell in the sandbox, waiting for its line (a command, or a runner's or session's loop). */
export interface WarmExec {
  process: Process;
  pid: number;
  /** Where output goes once a command runs (before: the pid line). */
  sink: (stream: StreamName, data: Buffer) => void;
}

/**
 * Start a warm exec: a shell that says its pid and waits for one line on stdin. Resolves once it
 * said its pid; `onEnded` hears of it if it ends after that, while still waiting or later (its
 * container went, or something in the sandbox killed it).
 */
export function startWarmExec(processes: ProcessStarter, user: string | undefined, onEnded: (warm: WarmExec) => void): Promise<WarmExec> {
  return new Promise<WarmExec>((resolve, reject) => {
    let head = '';
    let settled = false;
    let warm: WarmExec | undefined;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      warm?.process.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`the exec did not start within ${WARM_START_MS} ms`)), WARM_START_MS);
    const pending: WarmExec = {
      process: undefined as unknown as Process,
      pid: 0,
      sink: (stream, data) => {
        head += data.toString('utf8');
        const nl = head.indexOf('\n');
        if (stream !== 'stdout' || nl < 0 || settled) return;
        const pid = Number(head.slice(0, nl));
        if (!Number.isInteger(pid) || pid <= 0) return fail(new Error(`the exec said "${head.slice(0, 80)}" instead of its pid`));
        settled = true;
        clearTimeout(timer);
        pending.pid = pid;
        pending.sink = () => undefined;
        resolve(pending);
      },
    };
    processes
      .start({ argv: ['/bin/sh', '-c', WARM_EXEC_SCRIPT], stdin: true, ...(user ? { user } : {}) }, (stream, data) =>
        pending.sink(stream, data),
      )
      .then((process) => {
        pending.process = process;
        warm = pending;
        void process.closed.then(() => {
          fail(new Error(`the exec ended before it started${head ? `: ${head.trim()}` : ''}`));
          onEnded(pending);
        });
        if (settled && pending.pid === 0) process.destroy();
      }, fail);
  });
}
