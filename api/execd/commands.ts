import { PassThrough } from 'node:stream';
import { z } from 'zod';
import { ENV_NAME, LineSplitter, shellQuote, streamEvent } from '../../core/execd';
import { type CommandStatus, ExecdError, type SandboxExecd, type StreamName } from '../../execd';
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
  const out = new PassThrough();
  out.on('error', () => undefined);
  let detached = false;
  const send = (event: { type: string; [k: string]: unknown }): boolean => (detached ? true : out.write(streamEvent(event)));

  if (opts.background) {
    const { id } = await sandbox.commands.start(opts);
    send({ type: 'init', text: id });
    send({ type: 'execution_complete', execution_time: 0 });
    out.end();
    return sse(ctx, out);
  }

  const started = Date.now();
  const lines: Record<StreamName, LineSplitter> = { stdout: new LineSplitter(), stderr: new LineSplitter() };
  let resume: (() => void) | undefined;
  const { id, run, done } = await sandbox.commands.start(opts, {
    onOutput: (stream, data) => {
      let ok = true;
      for (const text of lines[stream].push(data)) ok = send({ type: stream, text }) && ok;
      return ok;
    },
  });
  resume = run.resume;
  // The client reads slower than the command writes: pause the engine's stream until it drains.
  out.on('drain', () => resume?.());
  // A client that leaves does not stop the command (as the reference execd): it runs to its end or timeout.
  out.once('close', () => {
    detached = true;
    resume?.();
  });
  const ping = setInterval(() => send({ type: 'ping', text: 'pong' }), PING_MS);
  // init first: start() resolves before any output event is delivered (those come from I/O callbacks).
  out.write(streamEvent({ type: 'init', text: id }));
  void done.then((status) => {
    clearInterval(ping);
    for (const stream of ['stdout', 'stderr'] as const) for (const text of lines[stream].flush()) send({ type: stream, text });
    send(finalEvent(status, Date.now() - started));
    resume = undefined;
    out.end();
  });
  return sse(ctx, out);
}

function finalEvent(status: CommandStatus, ms: number): { type: string; [k: string]: unknown } {
  if (status.exit_code === 0) return { type: 'execution_complete', execution_time: ms };
  return {
    type: 'error',
    error: { ename: 'CommandExecError', evalue: String(status.exit_code), traceback: [status.error ?? `exit status ${status.exit_code}`] },
  };
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
  await ctx.sandbox.commands.interrupt(id);
  await ctx.reply.code(200).send('');
}
