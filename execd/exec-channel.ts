import { plainArgv, shellQuote } from '../core/execd';
import { ExecdError } from './errors';
import type { Process, ProcessStarter, StreamName } from './process';
import { CommandRunner, MAX_IDLE_RUNNERS } from './runner';
import { startWarmExec, type WarmExec } from './warm-exec';

/**
 * Commands in one sandbox. Starting a process costs the runtime tens of milliseconds (≈ 70 ms for a
 * Docker exec here: runc sets up the process); a *warm* exec pays that in advance: a shell started
 * in the sandbox that has said its pid and waits for one line on stdin. A command takes one (its
 * output follows in ≈ 5 ms) and another is started behind it. Each exec leads its own process
 * group (runtimes start every exec in a new session), so interrupt and timeout signal the group.
 */

export type { StreamName } from './process';

export interface ExecRequest {
  command: string;
  cwd?: string;
  env?: Record<string, string>;
  /** "uid" or "uid:gid"; unset: the image's user. */
  user?: string;
  /** Output as it arrives; return false to pause the stream until resume(). */
  onOutput: (stream: StreamName, data: Buffer) => boolean | void;
}

export interface RunningCommand {
  /** The command's pid (= its process group) inside the sandbox; undefined for shell-less argv. */
  pid: number | undefined;
  /** Resolves when the command has exited, with its exit code. */
  exited: Promise<number>;
  resume(): void;
  /** Signal the command's process group. */
  signal(sig: 'TERM' | 'KILL'): Promise<void>;
}

/** A session's shell: one line per run, output to whatever sink is set. */
export interface ShellHandle {
  pid: number;
  write(line: string): void;
  onOutput(sink: (stream: StreamName, data: Buffer) => void): void;
  closed: Promise<void>;
  exitCode(): Promise<number>;
  end(): void;
  signal(sig: 'TERM' | 'KILL'): Promise<void>;
  pause(): void;
  resume(): void;
}

/** What a session's shell runs: evaluate each line it reads, in this same shell, until input ends. */
const SESSION_LOOP = `NL='\n'; while IFS= read -r __tidebox_line; do eval "$__tidebox_line"; done`;

/** How long one chunk written to a process's stdin may wait for the runtime to take it. */
const PIPE_STALL_MS = 30_000;

function withinMs<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A command running this long no longer delays starting the next warm exec. */
const REFILL_AFTER_MS = 100;

export class ExecChannel {
  private readonly warm: WarmExec[] = [];
  /** Runners between commands, by user ("" = the image's user). */
  private readonly idle = new Map<string, CommandRunner[]>();
  private warming = 0;
  private probed: Promise<{ shell?: string; setsid?: string; uid?: number }> | undefined;
  private disposed = false;

  constructor(
    private readonly processes: ProcessStarter,
    private readonly warmTarget: number,
  ) {}

  /** The shell commands run in: bash where the image has one, else sh; undefined: no shell at all. */
  async shellOf(): Promise<string | undefined> {
    return (await this.probe()).shell;
  }

  /** The uid the image's processes run as (undefined: no shell to ask). */
  async imageUid(): Promise<number | undefined> {
    return (await this.probe()).uid;
  }

  /** Warm execs waiting now. */
  get warmCount(): number {
    return this.warm.length;
  }

  /**
   * Have what a first command needs ready: the image probed and a warm exec waiting (none for a
   * shell-less image, or with warmExecs = 0). Resolves once they are; fails when the exec cannot be started.
   */
  async prime(): Promise<void> {
    const { shell } = await this.probe();
    if (!shell || this.warmTarget === 0 || this.warm.length > 0 || this.warming > 0 || this.disposed) return;
    this.warming++;
    try {
      const warm = await this.startWarm();
      if (this.disposed) warm.process.destroy();
      else this.warm.push(warm);
    } finally {
      this.warming--;
    }
  }

  /** Whether pipeIn works here (the runtime closes stdin). */
  get canPipeIn(): boolean {
    return this.processes.canCloseStdin;
  }

