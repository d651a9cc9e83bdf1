import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { GrpcStatus, hasGrpcStatus } from '../../platform/grpc-status';
import { TideboxError } from '../../core/errors';
import { type CallContext, isWorkflowGone, toTideboxError, withCause } from './errors';
import { visibilityQuery, type VisibilityFilter } from '../../contracts/visibility';

/** How often an Update whose workflow task failed is sent (the actor was completing or continuing as new). */
const UPDATE_ATTEMPTS = 4;

/** Most workflows one visibility scan reads; a LIST page beyond the 10,000 newest is not served. */
const SCAN_LIMIT = 10_000;

/** How many a newest-first window may hold beyond the page's end before it is narrowed, as a factor. */
const WINDOW_SLACK = 3;
/** A window wider than this is no window: the scan reads everything. */
const MAX_WINDOW_MS = 30 * 365 * 24 * 3600 * 1000;
/** The narrowest window tried (creation times are in ms). */
const MIN_WINDOW_MS = 100;

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

  /**
   * The `need` newest workflows (by TideboxCreatedAt) a filter finds, and possibly a few more, or all
   * when fewer: the caller sorts and pages them. Visibility stores cannot order by a custom attribute
   * (SQL ones refuse ORDER BY and order open workflows by start time, which continue-as-new and pool
   * claims move), but they count and filter by one cheaply. So a window [now − span, ∞) is sized by
   * counting — at most 8 counts: grown ×8 until it holds `need`, shrunk by the density it showed,
   * then bisected between the widest too-small and the narrowest big-enough span — until it holds
   * between `need` and WINDOW_SLACK × `need`; only that window is read. A LIST then costs what its
   * page needs, not what every live sandbox costs. `accept` re-checks each view as in {@link scan}.
   */
  async newest<V>(filter: VisibilityFilter, accept: (view: V) => boolean, need: number, total: number): Promise<V[]> {
    // A window (or everything) is read only when it holds at most what one scan reads: beyond that
    // the scan would stop at an arbitrary 10,000 and the page would be wrong.
    const fits = (n: number) => n <= SCAN_LIMIT;
    if (total <= need * WINDOW_SLACK && fits(total)) return this.scan(filter, accept);
    // One `now` for every count and the read: a window counted is the window read.
    const now = Date.now();
    const within = (span: number): VisibilityFilter => ({ ...filter, createdSince: new Date(now - span) });
    let [tooSmall, bigEnough, bigEnoughCount, span] = [0, Infinity, Infinity, 60_000];
    for (let counts = 0; counts < 8; counts++) {
      const n = await this.count(within(span));
      if (n < need) tooSmall = span;
      else {
        [bigEnough, bigEnoughCount] = [span, n];
        if (n <= need * WINDOW_SLACK) break;
      }
      const previous = span;
      if (bigEnough === Infinity) span *= 8;
      else if (tooSmall === 0) span = Math.max(MIN_WINDOW_MS, span * Math.max(1 / 8, (1.5 * need) / n));
      else span = Math.sqrt(tooSmall * bigEnough);
      // Nothing left to narrow (that many created within the shortest window), or no window at all.
      if (span === previous || span > MAX_WINDOW_MS) break;
    }
    if (bigEnough !== Infinity && fits(bigEnoughCount)) {
      const views = await this.scan(within(bigEnough), accept);
      if (views.length >= need) return views;
    }
    // No window fits (or visibility moved between the count and the read): everything, when one scan holds it.
    if (fits(total)) return this.scan(filter, accept);
    throw new TideboxError(
      'INVALID_PARAMETER',
      `this page lies beyond what one LIST reads (${SCAN_LIMIT} sandboxes from its newest match); narrow the filter (state, metadata)`,
    );
  }

  count(filter: VisibilityFilter): Promise<number> {
    return this.call(async (client) => (await client.workflow.count(visibilityQuery(filter))).count);
  }
}
