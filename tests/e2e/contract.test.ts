import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import WebSocket from 'ws';
import { ECHO_PATH, echoServersEntrypoint, HTTP_PORT, parseEcho, WS_PORT } from '../helpers/sandbox-servers';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

const API_KEY = 'contract-key-0123456789abcdef';
let stack: Stack;

beforeAll(async () => {
  stack = await Stack.start({
    apiKey: API_KEY,
    config: { docker: { startupGraceMs: 300 }, server: { proxyIdleTimeoutSeconds: 3, proxyConnectionsPerTenant: 3 } },
  });
});
afterAll(async () => {
  await stack?.destroy();
});

const create = async (overrides: Record<string, unknown> = {}) => {
  const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest(overrides));
  expect(created.status).toBe(202);
  expect(created.body.status.state).toBe('Running');
  return created.body.id as string;
};
const stateOf = async (id: string) => (await stack.request('GET', `/v1/sandboxes/${id}`)).body?.status?.state;
const waitState = (id: string, state: string, timeoutMs = 20_000) =>
  waitFor(`sandbox ${id} ${state}`, async () => (await stateOf(id)) === state, timeoutMs, 50);
const containerOf = async (id: string) => {
  const [c] = await stack.containers(id);
  return c ? stack.docker.getContainer(c.Id).inspect() : undefined;
};

