/**
 * An execd answer other than success: the HTTP status and the execd contract's `{code, message}`
 * (codes as the reference execd uses them: INVALID_REQUEST_BODY, MISSING_QUERY, FILE_NOT_FOUND, ...).
 */
export class ExecdError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ExecdError';
  }
}

export const notFound = (what: string) => new ExecdError(404, 'FILE_NOT_FOUND', `${what} not found`);
export const badRequest = (message: string) => new ExecdError(400, 'INVALID_REQUEST_BODY', message);
