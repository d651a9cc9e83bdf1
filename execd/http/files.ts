import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Busboy from 'busboy';
import { z } from 'zod';
import { LineSplitter } from '../../core/execd';
import { ExecdError, type Permission } from '../index';
import type { UploadSource } from '../files-port';
import { HeldBytes, type ExecdLimits } from './limits';
import type { ExecdContext } from './context';

/** The file routes of execd: upload (multipart; held in memory only within a budget), download, and the rest. */

export const PermissionBody = z.object({
  mode: z.number().int().min(0).optional(),
  owner: z.string().max(256).nullish(),
  group: z.string().max(256).nullish(),
});
export const PermissionMap = z.record(z.string().min(1), PermissionBody);
export const MoveBody = z.array(z.object({ src: z.string().min(1), dest: z.string().min(1) })).max(10_000);
export const ReplaceBody = z.record(z.string().min(1), z.object({ old: z.string().min(1, 'old must not be empty'), new: z.string() }));
const UploadMetadata = PermissionBody.extend({ path: z.string().min(1, 'metadata.path is required') });

const missingQuery = (name: string) => new ExecdError(400, 'MISSING_QUERY', `missing query parameter ${name}`);

export function paths(ctx: ExecdContext): string[] {
  const all = ctx.query.getAll('path');
  if (all.length === 0) throw missingQuery('path');
  return all;
}

export function onePath(ctx: ExecdContext): string {
  const p = ctx.query.get('path');
  if (!p) throw missingQuery('path');
  return p;
}

/**
 * POST /files/upload: `metadata` (JSON) and `file` parts, paired in order, any number of files,
 * each at most execd.maxUploadBytes. Three ways in, fastest first:
 *  - held: a request small enough for the memory budget is read whole, then each file goes in
 *    through the runtime's archive put (size known, no exec, no shell needed);
 *  - streamed: a file whose metadata came first goes straight into the sandbox as it arrives where
 *    it can (`paths.streams()`: a shell, root as the image user, a runtime that closes stdin);
 *  - spooled: otherwise to a temporary file first, written once the whole request has arrived.
 */