describe('pause and resume', () => {
  it('when a Running sandbox is paused and resumed, then its container is frozen and thawed, and wrong states answer 409', async () => {
    const id = await create();
    const paused = await stack.request('POST', `/v1/sandboxes/${id}/pause`);
    expect(paused.status).toBe(202);
    expect(paused.body).toEqual({ state: 'Pausing', workflowId: `sandbox/${id}` });
    await waitState(id, 'Paused');
    expect((await containerOf(id))!.State.Paused).toBe(true);

    const again = await stack.request('POST', `/v1/sandboxes/${id}/pause`);
    expect(again.status).toBe(409);
    expect(again.body).toEqual({
      code: 'SANDBOX::INVALID_STATE',
      message: expect.stringContaining('only a Running sandbox can be paused'),
    });
    expect((await containerOf(id))!.State.Paused).toBe(true);

    expect((await stack.request('POST', `/v1/sandboxes/${id}/resume`)).status).toBe(202);
    await waitState(id, 'Running');
    const thawed = (await containerOf(id))!.State;
    expect(thawed).toMatchObject({ Paused: false, Running: true });
    const wrong = await stack.request('POST', `/v1/sandboxes/${id}/resume`);
    expect(wrong.status).toBe(409);
    expect(wrong.body.code).toBe('SANDBOX::INVALID_STATE');
    expect((await stack.request('POST', `/v1/sandboxes/no-such-sandbox/pause`)).status).toBe(404);

    const history = await stack.request('GET', `/v1/sandboxes/${id}/events`);
    expect(history.status).toBe(200);
    expect(history.body.events.map((e: { state: string; actor: string }) => `${e.state}/${e.actor}`)).toEqual([
      'Pending/api',
      'Running/runtime',
      'Pausing/api',
      'Paused/runtime',
      'Resuming/api',
      'Running/runtime',
    ]);
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it('when a paused sandbox reaches its expiry, then it is removed on time and its history says expired', async () => {
    const id = await create({ timeout: 3 });
    const expiresAt = Date.parse((await stack.request('GET', `/v1/sandboxes/${id}`)).body.expiresAt);
    await stack.request('POST', `/v1/sandboxes/${id}/pause`);
    await waitState(id, 'Paused');
    await waitFor('container removed', async () => (await stack.containers(id)).length === 0, 20_000, 50);
    expect(Date.now() - expiresAt).toBeLessThan(3000);
    await waitFor('GET 404', async () => (await stack.request('GET', `/v1/sandboxes/${id}`)).status === 404, 5000, 50);

    const history = await stack.request('GET', `/v1/sandboxes/${id}/events`);
    expect(history.status).toBe(200);
    expect(history.body).toMatchObject({ id, state: 'Terminated', terminationReason: 'expired' });
    expect(history.body.events.at(-2)).toMatchObject({ state: 'Stopping', actor: 'expiry', reason: 'ttl_expiry' });
    expect(history.body.events.at(-1)).toMatchObject({ state: 'Terminated', actor: 'expiry' });
  });

  it('when a sandbox is deleted while Paused, then it is removed', async () => {
    const id = await create();
    await stack.request('POST', `/v1/sandboxes/${id}/pause`);
    await waitState(id, 'Paused');
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await stack.containers(id)).toHaveLength(0);
  });
});

describe('metadata patch', () => {
  it('when metadata is merge-patched, then GET, LIST filters and the actor agree; bad patches change nothing', async () => {
    const run = `r${Date.now()}`;
    const id = await create({ metadata: { run, team: 'red', old: 'x' } });
    const patched = await stack.request('PATCH', `/v1/sandboxes/${id}/metadata`, { team: 'blue', old: null, added: 'yes', missing: null });
    expect(patched.status).toBe(200);
    expect(patched.body.metadata).toEqual({ run, team: 'blue', added: 'yes' });
    expect((await stack.request('GET', `/v1/sandboxes/${id}`)).body.metadata).toEqual({ run, team: 'blue', added: 'yes' });

    const list = async (metadata: string) =>
      (await stack.request('GET', `/v1/sandboxes?metadata=${encodeURIComponent(metadata)}`)).body.items.map((s: { id: string }) => s.id);
    await waitFor('LIST to see the new metadata', async () => (await list(`run=${run}&team=blue`)).includes(id), 10_000);
    expect(await list(`run=${run}&team=red`)).toEqual([]);
    expect(await list(`run=${run}&old=x`)).toEqual([]);

    for (const [body, message] of [
      [{ 'opensandbox.io/owner': 'me' }, 'reserved prefix'],
      [{ 'tidebox.io/tenant': 'other' }, 'reserved prefix'],
      [{ team: 'has spaces' }, 'metadata value of "team"'],
      [{ 'bad key!': 'x' }, 'metadata key "bad key!"'],
      [{ team: 5 }, 'body.team'],
    ] as const) {
      const r = await stack.request('PATCH', `/v1/sandboxes/${id}/metadata`, body);
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('SANDBOX::INVALID_PARAMETER');
      expect(r.body.message).toContain(message);
    }
    expect((await stack.request('PATCH', `/v1/sandboxes/${id}/metadata`, {})).body.metadata).toEqual({ run, team: 'blue', added: 'yes' });
    expect((await stack.request('PATCH', `/v1/sandboxes/nope/metadata`, { a: 'b' })).status).toBe(404);
    await stack.request('DELETE', `/v1/sandboxes/${id}`);
  });
});

describe('endpoints (direct ingress, bridge networking)', () => {
  it('when a sandbox runs, then the default ports and requested ports are published on 127.0.0.1 and reported as host:hostPort', async () => {
    const id = await create({
      extensions: { 'tidebox.io/ports': '9000' },
      entrypoint: ['sh', '-c', 'mkdir -p /www && echo hello-from-sandbox > /www/index.html && exec httpd -f -p 9000 -h /www'],
    });
    const info = (await containerOf(id))!;
    for (const port of [8080, 18080, 9000]) {
      const r = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/${port}`);
      expect(r.status).toBe(200);
      const binding = info.NetworkSettings.Ports[`${port}/tcp`]![0]!;
      expect(binding.HostIp).toBe('127.0.0.1');
      expect(r.body).toEqual({ endpoint: `127.0.0.1:${binding.HostPort}` });
    }
    // 44772 is execd, served by Tidebox itself: this API, with the sandbox's own token; nothing is published for it.
    expect(info.NetworkSettings.Ports['44772/tcp']).toBeUndefined();
    const execd = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/44772`);
    expect(execd.body).toEqual({
      endpoint: `${new URL(stack.baseUrl).host}/sandboxes/${id}/proxy/44772`,
      headers: { 'X-EXECD-ACCESS-TOKEN': expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
    });
    // The endpoint really reaches the service inside.
    const endpoint = (await stack.request('GET', `/v1/sandboxes/${id}/endpoints/9000`)).body.endpoint;
    const page = await waitFor(
      'httpd answer',
      async () => {
        const res = await fetch(`http://${endpoint}/index.html`);
        return res.ok ? res.text() : undefined;
      },
      10_000,
    );
    expect(page.trim()).toBe('hello-from-sandbox');

    const unpublished = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/9999`);
    expect(unpublished.status).toBe(404);
    expect(unpublished.body).toEqual({ code: 'SANDBOX::PORT_NOT_AVAILABLE', message: expect.stringContaining('port 9999') });
    for (const bad of ['0', '65536', 'http', '1.5']) {
      const r = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/${bad}`);
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('SANDBOX::INVALID_PARAMETER');
    }
    const proxied = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/9000?use_server_proxy=true`);
    expect(proxied.body).toEqual({ endpoint: `${new URL(stack.baseUrl).host}/sandboxes/${id}/proxy/9000` });
    const signed = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/9000?expires=1900000000`);
    expect(signed.status).toBe(400);
    expect((await stack.request('GET', `/v1/sandboxes/nope/endpoints/8080`)).status).toBe(404);
    await stack.request('DELETE', `/v1/sandboxes/${id}`);
  });
});

