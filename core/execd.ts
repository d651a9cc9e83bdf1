import { z } from 'zod';

/**
 * The execd API that Tidebox serves for every sandbox (docs/execd.md): its settings, and the pure
 * pieces the data plane builds on — the shell line a warm exec runs, quoting, the answers' shapes.
 */

/** The port the OpenSandbox SDKs ask the endpoint of, to reach execd. */
export const EXECD_PORT = 44772;
/** The header carrying a sandbox's execd access token. */
export const EXECD_TOKEN_HEADER = 'x-execd-access-token';
/** `extensions["tidebox.io/execd"] = "image"`: the image runs its own execd; port 44772 is proxied to it. */
export const EXECD_EXTENSION = 'tidebox.io/execd';

export const ExecdSchema = z
  .object({
    /** Serve the execd API for sandboxes (off: port 44772 is proxied like any other port). */
    enabled: z.boolean().default(true),
    /**
     * Key the per-sandbox access tokens are derived from (HMAC). Every API replica needs the same
     * one. Unset: a random key kept in `<dataDir>/execd-token.key` (one API, or replicas sharing it).
     */
    tokenSecret: z.string().min(32, 'must be at least 32 characters').optional(),
    /** Commands (foreground and background) running at once in one sandbox; more get 429. */
    commandsPerSandbox: z.number().int().min(1).max(1024).default(16),
    /** Output a background command keeps for /logs; past it the oldest bytes are dropped. */
    backgroundLogBytes: z
      .number()
      .int()
      .min(1024)
      .default(4 * 1024 * 1024),
    /** Background output this API process keeps across all sandboxes; past it every log keeps only its newest 64 KiB. */
    logBytesTotal: z
      .number()
      .int()
      .min(1024 * 1024)
      .default(256 * 1024 * 1024),
    /** How long a finished command's status and logs stay readable; at most finishedCommands are kept per sandbox. */
    finishedRetentionSeconds: z.number().int().min(1).default(600),
    finishedCommands: z.number().int().min(1).max(10_000).default(100),
    /** Exec sessions kept started and waiting per sandbox, so a command skips the engine's exec set-up. */
    warmExecs: z.number().int().min(0).max(8).default(1),
    /**
     * Memory for uploads held whole before they are written (the engine's archive put, which
     * needs the size first, is the fastest way in): a request whose Content-Length is at most a
     * quarter of this is held while that much is free; others stream or spool to disk. 0: never.
     */
    uploadMemoryBytes: z
      .number()
      .int()
      .min(0)
      .default(256 * 1024 * 1024),
    /** The largest single file /files/upload writes. */
    maxUploadBytes: z
      .number()
      .int()
      .min(1)
      .default(4 * 1024 * 1024 * 1024),
    /**
     * Docker: the data plane runs in the host worker (it holds the engine's socket), listening here;
     * the API forwards each authorised request to `workerUrl` ({hostId} is replaced by the
     * sandbox's host id; default: http://127.0.0.1:<workerPort>, the worker beside the API).
     */
    workerHost: z.string().min(1).default('127.0.0.1'),
    workerPort: z.number().int().min(1).max(65535).default(44772),
    /**
     * Open connections the worker's listener accepts at once (the APIs keep theirs alive and reuse
     * them); past it a new connection is closed at once, so nothing that reaches the port can use up
     * the worker's file descriptors.
     */
    workerMaxConnections: z.number().int().min(16).default(2048),
    workerUrl: z
      .string()
      .regex(/^https?:\/\/[^/]+$/, 'must be http(s)://host[:port] (with {hostId} where hosts differ)')
      .optional(),
    /** The most entries /directories/list and /files/search return. */
    maxListEntries: z.number().int().min(1).default(10_000),
  })
  .strict()
  .prefault({});
export type ExecdConfig = z.infer<typeof ExecdSchema>;

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
