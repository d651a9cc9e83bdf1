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
export function mountView(input: MountWorkflowInput, state: MountState, holders: Iterable<string>, extra: { hostPath?: string; lastError?: string; at: string }): MountView {
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

const OPTION = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(=[A-Za-z0-9_.,:/@+-]*)?$/;

/** Why an ossfs option is refused, or undefined: plain `key[=value]`, no leading "-", nothing a shell would read. */
export function ossfsOptionProblem(option: string): string | undefined {
  if (option.startsWith('-')) return `option "${option}" must not start with "-" (give it as key[=value])`;
  if (!OPTION.test(option)) return `option "${option}" must be key[=value] with letters, digits and _ . , : / @ + - only`;
  return undefined;
}

/** Why an endpoint is refused: it must be host[:port] or an http(s) URL without credentials. */
export function ossfsEndpointProblem(endpoint: string): string | undefined {
  const hostPort = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$/;
  if (hostPort.test(endpoint)) return undefined;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return `endpoint "${endpoint}" must be host[:port] or an http(s) URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `endpoint "${endpoint}" must use http or https`;
  if (url.username || url.password) return 'endpoint must not carry credentials';
  if (url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) return `endpoint "${endpoint}" must not have a path or query`;
  return undefined;
}

/** The `-o url=` value ossfs 1.0 wants: a URL (a bare host means https). */
export const endpointUrl = (endpoint: string): string => (/^https?:\/\//.test(endpoint) ? endpoint.replace(/\/$/, '') : `https://${endpoint}`);
