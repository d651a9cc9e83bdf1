/**
 * Tenants: who owns a sandbox, and the storage area each of a tenant's users gets. Pure rules only;
 * the providers that map API keys to tenants live in api/auth/.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import { TideboxError } from './errors';
import { QuotaSchema } from './quota-config';
import type { Quota } from './quotas';

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DnsLabel = z.string().regex(DNS_LABEL, 'must be a DNS label (lowercase letters, digits, hyphens; at most 63)');
const ApiKey = z.string().min(16, 'must be at least 16 characters').max(512);

export const TenantSchema = z
  .object({
    name: DnsLabel,
    /** Labels the tenant's containers; the Kubernetes runtime puts its pods in this namespace. */
    namespace: DnsLabel,
    apiKeys: z.array(ApiKey).min(1, 'a tenant needs at least one API key'),
    /** This tenant's limits over `[quotas]` of the config. */
    quotas: QuotaSchema.optional(),
  })
  .strict();
export type Tenant = z.infer<typeof TenantSchema>;

export const TenantsFileSchema = z.object({ tenants: z.array(TenantSchema).default([]) }).strict();

/** Who is calling: a tenant (sees only its own resources) or an operator with an admin key (sees all). */
export type Caller = { kind: 'tenant'; tenant: string; namespace: string; quotas?: Quota } | { kind: 'admin' };
export type TenantCaller = Extract<Caller, { kind: 'tenant' }>;

/** The caller, if it is a tenant: only tenants own (create) sandboxes; admin keys act on existing ones (403). */
export function tenantOnly(caller: Caller): TenantCaller {
  if (caller.kind !== 'tenant')
    throw new TideboxError('FORBIDDEN', "admin keys act on existing sandboxes; create sandboxes with a tenant's key");
  return caller;
}

/** May `caller` see a resource owned by `owner`? Foreign resources answer exactly like missing ones. */
export const canSee = (caller: Caller, owner: string | undefined): boolean =>
  caller.kind === 'admin' || (owner !== undefined && caller.tenant === owner);

/**
 * Why a set of tenants cannot be served, or []: duplicate names, a key used twice (within or across
 * tenants, or also an admin key). Shapes are checked by TenantSchema before this.
 */
export function tenantSetProblems(tenants: Tenant[], adminKeys: string[] = []): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  const owners = new Map<string, string>();
  for (const key of adminKeys) owners.set(key, 'the admin keys');
  for (const [i, t] of tenants.entries()) {
    if (names.has(t.name)) problems.push(`tenants[${i}]: tenant name "${t.name}" is used twice`);
    names.add(t.name);
    for (const key of t.apiKeys) {
      const owner = owners.get(key);
      // Never print the key itself: name where it clashes.
      if (owner) problems.push(`tenants[${i}] (${t.name}): an API key is also used by ${owner === t.name ? 'this tenant already' : owner}`);
      else owners.set(key, `tenant "${t.name}"`);
    }
  }
  return problems;
}

/** Parse the tenants file's TOML value, or the reasons it is refused. */
export function parseTenantsFile(value: unknown, adminKeys: string[] = []): { tenants: Tenant[] } | { problems: string[] } {
  const parsed = TenantsFileSchema.safeParse(value);
  if (!parsed.success) {
    return { problems: parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`) };
  }
  const problems = tenantSetProblems(parsed.data.tenants, adminKeys);
  return problems.length ? { problems } : { tenants: parsed.data.tenants };
}

/** What a tenant provider's HTTP endpoint answers for a known key. */
export const ProviderAnswerSchema = z.object({
  name: DnsLabel,
  namespace: DnsLabel,
  /** How long this answer may be cached; the provider's ttlSeconds when absent. */
  ttlSeconds: z.number().int().min(0).max(86_400).optional(),
  /** This tenant's limits over `[quotas]` of the config. */
  quotas: QuotaSchema.optional(),
});

// ---------------------------------------------------------------------------------------------
// Storage scoping

export const USER_ID_EXTENSION = 'tidebox.io/user-id';
export const USER_ID = /^[A-Za-z0-9_-]{1,128}$/;
export const DEFAULT_USER_ID = 'default';

export type StorageLayout = 'scoped' | 'legacy';

/** The user a request acts for, from `extensions["tidebox.io/user-id"]`; undefined = invalid. */
export function userIdOf(extensions: Record<string, string>): string | undefined {
  const given = extensions[USER_ID_EXTENSION];
  if (given === undefined) return DEFAULT_USER_ID;
  return USER_ID.test(given) ? given : undefined;
}

/** `<tenant>/users/<userId>`: the part of every storage root a tenant's user may see (scoped layout). */
export const userStoragePrefix = (tenant: string, userId: string): string => posix.join(tenant, 'users', userId);

/**
 * Where a relative path lands inside a storage root, and the directory it must stay within.
 * Scoped: `<root>/<tenant>/users/<user>/<relative>`, confined to `<root>/<tenant>/users/<user>`.
 * Legacy: `<root>/<relative>`, confined to `<root>`. `relative` must already be checked (no "..",
 * not absolute); the result is normalised and never leaves its scope textually.
 */
export function scopedPath(
  root: string,
  relative: string,
  layout: StorageLayout,
  tenant: string,
  userId: string,
): { path: string; scope: string } {
  const scope = layout === 'scoped' ? posix.join(root, userStoragePrefix(tenant, userId)) : posix.normalize(root);
  const path = posix.join(scope, relative);
  if (path !== scope && !path.startsWith(scope.endsWith('/') ? scope : `${scope}/`)) {
    throw new Error(`path ${relative} leaves ${scope}`); // unreachable for checked input; a guard, not a rule
  }
  return { path: path.length > 1 ? path.replace(/\/$/, '') : path, scope: scope.length > 1 ? scope.replace(/\/$/, '') : scope };
}
