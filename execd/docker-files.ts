import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import * as tar from 'tar-stream';
import { type FileInfo, modeDigits } from '../core/execd';
import { badRequest, ExecdError, notFound } from './errors';
import { FirstEntry, singleFileArchive } from './tar';
import { containerPath, type FilesPort, modeBitsOrThrow, type Permission, MAX_REPLACE_BYTES, type UploadSource } from './files-port';

/**
 * Files of one Docker container through the engine's archive API (tar streamed both ways): they
 * work on images without a shell and start no process in the sandbox; the engine resolves paths
 * inside the container's root, links included. The rest is in shell-files.ts.
 */

/** How long owner and group names read from the container's /etc/passwd and /etc/group are reused. */
const NAMES_TTL_MS = 30_000;

interface Names {
  users: Map<number, string>;
  groups: Map<number, string>;
  uids: Map<string, number>;
  gids: Map<string, number>;
  at: number;
}

export class ContainerFiles implements FilesPort {
  private names: Names | undefined;

  constructor(
    private readonly docker: Dockerode,
    private readonly containerId: string,
  ) {}

  /** Metadata of one path (a link is described, not followed), from the first header of its archive. */
  async info(path: string): Promise<FileInfo> {
    const p = containerPath(path);
    const header = await this.firstHeader(p);
    return this.toInfo(p, header);
  }

  /** A file's bytes (links followed), as a stream, with its size. */
  async download(path: string): Promise<{ path: string; size: number; mtime: Date; body: Readable }> {
    let p = containerPath(path);
    for (let hops = 0; hops < 8; hops++) {
      const source = await this.archive(p);
      const reader = new FirstEntry();
      source.once('error', (err) => reader.destroy(err));
      source.pipe(reader);
      const h = await reader.entry.catch((err: Error) => {
        source.destroy();
        throw new ExecdError(500, 'RUNTIME_ERROR', `reading the archive of ${p} failed: ${err.message}`);
      });
      if (h.typeflag === '2' && h.linkname) {
        source.destroy();
        p = posix.resolve(posix.dirname(p), h.linkname);
        continue;
      }
      if (h.typeflag !== '0' && h.typeflag !== '\0' && h.typeflag !== '7') {
        source.destroy();
        throw badRequest(h.typeflag === '5' ? `${p} is a directory` : `${p} is not a regular file`);
      }
      // Only the entry's bytes: the reader ends with them, and the engine's stream is let go.
      reader.once('end', () => source.destroy());
      reader.once('close', () => source.destroy());
      return { path: p, size: h.size, mtime: h.mtime, body: reader };
    }
    throw badRequest(`${path} is a chain of more than 8 links`);
  }

  /** Write a file of known size: missing parents created (0755), then the file with its mode and owner. */
  async upload(path: string, source: UploadSource, perm: Permission): Promise<void> {
    const p = containerPath(path);
    if (p === '/') throw badRequest('cannot write a file at /');
    const { existing, missing } = await this.existingAncestor(posix.dirname(p));
    const ids = await this.ids(perm);
    const mtime = new Date();
    const header = (name: string, type: 'file' | 'directory', size: number, mode: number) => ({ name, type, size, mode, mtime, ...ids });
    const archive = singleFileArchive(
      missing.map((dir) => header(posix.relative(existing, dir), 'directory', 0, 0o755)),
      header(posix.relative(existing, p), 'file', source.size, perm.mode ? modeBitsOrThrow(perm.mode) : 0o644),
      source.open(),
    );
    await this.container()
      // Never let a file replace a directory (or the reverse) on the way in.
      .putArchive(archive, { path: existing, noOverwriteDirNonDir: true })
      .catch((err: unknown) => {
        archive.destroy();
        throw mapArchiveError(err, p);
      });
  }

  /** Replace every occurrence in each file (through the archive API: works without a shell), keeping mode and owner. */
  async replace(items: Record<string, { old: string; new: string }>): Promise<Record<string, { replacedCount: number }>> {
    const out: Record<string, { replacedCount: number }> = {};
    for (const [path, { old, new: replacement }] of Object.entries(items)) {
      if (!old) throw badRequest(`the text to replace in ${path} is empty`);
      const p = containerPath(path);
      const source = await this.archive(p);
      const extract = tar.extract();
      source.pipe(extract);
      const entry = await firstEntry(extract, source);
      const h = entry.header;
      if (h.type !== 'file') {
        source.destroy();
        throw badRequest(`${p} is not a regular file`);
      }
      if ((h.size ?? 0) > MAX_REPLACE_BYTES) {
        source.destroy();
        throw badRequest(`${p} is larger than ${MAX_REPLACE_BYTES} bytes, the most /files/replace rewrites`);
      }
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      source.destroy();
      const text = Buffer.concat(chunks).toString('utf8');
      const parts = text.split(old);
      out[path] = { replacedCount: parts.length - 1 };
      if (parts.length === 1) continue;
      const body = Buffer.from(parts.join(replacement), 'utf8');
      const pack = tar.pack();
      pack.entry(
        { name: posix.basename(p), size: body.length, mode: h.mode ?? 0o644, uid: h.uid ?? 0, gid: h.gid ?? 0, mtime: new Date() },
        body,
      );
      pack.finalize();
      await this.container()
        .putArchive(pack as unknown as Readable, { path: posix.dirname(p) })
        .catch((err: unknown) => {
          throw mapArchiveError(err, p);
        });
    }
    return out;
  }

