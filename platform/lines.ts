import type { Readable } from 'node:stream';

/** Call `onLine` for each non-empty, trimmed line of a text stream (the engine's JSON-lines streams). */
export function forEachLine(stream: Readable | NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) onLine(line);
    }
  });
}
