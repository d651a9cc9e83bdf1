import { once } from 'node:events';
import WebSocket from 'ws';

interface Reply {
  id: number;
  result?: Record<string, unknown>;
  error?: { message: string };
}

/**
 * The live JavaScript heap of a Node process started with `--inspect=127.0.0.1:<port>`, summed over
 * its main thread and its worker threads (the Temporal SDK runs workflows in one), each measured
 * right after a full garbage collection: what the process holds, not the garbage V8 lets pile up
 * below its heap limit (RSS says little about that). Native memory (the SDK's Rust core) is not in
 * it; RSS is reported beside it.
 */
export async function liveHeap(port: number): Promise<{ isolates: number; bytes: number }> {
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
  const send = (method: string, params: object = {}, session?: string) =>
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
    let bytes = 0;
    for (const session of [undefined, ...workers]) {
      await send('HeapProfiler.collectGarbage', {}, session);
      bytes += Number((await send('Runtime.getHeapUsage', {}, session)).usedSize);
    }
    return { isolates: 1 + workers.length, bytes };
  } finally {
    ws.close();
  }
}