describe('operations view', () => {
  it('when asked about a workflow id a response returned, then its type, status and times are reported', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
    const workflowId: string = created.body.workflowId;
    const running = await stack.request('GET', `/v1/workflows/${workflowId}`);
    expect(running.status).toBe(200);
    expect(running.body).toMatchObject({ workflowId, type: 'sandboxWorkflow', status: 'RUNNING', taskQueue: 'tidebox' });
    expect(Date.parse(running.body.startTime)).not.toBeNaN();
    expect(running.body.closeTime).toBeUndefined();

    await stack.request('DELETE', `/v1/sandboxes/${created.body.id}`);
    const closed = await waitFor('workflow closed', async () => {
      const r = await stack.request('GET', `/v1/workflows/${encodeURIComponent(workflowId)}`);
      return r.body.status === 'COMPLETED' ? r : undefined;
    });
    expect(Date.parse(closed.body.closeTime)).toBeGreaterThanOrEqual(Date.parse(closed.body.startTime));
    const missing = await stack.request('GET', '/v1/workflows/sandbox/does-not-exist');
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('SERVER::WORKFLOW_NOT_FOUND');
  });
});

describe('delete in a transitional state', () => {
  afterAll(() => stack.worker.stop().then(() => stack.startWorker()));

  it('when a sandbox is deleted while Pausing (the freeze hangs), then the delete wins and nothing is left', async () => {
    await stack.worker.stop();
    stack.startWorker({ TIDEBOX_FAULT_HANG_AT: 'container-pausing' });
    const id = await create();
    await stack.request('POST', `/v1/sandboxes/${id}/pause`);
    await waitFor('pause to hang', async () => (await import('node:fs')).existsSync(stack.faultFile('container-pausing', id)), 20_000);
    expect(await stateOf(id)).toBe('Pausing');
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await stack.containers(id)).toHaveLength(0);
    const history = await stack.request('GET', `/v1/sandboxes/${id}/events`);
    expect(history.body.events.map((e: { state: string }) => e.state)).toEqual(['Pending', 'Running', 'Pausing', 'Stopping', 'Terminated']);
  });

  it('when a sandbox is renewed while its freeze hangs, then passing the old deadline neither expires it nor claims Paused', async () => {
    const id = await create({ timeout: 5 });
    const oldDeadline = Date.parse((await stack.request('GET', `/v1/sandboxes/${id}`)).body.expiresAt);
    await stack.request('POST', `/v1/sandboxes/${id}/pause`);
    await waitFor('pause to hang', async () => (await import('node:fs')).existsSync(stack.faultFile('container-pausing', id)), 20_000);
    const renewed = await stack.request('POST', `/v1/sandboxes/${id}/renew-expiration`, {
      expiresAt: new Date(Date.now() + 120_000).toISOString(),
    });
    expect(renewed.status).toBe(200);
    await waitFor('the old deadline to pass', () => Date.now() > oldDeadline + 1500, 10_000, 50);
    expect(await stateOf(id)).toBe('Pausing');
    expect((await stack.request('POST', `/v1/sandboxes/${id}/resume`)).status).toBe(409);
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
    expect(await stack.containers(id)).toHaveLength(0);
  });
});