  /**
   * Feed `source` to the stdin of a shell line run in the sandbox (a warm exec: no set-up cost), as
   * the image's user; the line's own commands read it (e.g. `cat > file`). Needs a runtime that can
   * close stdin. Resolves with the line's exit status and the start of its stderr.
   */
  async pipeIn(line: string, source: AsyncIterable<Buffer>): Promise<{ code: number; stderr: string }> {
    const { shell } = await this.probe();
    if (!shell) throw new ExecdError(400, 'NOT_SUPPORTED', 'this sandbox image has no shell (/bin/sh)');
    const warm = this.warm.shift() ?? (await this.startWarm());
    this.refill();
    let stderr = '';
    warm.sink = (stream, data) => {
      if (stream === 'stderr' && stderr.length < 4096) stderr += data.toString('utf8');
    };
    // The wrapper reads exactly this line (a shell reads a pipe byte by byte); the rest of stdin is the content.
    warm.process.write(`${line}\n`);
    let sent = true;
    try {
      for await (const chunk of source) await withinMs(warm.process.send(chunk), PIPE_STALL_MS, 'the sandbox stopped taking the upload');
    } catch {
      sent = false; // the line ended early (its exit status says why), stalled, or the source failed
      warm.process.destroy();
    }
    warm.process.end();
    await warm.process.closed;
    const code = await warm.process.exitCode().catch(() => -1);
    return { code: sent || code !== 0 ? code : -1, stderr };
  }

  /** What the image has, asked once: its shell, setsid (each command then leads its own process group), its user. */
  private probe(): Promise<{ shell?: string; setsid?: string; uid?: number }> {
    this.probed ??= this.probeImage().catch((err: unknown) => {
      this.probed = undefined;
      throw err;
    });
    return this.probed;
  }

