import { PassThrough } from 'node:stream';
import { z } from 'zod';
import { ENV_NAME, LineSplitter, shellQuote, streamEvent } from '../../core/execd';
import { type CommandStatus, ExecdError, type SandboxExecd, type StreamName } from '../index';
import type { ExecdContext } from './context';

/** The command routes of execd: run (foreground stream or background), status, logs, interrupt. */

const Envs = z
  .record(z.string(), z.string())
  .refine((e) => Object.keys(e).length <= 1000, 'at most 1000 variables')
  .refine((e) => Object.keys(e).every((k) => ENV_NAME.test(k)), 'variable names are letters, digits and "_", not starting with a digit');

export const RunCommandBody = z
  .object({
    command: z.string().optional(),
    /** The Python SDK sends a list as argv (not in the contract): run as those words, quoted. */
    argv: z.array(z.string()).min(1).optional(),
    cwd: z.string().optional(),
    background: z.boolean().optional(),
    timeout: z.number().int().min(0).optional(),
    uid: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .optional(),
    gid: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .optional(),
    envs: Envs.optional(),
  })
  .refine((b) => (b.command !== undefined && b.command.trim() !== '') || b.argv !== undefined, { message: 'command is required' })
  .refine((b) => b.gid === undefined || b.uid !== undefined, { message: 'uid is required when gid is given' });
export type RunCommand = z.infer<typeof RunCommandBody>;

/** How often an idle stream says it is alive (the reference execd's interval). */
const PING_MS = 3000;

/**
 * POST /command. Foreground: an event stream (init, stdout/stderr a line each, then
 * execution_complete on exit 0 or error with the exit code). Background: init and
 * execution_complete at once; the output is kept for /command/{id}/logs.
 */
export async function runCommand(ctx: ExecdContext, body: RunCommand): Promise<void> {
  const { sandbox } = ctx;
  const command = body.argv ? body.argv.map(shellQuote).join(' ') : body.command!;
  const opts = {
    command,
    background: body.background === true,
    ...(body.cwd ? { cwd: body.cwd } : {}),
    ...(body.envs ? { envs: body.envs } : {}),
    ...(body.timeout ? { timeout: body.timeout } : {}),
    ...(body.uid !== undefined ? { uid: body.uid } : {}),
    ...(body.gid !== undefined ? { gid: body.gid } : {}),
  };
  const events = new EventStream();
  if (opts.background) {
    const { id } = await sandbox.commands.start(opts);
    events.send({ type: 'init', text: id });
    events.send({ type: 'execution_complete', execution_time: 0 });
    events.out.end();
    return sse(ctx, events.out);
  }
  const started = Date.now();
  const { id, run, done } = await sandbox.commands.start(opts, { onOutput: events.onOutput });
  // init first: start() resolves before any output event is delivered (those come from I/O callbacks).
  events.begin(id, run.resume);
  void done.then((status) => events.finish(finalEvent(status.exit_code ?? -1, status.error, Date.now() - started)));
  return sse(ctx, events.out);
}

/** POST /session: a persistent shell; `{session_id}`. */
export async function createSession(ctx: ExecdContext, body: z.infer<typeof CreateSessionBody>): Promise<{ session_id: string }> {
  return { session_id: await ctx.sandbox.sessions.create(body.cwd) };
}

/** POST /session/{id}/run: one command in the session's shell, streamed like a foreground command. */
export async function runInSession(ctx: ExecdContext, sessionId: string, body: z.infer<typeof RunInSessionBody>): Promise<void> {
  const session = ctx.sandbox.sessions.get(sessionId);
  const events = new EventStream();
  const started = Date.now();
  let resume: () => void = () => undefined;
  const done = session.run({
    command: body.command,
    ...(body.cwd ? { cwd: body.cwd } : {}),
    ...(body.timeout ? { timeout: body.timeout } : {}),
    onOutput: events.onOutput,
    onStart: (r) => (resume = r),
  });
  events.begin(sessionId, () => resume());
  void done.then(
    (code) => events.finish(finalEvent(code, code === -1 ? 'signal: killed' : undefined, Date.now() - started)),
    (err: Error) => events.finish({ type: 'error', error: { ename: 'SessionError', evalue: err.message, traceback: [err.message] } }),
  );
  return sse(ctx, events.out);
}

