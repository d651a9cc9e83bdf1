import { randomUUID } from 'node:crypto';
import type { ExecdConfig } from '../core/execd-config';
import type { ExecChannel, RunningCommand, StreamName } from './exec-channel';
import { ExecdError } from './errors';

/**
 * The commands of one sandbox: started, tracked (status, and a bounded log for background ones),
 * interrupted, timed out, forgotten a while after they end. State lives in this API process only:
 * the status and logs of a command are read from the replica that started it (docs/execd.md).
 */

export interface CommandOptions {
  command: string;
  cwd?: string;
  envs?: Record<string, string>;
  /** Milliseconds; the command's process group is killed then. */
  timeout?: number;
  uid?: number;
  gid?: number;
  background: boolean;
}

export interface CommandStatus {
  id: string;
  content: string;
  running: boolean;
  exit_code: number | null;
  error?: string;
  started_at: string;
  finished_at: string | null;
}

/**
 * Bytes of background output held by this API process, across every sandbox: past `cap`, each log
 * keeps only its newest LOG_FLOOR bytes, so a tenant's chatty commands cannot grow the API's memory
 * however many sandboxes it has.
 */
export class LogBudget {
  used = 0;
  constructor(readonly cap: number) {}
}

/** What every background log may keep even when the process-wide budget is spent. */
const LOG_FLOOR = 64 * 1024;

/** Output of a background command, capped: past the cap the oldest bytes go; offsets keep counting. */
export class ByteLog {
  private chunks: Buffer[] = [];
  private size = 0;
  /** Bytes dropped from the front (the offset of chunks[0]). */
  private base = 0;

  constructor(
    private readonly cap: number,
    private readonly budget: LogBudget,
  ) {}

  append(data: Buffer): void {
    this.chunks.push(Buffer.from(data));
    this.size += data.length;
    this.budget.used += data.length;
    const limit = this.budget.used > this.budget.cap ? Math.min(this.cap, LOG_FLOOR) : this.cap;
    this.dropTo(limit);
  }

  /** Everything from byte `cursor` on (from the oldest kept byte if that is gone), and the next cursor. */
  read(cursor: number): { text: string; next: number } {
    const all = Buffer.concat(this.chunks);
    const from = Math.max(0, Math.min(cursor, this.base + this.size) - this.base);
    return { text: all.subarray(from).toString('utf8'), next: this.base + this.size };
  }

  /** Give every byte back to the budget (the command is forgotten). */
  release(): void {
    this.dropTo(0);
  }

  private dropTo(limit: number): void {
    while (this.size > limit && this.chunks.length > 0) {
      const over = this.size - limit;
      const first = this.chunks[0]!;
      const cut = Math.min(first.length, over);
      if (cut === first.length) this.chunks.shift();
      else this.chunks[0] = first.subarray(cut);
      this.size -= cut;
      this.base += cut;
      this.budget.used -= cut;
    }
  }
}

interface Tracked {
  status: CommandStatus;
  background: boolean;
  log?: ByteLog;
  run?: RunningCommand;
  /** The signal Tidebox sent (interrupt or timeout), which decides how the exit is reported. */
  signalled?: 'TERM' | 'KILL';
  timer?: NodeJS.Timeout;
}

export interface CommandEvents {
  onOutput?: (stream: StreamName, data: Buffer) => boolean | void;
}

/** How long an interrupted command has between SIGTERM and SIGKILL. */
const INTERRUPT_GRACE_MS = 3000;

export class SandboxCommands {
  private readonly tracked = new Map<string, Tracked>();
  private running = 0;

  constructor(
    private readonly exec: ExecChannel,
    private readonly config: ExecdConfig,
    private readonly budget: LogBudget,
  ) {}

