/**
 * Where `host` and `pvc` volumes land, and the checks that keep them there. Pure: the caller passes
 * `realpath` (the API and the host each resolve on their own filesystem view).
 *
 * Scoped layout: a volume's backend root (host.path, or the named volume) is shared; every tenant's
 * user gets `<root>/<tenant>/users/<userId>/` of it and the request's subPath lies below that. The
 * scope directory is the confinement: after resolving symlinks the path must stay inside it.
 */
import { posix } from 'node:path';
import { TideboxError } from './errors';
import type { HostVolume, PvcVolume } from './sandbox';
import { scopedPath, StorageLayout, userIdOf, userStoragePrefix } from './tenants';

const invalid = (message: string) => new TideboxError('INVALID_PARAMETER', message);

/** Collapse `//` and `.` and drop a trailing slash (but keep `/` itself). */
export const normalizeAbsolute = (path: string): string => posix.normalize(path).replace(/(.)\/$/, '$1');

/** True when `path` equals or lies below one of `prefixes` (all normalised, absolute). */
export function isUnderAllowedPrefix(path: string, prefixes: string[]): boolean {
  return prefixes.some((prefix) => {
    const p = normalizeAbsolute(prefix);
    return path === p || path.startsWith(p === '/' ? '/' : `${p}/`);
  });
}

/**
 * The path with every existing component's symlinks resolved: realpath of the deepest existing
 * ancestor, plus the components that do not exist yet (they will be created as plain directories).
 */
export function resolveExisting(path: string, realpath: (p: string) => string | undefined): { path: string; exists: boolean } {
  const missing: string[] = [];
  let current = normalizeAbsolute(path);
  for (;;) {
    const resolved = realpath(current);
    if (resolved !== undefined)
      return { path: missing.length ? posix.join(resolved, ...missing.reverse()) : resolved, exists: missing.length === 0 };
    if (current === '/') return { path: normalizeAbsolute(path), exists: false };
    missing.push(posix.basename(current));
    current = posix.dirname(current);
  }
}

/**
 * `path` resolved, refusing when symlinks lead it out of `scope` (resolved the same way). Missing
 * components are allowed: the host creates them below the resolved, checked ancestor.
 */
export function resolveWithinScope(
  volume: string,
  path: string,
  scope: string,
  realpath: (p: string) => string | undefined,
): { path: string; exists: boolean } {
  const scopeResolved = resolveExisting(scope, realpath).path;
  const target = resolveExisting(path, realpath);
  if (!isUnderAllowedPrefix(target.path, [scopeResolved])) {
    throw invalid(`volume "${volume}": subPath resolves to a location outside this user's storage area (symlink escape)`);
  }
  return target;
}

/**
 * Where a host volume binds. Legacy: `<host.path>/<subPath>`. Scoped: the allowed prefix holding
 * host.path is the storage root, and everything the request names lies in the user's area of it:
 * `<root>/<tenant>/users/<user>/<host.path below root>/<subPath>`. So no host.path, however chosen,
 * reaches into another tenant's or user's area (allowed prefixes must not nest; see config).
 */
export function hostVolumePath(
  name: string,
  hostPath: string,
  subPath: string | undefined,
  allowed: string[],
  ctx: { layout: StorageLayout; tenant: string; userId: string },
): Pick<HostVolume, 'hostPath' | 'scope'> {
  const requested = normalizeAbsolute(hostPath);
  if (ctx.layout === 'legacy') return { hostPath: normalizeAbsolute(subPath ? posix.join(requested, subPath) : requested) };
  const root = allowed.map(normalizeAbsolute).find((prefix) => isUnderAllowedPrefix(requested, [prefix]));
  if (root === undefined) throw invalid(`volume "${name}": host path ${requested} is outside the allowed host paths`);
  const below = posix.relative(root, requested);
  const { path, scope } = scopedPath(root, posix.join(below, subPath ?? ''), 'scoped', ctx.tenant, ctx.userId);
  return { hostPath: path, scope };
}

/** Allowed prefixes that lie inside one another: refused with the scoped layout (their user areas would overlap). */
export function nestedPrefixes(prefixes: string[]): Array<[string, string]> {
  const norm = prefixes.map(normalizeAbsolute);
  const nested: Array<[string, string]> = [];
  for (const outer of norm)
    for (const inner of norm) if (outer !== inner && isUnderAllowedPrefix(inner, [outer])) nested.push([outer, inner]);
  return nested;
}

