import { Readable } from 'node:stream';

/**
 * The pieces of an early put: a held upload's file written while its bytes still arrive.
 *
 * The engine's archive put needs the file's size before its bytes (the tar header comes first),
 * and a multipart body says it only at its end. But the SDKs send one metadata part and then the
 * file, closed by the last delimiter, with a Content-Length: the file's size is the body's length
 * less what comes before its bytes and the closing delimiter. Guessed so, the put starts as soon
 * as the file's headers have arrived and runs beside the rest of the request instead of after it;
 * the multipart parser still reads the body, and a guess it contradicts is written again with the
 * size it found (docs/execd.md).
 */

/** Bytes of a held body kept from its start to find where its second part's data begins (the metadata part is at most 64 KiB). */
export const HEAD_BYTES = 80 * 1024;

/** A smaller file is written after its request: the put would gain little beside it. */
export const EARLY_PUT_MIN_BYTES = 1024 * 1024;

/** The boundary a multipart Content-Type names, if any. */
export function boundaryOf(contentType: string): string | undefined {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^;\s"]{1,70}))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

/**
 * Where the second part's data starts in a body that opens with its first delimiter (no preamble),
 * if `head` reaches that far: the end of the headers that follow the second delimiter.
 */
export function secondPartDataStart(head: Buffer, boundary: string): number | undefined {
  const opening = Buffer.from(`--${boundary}\r\n`);
  if (head.length < opening.length || !head.subarray(0, opening.length).equals(opening)) return undefined;
  const delimiter = Buffer.from(`\r\n--${boundary}\r\n`);
  const second = head.indexOf(delimiter, opening.length);
  if (second < 0) return undefined;
  const headersEnd = head.indexOf('\r\n\r\n', second + delimiter.length);
  return headersEnd < 0 ? undefined : headersEnd + 4;
}

/** The size of a last part whose data starts at `dataStart`, if the body ends right after it with the closing delimiter. */
export function lastPartSize(bodyLength: number, dataStart: number, boundary: string): number {
  return bodyLength - dataStart - Buffer.byteLength(`\r\n--${boundary}--\r\n`);
}

/**
 * How long an early put may wait for the next bytes, and how long it may take in all. The engine
 * holds the container's lock while it extracts (its exec, inspect, stop and remove wait for it), so a
 * slow client must not hold it: past either bound the early put gives up, and the file is written
 * after its request, as any held upload is.
 */
export const EARLY_PUT_STALL_MS = 1000;
export const EARLY_PUT_MAX_MS = 5000;

/**
 * Bytes [from, to) of a buffer that is still being filled, read as they arrive: `grew` after each
 * fill. It ends when `to` is reached; destroy it to stop a reader that waits for bytes that will not
 * come. Waiting longer than `stallMs` for bytes, or reading for longer than `maxMs`, it destroys
 * itself and says so (`gaveUp`).
 */
export class GrowingSlice extends Readable {
  private at: number;
  private wanted = false;
  private stall: NodeJS.Timeout | undefined;
  private readonly whole: NodeJS.Timeout;
  gaveUp = false;

  constructor(
    private readonly buf: Buffer,
    from: number,
    private readonly to: number,
    private readonly filled: () => number,
    private readonly bounds = { stallMs: EARLY_PUT_STALL_MS, maxMs: EARLY_PUT_MAX_MS },
  ) {
    super();
    this.at = from;
    // Destroyed with an error before the put read it (the put failed first): nobody else listens.
    this.on('error', () => undefined);
    this.whole = setTimeout(() => this.giveUp(`took more than ${bounds.maxMs} ms`), bounds.maxMs);
  }

  override _read(): void {
    this.wanted = true;
    this.pump();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.quiet();
    done(err);
  }

  /** More of the buffer is filled. */
  grew(): void {
    if (this.wanted) this.pump();
  }

  private pump(): void {
    while (this.wanted && !this.destroyed) {
      if (this.at >= this.to) {
        this.wanted = false;
        this.quiet();
        this.push(null);
        return;
      }
      const until = Math.min(this.filled(), this.to);
      if (until <= this.at) {
        this.stall ??= setTimeout(() => this.giveUp(`waited ${this.bounds.stallMs} ms for bytes`), this.bounds.stallMs);
        return;
      }
      clearTimeout(this.stall);
      this.stall = undefined;
      const chunk = this.buf.subarray(this.at, until);
      this.at = until;
      this.wanted = this.push(chunk);
    }
  }

  private giveUp(why: string): void {
    this.gaveUp = true;
    this.destroy(new Error(`the early put ${why}`));
  }

  private quiet(): void {
    clearTimeout(this.stall);
    clearTimeout(this.whole);
  }
}
