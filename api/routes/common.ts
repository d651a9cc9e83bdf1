import { z } from 'zod';
import { TideboxError } from '../../core/errors';
import { ErrorResponseSchema } from '../../core/responses';
import type { Caller } from '../../core/tenants';

/** Every error a route can answer, in the contract's `{code, message}` shape (for the OpenAPI document). */
export const ErrorResponses = {
  400: ErrorResponseSchema,
  401: ErrorResponseSchema,
  403: ErrorResponseSchema,
  404: ErrorResponseSchema,
  409: ErrorResponseSchema,
  429: ErrorResponseSchema,
  500: ErrorResponseSchema,
  501: ErrorResponseSchema,
  503: ErrorResponseSchema,
  504: ErrorResponseSchema,
};

export const NoContent = z.null().describe('No content');

/** OpenAPI tag, summary and operationId of a route (the id names it in links and generated clients). */
export const doc = (tag: string, summary: string, operationId: string) => ({ tags: [tag], summary, operationId });

/** The `tenant` filter: admins pick any tenant; a tenant key may only name its own. */
export function tenantFilter(caller: Caller, tenant: string | undefined): string | undefined {
  if (tenant === undefined || caller.kind === 'admin') return tenant;
  if (tenant !== caller.tenant) throw new TideboxError('INVALID_PARAMETER', 'the tenant filter needs an admin key');
  return tenant;
}

/** A `state` query parameter (repeated and/or comma-separated) against the states a resource has; unknown ones are a 400. */
export function parseStates<S extends string>(raw: string | string[] | undefined, known: readonly S[], what = 'state'): S[] {
  const states = [raw ?? []]
    .flat()
    .flatMap((s) => s.split(','))
    .filter(Boolean);
  const unknown = states.filter((s) => !(known as readonly string[]).includes(s));
  if (unknown.length)
    throw new TideboxError('INVALID_PARAMETER', `unknown ${what} ${unknown.join(', ')}; expected one of ${known.join(', ')}`);
  return states as S[];
}

/**
 * OpenAPI links from a create's response to the operations on what it created, so generated clients
 * and stateful fuzzers follow create → read/act/delete with the new id.
 */
export function linksFrom(param: 'sandboxId' | 'snapshotId', operationIds: string[]) {
  return Object.fromEntries(
    operationIds.map((operationId) => [operationId, { operationId, parameters: { [param]: '$response.body#/id' } }]),
  );
}
