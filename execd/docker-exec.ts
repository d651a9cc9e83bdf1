import type { Duplex } from 'node:stream';
import type Dockerode from 'dockerode';
import { commandLine, plainArgv, shellQuote, WARM_EXEC_SCRIPT } from '../core/execd';
import { ExecdError } from './errors';

/**
 * Commands in one Docker container, through the engine's exec API. Creating and starting an exec
 * costs the engine ≈ 70 ms (runc sets up the process); a *warm* exec pays that in advance: a shell
 * started in the container that has said its pid and waits for one line on stdin. A command takes
 * one (≈ 5 ms to its output), and another is started behind it. Each command is the leader of its
 * own process group (the engine starts every exec in a new session), so interrupt and timeout
 * signal the whole group. Output arrives demultiplexed (stdout/stderr) from the engine's framing.
 */

export type StreamName = 'stdout' | 'stderr';

export interface ExecRequest {
  command: string;
  cwd?: string;
  env?: Record<string, string>;
  /** "uid" or "uid:gid"; unset: the image's user. */
  user?: string;
  /** Output as it arrives; return false to pause the engine's stream until resume(). */
  onOutput: (stream: StreamName, data: Buffer) => boolean | void;
}

export interface RunningCommand {
  /** The command's pid (= its process group) inside the container; undefined for shell-less argv. */
  pid: number | undefined;
  /** Resolves when the command has exited, with the engine's exit code. */
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

/** How long a started exec may take to say its pid. */
const WARM_START_MS = 10_000;

/** Docker's stream framing: [stream, 0, 0, 0, size (uint32 BE)] then size bytes. */
export class FrameDemux {
  private pending: Buffer = Buffer.alloc(0);
  constructor(private readonly emit: (stream: StreamName, data: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const kind = this.pending[0];
      const data = this.pending.subarray(8, 8 + size);
      this.pending = this.pending.subarray(8 + size);
      if (size > 0) this.emit(kind === 2 ? 'stderr' : 'stdout', data);
    }
  }
}

/** A started shell in the container, waiting for its line. */
interface WarmExec {
  exec: Dockerode.Exec;
  socket: Duplex;
  pid: number;
  /** Where output goes once a command runs (before: the pid line). */
  sink: (stream: StreamName, data: Buffer) => void;
  closed: Promise<void>;
}

export class ContainerExec {
  private readonly warm: WarmExec[] = [];
  private warming = 0;
  private shell: Promise<string | undefined> | undefined;
  private disposed = false;

  constructor(
    private readonly docker: Dockerode,
    readonly containerId: string,
    private readonly warmTarget: number,
  ) {}

  /** The shell commands run in: bash where the image has one, else sh; undefined: no shell at all. */
  shellOf(): Promise<string | undefined> {
    this.shell ??= this.probeShell().catch((err: unknown) => {
      this.shell = undefined;
      throw err;
    });
    return this.shell;
  }

  private async probeShell(): Promise<string | undefined> {
    const exec = await this.container().exec({
      Cmd: ['/bin/sh', '-c', 'command -v bash || echo sh'],
      AttachStdout: true,
      AttachStderr: true,
    });
    let out = '';
    try {
      const socket = await exec.start({ hijack: true, stdin: false });
      const demux = new FrameDemux((stream, data) => {
        if (stream === 'stdout') out += data.toString('utf8');
      });
      socket.on('data', (d: Buffer) => demux.push(d));
      await new Promise<void>((resolve) => socket.once('close', () => resolve()).once('end', () => resolve()));
    } catch {
      return undefined;
    }
    const code = await exitCode(exec);
    if (code !== 0) return undefined;
    const found = out.trim().split('\n')[0] ?? '';
    return found.startsWith('/') ? found : '/bin/sh';
  }

  /** Start a command: through a warm exec where it can, else a fresh one (another user, no shell). */
  async run(req: ExecRequest): Promise<RunningCommand> {
    const shell = await this.shellOf();
    if (!shell) return this.runArgv(req);
    const warm = (!req.user && this.warm.shift()) || (await this.startWarm(req.user));
    if (!req.user) this.refill();
    return this.useWarm(warm, req, shell);
  }

  private useWarm(warm: WarmExec, req: ExecRequest, shell: string): RunningCommand {
    let paused = false;
    warm.sink = (stream, data) => {
      if (req.onOutput(stream, data) === false && !paused) {
        paused = true;
        warm.socket.pause();
      }
    };
    const line = commandLine({ command: req.command, ...(req.cwd ? { cwd: req.cwd } : {}), ...(req.env ? { env: req.env } : {}), shell });
    // The line, then end of input: the command reads EOF from stdin, as from /dev/null.
    warm.socket.end(`${line}\n`);
    return {
      pid: warm.pid,
      exited: warm.closed.then(() => exitCode(warm.exec)),
      resume: () => {
        if (!paused) return;
        paused = false;
        warm.socket.resume();
      },
      signal: (sig) => this.signalGroup(warm.pid, sig, req.user),
    };
  }

