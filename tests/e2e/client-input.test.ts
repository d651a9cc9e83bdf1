import { type HttpResult, sandboxRequest, Stack, waitFor } from '../helpers/stack';

/**
 * What clients send, on the real pieces: body-less requests that carry a JSON Content-Type (as
 * generated clients and shell aliases do), input the engine would refuse (400 at once, nothing
 * started), and requests racing a DELETE to the actor's completion (never a 5xx).
 * The worker fails every snapshot commit here, so snapshots end Failed and can be retried.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await Stack.start({ workerEnv: { TIDEBOX_FAULT_FAIL_AT: 'snapshot-commit' } });
});
afterAll(async () => {
  await stack?.destroy();
});

const JSON_TYPE = { 'content-type': 'application/json' };
/** A request with `Content-Type: application/json` and no body at all (Content-Length: 0). */
const bodiless = (method: string, path: string) => stack.request(method, path, undefined, JSON_TYPE);
const state = async (path: string) => (await stack.request('GET', path)).body?.status?.state;
const reach = (path: string, wanted: string, timeoutMs = 30_000) =>
  waitFor(`${path} to be ${wanted}`, async () => (await state(path)) === wanted, timeoutMs, 100);

async function running(): Promise<string> {
  const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
  expect(r.body.status.state).toBe('Running');
  return r.body.id;
}

async function failedSnapshot(sandboxId: string): Promise<string> {
  const r = await stack.request('POST', `/v1/sandboxes/${sandboxId}/snapshots`, undefined, JSON_TYPE);
  expect(r.status).toBe(202);
  await reach(`/v1/snapshots/${r.body.id}`, 'Failed');
  return r.body.id;
}

describe('body-less requests with a JSON content type', () => {
  it('when pause, resume, delete and snapshot retry/delete come with Content-Type: application/json and no body, then they answer as without it', async () => {
    const id = await running();
    expect((await bodiless('POST', `/v1/sandboxes/${id}/pause`)).status).toBe(202);
    await reach(`/v1/sandboxes/${id}`, 'Paused');
    expect((await bodiless('POST', `/v1/sandboxes/${id}/resume`)).status).toBe(202);
    await reach(`/v1/sandboxes/${id}`, 'Running');

    const snapshotId = await failedSnapshot(id);
    const retried = await bodiless('POST', `/v1/snapshots/${snapshotId}/retry`);
    expect(retried.status).toBe(202);
    expect(retried.body.status.state).toBe('Creating');
    await reach(`/v1/snapshots/${snapshotId}`, 'Failed');
    expect((await bodiless('DELETE', `/v1/snapshots/${snapshotId}`)).status).toBe(204);

    expect((await bodiless('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await stack.containers(id)).toHaveLength(0);
  });

  it('when a body-less route gets a body, then 400 says it takes none and the sandbox stays', async () => {
    const id = await running();
    const r = await stack.request('DELETE', `/v1/sandboxes/${id}`, { force: true });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ code: 'SANDBOX::INVALID_PARAMETER', message: 'DELETE /v1/sandboxes/:sandboxId takes no request body' });
    expect(await state(`/v1/sandboxes/${id}`)).toBe('Running');
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});

describe('input the engine would refuse', () => {
  it.each([
    ['cpu "1m"', { resourceLimits: { cpu: '1m', memory: '64Mi' } }, 'resourceLimits.cpu'],
    ['cpu "0"', { resourceLimits: { cpu: '0', memory: '64Mi' } }, 'resourceLimits.cpu'],
    ['memory "1"', { resourceLimits: { cpu: '250m', memory: '1' } }, 'resourceLimits.memory'],
    ['image "Bad Image*x"', { image: { uri: 'Bad Image*x' } }, 'image.uri'],
    ['a 300-character image reference', { image: { uri: `${'a'.repeat(290)}:latest123` } }, 'image.uri'],
  ])('when a create asks for %s, then 400 at once names the field and nothing is started', async (_what, override, field) => {
    const before = (await stack.containers()).length;
    const started = Date.now();
    const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest(override));
    expect(r.status).toBe(400);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.body.code).toBe('SANDBOX::INVALID_PARAMETER');
    expect(r.body.message).toContain(field);
    expect(r.body.message).not.toMatch(/Error:|TypeError|\bat \w+ \(/);
    expect((await stack.containers()).length).toBe(before);
  });

  it('when the image is not on a host that does not pull, then the create fails at once with IMAGE_UNAVAILABLE and nothing is left', async () => {
    const r = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ image: { uri: 'tidebox/not-on-this-host:1' } }));
    expect(r.status).toBe(202);
    expect(r.body.status).toMatchObject({ state: 'Failed', reason: 'SANDBOX::IMAGE_UNAVAILABLE' });
    expect(r.body.status.message).toContain('not on this host');
    expect(await stack.containers(r.body.id)).toHaveLength(0);
  });
});

