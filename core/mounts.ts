/**
 * Shared bucket mounts (OSSFS). One mount per (host, tenant, endpoint, bucket, prefix, version,
 * options, credentials) is shared by every sandbox on that host that asks for exactly that; it is a
 * MountWorkflow actor (`mount/<hostId>/<key>`) whose state is the set of holder sandbox ids.
 * Types and pure rules only: the key's HMAC is computed by the API (core/mount-key.ts).
 */

export type OssfsVersion = '1.0' | '2.0';

/** What a mount needs, credentials included. Travels only inside encrypted payloads. */
export interface OssfsSource {
  bucket: string;
  endpoint: string;
  version: OssfsVersion;
  /** Bucket prefix ("" = the whole bucket), from the volume's subPath. */
  prefix: string;
  options: string[];
  accessKeyId: string;
  accessKeySecret: string;
}

/** One ossfs volume of a sandbox, after validation. */
export interface OssfsVolume {
  name: string;
  mountPath: string;
  readOnly: boolean;
  /** Identity of the shared mount (hex); the same for every sandbox asking for the same thing. */
  key: string;
  source: OssfsSource;
}

export type MountState = 'Unmounted' | 'Mounting' | 'Mounted' | 'Unmounting';

/** The public view of a mount actor (memo): never any credential. */
export interface MountView {
  key: string;
  tenant: string;
  hostId: string;
  /** Where the bucket is mounted on the host (set by the host once mounted). */
  hostPath?: string;
  bucket: string;
  endpoint: string;
  prefix: string;
  version: OssfsVersion;
  state: MountState;
  holders: string[];
  lastError?: string;
  updatedAt: string;
}

export interface MountWorkflowInput {
  key: string;
  tenant: string;
  hostId: string;
  source: OssfsSource;
  /** Present only when continuing as new. */
  carried?: { holders: string[]; state: MountState; hostPath?: string };
}

/** The view of a mount as its memo shows it: the source without credentials. */
export function mountView(
  input: MountWorkflowInput,
  state: MountState,
  holders: Iterable<string>,
  extra: { hostPath?: string; lastError?: string; at: string },
): MountView {
  const { bucket, endpoint, prefix, version } = input.source;
  return {
    key: input.key,
    tenant: input.tenant,
    hostId: input.hostId,
    ...(extra.hostPath ? { hostPath: extra.hostPath } : {}),
    bucket,
    endpoint,
    prefix,
    version,
    state,
    holders: [...holders].sort(),
    ...(extra.lastError ? { lastError: extra.lastError } : {}),
    updatedAt: extra.at,
  };
}

export const mountWorkflowId = (hostId: string, key: string): string => `mount/${hostId}/${key}`;

/** A mount key names a directory under the mount root: hex only, so it can never be a path. */
export const isMountKey = (key: unknown): key is string => typeof key === 'string' && /^[0-9a-f]{16,64}$/.test(key);

// ---- validation of what a user may ask ossfs for ----
//
// ossfs runs as root, with user-supplied options: ossfs 1.0 (and s3fs, its ancestor) as `-o <option>`,
// ossfs 2.0 as `--<option>` lines of its configuration file. Many options name host paths
// (passwd_file, use_cache, logfile, log_dir, ...) or run commands (ossfs 2.0's credential_process),
// and s3fs splits every `-o` value on commas, so only named options with strictly checked values
// are allowed, and never a value with a comma, a path or a control character.

/** C0 control characters and DEL: each one could end a line of a credentials/config file. */
const CONTROL = /[\x00-\x1f\x7f]/;

/** Why a value is refused (undefined = fine); `value` is undefined for a bare `name`. */
type OptionRule = (value: string | undefined) => string | undefined;

const flag: OptionRule = (v) => (v === undefined ? undefined : 'takes no value');
/** ossfs 2.0 reads gflags: a boolean is `--name` or `--name=true|false`. */
const boolFlag: OptionRule = (v) => (v === undefined || v === 'true' || v === 'false' ? undefined : 'takes no value, or true or false');
const oneOf =
  (...values: string[]): OptionRule =>
  (v) =>
    v !== undefined && values.includes(v) ? undefined : `must be one of ${values.join(', ')}`;
const int =
  (min: number, max: number): OptionRule =>
  (v) =>
    v !== undefined && /^\d{1,10}$/.test(v) && Number(v) >= min && Number(v) <= max
      ? undefined
      : `must be a whole number from ${min} to ${max}`;
/** A umask: three octal digits, optionally with a leading 0 (022, 0027). */
const mode: OptionRule = (v) => (v !== undefined && /^0?[0-7]{3}$/.test(v) ? undefined : 'must be an octal mask such as 022');
const regionId: OptionRule = (v) =>
  v !== undefined && /^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/.test(v) ? undefined : 'must be a region id such as cn-hangzhou';

const ID = int(0, 4294967294);

