import { randomBytes, randomUUID } from 'node:crypto';
import { shellQuote } from '../core/execd';
import type { ExecChannel, ShellHandle, StreamName } from './exec-channel';
import { ExecdError } from './errors';

/**
 * Bash sessions (`/session*`): a real shell per session that lives between runs, so variables,
 * functions and the working directory carry over (the reference execd replays exported variables
 * and the cwd into a fresh bash per run). A run is one line evaluated by that shell with stdin from
 * /dev/null, followed by an end marker on stdout (with the exit status) and on stderr; the markers
 * are cut from the output. `exit` in a run ends the session, as in a terminal; so does a timeout.
 */

export interface SessionRun {
  command: string;
  cwd?: string;
  timeout?: number;
  /** Output as it arrives; return false to pause the shell's stream until the resume() handed to onStart. */
  onOutput: (stream: StreamName, data: Buffer) => boolean | void;
  onStart?: (resume: () => void) => void;
}

/** Finds `\n<marker>` in a stream, holding back what could be its beginning; what follows it is the tail. */
export class MarkerScanner {
  private held = Buffer.alloc(0);
  private readonly needle: Buffer;
  found = false;

  constructor(marker: string) {
    this.needle = Buffer.from(`\n${marker}`);
  }

  /** The output that is certainly the command's; after the marker, what follows it (e.g. ":0\n"). */
  push(chunk: Buffer): { output: Buffer; tail?: Buffer } {
    const all = Buffer.concat([this.held, chunk]);
    const at = all.indexOf(this.needle);
    if (at >= 0) {
      this.found = true;
      this.held = Buffer.alloc(0);
      return { output: all.subarray(0, at), tail: all.subarray(at + this.needle.length) };
    }
    const keep = Math.min(all.length, this.needle.length - 1);
    this.held = all.subarray(all.length - keep);
    return { output: all.subarray(0, all.length - keep) };
  }
}

class Session {
  private busy = false;
  private ended = false;
  /** Tells the run in progress that the shell ended (one listener per session, not one per run). */
  private onClosed: (() => void) | undefined;

  constructor(
    readonly id: string,
    private readonly shell: ShellHandle,
  ) {
    void shell.closed.then(() => {
      this.ended = true;
      this.onClosed?.();
    });
  }

  /**
   * Run one line; resolves with its exit status (the shell's, if the run ended the session). An
   * ended or busy session throws at once (not through the promise), before any answer has begun.
   */
  run(run: SessionRun): Promise<number> {
    if (this.ended) throw new ExecdError(404, 'CONTEXT_NOT_FOUND', `session ${this.id} has ended`);
    if (this.busy) throw new ExecdError(409, 'RUNTIME_ERROR', `session ${this.id} is running a command; wait for it or interrupt it`);
    this.busy = true;
    return this.runLine(run);
  }

  private async runLine(run: SessionRun): Promise<number> {
    const marker = `__TIDEBOX_END_${randomBytes(12).toString('hex')}__`;
    const scanners: Record<StreamName, MarkerScanner> = { stdout: new MarkerScanner(marker), stderr: new MarkerScanner(marker) };
    let status: number | undefined;
    let statusText = '';
    let finished!: () => void;
    const bothMarkers = new Promise<void>((resolve) => (finished = resolve));
    this.shell.onOutput((stream, data) => {
      const scanner = scanners[stream];
      if (scanner.found) {
        if (stream === 'stdout' && status === undefined) statusText += data.toString('latin1');
      } else {
        const { output, tail } = scanner.push(data);
        if (output.length && run.onOutput(stream, output) === false) this.shell.pause();
        if (tail && stream === 'stdout') statusText += tail.toString('latin1');
      }
      const m = /^:(\d+)\n/.exec(statusText);
      if (m) status = Number(m[1]);
      if (scanners.stdout.found && scanners.stderr.found && status !== undefined) finished();
    });
    run.onStart?.(() => this.shell.resume());
    // A cwd applies to this run only: the session's own directory is restored after it.
    const enter = run.cwd ? `__tidebox_pwd=$PWD; cd -- ${shellQuote(run.cwd)} && ` : '';
    const leave = run.cwd ? `cd -- "$__tidebox_pwd"; ` : '';
    this.shell.write(
      `{ ${enter}eval ${shellQuote(run.command)} </dev/null; }; __tidebox_rc=$?; ${leave}` +
        `printf '\\n%s:%s\\n' '${marker}' "$__tidebox_rc"; printf '\\n%s\\n' '${marker}' >&2`,
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      if (run.timeout) timer = setTimeout(resolve, run.timeout);
    });
    try {
      const closed = new Promise<'closed'>((resolve) => (this.onClosed = () => resolve('closed')));
      if (this.ended) this.onClosed?.();
      const first = await Promise.race([bothMarkers.then(() => 'done' as const), closed, timedOut.then(() => 'timeout' as const)]);
      if (first === 'done') return status!;
      if (first === 'timeout') {
        await this.shell.signal('KILL').catch(() => undefined);
        await this.shell.closed;
        return -1;
      }
      return await this.shell.exitCode();
    } finally {
      clearTimeout(timer);
      this.onClosed = undefined;
      this.busy = false;
      this.shell.onOutput(() => undefined);
      this.shell.resume();
    }
  }

  async interrupt(): Promise<void> {
    await this.shell.signal('TERM');
  }

  /** End the shell: its input closes; one that does not leave within a second is killed. */
  async close(): Promise<void> {
    this.ended = true;
    this.shell.end();
    const gone = await Promise.race([this.shell.closed.then(() => true), new Promise((r) => setTimeout(() => r(false), 1000))]);
    if (!gone) await this.shell.signal('KILL').catch(() => undefined);
  }

  get open(): boolean {
    return !this.ended;
  }
}

export class SandboxSessions {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly exec: ExecChannel,
    private readonly limit: number,
  ) {}

  async create(cwd?: string): Promise<string> {
    for (const [id, s] of this.sessions) if (!s.open) this.sessions.delete(id);
    if (this.sessions.size >= this.limit)
      throw new ExecdError(
        429,
        'TOO_MANY_REQUESTS',
        `${this.sessions.size} sessions are open in this sandbox, the most allowed; delete one`,
      );
    const shell = await this.exec.openShell();
    const session = new Session(randomUUID(), shell);
    this.sessions.set(session.id, session);
    if (cwd) {
      const code = await session.run({ command: `mkdir -p -- ${shellQuote(cwd)} && cd -- ${shellQuote(cwd)}`, onOutput: () => undefined });
      if (code !== 0) {
        await this.delete(session.id);
        throw new ExecdError(400, 'INVALID_REQUEST_BODY', `cannot use ${cwd} as the session's directory`);
      }
    }
    return session.id;
  }

  get(id: string): Session {
    const s = this.sessions.get(id);
    if (!s || !s.open) throw new ExecdError(404, 'CONTEXT_NOT_FOUND', `session ${id} not found`);
    return s;
  }

  has(id: string): boolean {
    return this.sessions.get(id)?.open === true;
  }

  async delete(id: string): Promise<void> {
    const s = this.get(id);
    this.sessions.delete(id);
    await s.close();
  }

  closeAll(): void {
    for (const s of this.sessions.values()) void s.close();
    this.sessions.clear();
  }
}
