import { ApplicationFailure, Context } from '@temporalio/activity';
import type { SandboxRuntime } from '../contracts/runtime';
import { ErrorCodes, type ErrorKind } from '../core/errors';

/**
 * Heartbeat at once and then every `everyMs` while `fn` runs, whatever step it is in, so a dead
 * worker is noticed within the heartbeat timeout and a timed-out attempt learns it was cancelled.
 */
export async function heartbeating<T>(fn: () => Promise<T>, everyMs = 2000): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat();
  const timer = setInterval(() => ctx.heartbeat(), everyMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** A runtime's create and start steps, also as the one activity a create runs (SandboxRuntime.createAndStartContainer). */
export function withOneStepCreate<R extends Omit<SandboxRuntime, 'createAndStartContainer'>>(
  runtime: R,
): R & Pick<SandboxRuntime, 'createAndStartContainer'> {
  return {
    ...runtime,
    createAndStartContainer: async (input) => {
      await runtime.ensureContainer(input);
      return runtime.startContainer({
        sandboxId: input.sandboxId,
        ...(input.namespace ? { namespace: input.namespace } : {}),
        ports: input.spec.ports,
      });
    },
  };
}

/**
 * A non-retryable failure carrying a catalogued code: the workflow reads it as the failure's reason.
 * `cause` (the runtime's own error) travels with it for the history and the logs.
 */
export const fail = (kind: ErrorKind, message: string, cause?: unknown): ApplicationFailure =>
  ApplicationFailure.create({ type: ErrorCodes[kind].code, message, nonRetryable: true, ...(cause instanceof Error ? { cause } : {}) });