  private async probeImage(): Promise<{ shell?: string; setsid?: string; uid?: number }> {
    let out = '';
    let p: Process;
    try {
      const script = 'command -v bash || echo sh; echo "setsid:$(command -v setsid)"; echo "uid:$(id -u 2>/dev/null)"';
      p = await this.processes.start({ argv: ['/bin/sh', '-c', script], stdin: false }, (stream, data) => {
        if (stream === 'stdout') out += data.toString('utf8');
      });
      await p.closed;
    } catch (err) {
      // The engine refused the exec now (paused, stopped: 409; gone: 404): ask again next time.
      // Anything else means this image cannot run /bin/sh: no shell.
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 404 || status === 409) throw err;
      return {};
    }
    if ((await p.exitCode().catch(() => -1)) !== 0) return {};
    const [first = '', ...rest] = out.trim().split('\n');
    // `command -v` prints a path, or a bare name for a shell builtin or busybox applet (still runnable by name).
    const setsid =
      rest
        .find((l) => l.startsWith('setsid:'))
        ?.slice('setsid:'.length)
        .trim() ?? '';
    const uid =
      rest
        .find((l) => l.startsWith('uid:'))
        ?.slice('uid:'.length)
        .trim() ?? '';
    return {
      shell: first.startsWith('/') ? first : '/bin/sh',
      ...(/^[\w./-]+$/.test(setsid) ? { setsid } : {}),
      ...(/^\d+$/.test(uid) ? { uid: Number(uid) } : {}),
    };
  }

  /**
   * Start a command on a runner: an idle one of the same user if there is one (no process to set up:
   * a few milliseconds to output), else a new one. Shell-less images run argv on a fresh exec.
   */
  async run(req: ExecRequest): Promise<RunningCommand> {
    const { shell, setsid } = await this.probe();
    if (!shell) return this.runArgv(req);
    if (req.user && !this.processes.canSetUser)
      throw new ExecdError(400, 'NOT_SUPPORTED', 'this runtime cannot run a command as another user (uid/gid): run it as the image user');
    const key = req.user ?? '';
    const runner = this.idleRunner(key) ?? (await this.startRunner(req.user));
    const started = runner.run(req, shell, setsid, (reusable) => this.release(key, runner, reusable));
    // The next warm exec is started once this command ends, or has run a while: starting one costs
    // the engine tens of ms of CPU, which a short command (most are) would otherwise wait behind.
    if (!req.user) {
      const refillLater = setTimeout(() => this.refill(), REFILL_AFTER_MS);
      void started.exited
        .catch(() => undefined)
        .finally(() => {
          clearTimeout(refillLater);
          this.refill();
        });
    }
    let known: number | undefined;
    void started.pid.then((pid) => (known = pid));
    return {
      get pid() {
        return known;
      },
      exited: started.exited,
      resume: started.resume,
      signal: async (sig) => {
        const pid = await started.pid;
        if (pid !== undefined) await this.signalGroup(pid, sig, req.user);
      },
    };
  }

  private async startRunner(user?: string): Promise<CommandRunner> {
    const warm = (!user && this.warm.shift()) || (await this.startWarm(user));
    return new CommandRunner(warm.process, (sink) => (warm.sink = sink));
  }

  /** An idle runner of this user whose shell still runs (one that ended while idle is dropped). */
  private idleRunner(key: string): CommandRunner | undefined {
    const idle = this.idle.get(key) ?? [];
    for (let runner = idle.pop(); runner; runner = idle.pop()) if (runner.alive) return runner;
    return undefined;
  }

  /** Idle runners now, for every user. */
  get idleCount(): number {
    let n = 0;
    for (const runners of this.idle.values()) n += runners.filter((r) => r.alive).length;
    return n;
  }

  /** A runner back from a command: kept idle for the next (a few per user), else ended. */
  private release(key: string, runner: CommandRunner, reusable: boolean): void {
    const idle = (this.idle.get(key) ?? []).filter((r) => r.alive);
    this.idle.set(key, idle);
    if (!reusable || this.disposed || idle.length >= MAX_IDLE_RUNNERS) {
      runner.retire();
      return;
    }
    idle.push(runner);
  }

  /**
   * A persistent shell (a session): a warm exec turned into a loop that evaluates each line it is
   * sent in the same shell, so variables, functions and the working directory carry over.
   */
  async openShell(): Promise<ShellHandle> {
    const shell = await this.shellOf();
    if (!shell) throw new ExecdError(400, 'NOT_SUPPORTED', 'this sandbox image has no shell (/bin/sh), so it cannot hold a session');
    const warm = this.warm.shift() ?? (await this.startWarm());
    this.refill();
    const p = warm.process;
    p.write(`exec ${shell} -c ${shellQuote(SESSION_LOOP)}\n`);
    return {
      pid: warm.pid,
      write: (line) => p.write(`${line}\n`),
      onOutput: (sink) => (warm.sink = sink),
      closed: p.closed,
      exitCode: () => p.exitCode(),
      end: () => p.end(),
      signal: (sig) => this.signalGroup(warm.pid, sig),
      pause: () => p.pause(),
      resume: () => p.resume(),
    };
  }

  /** A warm exec of this user; one that ends while it waits leaves the waiting list. */
  private async startWarm(user?: string): Promise<WarmExec> {
    return startWarmExec(this.processes, user, (ended) => {
      const at = this.warm.indexOf(ended);
      if (at >= 0) this.warm.splice(at, 1);
    });
  }

  /** Keep warmTarget execs waiting (one started at a time). */
  private refill(): void {
    if (this.disposed || this.warming > 0 || this.warm.length >= this.warmTarget) return;
    this.warming++;
    this.startWarm()
      .then((w) => {
        if (this.disposed) w.process.destroy();
        else this.warm.push(w);
      })
      .catch(() => undefined) // the next command starts its own, and says why if that fails too
      .finally(() => {
        this.warming--;
        this.refill();
      });
  }

  /** Shell-less image: the command as argv; no process group to signal. */
  private async runArgv(req: ExecRequest): Promise<RunningCommand> {
    const argv = plainArgv(req.command);
    if (!argv)
      throw new ExecdError(
        400,
        'NOT_SUPPORTED',
        'this sandbox image has no shell (/bin/sh): a command runs as plain words (a program and its arguments), without quotes or shell syntax',
      );
    if ((req.cwd || req.env || req.user) && !this.processes.canSetUser)
      throw new ExecdError(400, 'NOT_SUPPORTED', 'this sandbox image has no shell: cwd, envs and uid cannot be applied on this runtime');
    let paused = false;
    const holder: { p?: Process } = {};
    const started = await this.processes.start(
      {
        argv,
        stdin: false,
        ...(req.cwd ? { cwd: req.cwd } : {}),
        ...(req.env ? { env: req.env } : {}),
        ...(req.user ? { user: req.user } : {}),
      },
      (stream, data) => {
        if (req.onOutput(stream, data) === false && !paused) {
          paused = true;
          holder.p?.pause();
        }
      },
    );
    holder.p = started;
    return {
      pid: undefined,
      exited: started.closed.then(() => started.exitCode()),
      resume: () => {
        if (!paused) return;
        paused = false;
        started.resume();
      },
      signal: async () => {
        throw new ExecdError(409, 'NOT_SUPPORTED', 'this sandbox image has no shell, so a running command cannot be signalled');
      },
    };
  }

  /** Signal a process group from inside the sandbox, as the user that runs it (on a runner of theirs). */
  async signalGroup(pid: number, sig: 'TERM' | 'KILL', user?: string): Promise<void> {
    const kill = await this.run({
      // `kill -SIG -pgid`: the one form dash, busybox and bash all read as "the group".
      command: `kill -${sig} -${pid} 2>/dev/null || kill -${sig} ${pid} 2>/dev/null || true`,
      ...(user ? { user } : {}),
      onOutput: () => undefined,
    });
    await kill.exited;
  }

  /** Stop the warm execs and idle runners (their shells read EOF and exit). */
  dispose(): void {
    this.disposed = true;
    for (const w of this.warm.splice(0)) w.process.end();
    for (const runners of this.idle.values()) for (const r of runners) r.retire();
    this.idle.clear();
  }
}
