import { posix } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { type FileInfo, shellQuote } from '../core/execd';
import { containerPath, modeBitsOrThrow, type Permission, MAX_REPLACE_BYTES, type UploadSource } from './files-port';
import { badRequest, ExecdError } from './errors';
import type { FilesPort } from './files-port';
import type { Process, ProcessStarter } from './process';
import type { ShellFiles } from './shell-files';

/**
 * Files of a pod's sandbox container: the pod exec subresource has no archive API, so bytes move
 * as tar over exec (`tar -c` out, `tar -x` in, stdin streamed with flow control); metadata comes
 * from `stat`. Needs a shell and tar in the image (busybox's or GNU's); without them → 400.
 */

/** GNU tar reads whole records (20 blocks): the archive is padded to one, so it ends without EOF on stdin. */
const RECORD = 10240;

export class PodFiles implements FilesPort {
  constructor(
    private readonly processes: ProcessStarter,
    private readonly paths: ShellFiles,
  ) {}

  info(path: string): Promise<FileInfo> {
    return this.paths.info(path);
  }

  async download(path: string): Promise<{ path: string; size: number; mtime: Date; body: Readable }> {
    const p = containerPath(path);
    const info = await this.paths.info(p); // 404 with the usual answer; links are followed by tar -h
    if (info.type === 'directory') throw badRequest(`${p} is a directory`);
    const extract = tar.extract();
    let stderr = '';
    const held: { proc?: Process } = {};
    const proc = await this.processes.start(
      { argv: ['tar', '-c', '-h', '-f', '-', '-C', posix.dirname(p), posix.basename(p)], stdin: false },
      (stream, data) => {
        if (stream === 'stderr') stderr += data.toString('utf8').slice(0, 2000);
        else if (!extract.write(data)) held.proc?.pause();
      },
    );
    held.proc = proc;
    extract.on('drain', () => proc.resume());
    void proc.closed.then(() => (extract as unknown as { end(): void }).end());
    const entry = await new Promise<Readable & { header: tar.Header }>((resolve, reject) => {
      extract.once('entry', (header, stream) => resolve(Object.assign(stream as unknown as Readable, { header })));
      extract.once('finish', () =>
        reject(new ExecdError(500, 'RUNTIME_ERROR', `tar printed no archive for ${p}: ${stderr.trim() || 'no tar in the image?'}`)),
      );
      extract.once('error', (err: Error) => reject(new ExecdError(500, 'RUNTIME_ERROR', `reading the archive failed: ${err.message}`)));
    });
    if (entry.header.type !== 'file') {
      proc.destroy();
      throw badRequest(`${p} is not a regular file`);
    }
    const body = new PassThrough();
    entry.pipe(body);
    body.once('close', () => proc.destroy());
    return { path: p, size: entry.header.size ?? 0, mtime: entry.header.mtime ?? new Date(0), body };
  }

  async upload(path: string, source: UploadSource, perm: Permission): Promise<void> {
    const p = containerPath(path);
    if (p === '/') throw badRequest('cannot write a file at /');
    const mode = perm.mode ? modeBitsOrThrow(perm.mode) : 0o644;
    await this.paths.run(`mkdir -p -- ${shellQuote(posix.dirname(p))}`);
    await this.extract(posix.dirname(p), { name: posix.basename(p), size: source.size, mode, mtime: new Date() }, source.open());
    const owner = [perm.owner ?? '', perm.group ? `:${perm.group}` : ''].join('');
    if (owner) await this.paths.run(`chown ${shellQuote(owner)} -- ${shellQuote(p)}`);
  }

  async replace(items: Record<string, { old: string; new: string }>): Promise<Record<string, { replacedCount: number }>> {
    const out: Record<string, { replacedCount: number }> = {};
    for (const [path, { old, new: replacement }] of Object.entries(items)) {
      if (!old) throw badRequest(`the text to replace in ${path} is empty`);
      const info = await this.paths.info(path);
      if (info.size > MAX_REPLACE_BYTES)
        throw badRequest(`${path} is larger than ${MAX_REPLACE_BYTES} bytes, the most /files/replace rewrites`);
      const file = await this.download(path);
      const chunks: Buffer[] = [];
      for await (const c of file.body) chunks.push(c as Buffer);
      const parts = Buffer.concat(chunks).toString('utf8').split(old);
      out[path] = { replacedCount: parts.length - 1 };
      if (parts.length === 1) continue;
      const body = Buffer.from(parts.join(replacement), 'utf8');
      const header = { name: posix.basename(file.path), size: body.length, mode: modeBitsOrThrow(info.mode), mtime: new Date() };
      await this.extract(posix.dirname(file.path), header, body);
    }
    return out;
  }

  /** Stream a one-file tar into `tar -x` in the pod (owner kept: it runs as the image user). */
  private async extract(dir: string, header: Partial<tar.Header> & { name: string }, content: Readable | Buffer): Promise<void> {
    let stderr = '';
    const proc = await this.processes.start({ argv: ['tar', '-x', '-f', '-', '-C', dir], stdin: true }, (stream, data) => {
      if (stream === 'stderr') stderr += data.toString('utf8').slice(0, 2000);
    });
    const pack = tar.pack();
    let sent = 0;
    const pump = (async () => {
      for await (const chunk of pack as unknown as AsyncIterable<Buffer>) {
        sent += chunk.length;
        await proc.send(chunk);
      }
      if (sent % RECORD) await proc.send(Buffer.alloc(RECORD - (sent % RECORD)));
      proc.end();
    })();
    if (Buffer.isBuffer(content)) pack.entry(header, content);
    else await pipeline(content, pack.entry(header));
    pack.finalize();
    await pump;
    await proc.closed;
    const code = await proc.exitCode().catch(() => -1);
    if (code !== 0)
      throw new ExecdError(500, 'RUNTIME_ERROR', `tar -x in ${dir} failed (${code}): ${stderr.trim() || 'no tar in the image?'}`);
  }
}
