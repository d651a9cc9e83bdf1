/**
 * Sandbox metadata: user key/value pairs that follow Kubernetes label rules (so the Kubernetes
 * runtime can carry them as labels) and are indexed as one search-attribute value for LIST.
 */

/** Metadata keys under these prefixes belong to the server. */
export const RESERVED_METADATA_PREFIXES = ['opensandbox.io/', 'tidebox.io/'];

/** Temporal caps one search-attribute value (2 KiB by default); metadata is indexed as one. */
export const MAX_METADATA_BYTES = 1800;

const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `key` is not a valid metadata key, or undefined when it is. */
export function metadataKeyProblem(key: string): string | undefined {
  if (RESERVED_METADATA_PREFIXES.some((p) => key.startsWith(p))) {
    return `metadata key "${key}" uses a reserved prefix (${RESERVED_METADATA_PREFIXES.join(', ')})`;
  }
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix) || prefix.split('.').some((l) => l.length > 63))) {
    return `metadata key "${key}": the prefix before "/" must be a DNS subdomain (lowercase, labels of at most 63, at most 253 characters)`;
  }
  if (name.length > 63 || !LABEL_NAME.test(name)) {
    return `metadata key "${key}": the name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric`;
  }
  return undefined;
}

/** Why `value` is not a valid metadata value for `key`, or undefined when it is. Empty is allowed. */
export function metadataValueProblem(key: string, value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63 || !LABEL_NAME.test(value)) {
    return `metadata value of "${key}" must be at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric`;
  }
  return undefined;
}

/** Metadata as search-attribute keywords (`key=value`), so LIST can filter with AND semantics. */
export const metadataKeywords = (metadata: Record<string, string>): string[] => Object.entries(metadata).map(([k, v]) => `${k}=${v}`);

/** At create, values are free text (the contract's own example is `name: "Data Processing Sandbox"`). */
const MAX_CREATE_VALUE_LENGTH = 256;

/**
 * Every problem with a complete metadata map (empty = valid). Keys always follow the label rules;
 * values do at PATCH (`strictValues`, as the contract states for it) but at create only need to be
 * printable text of at most 256 characters, so OpenSandbox clients' free-text values keep working.
 */
export function metadataProblems(metadata: Record<string, string>, { strictValues = true } = {}): string[] {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(metadata)) {
    const problem =
      metadataKeyProblem(key) ??
      (strictValues
        ? metadataValueProblem(key, value)
        : value.length > MAX_CREATE_VALUE_LENGTH || /[\u0000-\u001f\u007f]/.test(value)
          ? `metadata value of "${key}" must be at most ${MAX_CREATE_VALUE_LENGTH} characters without control characters`
          : undefined);
    if (problem) problems.push(problem);
  }
  // TextEncoder, not Buffer: this also runs inside workflow validators.
  if (new TextEncoder().encode(JSON.stringify(metadataKeywords(metadata))).length > MAX_METADATA_BYTES) {
    problems.push(`metadata is too large: at most ${MAX_METADATA_BYTES} bytes of keys and values in total`);
  }
  return problems;
}

export type MetadataPatch = Record<string, string | null>;

/** RFC 7396 merge patch of a flat string map: a string sets the key, null deletes it. */
export function applyMetadataPatch(current: Record<string, string>, patch: MetadataPatch): Record<string, string> {
  const next = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  return next;
}

/** Problems with a patch against the current metadata: its keys and values, and the merged size. */
export function metadataPatchProblems(current: Record<string, string>, patch: MetadataPatch): string[] {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(patch)) {
    // Deleting a key that breaks today's rules must stay possible, except for reserved ones.
    const problem = value === null ? reservedProblem(key) : (metadataKeyProblem(key) ?? metadataValueProblem(key, value));
    if (problem) problems.push(problem);
  }
  if (problems.length) return problems;
  return metadataProblems(applyMetadataPatch(current, patch)).filter((p) => p.startsWith('metadata is too large'));
}

function reservedProblem(key: string): string | undefined {
  return RESERVED_METADATA_PREFIXES.some((p) => key.startsWith(p)) ? metadataKeyProblem(key) : undefined;
}

/**
 * Why a LIST metadata filter (`k=v&k2=v2`) cannot be run, or undefined: it may only name what
 * metadata can hold (label-rule keys, printable values of at most 256 characters), at most 32 pairs.
 * Anything else is refused before it becomes a visibility query.
 */
export function metadataFilterProblem(filter: Record<string, string>): string | undefined {
  const entries = Object.entries(filter);
  if (entries.length > 32) return 'metadata filter: at most 32 key=value pairs';
  for (const [key, value] of entries) {
    const problem = metadataKeyProblem(key);
    if (problem) return `metadata filter: ${problem}`;
    if (value.length > MAX_CREATE_VALUE_LENGTH || /[\u0000-\u001f\u007f]/.test(value))
      return `metadata filter: the value of "${key}" must be at most ${MAX_CREATE_VALUE_LENGTH} characters without control characters`;
  }
  return undefined;
}
