import { Readable, Transform, type TransformCallback } from 'node:stream';

/**
 * The little of tar that big transfers need, without a general-purpose archiver in the byte path:
 * a ustar header (with a PAX record for a long name) to put one file, and a reader that yields the
 * first regular entry's bytes as they arrive. Measured against tar-stream on 20 MB: the engine's
 * archive API becomes the only cost (docs/benchmarks.md).
 */

const BLOCK = 512;

export interface EntryHeader {
  name: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  type: 'file' | 'directory';
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function ustar(name: string, h: Omit<EntryHeader, 'name'>, typeflag: string): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, 'utf8');
  b.write(octal(h.mode & 0o7777, 8), 100, 'latin1');
  b.write(octal(h.uid, 8), 108, 'latin1');
  b.write(octal(h.gid, 8), 116, 'latin1');
  b.write(octal(h.size, 12), 124, 'latin1');
  b.write(octal(Math.floor(h.mtime.getTime() / 1000), 12), 136, 'latin1');
  b.fill(' ', 148, 156); // checksum field counts as spaces
  b.write(typeflag, 156, 'latin1');
  b.write('ustar\0' + '00', 257, 'latin1');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

const pad = (size: number) => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

/** The header block(s) of one entry: a PAX `path` record first when the name does not fit 100 bytes. */
export function entryHeader(h: EntryHeader): Buffer {
  const typeflag = h.type === 'directory' ? '5' : '0';
  const name = h.type === 'directory' && !h.name.endsWith('/') ? `${h.name}/` : h.name;
  if (Buffer.byteLength(name) <= 100) return ustar(name, h, typeflag);
  // "<len> path=<name>\n", where len counts itself.
  const body = ` path=${name}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  const record = Buffer.from(`${len}${body}`);
  const pax = ustar('PaxHeader', { ...h, size: record.length, type: 'file' }, 'x');
  return Buffer.concat([pax, record, pad(record.length), ustar(name.slice(0, 100), h, typeflag)]);
}

/** An archive of directories and then one file whose bytes come from `content` (exactly h.size of them). */
export function singleFileArchive(dirs: EntryHeader[], file: EntryHeader, content: Readable): Readable {
  async function* blocks(): AsyncGenerator<Buffer> {
    for (const d of dirs) yield entryHeader({ ...d, size: 0, type: 'directory' });
    yield entryHeader(file);
    let sent = 0;
    for await (const chunk of content) {
      sent += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (sent !== file.size) throw new Error(`the file had ${sent} bytes, not the ${file.size} its header says`);
    yield Buffer.concat([pad(file.size), Buffer.alloc(2 * BLOCK)]);
  }
  return Readable.from(blocks(), { objectMode: false });
}

export interface ReadEntry {
  name: string;
  size: number;
  /** '0' file, '5' directory, '2' symlink, … */
  typeflag: string;
  linkname: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

function field(b: Buffer, start: number, len: number): string {
  const raw = b.subarray(start, start + len);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

const num = (b: Buffer, start: number, len: number) => parseInt(field(b, start, len).trim() || '0', 8);

/**
 * Reads an archive stream up to its first real entry (PAX and GNU long-name records applied), then
 * passes exactly that entry's bytes through and ends. `entry` resolves with its header first.
 */
export class FirstEntry extends Transform {
  readonly entry: Promise<ReadEntry>;
  private resolveEntry!: (e: ReadEntry) => void;
  private rejectEntry!: (err: Error) => void;
  private buf: Buffer = Buffer.alloc(0);
  private header: ReadEntry | undefined;
  private remaining = 0;
  private longName: string | undefined;
  private done = false;

  constructor() {
    super({ highWaterMark: 1024 * 1024 });
    this.entry = new Promise((resolve, reject) => {
      this.resolveEntry = resolve;
      this.rejectEntry = reject;
    });
    this.entry.catch(() => undefined);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.done) return cb();
    if (this.header) return cb(null, this.bytesOf(chunk));
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      while (!this.header && this.buf.length >= BLOCK) {
        const h = this.buf.subarray(0, BLOCK);
        if (h.every((x) => x === 0)) throw new Error('the archive has no entry');
        const typeflag = String.fromCharCode(h[156]!) || '0';
        const size = num(h, 124, 12);
        const total = BLOCK + size + pad(size).length;
        if (typeflag === 'x' || typeflag === 'L' || typeflag === 'g') {
          if (this.buf.length < total) return cb();
          const data = this.buf.subarray(BLOCK, BLOCK + size).toString('utf8');
          if (typeflag === 'L') this.longName = data.replace(/\0+$/, '');
          else if (typeflag === 'x') this.longName = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data)?.[1] ?? this.longName;
          this.buf = this.buf.subarray(total);
          continue;
        }
        const prefix = field(h, 345, 155);
        this.header = {
          name: this.longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100)),
          size,
          typeflag,
          linkname: field(h, 157, 100),
          mode: num(h, 100, 8),
          uid: num(h, 108, 8),
          gid: num(h, 116, 8),
          mtime: new Date(num(h, 136, 12) * 1000),
        };
        this.remaining = typeflag === '0' || typeflag === '\0' || typeflag === '7' ? size : 0;
        const rest = this.buf.subarray(BLOCK);
        this.buf = Buffer.alloc(0);
        this.resolveEntry(this.header);
        return cb(null, this.bytesOf(rest));
      }
      cb();
    } catch (err) {
      this.rejectEntry(err as Error);
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (!this.header) this.rejectEntry(new Error('the archive ended before its first entry'));
    cb();
  }

  /** The entry's bytes in this chunk; at its end the stream ends. */
  private bytesOf(chunk: Buffer): Buffer {
    const part = chunk.subarray(0, this.remaining);
    this.remaining -= part.length;
    if (this.remaining === 0 && !this.done) {
      this.done = true;
      setImmediate(() => this.push(null));
    }
    return part;
  }
}
