import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SandboxExecd } from '../index';

/** What an execd route works with: the request, the sandbox's data plane, the raw query. */
export interface ExecdContext {
  req: FastifyRequest;
  reply: FastifyReply;
  sandboxId: string;
  sandbox: SandboxExecd;
  /** The query string as sent (repeated keys kept, e.g. path=a&path=b). */
  query: URLSearchParams;
}