/** A pvc volume's path and confinement inside its named volume, relative to the volume's root. */
export function pvcVolumePaths(
  subPath: string | undefined,
  ctx: { layout: StorageLayout; tenant: string; userId: string },
): Pick<PvcVolume, 'subPath' | 'scope'> {
  if (ctx.layout === 'legacy')
    return {
      subPath: subPath
        ? posix
            .normalize(subPath)
            .replace(/^\.\/?$/, '')
            .replace(/\/$/, '')
        : '',
      scope: '',
    };
  const { path, scope } = scopedPath('/', subPath ?? '', 'scoped', ctx.tenant, ctx.userId);
  return { subPath: path.slice(1), scope: scope.slice(1) };
}

/**
 * Check host volumes against the filesystem: the allowed prefixes, and (scoped layout) the user's
 * area after resolving symlinks. Returns the volumes with resolved paths, which are what the host
 * must bind, so a link swapped in later is not followed.
 *
 * `create`: scoped volumes whose directories do not exist yet are fine (the host creates them);
 * legacy volumes must exist (Docker would otherwise create them as root, anywhere).
 */
export function checkResolvedHostPaths(
  volumes: HostVolume[],
  allowed: string[],
  realpath: (path: string) => string | undefined,
): HostVolume[] {
  const allowedResolved = allowed.map((p) => realpath(p) ?? p);
  return volumes.map((v) => {
    if (v.scope) {
      const scope = resolveExisting(v.scope, realpath).path;
      if (!isUnderAllowedPrefix(scope, allowedResolved)) {
        throw invalid(`volume "${v.name}": host path ${v.scope} resolves to ${scope}, outside the allowed host paths`);
      }
      return { ...v, hostPath: resolveWithinScope(v.name, v.hostPath, v.scope, realpath).path };
    }
    const resolved = realpath(v.hostPath);
    if (resolved === undefined) throw invalid(`volume "${v.name}": host path ${v.hostPath} does not exist`);
    if (!isUnderAllowedPrefix(resolved, allowedResolved)) {
      throw invalid(`volume "${v.name}": host path ${v.hostPath} resolves to ${resolved}, outside the allowed host paths`);
    }
    return { ...v, hostPath: resolved };
  });
}

/**
 * The API's early check of pvc volumes, where it can see the engine's volume directory
 * (`<volumeRoot>/<claimName>/_data`, local driver). A volume it cannot see is left to the host's check.
 */
export function checkPvcPaths(pvcs: PvcVolume[], volumeRoot: string, realpath: (path: string) => string | undefined): void {
  for (const v of pvcs) {
    const data = posix.join(volumeRoot, v.claimName, '_data');
    if (realpath(data) === undefined) continue;
    resolveWithinScope(v.name, posix.join(data, v.subPath), posix.join(data, v.scope), realpath);
  }
}

/**
 * Why a spec's storage is not confined to its tenant's and user's area, or undefined. The host that
 * binds derives the area itself — from the actor's tenant and the request's user id, by the same
 * rules as the API — and never trusts a path carried in the input: a forged scope fails here.
 */
export function storageScopeProblem(
  spec: { volumes: HostVolume[]; pvcs?: PvcVolume[]; extensions: Record<string, string> },
  tenant: string,
  layout: StorageLayout,
  allowed: string[],
): string | undefined {
  if (layout === 'legacy') return undefined;
  const userId = userIdOf(spec.extensions);
  if (userId === undefined) return 'the request has no valid user id';
  const area = userStoragePrefix(tenant, userId);
  for (const v of spec.volumes) {
    const root = allowed.map(normalizeAbsolute).find((prefix) => isUnderAllowedPrefix(v.hostPath, [prefix]));
    const expected = root === undefined ? undefined : posix.join(root, area);
    if (!expected || v.scope !== expected || !isUnderAllowedPrefix(normalizeAbsolute(v.hostPath), [expected]))
      return `volume "${v.name}": ${v.hostPath} is not in tenant ${tenant}'s area`;
  }
  for (const v of spec.pvcs ?? []) {
    if (v.scope !== area || !isUnderAllowedPrefix(posix.join('/', v.subPath), [posix.join('/', area)]))
      return `volume "${v.name}": ${v.subPath} is not in tenant ${tenant}'s area`;
  }
  return undefined;
}
