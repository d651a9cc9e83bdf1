import { posix } from 'node:path';
import { type FileInfo, globToRegExp, parseStatLine, shellQuote, STAT_FORMAT } from '../core/execd';
import type { ExecChannel } from './exec-channel';
import { containerPath, modeBitsOrThrow, type Permission } from './files-port';
import { badRequest, ExecdError, notFound } from './errors';

/**
 * File operations a tar cannot express — listing without reading contents, search, move, delete,
 * mkdir, chmod/chown — as short shell scripts (paths single-quoted) through the sandbox's exec
 * channel. An image without a shell answers 400 saying which file operations it does have.
 */

/** The most output a file script may print (listings). */
const MAX_SCRIPT_OUTPUT = 64 * 1024 * 1024;

export class ShellFiles {
  constructor(
    private readonly exec: ExecChannel,
    private readonly maxEntries: number,
  ) {}

  /** Metadata of one path (a link is described, not followed). */
  async info(path: string): Promise<FileInfo> {
    const p = containerPath(path);
    const [info] = await this.statScript(
      `p=${shellQuote(p)}; if [ ! -e "$p" ] && [ ! -L "$p" ]; then exit 44; fi; stat -c ${shellQuote(STAT_FORMAT)} -- "$p"`,
      p,
    );
    if (!info) throw new ExecdError(500, 'RUNTIME_ERROR', `stat printed nothing for ${p}`);
    return info;
  }

  /**
   * Write a file from a stream as it arrives (no spooling): `cat` in the sandbox, fed through stdin,
   * parents made 0755, the file private until its mode and owner are set. Only where uploads can
   * stream (`streams()`); a truncated source (over the size limit) leaves no file.
   */
  async writeFrom(path: string, source: AsyncIterable<Buffer>, perm: Permission, truncated: () => boolean): Promise<void> {
    const p = containerPath(path);
    if (p === '/') throw badRequest('cannot write a file at /');
    const mode = (perm.mode ? modeBitsOrThrow(perm.mode) : 0o644).toString(8);
    const owner = [perm.owner ?? '', perm.group ? `:${perm.group}` : ''].join('');
    const q = shellQuote(p);
    // Whatever fails, stdin is read to its end (else the runtime stops taking the bytes still on their way).
    const line =
      `{ (umask 022 && mkdir -p -- ${shellQuote(posix.dirname(p))}) && (umask 077 && cat > ${q}); } || { cat > /dev/null; exit 1; }; ` +
      `chmod ${mode} -- ${q}${owner ? ` && chown ${shellQuote(owner)} -- ${q}` : ''}`;
    const { code, stderr } = await this.exec.pipeIn(line, source);
    if (truncated()) {
      await this.script(`rm -f -- ${q}`).catch(() => undefined);
      return;
    }
    if (code !== 0) throw badRequest(`writing ${p} failed: ${stderr.trim().split('\n').pop() || `exit ${code}`}`);
  }

  /** Whether uploads can stream straight into the sandbox: a shell, and root as the image user (as the archive API writes). */
  async streams(): Promise<boolean> {
    return this.exec.canPipeIn && (await this.exec.imageUid()) === 0;
  }

  /** Run a script that must succeed (exit 44: `missing` not found); its stdout. */
  run(script: string, missing?: string): Promise<string> {
    return this.script(script, missing);
  }

  /** Entries under a directory, `depth` levels deep, parents before their children, by name. */
  async list(path: string, depth: number): Promise<FileInfo[]> {
    const p = containerPath(path);
    if (depth === 0) return [];
    const script =
      `p=${shellQuote(p)}; if [ -L "$p" ]; then echo "$p is a symbolic link" >&2; exit 40; fi; ` +
      `if [ ! -e "$p" ]; then exit 44; fi; if [ ! -d "$p" ]; then echo "$p is not a directory" >&2; exit 40; fi; ` +
      `find -- "$p" -mindepth 1 -maxdepth ${Math.min(depth, 4096)} -exec stat -c ${shellQuote(STAT_FORMAT)} -- {} +`;
    const infos = await this.statScript(script, p);
    return sortTree(infos).slice(0, this.maxEntries);
  }

