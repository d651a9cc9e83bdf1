import type Dockerode from 'dockerode';
import { z } from 'zod';
import { LABELS } from '../../contracts/labels';
import type { RuntimeExit } from '../../contracts/runtime';
import { forEachLine } from '../../platform/lines';

const DieEvent = z.object({
  id: z.string(),
  Actor: z.object({ Attributes: z.record(z.string(), z.string()) }),
});

/** A `die` event of a sandbox container, or undefined for anything else. */
function parseDieEvent(line: string): RuntimeExit | undefined {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return undefined;
  }
  const parsed = DieEvent.safeParse(json);
  const sandboxId = parsed.success ? parsed.data.Actor.Attributes[LABELS.sandboxId] : undefined;
  if (!parsed.success || !sandboxId) return undefined;
  return { sandboxId, containerId: parsed.data.id, exitCode: Number(parsed.data.Actor.Attributes.exitCode ?? -1) };
}

/**
 * Watches one Docker host for sandbox containers that die (crash, OOM kill, `docker kill` behind our
 * back) and reports them, so the sandbox actor can move to Failed instead of claiming Running.
 * One event stream per host, not one poller per sandbox. After every (re)connect it also reports
 * containers already exited, covering the time the worker was down. Stops when `signal` aborts.
 */
export async function watchRuntimeExits(
  docker: Dockerode,
  instance: string,
  report: (exit: RuntimeExit) => Promise<void>,
  signal: AbortSignal,
  log: (msg: string) => void,
  sweepIntervalMs = 60_000,
): Promise<void> {
  const labelFilter = [`${LABELS.instance}=${instance}`];
  while (!signal.aborted) {
    try {
      const stream = (await docker.getEvents({
        filters: { type: ['container'], event: ['die'], label: labelFilter },
      })) as NodeJS.ReadableStream & { destroy(): void };
      const sweep = async () => {
        for (const c of await docker.listContainers({ all: true, filters: { label: labelFilter, status: ['exited', 'dead'] } })) {
          const sandboxId = c.Labels?.[LABELS.sandboxId];
          const code = /Exited \((\d+)\)/.exec(c.Status ?? '')?.[1];
          if (sandboxId) await report({ sandboxId, containerId: c.Id, exitCode: code === undefined ? -1 : Number(code) });
        }
      };
      // Periodic sweeps also catch a report that failed (e.g. Temporal was briefly unreachable).
      const sweeper = setInterval(() => void sweep().catch((err) => log(`exit sweep failed: ${(err as Error).message}`)), sweepIntervalMs);
      let stopReading = () => {};
      const onAbort = () => stopReading();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        // Events stream is up: now sweep what died while nobody listened.
        await sweep();

        // Read events until the stream ends, fails, or we are told to stop (destroying a docker-modem
        // stream does not reliably end an async iterator over it, so listen explicitly).
        let pending = Promise.resolve();
        await new Promise<void>((resolve, reject) => {
          stopReading = resolve;
          if (signal.aborted) resolve();
          stream.on('end', () => resolve());
          stream.on('error', reject);
          forEachLine(stream, (line) => {
            const exit = parseDieEvent(line);
            if (exit) pending = pending.then(() => report(exit)).catch((err) => log(`reporting exit failed: ${(err as Error).message}`));
          });
        });
        await pending;
      } finally {
        clearInterval(sweeper);
        signal.removeEventListener('abort', onAbort);
        stream.destroy();
      }
    } catch (err) {
      if (signal.aborted) return;
      log(`docker event stream failed: ${(err as Error).message}; reconnecting`);
    }
    if (!signal.aborted) await new Promise((r) => setTimeout(r, 1000));
  }
}
