import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { freePort, sandboxRequest, Stack, waitFor } from '../helpers/stack';

let stack: Stack;
let workerMetricsPort: number;

beforeAll(async () => {
  workerMetricsPort = await freePort();
  // A grace window: the failing entrypoint fails its create activity (counted by the worker's SDK metrics).
  stack = await Stack.start({ config: { worker: { metricsPort: workerMetricsPort }, docker: { startupGraceMs: 1000 } } });
});
afterAll(async () => {
  await stack?.destroy();
});

/**
 * Validate with @seriousme/openapi-schema-validator (the OpenAPI 3.0/3.1 JSON schemas). It is ESM
 * only, so it runs in a child node process reading the document on stdin.
 */
const validateOpenApi = (spec: unknown) =>
  new Promise<{ valid: boolean; version: string; errors?: unknown }>((resolve, reject) => {
    const script = `import { Validator } from '@seriousme/openapi-schema-validator';
      let input = ''; for await (const c of process.stdin) input += c;
      const v = new Validator(); const r = await v.validate(JSON.parse(input));
      console.log(JSON.stringify({ valid: r.valid, version: v.version, errors: r.errors }));`;
    const child = execFile(process.execPath, ['--input-type=module', '-e', script], (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout)),
    );
    child.stdin!.end(JSON.stringify(spec));
  });