describe('server proxy', () => {
  let id: string;
  let proxyBase: string;
  beforeAll(async () => {
    id = await create({ extensions: { 'tidebox.io/ports': String(WS_PORT) }, entrypoint: echoServersEntrypoint() });
    const ep = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/${HTTP_PORT}?use_server_proxy=true`);
    proxyBase = `http://${ep.body.endpoint}`;
    await waitFor('httpd inside the sandbox', async () => (await proxied('GET', `${ECHO_PATH}?ready=1`)).status === 200, 15_000, 200);
  });
  afterAll(() => stack.request('DELETE', `/v1/sandboxes/${id}`));

  /** One request through the proxy with node:http (Content-Length bodies, raw response bytes). */
  const proxied = (method: string, path: string, body?: Buffer, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const req = httpRequest(
        `${proxyBase}${path}`,
        {
          method,
          headers: { 'OPEN-SANDBOX-API-KEY': API_KEY, ...(body ? { 'content-length': String(body.length) } : {}), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  it('when HTTP goes through the proxy, then the query string and a 100 KB body make the round trip and the API key stays behind', async () => {
    const get = await proxied('GET', `${ECHO_PATH}?x=1&y=two%20words`, undefined, {
      'x-custom': 'kept',
      connection: 'keep-alive, x-hop',
      'x-hop': 'dropped',
    });
    expect(get.status).toBe(200);
    const echoed = parseEcho(get.body);
    expect(echoed).toMatchObject({ method: 'GET', query: 'x=1&y=two%20words' });
    const payload = randomBytes(100_000);
    const post = await proxied('POST', ECHO_PATH, payload, { 'content-type': 'application/octet-stream' });
    expect(post.status).toBe(200);
    const posted = parseEcho(post.body);
    expect(posted.length).toBe(100_000);
    expect(posted.body.equals(payload)).toBe(true);
    // The sandbox saw the forwarded headers but neither the API key nor hop-by-hop ones.
    const seen = (
      await proxied('GET', `${ECHO_PATH}?headers=1`, undefined, { 'x-custom': 'kept', connection: 'x-hop', 'x-hop': 'dropped' })
    ).body.toString();
    expect(seen).toContain('HTTP_X_CUSTOM=kept');
    expect(seen).toMatch(/HTTP_X_FORWARDED_FOR=127\.0\.0\.1/);
    expect(seen).not.toContain(API_KEY);
    expect(seen).not.toContain('HTTP_X_HOP');
    expect(seen).not.toContain('HTTP_OPEN_SANDBOX_API_KEY');
  });

  it('when the proxy is called without the API key, for a port that is not published, or for a paused sandbox, then it answers 401, 404 and 409', async () => {
    const anonymous = await fetch(`${proxyBase}${ECHO_PATH}`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { code: string }).code).toBe('AUTH::MISSING_API_KEY');
    const other = await fetch(`${proxyBase.replace(`/proxy/${HTTP_PORT}`, '/proxy/9999')}/`, {
      headers: { 'OPEN-SANDBOX-API-KEY': API_KEY },
    });
    expect(other.status).toBe(404);
    expect(((await other.json()) as { code: string }).code).toBe('SANDBOX::PORT_NOT_AVAILABLE');
    const unknown = await fetch(`${stack.baseUrl}/sandboxes/nope/proxy/8080/`, { headers: { 'OPEN-SANDBOX-API-KEY': API_KEY } });
    expect(unknown.status).toBe(404);

    await stack.request('POST', `/v1/sandboxes/${id}/pause`);
    await waitState(id, 'Paused');
    const paused = await fetch(`${proxyBase}${ECHO_PATH}`, { headers: { 'OPEN-SANDBOX-API-KEY': API_KEY } });
    expect(paused.status).toBe(409);
    await stack.request('POST', `/v1/sandboxes/${id}/resume`);
    await waitState(id, 'Running');
  });

  it('when a WebSocket connects through the proxy, then messages echo both ways; without the key the upgrade is refused', async () => {
    const url = `ws://${new URL(stack.baseUrl).host}/v1/sandboxes/${id}/proxy/${WS_PORT}/echo?room=1`;
    const ws = new WebSocket(url, { headers: { 'OPEN-SANDBOX-API-KEY': API_KEY } });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const echo = (message: string) =>
      new Promise<string>((resolve) => {
        ws.once('message', (data) => resolve(data.toString()));
        ws.send(message);
      });
    expect(await echo('hello')).toBe('hello');
    expect(await echo('a'.repeat(300))).toBe('a'.repeat(300));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000, 'bye');
    expect(await closed).toBe(1000);

    const refused = new WebSocket(url);
    const status = await new Promise<number>((resolve) => {
      refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      refused.once('error', () => resolve(-1));
    });
    expect(status).toBe(401);
  });

  const wsUrl = (port: number) => `ws://${new URL(stack.baseUrl).host}/v1/sandboxes/${id}/proxy/${port}/echo`;
  const open = (port = WS_PORT) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(wsUrl(port), { headers: { 'OPEN-SANDBOX-API-KEY': API_KEY } });
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res) =>
        reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })),
      );
      ws.once('error', reject);
    });

  it('when a proxied WebSocket idles past proxyIdleTimeoutSeconds, then the proxy closes it', async () => {
    const ws = await open();
    const openedAt = Date.now();
    await new Promise((resolve) => ws.once('close', resolve));
    const idle = Date.now() - openedAt;
    expect(idle).toBeGreaterThanOrEqual(2500);
    expect(idle).toBeLessThan(10_000);
  });

  it('when a tenant holds proxyConnectionsPerTenant WebSockets, then one more gets 429; closing one makes room', async () => {
    const held = await Promise.all([open(), open(), open()]);
    await expect(open()).rejects.toMatchObject({ status: 429 });
    const closed = new Promise((resolve) => held[0]!.once('close', resolve));
    held[0]!.close();
    await closed;
    const another = await waitFor('a free place', () => open().catch(() => undefined), 5000, 100);
    for (const ws of [...held.slice(1), another]) ws.close();
  });

  it('when an Upgrade is not websocket, or the sandbox does not answer 101, then no tunnel opens', async () => {
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(new URL(stack.baseUrl).port), '127.0.0.1', () => socket.write(request));
        let text = '';
        socket.on('data', (d) => (text += d.toString('latin1')));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
    const h2c = await raw(
      `GET /v1/sandboxes/${id}/proxy/${WS_PORT}/ HTTP/1.1\r\nHost: x\r\nOPEN-SANDBOX-API-KEY: ${API_KEY}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`,
    );
    expect(h2c).toMatch(/^HTTP\/1\.1 400 /);
    expect(h2c).toContain('only WebSocket upgrades (Upgrade: websocket) are proxied');
    // The sandbox's HTTP port is no WebSocket server: its own (non-101) answer comes back, and the connection ends.
    const notWs = await raw(
      `GET /v1/sandboxes/${id}/proxy/${HTTP_PORT}/ HTTP/1.1\r\nHost: x\r\nOPEN-SANDBOX-API-KEY: ${API_KEY}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    expect(notWs).toMatch(/^HTTP\/1\.[01] [2-5]\d\d /);
    expect(notWs).not.toMatch(/^HTTP\/1\.[01] 101/);
  });
});
