import { type Client, ServiceError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, type UpdateDefinition } from '@temporalio/common';
import { google, temporal } from '@temporalio/proto';
import { toTideboxError } from '../../api/temporal/errors';
import { TemporalGateway } from '../../api/temporal/gateway';
import { TideboxError } from '../../core/errors';
import { GrpcStatus } from '../../platform/grpc-status';

/** An error as the gRPC client makes it (code, details, metadata), optionally wrapped as the Temporal client does. */
const grpc = (code: number, details = 'details') => Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });
const wrapped = (code: number) => new ServiceError('call failed', { cause: grpc(code) });
const notFound = () => new TideboxError('NOT_FOUND', 'sandbox x not found');

const mapped = (err: unknown, ctx = {}) => {
  const out = toTideboxError(err, ctx);
  return out instanceof TideboxError ? { kind: out.kind, status: out.httpStatus, message: out.message } : { passedThrough: out === err };
};

describe('the Temporal → HTTP error mapping (api/temporal/errors.ts)', () => {
  it('when an actor refuses an Update with a catalogued code, then that code and message come back, with the Temporal error as cause', () => {
    const err = new WorkflowUpdateFailedError(
      'update failed',
      ApplicationFailure.create({ type: 'SANDBOX::INVALID_STATE', message: 'sandbox is Paused' }),
    );
    expect(mapped(err)).toEqual({ kind: 'INVALID_STATE', status: 409, message: 'sandbox is Paused' });
    expect((toTideboxError(err) as TideboxError).cause).toBe(err);
  });

  it('when there is no such workflow, then the caller’s 404 if it gave one, else the error as it is', () => {
    const missing = new WorkflowNotFoundError('not found', 'sandbox/x', undefined);
    expect(mapped(missing, { notFound })).toEqual({ kind: 'NOT_FOUND', status: 404, message: 'sandbox x not found' });
    expect(mapped(wrapped(GrpcStatus.NOT_FOUND), { notFound })).toMatchObject({ kind: 'NOT_FOUND' });
    expect(mapped(missing)).toEqual({ passedThrough: true });
  });

  it('when the deadline passes, then 504: "no worker accepted the <what>" for a message, else the service was slow', () => {
    expect(mapped(wrapped(GrpcStatus.DEADLINE_EXCEEDED), { what: 'renewal' })).toEqual({
      kind: 'TIMEOUT',
      status: 504,
      message: 'no worker accepted the renewal in time; retry the request',
    });
    expect(mapped(grpc(GrpcStatus.DEADLINE_EXCEEDED))).toMatchObject({
      kind: 'TIMEOUT',
      message: 'the workflow service did not answer in time; retry the request',
    });
  });

  it('when the service is overloaded or unavailable, then 503; an invalid argument is 400 with its details', () => {
    expect(mapped(wrapped(GrpcStatus.RESOURCE_EXHAUSTED))).toMatchObject({ kind: 'BACKEND_UNAVAILABLE', status: 503 });
    expect(mapped(grpc(GrpcStatus.UNAVAILABLE))).toMatchObject({ kind: 'BACKEND_UNAVAILABLE', status: 503 });
    expect(mapped(grpc(GrpcStatus.INVALID_ARGUMENT, 'memo too large'))).toEqual({
      kind: 'INVALID_PARAMETER',
      status: 400,
      message: 'rejected by the workflow service: memo too large',
    });
  });

  it("when an Update-with-Start is refused, then the 400 carries each operation's reason from the status details", () => {
    // As the real server sends it: google.rpc.Status whose details hold a MultiOperationExecutionFailure.
    const failure = temporal.api.errordetails.v1.MultiOperationExecutionFailure.encode({
      statuses: [
        { code: 3, message: 'Namespace n has no mapping defined for search attribute TideboxTenant' },
        { code: 10, message: 'Operation was aborted.' },
      ],
    }).finish();
    const bin = Buffer.from(
      google.rpc.Status.encode({
        code: 3,
        message: 'Update-with-Start could not be executed.',
        details: [{ type_url: 'type.googleapis.com/temporal.api.errordetails.v1.MultiOperationExecutionFailure', value: failure }],
      }).finish(),
    );
    const err = Object.assign(grpc(GrpcStatus.INVALID_ARGUMENT, 'Update-with-Start could not be executed.'), {
      metadata: { get: (key: string) => (key === 'grpc-status-details-bin' ? [bin] : []) },
    });
    expect(mapped(err)).toEqual({
      kind: 'INVALID_PARAMETER',
      status: 400,
      message:
        'rejected by the workflow service: Update-with-Start could not be executed. Namespace n has no mapping defined for search attribute TideboxTenant',
    });
    // Details that are not such a failure, or not decodable, leave the message as it was.
    const garbage = Object.assign(grpc(GrpcStatus.INVALID_ARGUMENT, 'x'), { metadata: { get: () => [Buffer.from([0xff, 0xff])] } });
    expect(mapped(garbage)).toMatchObject({ message: 'rejected by the workflow service: x' });
  });

  it('when an Update fails with a type that is not ours, or anything else fails, then it passes through unchanged (→ 500)', () => {
    expect(mapped(new WorkflowUpdateFailedError('x', ApplicationFailure.create({ type: 'SomethingElse', message: 'm' })))).toEqual({
      passedThrough: true,
    });
    expect(mapped(new Error('boom'))).toEqual({ passedThrough: true });
    const known = new TideboxError('INVALID_STATE', 'already');
    expect(toTideboxError(known)).toBe(known);
  });
});