/**
 * ossfs 1.0 / s3fs options a user may give. Deliberately absent: everything naming a file or
 * directory (passwd_file, use_cache, logfile, tmpdir, ssl client certs, ...), `url`/`endpoint`
 * (set by Tidebox), anything changing the credential source, and `dbglevel=debug` (request
 * details in the host's syslog). `allow_other` is allowed on purpose: without it the FUSE mount is
 * reachable only by the mounting user (root), so a container running as a non-root user could not
 * read its own volume; it widens access only for users of the host, and the bucket's credentials
 * never become readable through it.
 */
export const OSSFS_V1_OPTIONS: Readonly<Record<string, OptionRule>> = {
  ro: flag,
  allow_other: flag,
  umask: mode,
  mp_umask: mode,
  uid: ID,
  gid: ID,
  max_stat_cache_size: int(0, 1_000_000),
  stat_cache_expire: int(0, 604_800),
  readwrite_timeout: int(1, 600),
  connect_timeout: int(1, 600),
  parallel_count: int(1, 64),
  multipart_size: int(5, 5120),
  retries: int(0, 20),
  list_object_max_keys: int(1, 1000),
  enable_noobj_cache: flag,
  sigv2: flag,
  sigv4: flag,
  use_path_request_style: flag,
  noxmlns: flag,
  nomultipart: flag,
  enable_content_md5: flag,
  kernel_cache: flag,
  dbglevel: oneOf('crit', 'critical', 'err', 'error', 'warn', 'warning', 'info'),
};

/**
 * ossfs 2.0 options a user may give (config-file lines `--name[=value]`). Absent on purpose:
 * credential_process (runs a command as root), ram_role and the oss_* settings Tidebox writes,
 * log_dir and every other path, `f`/`d` (foreground: the mount command would never return).
 */
export const OSSFS_V2_OPTIONS: Readonly<Record<string, OptionRule>> = {
  ro: boolFlag,
  allow_other: boolFlag,
  attr_timeout: int(0, 86_400),
  negative_timeout: int(0, 86_400),
  readdirplus: oneOf('true', 'false'),
  oss_region: regionId,
  upload_buffer_size: int(1_048_576, 1_073_741_824),
};

const optionsOf = (version: OssfsVersion) => (version === '1.0' ? OSSFS_V1_OPTIONS : OSSFS_V2_OPTIONS);

/**
 * Why an ossfs option is refused for `version`, or undefined. An option is `name` or `name=value`
 * with a name from the version's allowlist and a value its rule accepts; no leading "-", no comma
 * (s3fs would split it into several options), no control character, no whitespace.
 */
export function ossfsOptionProblem(option: string, version: OssfsVersion): string | undefined {
  if (typeof option !== 'string') return 'every option must be a string';
  const shown = JSON.stringify(option);
  if (option.startsWith('-')) return `option ${shown} must not start with "-" (give it as name[=value])`;
  if (/[\s,\x00-\x1f\x7f]/.test(option))
    return `option ${shown} must not contain commas, whitespace or control characters (give one option per entry)`;
  const match = /^([a-z][a-z0-9_]*)(?:=(.*))?$/.exec(option);
  if (!match) return `option ${shown} must be name[=value] with a lowercase option name`;
  const [, name, value] = match as unknown as [string, string, string | undefined];
  const rules = optionsOf(version);
  const rule = Object.prototype.hasOwnProperty.call(rules, name) ? rules[name] : undefined;
  if (!rule) return `option "${name}" is not allowed for ossfs ${version} (allowed: ${Object.keys(rules).join(', ')})`;
  const problem = rule(value);
  return problem ? `option ${shown}: ${name} ${problem}` : undefined;
}

const HOST_PORT = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:(\d{1,5}))?$/;
/** A URL's hostname after WHATWG parsing (lowercase, punycode): a DNS name, an IPv4 or an IPv6 literal. */
const URL_HOST = /^([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])$/;

type ParsedEndpoint = { problem: string } | { url: string; ossfs2: string };

