import { randomBytes } from 'node:crypto';
import { shellQuote } from '../core/execd';
import { ExecdError } from './errors';
import type { Process, StreamName } from './process';

/**
 * A runner: a shell in the sandbox that runs one command after another, so a command needs no new
 * process from the runtime (an engine exec costs ≈ 70 ms; a runner's next command shows output in a
 * few ms). For each command it starts a child with stdin from /dev/null, in a session of its own
 * (setsid) so signals reach its whole process group, waits, and prints an end marker with the exit
 * status; the child prints a start marker with its pid before anything else. Markers are random per
 * command and cut from the output. A runner is reused only when the command left no process of its
 * group behind (one that could still write into the next command's output); otherwise it is retired.
 */

/** One command for a runner. */
export interface RunnerRequest {
  command: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Output as it arrives; return false to pause the stream until resume(). */
  onOutput: (stream: StreamName, data: Buffer) => boolean | void;
}

/** Idle runners kept per user between commands. */
export const MAX_IDLE_RUNNERS = 4;

/** What a runner's shell does with each line: evaluate it, in this same shell, until input ends. */
export const RUNNER_LOOP = 'while IFS= read -r __tb_line; do eval "$__tb_line"; done';

export class CommandRunner {
  private retired = false;
  private ended = false;
  /** How the command running now learns that the runner's shell ended under it (one listener per runner, not per command). */
  private onClosed: (() => void) | undefined;

  constructor(
    private readonly process: Process,
    private readonly setSink: (sink: (stream: StreamName, data: Buffer) => void) => void,
  ) {
    process.write(`${RUNNER_LOOP}\n`);
    void process.closed.then(() => {
      this.ended = true;
      this.onClosed?.();
    });
  }

  /** Its shell still runs and it was not retired: it can take a command. */
  get alive(): boolean {
    return !this.ended && !this.retired;
  }

  /** Run one command; `done(reusable)` hands the runner back when it is over. */
  run(
    req: RunnerRequest,
    shell: string,
    setsid: string | undefined,
    done: (reusable: boolean) => void,
  ): { pid: Promise<number | undefined>; exited: Promise<number>; resume(): void } {
    const mark = `__TB_${randomBytes(9).toString('hex')}`;
    const parser = new OutputParser(mark);
    let paused = false;
    let started!: (pid: number | undefined) => void;
    const pid = new Promise<number | undefined>((resolve) => (started = resolve));
    let settle!: (code: number) => void;
    let fail!: (err: Error) => void;
    const exited = new Promise<number>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    let finished = false;
    const finish = (result: { code: number; clean: boolean } | Error) => {
      if (finished) return;
      finished = true;
      this.onClosed = undefined;
      this.setSink(() => undefined);
      started(undefined);
      if (paused) this.process.resume();
      if (result instanceof Error) {
        this.retired = true;
        fail(result);
        return;
      }
      done(result.clean && setsid !== undefined && !this.retired);
      settle(result.code);
    };
    this.setSink((stream, data) => {
      const { output, pid: childPid, end } = parser.push(stream, data);
      if (childPid !== undefined) started(childPid);
      if (output.length && req.onOutput(stream, output) === false && !paused) {
        paused = true;
        this.process.pause();
      }
      if (end) finish(end);
    });
    this.onClosed = () => finish(new ExecdError(500, 'RUNTIME_ERROR', 'the shell running the command ended before it did'));

    const enter = [
      req.cwd ? `cd -- ${shellQuote(req.cwd)} || exit 1; ` : '',
      ...Object.entries(req.env ?? {}).map(([k, v]) => `export ${shellQuote(`${k}=${v}`)}; `),
    ].join('');
    const child = `${shellQuote('printf "\\n%s:%s\\n" "$1" "$$"; __tb_c=$2; shift 2; eval "$__tb_c"')} tidebox ${shellQuote(`${mark}P`)} ${shellQuote(req.command)}`;
    this.process.write(
      `( ${enter}exec ${setsid ? `${setsid} ` : ''}${shell} -c ${child} ) </dev/null & __tb=$!; wait $__tb; __tb_rc=$?; ` +
        `if kill -0 -$__tb 2>/dev/null; then __tb_st=dirty; else __tb_st=clean; fi; ` +
        `printf '\\n%s:%s:%s\\n' '${mark}E' "$__tb_rc" "$__tb_st"; printf '\\n%s\\n' '${mark}E' >&2\n`,
    );
    return {
      pid,
      exited,
      resume: () => {
        if (!paused) return;
        paused = false;
        this.process.resume();
      },
    };
  }