describe('requests racing a DELETE', () => {
  // Bounded in count (200 races) and in time (each test's timeout).
  const ITERATIONS = { sandboxes: 100, snapshots: 100 };
  const BATCH = 10;
  const serverErrors: Array<{ request: string; status: number; body: unknown }> = [];
  beforeEach(() => (serverErrors.length = 0));
  const record = (request: string) => (r: HttpResult) => {
    if (r.status >= 500) serverErrors.push({ request, status: r.status, body: r.body });
    return r.status;
  };

  /** Fire `others` over and over while DELETE runs, and once more after it answered: the actor's last moments. */
  async function race(deletePath: string, others: Array<[string, string, unknown?]>): Promise<number> {
    let deleted = false;
    const del = stack
      .request('DELETE', deletePath)
      .then(record(`DELETE ${deletePath}`))
      .finally(() => (deleted = true));
    let sent = 0;
    const hammer = async () => {
      for (let round = 0; round < 50; round++) {
        const last = deleted;
        await Promise.all(
          others.map(([method, path, body]) => {
            sent++;
            return stack.request(method, path, body, JSON_TYPE).then(record(`${method} ${path}`));
          }),
        );
        if (last) break;
      }
    };
    const [status] = await Promise.all([del, hammer()]);
    expect([204, 404, 409]).toContain(status);
    return sent;
  }

  it(`when DELETE races pause, resume, renew and metadata patches on ${ITERATIONS.sandboxes} sandboxes, then no answer is 5xx and every container is gone`, async () => {
    let sent = 0;
    for (let done = 0; done < ITERATIONS.sandboxes; done += BATCH) {
      const ids = await Promise.all(Array.from({ length: BATCH }, running));
      const expiresAt = new Date(Date.now() + 3600_000).toISOString();
      const counts = await Promise.all(
        ids.map((id) =>
          race(`/v1/sandboxes/${id}`, [
            ['POST', `/v1/sandboxes/${id}/pause`],
            ['POST', `/v1/sandboxes/${id}/renew-expiration`, { expiresAt }],
            ['PATCH', `/v1/sandboxes/${id}/metadata`, { round: 'x' }],
            ['POST', `/v1/sandboxes/${id}/resume`],
          ]),
        ),
      );
      sent += counts.reduce((a, b) => a + b, 0);
      for (const id of ids) await waitFor(`sandbox ${id} to be removed`, async () => (await stack.containers(id)).length === 0);
    }
    expect(serverErrors).toEqual([]);
    expect(sent).toBeGreaterThan(ITERATIONS.sandboxes * 4);
  }, 600_000);

  it(`when DELETE races retry on ${ITERATIONS.snapshots} failed snapshots, then no answer is 5xx`, async () => {
    const source = await running();
    let sent = 0;
    for (let done = 0; done < ITERATIONS.snapshots; done += BATCH) {
      const ids: string[] = [];
      for (let i = 0; i < BATCH; i++) ids.push(await failedSnapshot(source));
      const counts = await Promise.all(ids.map((id) => race(`/v1/snapshots/${id}`, [['POST', `/v1/snapshots/${id}/retry`]])));
      sent += counts.reduce((a, b) => a + b, 0);
      // A snapshot the retry put back in Creating refused the delete (409): it fails again and goes now.
      for (const id of ids) {
        await waitFor(`snapshot ${id} to settle or go`, async () => (await state(`/v1/snapshots/${id}`)) !== 'Creating');
        const again = await stack.request('DELETE', `/v1/snapshots/${id}`);
        expect([204, 404]).toContain(again.status);
      }
    }
    expect(serverErrors).toEqual([]);
    expect(sent).toBeGreaterThan(ITERATIONS.snapshots);
    expect((await stack.request('DELETE', `/v1/sandboxes/${source}`)).status).toBe(204);
  }, 600_000);
});