  private async startWarm(user?: string): Promise<WarmExec> {
    const exec = await this.container().exec({
      Cmd: ['/bin/sh', '-c', WARM_EXEC_SCRIPT],
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      ...(user ? { User: user } : {}),
    });
    const socket = (await exec.start({ hijack: true, stdin: true })) as Duplex;
    return new Promise<WarmExec>((resolve, reject) => {
      let head = '';
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`the exec did not start within ${WARM_START_MS} ms`)), WARM_START_MS);
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const closed = new Promise<void>((done) => {
        socket.once('close', () => {
          done();
          fail(new Error(`the exec ended before it started${head ? `: ${head.trim()}` : ''}`));
        });
      });
      socket.on('error', () => socket.destroy());
      const warm: WarmExec = {
        exec,
        socket,
        pid: 0,
        closed,
        sink: (stream, data) => {
          head += data.toString('utf8');
          const nl = head.indexOf('\n');
          if (stream !== 'stdout' || nl < 0 || settled) return;
          const pid = Number(head.slice(0, nl));
          if (!Number.isInteger(pid) || pid <= 0) return fail(new Error(`the exec said "${head.slice(0, 80)}" instead of its pid`));
          settled = true;
          clearTimeout(timer);
          warm.pid = pid;
          warm.sink = () => undefined;
          resolve(warm);
        },
      };
      const demux = new FrameDemux((stream, data) => warm.sink(stream, data));
      socket.on('data', (d: Buffer) => demux.push(d));
    });
  }

  /** Keep warmTarget execs waiting (one started at a time). */
  private refill(): void {
    if (this.disposed || this.warming > 0 || this.warm.length >= this.warmTarget) return;
    this.warming++;
    this.startWarm()
      .then((w) => {
        if (this.disposed) w.socket.destroy();
        else this.warm.push(w);
      })
      .catch(() => undefined) // the next command starts its own, and says why if that fails too
      .finally(() => {
        this.warming--;
        this.refill();
      });
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
    warm.socket.write(`exec ${shell} -c ${shellQuote(SESSION_LOOP)}\n`);
    return {
      pid: warm.pid,
      write: (line) => warm.socket.write(`${line}\n`),
      onOutput: (sink) => (warm.sink = sink),
      closed: warm.closed,
      exitCode: () => exitCode(warm.exec),
      end: () => warm.socket.end(),
      signal: (sig) => this.signalGroup(warm.pid, sig),
      pause: () => warm.socket.pause(),
      resume: () => warm.socket.resume(),
    };
  }

  /** Shell-less image: the command as argv, with the engine's own cwd/env; no process group to signal but by pid. */
  private async runArgv(req: ExecRequest): Promise<RunningCommand> {
    const argv = plainArgv(req.command);
    if (!argv)
      throw new ExecdError(
        400,
        'NOT_SUPPORTED',
        'this sandbox image has no shell (/bin/sh): a command runs as plain words (a program and its arguments), without quotes or shell syntax',
      );
    const exec = await this.container().exec({
      Cmd: argv,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      ...(req.cwd ? { WorkingDir: req.cwd } : {}),
      ...(req.env ? { Env: Object.entries(req.env).map(([k, v]) => `${k}=${v}`) } : {}),
      ...(req.user ? { User: req.user } : {}),
    });
    const socket = (await exec.start({ hijack: true, stdin: false })) as Duplex;
    let paused = false;
    const demux = new FrameDemux((stream, data) => {
      if (req.onOutput(stream, data) === false && !paused) {
        paused = true;
        socket.pause();
      }
    });
    socket.on('data', (d: Buffer) => demux.push(d));
    socket.on('error', () => socket.destroy());
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    return {
      pid: undefined,
      exited: closed.then(() => exitCode(exec)),
      resume: () => {
        if (!paused) return;
        paused = false;
        socket.resume();
      },
      signal: async () => {
        throw new ExecdError(409, 'NOT_SUPPORTED', 'this sandbox image has no shell, so a running command cannot be signalled');
      },
    };
  }

  /** Signal a process group from inside the container, as the user that runs it. */
  private async signalGroup(pid: number, sig: 'TERM' | 'KILL', user?: string): Promise<void> {
    const exec = await this.container().exec({
      Cmd: ['/bin/sh', '-c', `kill -s ${sig} -- -${pid} 2>/dev/null || kill -s ${sig} ${pid} 2>/dev/null || true`],
      AttachStdout: true,
      AttachStderr: true,
      ...(user ? { User: user } : {}),
    });
    const socket = (await exec.start({ hijack: true, stdin: false })) as Duplex;
    socket.resume();
    await new Promise<void>((done) => socket.once('close', () => done()));
  }

  /** Stop the warm execs (their shells read EOF and exit). */
  dispose(): void {
    this.disposed = true;
    for (const w of this.warm.splice(0)) w.socket.end();
  }

  private container(): Dockerode.Container {
    return this.docker.getContainer(this.containerId);
  }
}

/** The exit code of an exec whose stream has closed (the engine records it a moment later at most). */
async function exitCode(exec: Dockerode.Exec): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return info.ExitCode;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the engine did not record the exit code of a finished exec');
}