export const CreateSessionBody = z.object({ cwd: z.string().optional() });
export const RunInSessionBody = z.object({
  command: z.string().refine((c) => c.trim() !== '', 'command is required'),
  cwd: z.string().optional(),
  timeout: z.number().int().min(0).optional(),
});

/**
 * The events of one run: init, a stdout/stderr event per line, pings while quiet, the final event.
 * A client that reads slower than the command writes pauses the engine's stream (resume on drain);
 * a client that leaves does not stop the command (as the reference execd): it runs to its end.
 */
class EventStream {
  readonly out = new PassThrough();
  private detached = false;
  private resume: (() => void) | undefined;
  private ping: NodeJS.Timeout | undefined;
  private readonly lines: Record<StreamName, LineSplitter> = { stdout: new LineSplitter(), stderr: new LineSplitter() };

  constructor() {
    this.out.on('error', () => undefined);
    this.out.on('drain', () => this.resume?.());
    this.out.once('close', () => {
      this.detached = true;
      this.resume?.();
    });
  }

  send(event: { type: string; [k: string]: unknown }): boolean {
    return this.detached ? true : this.out.write(streamEvent(event));
  }

  readonly onOutput = (stream: StreamName, data: Buffer): boolean => {
    let ok = true;
    for (const text of this.lines[stream].push(data)) ok = this.send({ type: stream, text }) && ok;
    return ok;
  };

  begin(id: string, resume: () => void): void {
    this.resume = resume;
    this.send({ type: 'init', text: id });
    this.ping = setInterval(() => this.send({ type: 'ping', text: 'pong' }), PING_MS);
  }

  finish(final: { type: string; [k: string]: unknown }): void {
    clearInterval(this.ping);
    for (const stream of ['stdout', 'stderr'] as const) for (const text of this.lines[stream].flush()) this.send({ type: stream, text });
    this.send(final);
    this.resume = undefined;
    this.out.end();
  }
}

function finalEvent(code: number, error: string | undefined, ms: number): { type: string; [k: string]: unknown } {
  if (code === 0) return { type: 'execution_complete', execution_time: ms };
  return { type: 'error', error: { ename: 'CommandExecError', evalue: String(code), traceback: [error ?? `exit status ${code}`] } };
}

async function sse(ctx: ExecdContext, out: PassThrough): Promise<void> {
  await ctx.reply
    .code(200)
    .headers({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' })
    .send(out);
}

export function commandStatus(sandbox: SandboxExecd, id: string): CommandStatus {
  return sandbox.commands.status(id);
}

export async function commandLogs(ctx: ExecdContext, id: string): Promise<void> {
  const raw = ctx.query.get('cursor');
  const cursor = raw !== null && /^\d+$/.test(raw) ? Number(raw) : 0;
  const { text, next } = ctx.sandbox.commands.logs(id, cursor);
  await ctx.reply
    .code(200)
    .header('content-type', 'text/plain; charset=utf-8')
    .header('EXECD-COMMANDS-TAIL-CURSOR', String(next))
    .send(text);
}

export async function interruptCommand(ctx: ExecdContext): Promise<void> {
  const id = ctx.query.get('id');
  if (!id) throw new ExecdError(400, 'MISSING_QUERY', 'missing query parameter id');
  if (ctx.sandbox.sessions.has(id)) await ctx.sandbox.sessions.get(id).interrupt();
  else await ctx.sandbox.commands.interrupt(id);
  await ctx.reply.code(200).send('');
}
