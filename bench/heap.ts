import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';

interface Reply {
  id: number;
  result?: Record<string, unknown>;
  error?: { message: string };
}

/**
 * A connection to a Node process started with `--inspect=127.0.0.1:<port>` that reaches its main
 * thread and, through it, each of its worker threads (the Temporal SDK runs workflows in one).
 */
async function inspect<T>(port: number, use: (send: Send, threads: Array<string | undefined>) => Promise<T>): Promise<T> {
  const [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
  const ws = new WebSocket(target!.webSocketDebuggerUrl);
  await once(ws, 'open');
  let nextId = 1;
  const waiting = new Map<number, (r: Reply) => void>();
  const workers: string[] = [];
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString()) as Reply & { method?: string; params?: { sessionId: string; message: string } };
    if (msg.method === 'NodeWorker.attachedToWorker') workers.push(msg.params!.sessionId);
    const reply = msg.method === 'NodeWorker.receivedMessageFromWorker' ? (JSON.parse(msg.params!.message) as Reply) : msg;
    if (reply.id !== undefined) waiting.get(reply.id)?.(reply);
  });
  /** A command to the main thread, or through it to one worker thread (by session). */
  const send: Send = (method, params = {}, session) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`inspector: no answer to ${method}`)), 60_000);
      waiting.set(id, (r) => {
        clearTimeout(timer);
        waiting.delete(id);
        if (r.error) reject(new Error(`inspector: ${method}: ${r.error.message}`));
        else resolve(r.result ?? {});
      });
      const message = JSON.stringify({ id, method, params });
      ws.send(
        session
          ? JSON.stringify({ id: nextId++, method: 'NodeWorker.sendMessageToWorker', params: { sessionId: session, message } })
          : message,
      );
    });
  try {
    await send('NodeWorker.enable', { waitForDebuggerOnStart: false });
    // Attachments to the running workers are announced right after enable.
    await new Promise((resolve) => setTimeout(resolve, 500));
    return await use(send, [undefined, ...workers]);
  } finally {
    ws.close();
  }
}
type Send = (method: string, params?: object, session?: string) => Promise<Record<string, unknown>>;

/**
 * The live JavaScript heap of the process, summed over its main thread and its worker threads, each
 * measured right after a full garbage collection: what the process holds, not the garbage V8 lets
 * pile up below its heap limit (RSS says little about that). Native memory (the SDK's Rust core) is
 * not in it; RSS is reported beside it.
 */
export async function liveHeap(port: number): Promise<{ isolates: number; bytes: number }> {
  return inspect(port, async (send, threads) => {
    let bytes = 0;
    for (const session of threads) {
      await send('HeapProfiler.collectGarbage', {}, session);
      bytes += Number((await send('Runtime.getHeapUsage', {}, session)).usedSize);
    }
    return { isolates: threads.length, bytes };
  });
}

/**
 * CPU profiles of every thread of the process while `during` runs, written to `dir` as
 * `<name>-<thread>.cpuprofile` (open in Chrome DevTools or speedscope). Sampling adds a little CPU.
 */
export async function cpuProfiles(port: number, dir: string, name: string, during: Promise<unknown>): Promise<string[]> {
  return inspect(port, async (send, threads) => {
    for (const session of threads) {
      await send('Profiler.enable', {}, session);
      await send('Profiler.setSamplingInterval', { interval: 1000 }, session);
      await send('Profiler.start', {}, session);
    }
    await during.catch(() => undefined);
    const files: string[] = [];
    for (const [i, session] of threads.entries()) {
      const { profile } = await send('Profiler.stop', {}, session);
      const file = join(dir, `${name}-${i === 0 ? 'main' : `thread${i}`}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      files.push(file);
    }
    return files;
  });
}
