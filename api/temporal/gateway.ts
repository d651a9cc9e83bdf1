import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { GrpcStatus, hasGrpcStatus } from '../../platform/grpc-status';
import { type CallContext, isWorkflowGone, toTideboxError, withCause } from './errors';
import { visibilityQuery, type VisibilityFilter } from './visibility';

/** How often an Update whose workflow task failed is sent (the actor was completing or continuing as new). */
const UPDATE_ATTEMPTS = 4;

/** Most workflows one visibility scan reads before paging in memory; beyond this a visibility store with ORDER BY is needed. */
const SCAN_LIMIT = 10_000;

export interface GatewayCall extends CallContext {
  /** How long the call may take (default: server.temporalCallTimeoutSeconds). */
  deadlineMs?: number;
}

/** An open actor's public view (its memo `view`) and the rest of its memo. */
export interface OpenActor<V> {
  view: V;
  memo: Record<string, unknown>;
}

/**
 * The API's one door to Temporal: every call is bounded in time and its failures are mapped to the
 * error catalogue in one place (./errors.ts). Reads use only the server's memo and visibility store,
 * so they work while no worker runs; writes are Updates the actors validate.
 */
export class TemporalGateway {
  constructor(
    readonly client: Client,
    private readonly callTimeoutMs: number,
  ) {}

  async call<T>(fn: (client: Client) => Promise<T>, opts: GatewayCall = {}): Promise<T> {
    try {
      return await this.client.withDeadline(Date.now() + (opts.deadlineMs ?? this.callTimeoutMs), () => fn(this.client));
    } catch (err) {
      throw toTideboxError(err, opts);
    }
  }

  /**
   * Send an Update to an actor and wait for its result, and answer every way its run can end under it:
   * - the workflow task carrying the Update failed (FAILED_PRECONDITION: typically the actor tried to
   *   complete while the Update arrived, and the server made it look again): the Update was never
   *   accepted, so it is sent again, a bounded number of times;
   * - the run closed ("aborted by closing workflow", or it ended between lookup and send): the caller's
   *   404 when the actor is gone, its 409 (in transition, retry) when it still runs (it continued as new).
   */
  async update<Ret, Args extends unknown[]>(
    workflowId: string,
    def: UpdateDefinition<Ret, Args>,
    args: Args,
    opts: GatewayCall & Required<Pick<CallContext, 'notFound' | 'inTransition'>>,
  ): Promise<Ret> {
    const send = () =>
      this.call(
        (client) => {
          const handle = client.workflow.getHandle(workflowId);
          // executeUpdate's overloads tell zero arguments from some; for a generic Args both are fine.
          const execute = handle.executeUpdate.bind(handle) as (def: UpdateDefinition<Ret, Args>, options: { args: Args }) => Promise<Ret>;
          return execute(def, { args });
        },
        { ...opts, notFound: undefined },
      );
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        if (hasGrpcStatus(err, GrpcStatus.FAILED_PRECONDITION)) {
          if (attempt < UPDATE_ATTEMPTS) {
            await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** attempt));
            continue;
          }
          throw withCause(opts.inTransition(), err);
        }
        if (!isWorkflowGone(err)) throw err;
        const described = await this.describe(workflowId).catch(() => undefined);
        throw withCause(described?.status.name === 'RUNNING' ? opts.inTransition() : opts.notFound(), err);
      }
    }
  }

  /** A workflow's description (open or closed), or undefined when there is none. */
  describe(workflowId: string): Promise<WorkflowExecutionDescription | undefined> {
    return this.call(async (client) => {
      try {
        return await client.workflow.getHandle(workflowId).describe();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
    });
  }

  /** The memo of an open actor of `type`, or undefined when it is missing, closed or of another type. */
  async openActor<V>(workflowId: string, type: string): Promise<OpenActor<V> | undefined> {
    const d = await this.describe(workflowId);
    const view = d?.memo?.view as V | undefined;
    if (!d || d.type !== type || d.status.name !== 'RUNNING' || !view) return undefined;
    return { view, memo: d.memo ?? {} };
  }

  /**
   * The views (memo `view`) of the workflows a filter finds, each re-checked by `accept`: visibility
   * is eventually consistent, the memo is the actor's own word. At most `limit` views.
   */
  scan<V>(filter: VisibilityFilter, accept: (view: V) => boolean, limit = SCAN_LIMIT): Promise<V[]> {
    return this.call(async (client) => {
      const views: V[] = [];
      for await (const execution of client.workflow.list({ query: visibilityQuery(filter) })) {
        const view = execution.memo?.view as V | undefined;
        if (!view || !accept(view)) continue;
        views.push(view);
        if (views.length >= limit) break;
      }
      return views;
    });
  }

  count(filter: VisibilityFilter): Promise<number> {
    return this.call(async (client) => (await client.workflow.count(visibilityQuery(filter))).count);
  }
}
