import { execFile } from 'node:child_process';
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TideboxError } from '../../core/errors';
import { isUnderAllowedPrefix } from '../../core/storage';

const run = promisify(execFile);

/** A directory pinned for one bind of one sandbox: what Docker binds instead of the user-controlled path. */
export interface Pin {
  /** Where the pin is mounted: `<root>/<sandboxId>/<index>`. */
  path: string;
  /** The directory it holds, as the kernel names it. */
  resolved: string;
}

/** Mount points of this mount namespace, unescaped (`/proc/self/mountinfo`, field 5). */
export function mountPoints(): Set<string> {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
  return new Set(
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => unescape(line.split(' ')[4] ?? '')),
  );
}

/**
 * Host and named-volume directories that a sandbox can itself change (it writes there) are bound
 * through a pin, never by path: the directory is opened once, the kernel's own name for the open
 * directory is checked against the area it must stay within, and exactly that open directory is
 * bind-mounted — by its `/proc/<pid>/fd` link, so no symlink swapped in between check and bind is
 * followed — at `<root>/<sandboxId>/<index>`, then remounted `nosuid,nodev` (Docker's bind options
 * have neither). Docker binds the pin; once the container runs it holds its own copy and the pin is
 * released. Needs root with CAP_SYS_ADMIN in the Docker engine's mount namespace (a worker on the
 * host); `docker.hostVolumeBinding = "path"` binds by path instead (docs/security.md).
 */
export class BindPins {
  constructor(private readonly root: string) {}

  private dir(sandboxId: string): string {
    return join(this.root, sandboxId);
  }

  /** Pin `source` for bind `index` of the sandbox; refused when it resolves outside every root in `within`. */
  async pin(sandboxId: string, index: number, volume: string, source: string, within: string[], readOnly: boolean): Promise<Pin> {
    let fd: number;
    try {
      fd = openSync(source, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch (err) {
      throw new TideboxError(
        'INVALID_PARAMETER',
        `volume "${volume}": ${source} is not a directory (${(err as NodeJS.ErrnoException).code})`,
      );
    }
    try {
      const resolved = readlinkSync(`/proc/self/fd/${fd}`);
      if (!isUnderAllowedPrefix(resolved, within))
        throw new TideboxError('INVALID_PARAMETER', `volume "${volume}": ${source} resolves to ${resolved}, outside its allowed area`);
      const path = join(this.dir(sandboxId), String(index));
      mkdirSync(path, { recursive: true, mode: 0o700 });
      const options = `remount,bind,nosuid,nodev${readOnly ? ',ro' : ''}`;
      try {
        await run('mount', ['--no-canonicalize', '--bind', `/proc/${process.pid}/fd/${fd}`, path]);
        await run('mount', ['--no-canonicalize', '-o', options, path]);
      } catch (err) {
        await this.unmount(path);
        throw new Error(
          `cannot pin host volume "${volume}": ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message} ` +
            '(the worker needs root with CAP_SYS_ADMIN in the Docker engine\'s mount namespace; or set docker.hostVolumeBinding = "path")',
          { cause: err },
        );
      }
      const held = fstatSync(fd);
      const pinned = statSync(path);
      if (held.dev !== pinned.dev || held.ino !== pinned.ino) {
        await this.unmount(path);
        throw new Error(`pin of volume "${volume}" does not hold the directory that was checked`);
      }
      return { path, resolved };
    } finally {
      closeSync(fd);
    }
  }

  /** The pins a sandbox holds now (mounted). */
  held(sandboxId: string): string[] {
    const mounted = mountPoints();
    return this.entries(this.dir(sandboxId))
      .map((name) => join(this.dir(sandboxId), name))
      .filter((p) => mounted.has(p));
  }

  /** Whether every path of `paths` under the pin root is a live pin (a host restart between create and start loses them). */
  allHeld(paths: string[]): boolean {
    const mounted = mountPoints();
    return paths.filter((p) => p.startsWith(`${this.root}/`)).every((p) => mounted.has(p));
  }

  /** Unmount and remove every pin of the sandbox. Idempotent. */
  async release(sandboxId: string): Promise<number> {
    const dir = this.dir(sandboxId);
    let released = 0;
    for (const name of this.entries(dir)) {
      if (await this.unmount(join(dir, name))) released++;
      try {
        rmdirSync(join(dir, name));
      } catch {
        // still mounted (unmount failed) or already gone
      }
    }
    try {
      rmdirSync(dir);
    } catch {
      // not there, or a pin could not be released
    }
    return released;
  }

  /** Sandboxes with a pin directory, and how long ago it was made. */
  sandboxes(): Array<{ sandboxId: string; ageMs: number }> {
    return this.entries(this.root).flatMap((sandboxId) => {
      try {
        return [{ sandboxId, ageMs: Date.now() - statSync(this.dir(sandboxId)).mtimeMs }];
      } catch {
        return [];
      }
    });
  }

  private entries(dir: string): string[] {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  }

  /** Detach a pin if it is mounted; true when one was. */
  private async unmount(path: string): Promise<boolean> {
    if (!mountPoints().has(path)) return false;
    await run('umount', ['--lazy', path]);
    return true;
  }
}
