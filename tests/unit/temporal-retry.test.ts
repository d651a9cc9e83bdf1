import * as grpc from '@grpc/grpc-js';
import { Client, Connection } from '@temporalio/client';
import { isWorkflowBusyRefusal, temporalRetryInterceptor, temporalRetryOptions } from '../../platform/temporal-setup';

/** What the Temporal server answers a Signal to a workflow that is closing (service/history/consts). */
const CLOSING = 'workflow operation can not be applied because workflow is closing';
const SERVICE = '/temporal.api.workflowservice.v1.WorkflowService';

/**
 * A gRPC server on 127.0.0.1 that speaks just enough of Temporal's WorkflowService: GetSystemInfo
 * (the client's connect) and SignalWorkflowExecution, which it refuses with `refusal` `refusals` times
 * before it accepts. Every method answers an empty message (valid protobuf for each response).
 */
async function fakeFrontend(refusals: number, refusal: string) {
  const signalsAt: number[] = [];
  const server = new grpc.Server();
  const bytes = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
  const unary = (path: string) => ({
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes.serialize,
    requestDeserialize: bytes.deserialize,
    responseSerialize: bytes.serialize,
    responseDeserialize: bytes.deserialize,
  });
  server.addService(
    { GetSystemInfo: unary(`${SERVICE}/GetSystemInfo`), SignalWorkflowExecution: unary(`${SERVICE}/SignalWorkflowExecution`) },
    {
      GetSystemInfo: (_call: unknown, done: grpc.sendUnaryData<Buffer>) => done(null, Buffer.alloc(0)),
      SignalWorkflowExecution: (_call: unknown, done: grpc.sendUnaryData<Buffer>) => {
        signalsAt.push(performance.now());
        if (signalsAt.length <= refusals) done({ code: grpc.status.RESOURCE_EXHAUSTED, details: refusal });
        else done(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { address: `127.0.0.1:${port}`, signalsAt, close: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}

describe("the client's retries of Temporal calls", () => {
  it('tries a call refused because its workflow is busy again within 200 ms, a rate limit after a second', () => {
    const { delayFunction, retryableDecider } = temporalRetryOptions();
    const closing = { code: grpc.status.RESOURCE_EXHAUSTED, details: CLOSING, metadata: new grpc.Metadata() };
    const limited = { code: grpc.status.RESOURCE_EXHAUSTED, details: 'namespace rate limit exceeded', metadata: new grpc.Metadata() };
    expect(isWorkflowBusyRefusal(closing)).toBe(true);
    expect(isWorkflowBusyRefusal(limited)).toBe(false);
    const inFlight = { ...limited, details: 'limit on number of concurrent in-flight updates has been reached (10)' };
    expect(isWorkflowBusyRefusal(inFlight)).toBe(true);
    expect(delayFunction(1, inFlight)).toBeLessThan(100);
    expect(retryableDecider(1, closing)).toBe(true);
    expect(delayFunction(1, closing)).toBeLessThan(100);
    expect(delayFunction(1, limited)).toBeGreaterThanOrEqual(1000);
    // Flat and short while the workflow is busy (≤ 200 ms apart), over ≈ 9 s, then the caller's own retry.
    const waits = Array.from({ length: 49 }, (_, i) => delayFunction(i + 1, closing));
    expect(Math.max(...waits)).toBeLessThanOrEqual(240);
    expect(waits.reduce((a, b) => a + b)).toBeGreaterThan(5_000);
    expect(waits.reduce((a, b) => a + b)).toBeLessThan(12_000);
    expect(retryableDecider(49, closing)).toBe(true);
    expect(retryableDecider(50, closing)).toBe(false);
    // Anything else as the SDK does it.
    expect(retryableDecider(10, limited)).toBe(false);
  });

  it('delivers a Signal the server refused twice as closing, trying again without the rate-limit wait', async () => {
    const frontend = await fakeFrontend(2, CLOSING);
    const connection = await Connection.connect({ address: frontend.address, interceptors: [temporalRetryInterceptor()] });
    try {
      const client = new Client({ connection, namespace: 'default' });
      await client.workflow.getHandle('tenant/acme').signal('release', { sandboxId: 'sb-1' });
      expect(frontend.signalsAt).toHaveLength(3);
      const gaps = frontend.signalsAt.slice(1).map((t, i) => t - frontend.signalsAt[i]!);
      // The SDK's own policy waits ≥ 1.36 s before the first retry of any RESOURCE_EXHAUSTED.
      expect(Math.max(...gaps)).toBeLessThan(1000);
    } finally {
      await connection.close();
      await frontend.close();
    }
  });

  it('gives a refusal that is not about closing the SDK wait', async () => {
    const frontend = await fakeFrontend(1, 'namespace rate limit exceeded');
    const connection = await Connection.connect({ address: frontend.address, interceptors: [temporalRetryInterceptor()] });
    try {
      const client = new Client({ connection, namespace: 'default' });
      await client.workflow.getHandle('tenant/acme').signal('release', { sandboxId: 'sb-1' });
      expect(frontend.signalsAt).toHaveLength(2);
      expect(frontend.signalsAt[1]! - frontend.signalsAt[0]!).toBeGreaterThanOrEqual(1000);
    } finally {
      await connection.close();
      await frontend.close();
    }
  });
});
