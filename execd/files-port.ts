import type { Readable } from 'node:stream';
import type { FileInfo } from '../core/execd';
import { posix } from 'node:path';
import { modeBits } from '../core/execd';
import { badRequest } from './errors';

/** The file operations that move bytes, per runtime: Docker's archive API, or tar over a pod exec. */
export interface FilesPort {
  info(path: string): Promise<FileInfo>;
  /** A regular file's bytes (links followed), streamed, with its size. */
  download(path: string): Promise<{ path: string; size: number; mtime: Date; body: Readable }>;
  /** Write a file of known size (held in memory or spooled): missing parents created, mode and owner applied. */
  upload(path: string, source: UploadSource, perm: Permission): Promise<void>;
  replace(items: Record<string, { old: string; new: string }>): Promise<Record<string, { replacedCount: number }>>;
}

/** An uploaded file whose size is known before its bytes are written (a tar header carries it first). */
export interface UploadSource {
  size: number;
  /** The bytes, exactly `size` of them; called once. */
  open(): Readable;
}

export interface Permission {
  mode?: number;
  owner?: string | null;
  group?: string | null;
}

/** A path as the container sees it: absolute (relative ones are taken from /), normalised. */
export function containerPath(p: string): string {
  if (!p) throw badRequest('a path is required');
  if (p.includes('\0')) throw badRequest('a path cannot contain NUL');
  return posix.resolve('/', p);
}

export function modeBitsOrThrow(digits: number): number {
  const bits = modeBits(digits);
  if (bits === undefined) throw badRequest(`mode ${digits} is not octal digits (e.g. 644, 755)`);
  return bits;
}

/** The most bytes /files/replace reads from one file (it rewrites the whole file in memory). */
export const MAX_REPLACE_BYTES = 64 * 1024 * 1024;