const text = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
};
/** The value of one series in a Prometheus text exposition, or undefined when absent. */
const sample = (exposition: string, series: string): number | undefined => {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('API description', () => {
  it('when /openapi.json is fetched, then it is a valid OpenAPI 3.1 document generated from the route schemas', async () => {
    const doc = await text(`${stack.baseUrl}/openapi.json`);
    expect(doc.status).toBe(200);
    const spec = JSON.parse(doc.body);
    expect(spec.openapi).toBe('3.1.0');
    const result = await validateOpenApi(spec);
    expect(result.errors ?? []).toEqual([]);
    expect(result).toMatchObject({ valid: true, version: '3.1' });
    for (const path of [
      '/v1/sandboxes',
      '/v1/sandboxes/{sandboxId}',
      '/v1/sandboxes/{sandboxId}/pause',
      '/v1/sandboxes/{sandboxId}/metadata',
      '/v1/sandboxes/{sandboxId}/endpoints/{port}',
      '/v1/sandboxes/{sandboxId}/events',
      '/v1/sandboxes/{sandboxId}/renew-schedule',
    ]) {
      expect(Object.keys(spec.paths)).toContain(path);
    }
    // The create body is the same zod schema that validates requests.
    const createBody = spec.paths['/v1/sandboxes'].post.requestBody.content['application/json'].schema;
    expect(Object.keys(createBody.properties)).toEqual(expect.arrayContaining(['image', 'timeout', 'resourceLimits', 'metadata']));
    // ...and carries the rules, not just the shapes: the image grammar, one of image or snapshot, one volume backend.
    expect(new RegExp(createBody.properties.image.properties.uri.pattern).test('Bad Image*x')).toBe(false);
    expect(new RegExp(createBody.properties.image.properties.uri.pattern).test('registry.example.com:5000/team/app:1.2')).toBe(true);
    expect(createBody.oneOf).toEqual([{ required: ['image'] }, { required: ['snapshotId'] }]);
    expect(createBody.properties.volumes.items.oneOf).toEqual([{ required: ['pvc'] }]); // no host paths, no payload key here
    // One documented copy of each route (under /v1), each with a unique operationId; creates link to what follows.
    expect(Object.keys(spec.paths).every((p) => p.startsWith('/v1/'))).toBe(true);
    const operationIds = Object.values(spec.paths as Record<string, Record<string, { operationId?: string }>>)
      .flatMap((p) => Object.values(p))
      .map((o) => o.operationId)
      .filter(Boolean);
    expect(new Set(operationIds).size).toBe(operationIds.length);
    expect(spec.paths['/v1/sandboxes'].post.responses['202'].links.deleteSandbox).toEqual({
      operationId: 'deleteSandbox',
      parameters: { sandboxId: '$response.body#/id' },
    });
    const docs = await text(`${stack.baseUrl}/docs`);
    expect(docs.status).toBe(200);
    expect(docs.body).toContain('<html');
  });
});

describe('metrics and logs', () => {
  it('when sandboxes run and fail, then /metrics and the worker endpoint expose the named series, and logs carry request and sandbox ids', async () => {
    const ok = await stack.request('POST', '/v1/sandboxes', sandboxRequest(), { 'X-Request-ID': 'obs-create-1' });
    expect(ok.body.status.state).toBe('Running');
    const failed = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ entrypoint: ['sh', '-c', 'exit 3'] }));
    expect(failed.body.status.state).toBe('Failed');
    await stack.request('GET', `/v1/sandboxes/${ok.body.id}`, undefined, { 'X-Request-ID': 'obs-get-1' });
    const renewTo = new Date(Date.now() + 3_600_000).toISOString();
    await stack.request('POST', `/v1/sandboxes/${ok.body.id}/renew-expiration`, { expiresAt: renewTo }, { 'X-Request-ID': 'obs-renew-1' });

    const metrics = await waitFor(
      'sandbox gauges',
      async () => {
        const m = await text(`${stack.baseUrl}/metrics`);
        return sample(m.body, 'tidebox_sandboxes{state="Running"}') === 1 ? m : undefined;
      },
      15_000,
      500,
    );
    expect(metrics.type).toContain('text/plain');
    expect(sample(metrics.body, 'tidebox_sandboxes{state="Failed"}')).toBe(1);
    expect(sample(metrics.body, 'tidebox_sandboxes_failed')).toBe(1);
    expect(sample(metrics.body, 'tidebox_http_request_duration_seconds_count{method="POST",route="/v1/sandboxes",status="202"}')).toBe(2);
    expect(
      sample(metrics.body, 'tidebox_http_request_duration_seconds_count{method="GET",route="/v1/sandboxes/:sandboxId",status="200"}'),
    ).toBe(1);
    expect(metrics.body).toContain('tidebox_workflow_failures{type="sandboxWorkflow",status="Failed"} 0');

    // Activity failures (the entrypoint that exited) are counted by the worker's SDK metrics.
    const worker = await waitFor(
      'worker activity failure counter',
      async () => {
        const m = await text(`http://127.0.0.1:${workerMetricsPort}/metrics`);
        return /temporal_activity_execution_failed\{[^}]*activity_type="createAndStartContainer"/.test(m.body) ? m.body : undefined;
      },
      15_000,
      500,
    );
    expect(worker).toMatch(/temporal_activity_execution_failed\{[^}]*activity_type="createAndStartContainer"[^}]*\} [1-9]/);

    // JSON logs: one object per line, request id and sandbox id on the lines about that sandbox.
    const lines = readFileSync(join(stack.dataDir, 'api.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    // One line per request, when it is answered, saying whose it was and how it went.
    const createLines = lines.filter((l) => l.requestId === 'obs-create-1');
    expect(createLines).toEqual([
      expect.objectContaining({
        msg: 'request',
        method: 'POST',
        path: '/v1/sandboxes',
        status: 202,
        ms: expect.any(Number),
        tenant: expect.any(String),
      }),
    ]);
    expect(lines.filter((l) => l.requestId === 'obs-renew-1')).toEqual([
      expect.objectContaining({ method: 'POST', status: 200, sandboxId: ok.body.id }),
    ]);
    // A read that succeeded (the SDKs poll) is at debug: not in an info log.
    expect(lines.filter((l) => l.requestId === 'obs-get-1')).toEqual([]);
    await stack.request('DELETE', `/v1/sandboxes/${ok.body.id}`);
    await stack.request('DELETE', `/v1/sandboxes/${failed.body.id}`);
    await waitFor(
      'workflow completions counted',
      async () =>
        /temporal_workflow_completed\{[^}]*workflow_type="sandboxWorkflow"[^}]*\} 2/.test(
          (await text(`http://127.0.0.1:${workerMetricsPort}/metrics`)).body,
        ),
      15_000,
      500,
    );
  });
});
