import type { z } from 'zod';
import { TideboxError } from '../../core/errors';

/** Parse a create body as the API does: a schema violation is a 400 INVALID_PARAMETER naming each problem. */
export function parseCreateBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body);
  if (!result.success) throw new TideboxError('INVALID_PARAMETER', result.error.issues.map((i) => i.message).join('; '));
  return result.data;
}