function parseEndpoint(endpoint: string): ParsedEndpoint {
  if (typeof endpoint !== 'string' || endpoint.length === 0) return { problem: 'endpoint is required' };
  if (endpoint.length > 253) return { problem: 'endpoint must be at most 253 characters' };
  const shown = JSON.stringify(endpoint);
  // new URL() silently drops tabs and newlines, and trims spaces: refuse them before it sees them.
  if (/[\s\x00-\x1f\x7f]/.test(endpoint)) return { problem: `endpoint ${shown} must not contain whitespace or control characters` };
  const hostPort = HOST_PORT.exec(endpoint);
  if (hostPort) {
    const port = hostPort[3];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return { problem: `endpoint ${shown} has an invalid port` };
    return { url: `https://${endpoint}`, ossfs2: endpoint };
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return { problem: `endpoint ${shown} must be host[:port] or an http(s) URL` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { problem: `endpoint ${shown} must use http or https` };
  if (url.username || url.password) return { problem: 'endpoint must not carry credentials' };
  if (url.search || url.hash || (url.pathname !== '/' && url.pathname !== ''))
    return { problem: `endpoint ${shown} must not have a path or query` };
  // A comma (or anything else) in the host would reach s3fs's comma-split `-o url=`.
  if (!URL_HOST.test(url.hostname)) return { problem: `endpoint ${shown} must name a host by DNS name or IP address` };
  // Only the parsed, normalised form is ever handed on: scheme and host lowercased, no default port.
  const normalised = `${url.protocol}//${url.host}`;
  return { url: normalised, ossfs2: normalised };
}

/** Why an endpoint is refused: it must be host[:port] or an http(s) URL without credentials, path or query. */
export function ossfsEndpointProblem(endpoint: string): string | undefined {
  const parsed = parseEndpoint(endpoint);
  return 'problem' in parsed ? parsed.problem : undefined;
}

function validEndpoint(endpoint: string): { url: string; ossfs2: string } {
  const parsed = parseEndpoint(endpoint);
  if ('problem' in parsed) throw new Error(parsed.problem);
  return parsed;
}

/** The `-o url=` value ossfs 1.0 wants, from the validated endpoint: a URL (a bare host means https). Throws for an invalid endpoint. */
export const endpointUrl = (endpoint: string): string => validEndpoint(endpoint).url;

/** The `--oss_endpoint=` value for ossfs 2.0: a bare host as given, a URL in its normalised form. Throws for an invalid endpoint. */
export const ossfs2Endpoint = (endpoint: string): string => validEndpoint(endpoint).ossfs2;

/** Why a bucket prefix (the normalised subPath) is refused: relative, plain segments, no control characters. */
export function ossfsPrefixProblem(prefix: string): string | undefined {
  if (typeof prefix !== 'string') return 'prefix must be a string';
  if (prefix === '') return undefined;
  if (prefix.length > 1024) return 'subPath must be at most 1024 characters';
  if (CONTROL.test(prefix)) return 'subPath must not contain control characters';
  if (prefix.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    return 'subPath must be a relative path without empty, "." or ".." segments';
  }
  return undefined;
}

/**
 * Why an access key pair is refused. Neither may hold a control character (each would end a line
 * of the 1.0 password file or the 2.0 config file); the id never holds ":" (the password file's
 * separator), and for ossfs 1.0 neither does the secret (s3fs reads `a:b:c` as bucket:id:secret).
 * Messages never repeat the values.
 */
export function ossfsCredentialProblems(accessKeyId: string, accessKeySecret: string, version: OssfsVersion): string[] {
  const problems: string[] = [];
  if (typeof accessKeyId !== 'string' || accessKeyId.length === 0) problems.push('accessKeyId is required');
  else if (accessKeyId.length > 256) problems.push('accessKeyId must be at most 256 characters');
  else if (CONTROL.test(accessKeyId) || accessKeyId.includes(':')) problems.push('accessKeyId must not contain control characters or ":"');
  if (typeof accessKeySecret !== 'string' || accessKeySecret.length === 0) problems.push('accessKeySecret is required');
  else if (accessKeySecret.length > 512) problems.push('accessKeySecret must be at most 512 characters');
  else if (CONTROL.test(accessKeySecret)) problems.push('accessKeySecret must not contain control characters');
  else if (version === '1.0' && accessKeySecret.includes(':')) problems.push('accessKeySecret must not contain ":" with ossfs 1.0');
  return problems;
}

const BUCKET = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

/**
 * Every reason a whole source is refused (empty = fine). The API validates piecewise; the mount
 * activity checks the whole source again with this before anything runs, because it must not
 * trust what reaches it (an old history, another client of the task queue, a bug upstream).
 */
export function ossfsSourceProblems(source: OssfsSource): string[] {
  if (!source || typeof source !== 'object') return ['the mount source is missing'];
  const problems: string[] = [];
  const version = source.version;
  const versionOk = version === '1.0' || version === '2.0';
  if (!versionOk) problems.push('version must be "1.0" or "2.0"');
  if (typeof source.bucket !== 'string' || !BUCKET.test(source.bucket))
    problems.push('bucket must be 3-63 lowercase letters, digits and hyphens');
  const endpoint = ossfsEndpointProblem(source.endpoint);
  if (endpoint) problems.push(endpoint);
  const prefix = ossfsPrefixProblem(source.prefix);
  if (prefix) problems.push(prefix);
  if (!Array.isArray(source.options)) problems.push('options must be a list');
  else if (source.options.length > 32) problems.push('at most 32 options');
  else if (versionOk) problems.push(...source.options.map((o) => ossfsOptionProblem(o, version)).filter((p): p is string => !!p));
  problems.push(...ossfsCredentialProblems(source.accessKeyId, source.accessKeySecret, versionOk ? version : '1.0'));
  return problems;
}