  /** End the runner: its input closes and its loop exits (processes a command left keep running). */
  retire(): void {
    this.retired = true;
    this.setSink(() => undefined);
    this.process.end();
  }
}

/** Splits one command's output from its markers: `\n<mark>P:<pid>\n` first, `\n<mark>E:<rc>:<state>\n` last (stderr: `\n<mark>E\n`). */
export class OutputParser {
  private readonly held: Record<StreamName, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  private readonly ended: Record<StreamName, boolean> = { stdout: false, stderr: false };
  private pidSeen = false;
  private status: { code: number; clean: boolean } | undefined;

  constructor(private readonly mark: string) {}

  push(stream: StreamName, data: Buffer): { output: Buffer; pid?: number; end?: { code: number; clean: boolean } } {
    if (this.ended[stream]) return { output: Buffer.alloc(0) };
    let buf = Buffer.concat([this.held[stream], data]);
    let pid: number | undefined;
    const out: Buffer[] = [];
    if (stream === 'stdout' && !this.pidSeen) {
      const at = buf.indexOf(`\n${this.mark}P:`);
      const endAt = buf.indexOf(`\n${this.mark}E:`);
      if (at >= 0 && (endAt < 0 || at < endAt)) {
        const nl = buf.indexOf('\n', at + 1);
        if (nl < 0) return this.hold(stream, buf, out);
        pid = Number(buf.subarray(at + this.mark.length + 3, nl).toString('latin1'));
        out.push(buf.subarray(0, at));
        buf = buf.subarray(nl + 1);
        this.pidSeen = true;
      } else if (endAt >= 0) this.pidSeen = true; // it never started (cd failed): no pid
    }
    const endMark = stream === 'stdout' ? `\n${this.mark}E:` : `\n${this.mark}E\n`;
    const at = buf.indexOf(endMark);
    if (at < 0) return { ...this.hold(stream, buf, out), ...(pid !== undefined ? { pid } : {}) };
    if (stream === 'stdout') {
      const nl = buf.indexOf('\n', at + endMark.length);
      if (nl < 0) return { ...this.hold(stream, buf, out, at), ...(pid !== undefined ? { pid } : {}) };
      const [code, state] = buf
        .subarray(at + endMark.length, nl)
        .toString('latin1')
        .split(':');
      this.status = { code: Number(code), clean: state === 'clean' };
    }
    out.push(buf.subarray(0, at));
    this.ended[stream] = true;
    this.held[stream] = Buffer.alloc(0);
    const end = this.ended.stdout && this.ended.stderr ? this.status : undefined;
    return { output: Buffer.concat(out), ...(pid !== undefined ? { pid } : {}), ...(end ? { end } : {}) };
  }

  /** Everything but what could be the start of a marker, kept for the next chunk (or from `keepFrom`). */
  private hold(stream: StreamName, buf: Buffer, out: Buffer[], keepFrom?: number): { output: Buffer } {
    const longest = this.mark.length + 4;
    let cut = keepFrom ?? Math.max(0, buf.length - longest);
    if (keepFrom === undefined) {
      // Keep from the last newline within reach: a marker always starts with one.
      const nl = buf.lastIndexOf('\n');
      cut = nl >= cut ? nl : buf.length;
      if (!this.pidSeen && stream === 'stdout') cut = Math.min(cut, nl >= 0 ? nl : buf.length);
    }
    out.push(buf.subarray(0, cut));
    this.held[stream] = buf.subarray(cut);
    return { output: Buffer.concat(out) };
  }
}
