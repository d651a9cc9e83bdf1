/**
 * The execd API that Tidebox serves for every sandbox (docs/execd.md): the pure pieces the data
 * plane builds on (its settings are in execd-config.ts) — the shell line a warm exec runs, quoting, the answers' shapes.
 */

/** The port the OpenSandbox SDKs ask the endpoint of, to reach execd. */
export const EXECD_PORT = 44772;
/** The header carrying a sandbox's execd access token. */
export const EXECD_TOKEN_HEADER = 'x-execd-access-token';
/** `extensions["tidebox.io/execd"] = "image"`: the image runs its own execd; port 44772 is proxied to it. */
export const EXECD_EXTENSION = 'tidebox.io/execd';

export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * What a warm exec runs: say its pid (the process group it leads), wait for one line, run it.
 * `NL` lets a line carry newlines inside quoted words (see shellQuote).
 */
export const WARM_EXEC_SCRIPT = `NL='\n'; echo $$; IFS= read -r line || exit 0; eval "$line"`;

/** One shell word, on one line: single-quoted, newlines written as '"$NL"' (defined by WARM_EXEC_SCRIPT). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`).replace(/\n/g, `'"$NL"'`)}'`;
}

/** A shell-less image runs a command as argv: plain words only, no quoting or shell syntax. */
export function plainArgv(command: string): string[] | undefined {
  if (/[^A-Za-z0-9_./:=,+@%-\s]/.test(command)) return undefined;
  const words = command.trim().split(/\s+/).filter(Boolean);
  return words.length > 0 ? words : undefined;
}

/** `stat -c` format: raw mode (hex), size, uid, user, gid, group, mtime, ctime, then the name. */
export const STAT_FORMAT = '%f|%s|%u|%U|%g|%G|%Y|%Z|%n';

export interface FileInfo {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  modified_at: string;
  created_at: string;
  owner: string;
  group: string;
  mode: number;
}

const S_IFMT = 0o170000;
export function fileType(rawMode: number): FileInfo['type'] {
  switch (rawMode & S_IFMT) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symlink';
    default:
      return 'other';
  }
}

/** Permission bits as the contract writes them: octal digits read as a decimal int (0o755 → 755). */
export function modeDigits(mode: number): number {
  return Number((mode & 0o777).toString(8));
}

/** The contract's mode (755) as permission bits (0o755), or undefined when it is not octal digits. */
export function modeBits(digits: number): number | undefined {
  if (!Number.isInteger(digits) || digits < 0 || !/^[0-7]{1,4}$/.test(String(digits))) return undefined;
  return parseInt(String(digits), 8) & 0o7777;
}

const nameOr = (name: string, id: string) => (name && name !== 'UNKNOWN' ? name : id);
const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/** A line printed by `stat -c STAT_FORMAT`, or undefined when it is not one. */
export function parseStatLine(line: string): FileInfo | undefined {
  const fields = line.split('|');
  if (fields.length < 9) return undefined;
  const [rawHex, size, uid, user, gid, group, mtime, ctime] = fields;
  const raw = parseInt(rawHex!, 16);
  const path = fields.slice(8).join('|');
  if (!Number.isFinite(raw) || !path) return undefined;
  return {
    path,
    type: fileType(raw),
    size: Number(size),
    modified_at: iso(Number(mtime)),
    created_at: iso(Number(ctime)),
    owner: nameOr(user!, uid!),
    group: nameOr(group!, gid!),
    mode: modeDigits(raw),
  };
}

/**
 * A glob (doublestar syntax: `*`, `?`, `[...]`, `{a,b}`, `**`) as a RegExp over one name, the
 * way the reference execd matches /files/search patterns against base names.
 */
export function globToRegExp(pattern: string): RegExp {
  let out = '';
  let braces = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) out += escapeRegExp(pattern[++i]!);
    else if (c === '*') {
      while (pattern[i + 1] === '*') i++;
      out += '.*';
    } else if (c === '?') out += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) out += '\\[';
      else {
        const body = pattern
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\');
        out += `[${body}]`;
        i = end;
      }
    } else if (c === '{') {
      braces++;
      out += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      out += ')';
    } else if (c === ',' && braces > 0) out += '|';
    else out += escapeRegExp(c);
  }
  if (braces > 0) throw new Error(`pattern "${pattern}" has an unclosed {`);
  return new RegExp(`^${out}$`, 's');
}

function escapeRegExp(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** One event of the execd stream, framed as the reference execd frames it: bare JSON, blank line. */
export function streamEvent(event: { type: string; [k: string]: unknown }): string {
  return `${JSON.stringify({ ...event, timestamp: Date.now() })}\n\n`;
}

/**
 * Splits output into lines as execd reports them: without their ending (\n, \r\n or \r), an empty
 * line as "\n"; a line longer than maxLine is sent in pieces; the unfinished tail waits for flush().
 */
export class LineSplitter {
  private tail = '';
  private readonly decoder = new TextDecoder('utf-8');

  constructor(private readonly maxLine = 64 * 1024) {}

  push(chunk: Uint8Array): string[] {
    this.tail += this.decoder.decode(chunk, { stream: true });
    const lines: string[] = [];
    let start = 0;
    for (let i = 0; i < this.tail.length; i++) {
      const c = this.tail[i];
      if (c !== '\n' && c !== '\r') continue;
      if (c === '\r' && i + 1 === this.tail.length) break; // may be the first half of \r\n
      const line = this.tail.slice(start, i);
      lines.push(line === '' ? '\n' : line);
      if (c === '\r' && this.tail[i + 1] === '\n') i++;
      start = i + 1;
    }
    this.tail = this.tail.slice(start);
    while (this.tail.length > this.maxLine) {
      lines.push(this.tail.slice(0, this.maxLine));
      this.tail = this.tail.slice(this.maxLine);
    }
    return lines;
  }

  flush(): string[] {
    this.tail += this.decoder.decode();
    const rest = this.tail.replace(/\r$/, '');
    this.tail = '';
    return rest ? [rest] : [];
  }
}