describe('an Update whose run closes under it (TemporalGateway.update)', () => {
  const aborted = () => new WorkflowNotFoundError('workflow update was aborted by closing workflow', 'sandbox/x', undefined);
  /**
   * A client whose Update fails with `updateError` (each of them in turn, then succeeds, when it is a list)
   * and whose describe answers `described` (or throws it).
   */
  let sent = 0;
  const gateway = (updateError: unknown, described: unknown) => {
    sent = 0;
    const errors = Array.isArray(updateError) ? [...updateError] : undefined;
    return new TemporalGateway(
      {
        withDeadline: (_deadline: number, fn: () => Promise<unknown>) => fn(),
        workflow: {
          getHandle: () => ({
            executeUpdate: async () => {
              sent++;
              if (!errors) throw updateError;
              if (errors.length) throw errors.shift();
              return 'done';
            },
            describe: async () => {
              if (described instanceof Error) throw described;
              return described;
            },
          }),
        },
      } as unknown as Client,
      1000,
    );
  };
  const pause = { type: 'update', name: 'pause' } as UpdateDefinition<void, []>;
  const send = (g: TemporalGateway): Promise<TideboxError> =>
    g
      .update('sandbox/x', pause, [], { notFound, inTransition: () => new TideboxError('INVALID_STATE', 'sandbox x changed state; retry') })
      .then(
        () => {
          throw new Error('expected the Update to fail');
        },
        (err: unknown) => err as TideboxError,
      );

  it('when the actor still runs (it continued as new), then 409: in transition, retry', async () => {
    const err = await send(gateway(aborted(), { status: { name: 'RUNNING' } }));
    expect(err).toMatchObject({ kind: 'INVALID_STATE', httpStatus: 409, message: 'sandbox x changed state; retry' });
    expect(err.cause).toBeInstanceOf(WorkflowNotFoundError);
  });

  it.each([
    ['has completed', { status: { name: 'COMPLETED' } }],
    ['is gone altogether', new WorkflowNotFoundError('not found', 'sandbox/x', undefined)],
    ['cannot be described', new Error('unavailable')],
  ])('when the actor %s, then 404', async (_what, described) => {
    expect(await send(gateway(aborted(), described))).toMatchObject({ kind: 'NOT_FOUND', httpStatus: 404 });
    expect(await send(gateway(wrapped(GrpcStatus.NOT_FOUND), described))).toMatchObject({ kind: 'NOT_FOUND', httpStatus: 404 });
  });

  it('when the workflow task carrying the Update failed (the actor was completing), then it is sent again; if that keeps up, 409', async () => {
    const taskFailed = () => wrapped(GrpcStatus.FAILED_PRECONDITION);
    const g = gateway([taskFailed(), taskFailed()], new Error('not asked'));
    expect(await g.update('sandbox/x', pause, [], { notFound, inTransition: () => new TideboxError('INVALID_STATE', 'retry') })).toBe(
      'done',
    );
    expect(sent).toBe(3);
    expect(await send(gateway(taskFailed(), new Error('not asked')))).toMatchObject({ kind: 'INVALID_STATE', httpStatus: 409 });
    expect(sent).toBe(4);
  });

  it('when the Update fails otherwise, then the one mapping applies and nothing is described', async () => {
    expect(await send(gateway(wrapped(GrpcStatus.UNAVAILABLE), new Error('not asked')))).toMatchObject({ kind: 'BACKEND_UNAVAILABLE' });
  });
});