  /** The deepest existing directory on the way to `dir`, and the ones below it to create. */
  private async existingAncestor(dir: string): Promise<{ existing: string; missing: string[] }> {
    const missing: string[] = [];
    let current = dir;
    for (;;) {
      const stat = await this.pathStat(current);
      if (stat) {
        if (!stat.dir) throw badRequest(`${current} is not a directory`);
        return { existing: current, missing: missing.reverse() };
      }
      missing.push(current);
      current = posix.dirname(current);
    }
  }

  /** HEAD on the archive: whether a path exists and is a directory (links followed by the engine). */
  private async pathStat(p: string): Promise<{ dir: boolean } | undefined> {
    try {
      const res = (await this.container().infoArchive({ path: p })) as unknown as { headers?: Record<string, string> };
      (res as unknown as Readable).resume?.();
      const raw = res.headers?.['x-docker-container-path-stat'];
      if (!raw) return { dir: false };
      const stat = JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as { mode: number; linkTarget?: string };
      // Go's FileMode: ModeDir is the top bit.
      return { dir: (stat.mode & 0x80000000) !== 0 };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw mapArchiveError(err, p);
    }
  }

  private async firstHeader(p: string): Promise<tar.Header> {
    const source = await this.archive(p);
    const extract = tar.extract();
    source.pipe(extract);
    const entry = await firstEntry(extract, source);
    entry.resume();
    source.destroy();
    return entry.header;
  }

  private async archive(p: string): Promise<Readable> {
    try {
      return (await this.container().getArchive({ path: p })) as unknown as Readable;
    } catch (err) {
      throw mapArchiveError(err, p);
    }
  }

  private async toInfo(p: string, h: tar.Header): Promise<FileInfo> {
    const names = await this.loadNames();
    const uid = h.uid ?? 0;
    const gid = h.gid ?? 0;
    const type = h.type === 'directory' ? 'directory' : h.type === 'symlink' ? 'symlink' : h.type === 'file' ? 'file' : 'other';
    const mtime = (h.mtime ?? new Date(0)).toISOString();
    return {
      path: p,
      type,
      size: type === 'file' ? (h.size ?? 0) : 0,
      modified_at: mtime,
      created_at: mtime,
      owner: names.users.get(uid) ?? String(uid),
      group: names.groups.get(gid) ?? String(gid),
      mode: modeDigits(h.mode ?? 0),
    };
  }

  /** Owner and group ids for an upload: names from the container's own files; numbers as they are; root otherwise. */
  private async ids(perm: Permission): Promise<{ uid: number; gid: number }> {
    if (!perm.owner && !perm.group) return { uid: 0, gid: 0 };
    const names = await this.loadNames();
    const pick = (v: string | null | undefined, byName: Map<string, number>) =>
      !v ? undefined : /^\d+$/.test(v) ? Number(v) : byName.get(v);
    const uid = pick(perm.owner, names.uids) ?? 0;
    return { uid, gid: pick(perm.group, names.gids) ?? 0 };
  }

  private async loadNames(): Promise<Names> {
    if (this.names && Date.now() - this.names.at < NAMES_TTL_MS) return this.names;
    const parse = async (file: string) => {
      const byId = new Map<number, string>();
      const byName = new Map<string, number>();
      const text = await this.smallFile(file).catch(() => '');
      for (const line of text.split('\n')) {
        const [name, , id] = line.split(':');
        if (name && id && /^\d+$/.test(id)) {
          if (!byId.has(Number(id))) byId.set(Number(id), name);
          byName.set(name, Number(id));
        }
      }
      return { byId, byName };
    };
    const [users, groups] = await Promise.all([parse('/etc/passwd'), parse('/etc/group')]);
    this.names = { users: users.byId, uids: users.byName, groups: groups.byId, gids: groups.byName, at: Date.now() };
    return this.names;
  }

  private async smallFile(p: string): Promise<string> {
    const { body, size } = await this.download(p);
    if (size > 1024 * 1024) {
      body.destroy();
      return '';
    }
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  private container(): Dockerode.Container {
    return this.docker.getContainer(this.containerId);
  }
}

/** The first entry of an archive (the path asked for). */
function firstEntry(extract: tar.Extract, source: Readable): Promise<Readable & { header: tar.Header }> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new ExecdError(500, 'RUNTIME_ERROR', `reading the archive failed: ${err.message}`));
    source.once('error', onError);
    extract.once('error', onError);
    extract.once('finish', () => reject(new ExecdError(500, 'RUNTIME_ERROR', 'the archive was empty')));
    extract.once('entry', (header, stream) => {
      resolve(Object.assign(stream as unknown as Readable, { header }));
    });
  });
}

/** Docker's archive answers: 404 (the container was found a moment ago, so: no such path), 400 bad path. */
function mapArchiveError(err: unknown, p: string): Error {
  if (err instanceof ExecdError) return err;
  const status = (err as { statusCode?: number }).statusCode;
  if (status === 404) return notFound(p);
  if (status === 400) return badRequest(`${p}: ${engineMessage(err)}`);
  if (status === 409) return new ExecdError(409, 'RUNTIME_ERROR', `${p}: ${engineMessage(err)}`);
  // noOverwriteDirNonDir refusing a put is the caller's mistake, though the engine answers 500.
  if (/cannot overwrite (non-)?directory/.test(engineMessage(err))) return badRequest(`${p}: ${engineMessage(err)}`);
  return new ExecdError(500, 'RUNTIME_ERROR', `${p}: ${engineMessage(err)}`);
}

function engineMessage(err: unknown): string {
  const json = (err as { json?: { message?: string } }).json;
  return json?.message ?? (err as Error).message ?? String(err);
}