  /**
   * Start a command. Resolves once it runs, with its id, its process handle, and a promise of its
   * final status; a foreground caller streams its output through `events`.
   */
  async start(
    opts: CommandOptions,
    events: CommandEvents = {},
  ): Promise<{ id: string; run: RunningCommand; done: Promise<CommandStatus> }> {
    if (this.running >= this.config.commandsPerSandbox)
      throw new ExecdError(
        429,
        'TOO_MANY_REQUESTS',
        `${this.running} commands are running in this sandbox, the most execd.commandsPerSandbox allows; wait for one to end`,
      );
    this.expire();
    const id = randomUUID().replace(/-/g, '');
    const tracked: Tracked = {
      background: opts.background,
      status: { id, content: opts.command, running: true, exit_code: null, started_at: new Date().toISOString(), finished_at: null },
    };
    if (opts.background) tracked.log = new ByteLog(this.config.backgroundLogBytes, this.budget);
    this.running++;
    let run: RunningCommand;
    try {
      run = await this.exec.run({
        command: opts.command,
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        ...(opts.envs ? { env: opts.envs } : {}),
        ...(opts.uid !== undefined ? { user: opts.gid !== undefined ? `${opts.uid}:${opts.gid}` : String(opts.uid) } : {}),
        onOutput: (stream, data) => {
          tracked.log?.append(data);
          return events.onOutput?.(stream, data);
        },
      });
    } catch (err) {
      this.running--;
      throw err;
    }
    tracked.run = run;
    this.tracked.set(id, tracked);
    if (opts.timeout !== undefined && opts.timeout > 0) {
      tracked.timer = setTimeout(() => {
        tracked.signalled = 'KILL';
        run.signal('KILL').catch(() => undefined);
      }, opts.timeout);
    }
    const done = run.exited.then(
      (code) => this.finish(tracked, code),
      (err: Error) => this.finish(tracked, undefined, err.message),
    );
    return { id, run, done };
  }

  private finish(tracked: Tracked, code: number | undefined, failure?: string): CommandStatus {
    clearTimeout(tracked.timer);
    this.running--;
    const s = tracked.status;
    s.running = false;
    s.finished_at = new Date().toISOString();
    if (failure !== undefined) {
      s.exit_code = -1;
      s.error = failure;
    } else if (tracked.signalled && code !== undefined && code >= 128) {
      // Ended by the signal Tidebox sent: reported as the reference execd does (-1, "signal: …").
      s.exit_code = -1;
      s.error = code === 137 ? 'signal: killed' : 'signal: terminated';
    } else {
      s.exit_code = code ?? -1;
      if (code !== 0) s.error = `exit status ${code}`;
    }
    delete tracked.run;
    return { ...s };
  }

  status(id: string): CommandStatus {
    return { ...this.get(id).status };
  }

  logs(id: string, cursor: number): { text: string; next: number } {
    const tracked = this.get(id);
    if (!tracked.log) throw new ExecdError(400, 'INVALID_REQUEST_BODY', `command ${id} is not running in background`);
    return tracked.log.read(cursor);
  }

  /** SIGTERM to the command's process group, SIGKILL if it is still there after a grace period. */
  async interrupt(id: string): Promise<void> {
    const tracked = this.tracked.get(id);
    if (!tracked) throw new ExecdError(404, 'INVALID_REQUEST_BODY', `command not found: ${id}`);
    const run = tracked.run;
    if (!run) throw new ExecdError(409, 'RUNTIME_ERROR', `command ${id} is not running`);
    tracked.signalled = 'TERM';
    await run.signal('TERM');
    const gone = await Promise.race([run.exited.then(() => true), delay(INTERRUPT_GRACE_MS).then(() => false)]);
    if (!gone && tracked.run) {
      tracked.signalled = 'KILL';
      await run.signal('KILL');
    }
  }

  /** Commands still running (an entry with none may be dropped when idle). */
  get active(): number {
    return this.running;
  }

  /** The sandbox's execd state is dropped: give the logs' bytes back. */
  dispose(): void {
    for (const t of this.tracked.values()) t.log?.release();
    this.tracked.clear();
  }

  private get(id: string): Tracked {
    this.expire();
    const tracked = this.tracked.get(id);
    if (!tracked) throw new ExecdError(404, 'INVALID_REQUEST_BODY', `command not found: ${id}`);
    return tracked;
  }

  /** Forget finished commands past their retention, and the oldest beyond the count kept. */
  private expire(): void {
    const horizon = Date.now() - this.config.finishedRetentionSeconds * 1000;
    const finished = [...this.tracked.entries()].filter(([, t]) => !t.status.running);
    const forget = (id: string) => {
      this.tracked.get(id)?.log?.release();
      this.tracked.delete(id);
    };
    for (const [id, t] of finished) if (Date.parse(t.status.finished_at!) < horizon) forget(id);
    const kept = finished.filter(([id]) => this.tracked.has(id));
    for (const [id] of kept.slice(0, Math.max(0, kept.length - this.config.finishedCommands))) forget(id);
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