export async function upload(ctx: ExecdContext, limits: Pick<ExecdLimits, 'maxUploadBytes' | 'uploadMemory'>): Promise<void> {
  const type = ctx.req.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('multipart/form-data'))
    throw new ExecdError(400, 'INVALID_FILE', 'the upload must be multipart/form-data');
  const maxBytes = limits.maxUploadBytes;
  const declared = Number(ctx.req.headers['content-length'] ?? NaN);
  const held = Number.isSafeInteger(declared) && declared > 0 && limits.uploadMemory.take(declared) ? declared : 0;
  const streams = !held && (await ctx.sandbox.paths.streams());
  let dir: string | undefined;
  const memory = held ? new HeldBytes(limits.uploadMemory, held) : undefined;
  /** Whether the held chunks may be reused: not after a failed put (see HeldBytes.release). */
  let reusable = true;
  try {
    /** Each metadata part, parsed once it has arrived (undefined: invalid, and the request failed). */
    const metadata: Array<Promise<Meta | undefined>> = [];
    /** Held or spooled files to write after parsing; `undefined` for one streamed straight in. */
    const files: Array<UploadSource | undefined> = [];
    if (!held) dir = await mkdtemp(join(tmpdir(), 'tidebox-upload-'));
    await new Promise<void>((resolve, reject) => {
      let bb: Busboy.Busboy;
      try {
        bb = Busboy({
          headers: ctx.req.headers,
          fileHwm: 1024 * 1024,
          limits: { fileSize: maxBytes, files: 2000, fields: 2000, fieldSize: 64 * 1024 },
        });
      } catch (err) {
        return reject(new ExecdError(400, 'INVALID_FILE', (err as Error).message));
      }
      const writes: Array<Promise<unknown>> = [];
      const fail = (err: Error) => {
        ctx.req.raw.unpipe(bb);
        ctx.req.raw.resume();
        reject(err);
      };
      const parse = (text: string): Meta | undefined => {
        try {
          return UploadMetadata.parse(JSON.parse(text));
        } catch (err) {
          fail(new ExecdError(400, 'INVALID_FILE_METADATA', `the metadata part is not valid: ${(err as Error).message.slice(0, 300)}`));
          return undefined;
        }
      };
      bb.on('field', (name, value) => {
        if (name === 'metadata') metadata.push(Promise.resolve(parse(value)));
      });
      bb.on('file', (name, stream) => {
        if (name === 'metadata') {
          const chunks: Buffer[] = [];
          let size = 0;
          stream.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= 64 * 1024) chunks.push(c);
          });
          metadata.push(new Promise((done) => stream.on('end', () => done(parse(Buffer.concat(chunks).toString('utf8'))))));
          return;
        }
        if (name !== 'file') return void stream.resume();
        stream.on('limit', () =>
          fail(new ExecdError(413, 'INVALID_FILE_CONTENT', `a file is larger than ${maxBytes} bytes (execd.maxUploadBytes)`)),
        );
        if (memory) {
          // Each file's bytes are held after the previous file's: the parts are smaller than the
          // body, which the HTTP parser ends at its Content-Length.
          const start = memory.size;
          const entry = { size: 0, open: () => Readable.from(memory.range(start, entry.size)) };
          files.push(entry);
          stream.on('data', (c: Buffer) => {
            try {
              memory.append(c);
              entry.size += c.length;
            } catch (err) {
              fail(new ExecdError(400, 'INVALID_FILE', (err as Error).message));
            }
          });
          return;
        }
        const meta = metadata[files.length];
        if (streams && meta) {
          // Its metadata part came first: stream it in as it arrives (the parser waits for it).
          files.push(undefined);
          const truncated = () => (stream as { truncated?: boolean }).truncated === true;
          writes.push(
            meta
              .then((m) => (m ? ctx.sandbox.paths.writeFrom(m.path, stream as AsyncIterable<Buffer>, permission(m), truncated) : undefined))
              .catch((err: Error) => fail(err))
              .finally(() => stream.resume()), // whatever is left is drained, so the parser goes on to its end
          );
          return;
        }
        const file = join(dir!, String(files.length));
        const entry = { size: 0, open: () => createReadStream(file, { highWaterMark: 1024 * 1024 }) };
        files.push(entry);
        stream.on('data', (c: Buffer) => (entry.size += c.length));
        writes.push(pipeline(stream, createWriteStream(file)));
      });
      bb.on('error', (err: Error) => fail(new ExecdError(400, 'INVALID_FILE', `the multipart body is malformed: ${err.message}`)));
      bb.on('close', () => {
        Promise.all(writes).then(() => resolve(), reject);
      });
      ctx.req.raw.pipe(bb);
    });
    const metas = await Promise.all(metadata);
    if (files.length === 0 && metas.length === 0) throw new ExecdError(400, 'INVALID_FILE', 'multipart form is empty');
    if (files.length === 0) throw new ExecdError(400, 'INVALID_FILE_CONTENT', 'file is missing');
    if (metas.length !== files.length)
      throw new ExecdError(
        400,
        'INVALID_FILE',
        `${metas.length} metadata parts for ${files.length} files: send one metadata part before each file`,
      );
    for (let i = 0; i < files.length; i++) {
      const whole = files[i];
      if (!whole) continue;
      try {
        await ctx.sandbox.files.upload(metas[i]!.path, whole, permission(metas[i]!));
      } catch (err) {
        reusable = false;
        throw err;
      }
    }
    await ctx.reply.code(200).send('');
  } finally {
    if (memory && reusable) memory.release();
    if (held) limits.uploadMemory.give(held);
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

type Meta = z.infer<typeof UploadMetadata>;

function permission(m: Meta): Permission {
  return { ...(m.mode ? { mode: m.mode } : {}), owner: m.owner ?? null, group: m.group ?? null };
}

/** GET /files/download: the bytes (a Range served as 206), or lines with offset/limit. */
export async function download(ctx: ExecdContext): Promise<void> {
  const path = onePath(ctx);
  const offset = ctx.query.get('offset');
  const limit = ctx.query.get('limit');
  const range = ctx.req.headers.range;
  if ((offset !== null || limit !== null) && range)
    throw new ExecdError(400, 'INVALID_REQUEST_BODY', 'offset/limit cannot be combined with a Range header');
  const lineMode = offset !== null || limit !== null;
  const first = lineMode ? positive(offset ?? '1', 'offset') : 0;
  const count = lineMode && limit !== null ? positive(limit, 'limit') : undefined;
  const file = await ctx.sandbox.files.download(path);
  const name = basename(file.path);
  if (lineMode) {
    await ctx.reply
      .code(200)
      .header('content-type', 'text/plain; charset=utf-8')
      .send(await readLines(file.body, first, count));
    return;
  }
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'content-disposition': `attachment; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(name)}`,
    'accept-ranges': 'bytes',
    'last-modified': file.mtime.toUTCString(),
  };
  if (!range) {
    await ctx.reply
      .code(200)
      .headers({ ...headers, 'content-length': String(file.size) })
      .send(file.body);
    return;
  }
  const r = parseRange(range, file.size);
  if (!r) {
    file.body.destroy();
    await ctx.reply
      .code(416)
      .header('content-range', `bytes */${file.size}`)
      .send({ code: 'UNKNOWN', message: `range ${range} is not satisfiable for ${file.size} bytes` });
    return;
  }
  const length = r.end - r.start + 1;
  await ctx.reply
    .code(206)
    .headers({ ...headers, 'content-length': String(length), 'content-range': `bytes ${r.start}-${r.end}/${file.size}` })
    .send(file.body.pipe(slice(r.start, length)));
}

function positive(v: string, name: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new ExecdError(400, 'INVALID_REQUEST_BODY', `${name} must be an integer ≥ 1`);
  return Number(v);
}

/** The first range of a `bytes=` header, clamped to the file; undefined when unsatisfiable or unparsable. */
export function parseRange(header: string, size: number): { start: number; end: number } | undefined {
  const m = /^bytes=(\d*)-(\d*)/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || end < start) return undefined;
  return { start, end };
}

/** Bytes [start, start + length) of a stream. */
function slice(start: number, length: number): Transform {
  let seen = 0;
  let sent = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const from = Math.max(0, start - seen);
      seen += chunk.length;
      if (from < chunk.length && sent < length) {
        const part = chunk.subarray(from, from + (length - sent));
        sent += part.length;
        this.push(part);
      }
      done();
    },
  });
}

/** Lines `first`.. (1-based), `count` of them or to the end, joined by \n without a trailing one. */
async function readLines(body: Readable, first: number, count: number | undefined): Promise<string> {
  const splitter = new LineSplitter(Number.MAX_SAFE_INTEGER);
  const out: string[] = [];
  let n = 0;
  const take = (lines: string[]) => {
    for (const line of lines) {
      n++;
      if (n >= first && (count === undefined || out.length < count)) out.push(line === '\n' ? '' : line);
    }
  };
  for await (const chunk of body) {
    take(splitter.push(chunk as Buffer));
    if (count !== undefined && out.length >= count) {
      body.destroy();
      return out.join('\n');
    }
  }
  take(splitter.flush());
  return out.join('\n');
}
