/**
 * The lifecycle as a client sees it, through HTTP only: the same tests run against the Docker
 * runtime (blackbox-docker.test.ts) and the Kubernetes runtime (kubernetes.test.ts). The only
 * runtime-specific part is how a test counts the workloads a sandbox has (containers or pods).
 */
import { sandboxRequest, Stack, waitFor } from '../../helpers/stack';

export interface BlackBoxTarget {
  stack: Stack;
  /** API key headers for requests, if the stack needs one. */
  headers: Record<string, string>;
  /** How many workloads (containers, pods) the sandbox has right now. */
  workloads(sandboxId: string): Promise<number>;
  /** What a direct endpoint of port 8080 looks like on this runtime. */
  endpoint: RegExp;
}

export function describeBlackBoxLifecycle(runtime: string, target: () => BlackBoxTarget): void {
  const req = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    target().stack.request(method, path, body, { ...target().headers, ...headers });
  const stateOf = async (id: string) => (await req('GET', `/v1/sandboxes/${id}`)).body?.status?.state;

  describe(`black-box lifecycle (${runtime})`, () => {
    it('when a sandbox is created, read, listed, given an endpoint and deleted, then every answer matches and nothing is left', async () => {
      const created = await req('POST', '/v1/sandboxes', sandboxRequest({ metadata: { suite: 'blackbox', run: runtime } }));
      expect(created.status).toBe(202);
      expect(created.body.status.state).toBe('Running');
      expect(created.body.workflowId).toBe(`sandbox/${created.body.id}`);
      const id: string = created.body.id;
      expect(await target().workloads(id)).toBe(1);

      const got = await req('GET', `/v1/sandboxes/${id}`);
      expect(got.status).toBe(200);
      expect(got.body).toMatchObject({
        id,
        status: { state: 'Running' },
        metadata: { suite: 'blackbox', run: runtime },
        entrypoint: ['tail', '-f', '/dev/null'],
      });

      const listed = await req('GET', `/v1/sandboxes?metadata=${encodeURIComponent(`suite=blackbox&run=${runtime}`)}&state=Running`);
      expect(listed.body.items.map((s: { id: string }) => s.id)).toContain(id);

      const endpoint = await req('GET', `/v1/sandboxes/${id}/endpoints/8080`);
      expect(endpoint.status).toBe(200);
      expect(endpoint.body.endpoint).toMatch(target().endpoint);

      const patched = await req('PATCH', `/v1/sandboxes/${id}/metadata`, { run: null, owner: 'qa' });
      expect(patched.body.metadata).toEqual({ suite: 'blackbox', owner: 'qa' });

      expect((await req('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
      expect((await req('GET', `/v1/sandboxes/${id}`)).status).toBe(404);
      expect(await target().workloads(id)).toBe(0);
      const events = await req('GET', `/v1/sandboxes/${id}/events`);
      expect(events.body.events.map((e: { state: string }) => e.state)).toEqual(['Pending', 'Running', 'Stopping', 'Terminated']);
    });

    it('when a sandbox is renewed, then it outlives its first deadline and is removed at the new one', async () => {
      const created = await req('POST', '/v1/sandboxes', sandboxRequest({ timeout: 3 }));
      const id: string = created.body.id;
      const first = Date.parse(created.body.expiresAt);
      const later = new Date(first + 3000).toISOString();
      const renewed = await req('POST', `/v1/sandboxes/${id}/renew-expiration`, { expiresAt: later });
      expect(renewed.body.expiresAt).toBe(later);
      await waitFor('the first deadline to pass', () => Date.now() > first + 500, 10_000);
      expect(await stateOf(id)).toBe('Running');
      expect(await target().workloads(id)).toBe(1);
      await waitFor('expiry at the renewed deadline', async () => (await req('GET', `/v1/sandboxes/${id}`)).status === 404, 20_000, 100);
      // On time: gone within a few seconds of the new deadline, not at some later sweep.
      expect(Date.now() - Date.parse(later)).toBeLessThan(5000);
      expect(await target().workloads(id)).toBe(0);
      const events = await req('GET', `/v1/sandboxes/${id}/events`);
      expect(events.body.terminationReason).toBe('expired');
    });

    it('when two creates carry one Idempotency-Key, then one sandbox and one workload exist', async () => {
      const key = `bb-${runtime}-${Date.now()}`;
      const [a, b] = await Promise.all([
        req('POST', '/v1/sandboxes', sandboxRequest(), { 'Idempotency-Key': key }),
        req('POST', '/v1/sandboxes', sandboxRequest(), { 'Idempotency-Key': key }),
      ]);
      expect(a.body.id).toBe(b.body.id);
      await waitFor('Running', async () => (await stateOf(a.body.id)) === 'Running', 30_000);
      expect(await target().workloads(a.body.id)).toBe(1);
      expect((await req('DELETE', `/v1/sandboxes/${a.body.id}`)).status).toBe(204);
      expect(await target().workloads(a.body.id)).toBe(0);
    });

    it('when the request is bad, then 400 with the error envelope and nothing is created', async () => {
      const before = (await req('GET', '/v1/sandboxes?pageSize=200')).body.items.length;
      for (const body of [
        { entrypoint: ['sh'] },
        sandboxRequest({ timeout: 1 }),
        sandboxRequest({ resourceLimits: { cpu: 'lots' } }),
        sandboxRequest({ metadata: { 'tidebox.io/x': 'y' } }),
      ]) {
        const r = await req('POST', '/v1/sandboxes', body);
        expect([r.status, r.body.code]).toEqual([400, 'SANDBOX::INVALID_PARAMETER']);
      }
      expect((await req('GET', '/v1/sandboxes?pageSize=200')).body.items.length).toBe(before);
    });
  });
}