  /** Files (not directories) under a directory whose name matches the glob; links not followed. */
  async search(path: string, pattern: string): Promise<FileInfo[]> {
    const p = containerPath(path);
    let match: RegExp;
    try {
      match = globToRegExp(pattern || '**');
    } catch (err) {
      throw badRequest((err as Error).message);
    }
    const script =
      `p=${shellQuote(p)}; if [ ! -e "$p" ]; then exit 44; fi; ` +
      `find -- "$p" -mindepth 1 ! -type d -exec stat -c ${shellQuote(STAT_FORMAT)} -- {} +`;
    const infos = await this.statScript(script, p);
    return sortTree(infos.filter((i) => match.test(posix.basename(i.path)))).slice(0, this.maxEntries);
  }

  async removeFiles(paths: string[]): Promise<void> {
    const list = paths.map(containerPath);
    await this.script(
      `for p in ${list.map(shellQuote).join(' ')}; do if [ -d "$p" ] && [ ! -L "$p" ]; then echo "$p is a directory" >&2; exit 40; fi; rm -f -- "$p" || exit 1; done`,
    );
  }

  async removeDirs(paths: string[]): Promise<void> {
    const list = paths.map(containerPath);
    if (list.includes('/')) throw badRequest('refusing to delete /');
    await this.script(`rm -rf -- ${list.map(shellQuote).join(' ')}`);
  }

  async move(items: Array<{ src: string; dest: string }>): Promise<void> {
    for (const { src, dest } of items) {
      const s = containerPath(src);
      const d = containerPath(dest);
      await this.script(
        `s=${shellQuote(s)}; d=${shellQuote(d)}; if [ ! -e "$s" ] && [ ! -L "$s" ]; then exit 44; fi; ` +
          `if [ -e "$d" ] || [ -L "$d" ]; then echo "$d already exists" >&2; exit 40; fi; ` +
          `mkdir -p -- "$(dirname -- "$d")" && mv -- "$s" "$d"`,
        s,
      );
    }
  }

  async makeDirs(items: Record<string, Permission>): Promise<void> {
    for (const [path, perm] of Object.entries(items)) {
      const p = containerPath(path);
      await this.script(`mkdir -p -- ${shellQuote(p)}${this.permissionScript(p, perm)}`);
    }
  }

  async setPermissions(items: Record<string, Permission>): Promise<void> {
    for (const [path, perm] of Object.entries(items)) {
      const p = containerPath(path);
      await this.script(`if [ ! -e ${shellQuote(p)} ]; then exit 44; fi${this.permissionScript(p, perm)}`, p);
    }
  }

  private permissionScript(p: string, perm: Permission): string {
    let out = '';
    if (perm.mode) out += `; chmod ${modeBitsOrThrow(perm.mode).toString(8)} -- ${shellQuote(p)}`;
    const owner = [perm.owner ?? '', perm.group ? `:${perm.group}` : ''].join('');
    if (owner) out += `; chown ${shellQuote(owner)} -- ${shellQuote(p)}`;
    return out;
  }

  /** Run a file script; exit 44 means "not found" (of `missing`), 40 a refusal whose reason is on stderr. */
  private async script(script: string, missing?: string): Promise<string> {
    const shell = await this.exec.shellOf();
    if (!shell)
      throw new ExecdError(
        400,
        'NOT_SUPPORTED',
        'this sandbox image has no shell (/bin/sh): only upload, download, info and replace work on its files',
      );
    let stdout = '';
    let stderr = '';
    let size = 0;
    const started = await this.exec.run({
      command: script,
      onOutput: (stream, data) => {
        size += data.length;
        if (size > MAX_SCRIPT_OUTPUT) return;
        if (stream === 'stdout') stdout += data.toString('utf8');
        else stderr += data.toString('utf8');
      },
    });
    const code = await started.exited;
    if (size > MAX_SCRIPT_OUTPUT) throw badRequest(`the listing is larger than ${MAX_SCRIPT_OUTPUT} bytes; narrow it`);
    if (code === 0) return stdout;
    if (code === 44) throw notFound(missing ?? 'path');
    const reason = stderr.trim().split('\n').pop() ?? '';
    if (code === 40) throw badRequest(reason);
    throw new ExecdError(500, 'RUNTIME_ERROR', reason || `the file operation exited with ${code}`);
  }

  private async statScript(script: string, root: string): Promise<FileInfo[]> {
    const out = await this.script(script, root);
    return out
      .split('\n')
      .map(parseStatLine)
      .filter((i): i is FileInfo => i !== undefined);
  }
}

/** Parents before their children, siblings by name (so a depth-2 listing reads like a tree). */
function sortTree(infos: FileInfo[]): FileInfo[] {
  const key = (p: string) => p.split('/');
  return infos.sort((a, b) => {
    const x = key(a.path);
    const y = key(b.path);
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
    return x.length - y.length;
  });
}
