import { createServer, Server } from 'node:http';
import { connect } from 'node:net';
import { freePort, sandboxRequest, Stack, waitFor } from '../helpers/stack';

/** Sandboxes on host networking: nothing is published, declared port N of the sandbox is port N of the host. */
let stack: Stack;
beforeAll(async () => {
  stack = await Stack.start({ config: { docker: { network: 'host' } } });
});
afterAll(async () => {
  await stack?.destroy();
});

it('when a sandbox uses host networking, then a declared port is host:port, reached directly and through the proxy; undeclared ports are not', async () => {
  const port = await freePort();
  const created = await stack.request(
    'POST',
    '/v1/sandboxes',
    sandboxRequest({
      extensions: { 'tidebox.io/ports': String(port) },
      entrypoint: ['sh', '-c', `mkdir -p /tmp/www && echo on-host > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:${port} -h /tmp/www`],
    }),
  );
  expect(created.body.status.state).toBe('Running');
  const id: string = created.body.id;
  const [container] = await stack.containers(id);
  const info = await stack.docker.getContainer(container!.Id).inspect();
  expect(info.HostConfig.NetworkMode).toBe('host');
  expect(info.NetworkSettings.Ports ?? {}).toEqual({});

  const endpoint = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/${port}`);
  expect(endpoint.body).toEqual({ endpoint: `127.0.0.1:${port}` });
  const page = await waitFor(
    'httpd on the host network',
    async () => {
      const res = await fetch(`http://${endpoint.body.endpoint}/index.html`);
      return res.ok ? res.text() : undefined;
    },
    10_000,
  );
  expect(page.trim()).toBe('on-host');

  // Only declared ports: the rest of the host (its Temporal, its API) is not the sandbox's to hand out.
  const undeclared = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/${new URL(stack.baseUrl).port}`);
  expect([undeclared.status, undeclared.body.code]).toEqual([404, 'SANDBOX::PORT_NOT_AVAILABLE']);
  const undeclaredProxy = await stack.request('GET', `/v1/sandboxes/${id}/proxy/${new URL(stack.baseUrl).port}/health`);
  expect(undeclaredProxy.status).toBe(404);

  const viaProxy = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/${port}?use_server_proxy=true`);
  const proxied = await fetch(`http://${viaProxy.body.endpoint}/index.html`);
  expect(proxied.status).toBe(200);
  expect((await proxied.text()).trim()).toBe('on-host');
  await stack.request('DELETE', `/v1/sandboxes/${id}`);
});

describe('server proxy framing (upstream: a Node HTTP server on a declared host port)', () => {
  const seen: Array<{ method: string; url: string; body: string }> = [];
  let upstream: Server;
  let id: string;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    upstream = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString() });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => upstream.listen(port, '127.0.0.1', resolve));
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ extensions: { 'tidebox.io/ports': String(port) } }));
    id = created.body.id;
  });
  afterAll(async () => {
    await stack.request('DELETE', `/v1/sandboxes/${id}`);
    await new Promise((resolve) => upstream.close(resolve));
  });

  /** Write a raw HTTP/1.1 request to the API and return everything it answers until it closes. */
  const raw = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(stack.baseUrl).port), '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => resolve(Buffer.concat(chunks).toString()));
      socket.on('error', reject);
      socket.write(text); // no half-close: the server answers, then closes (Connection: close)
    });

  it('when a chunked DELETE carries a body, then the sandbox gets one request with that body and nothing smuggled', async () => {
    seen.length = 0;
    const body = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
    const answer = await raw(
      `DELETE /v1/sandboxes/${id}/proxy/${port}/item HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1.1 200/);
    await waitFor('the upstream request', () => seen.length >= 1, 5000, 20);
    expect(seen).toEqual([{ method: 'DELETE', url: '/item', body }]);
  });

  it('when the path and query carry percent-encoding, then the sandbox sees them exactly as sent', async () => {
    seen.length = 0;
    const res = await fetch(`${stack.baseUrl}/v1/sandboxes/${id}/proxy/${port}/a%20b/%3Fnot-a-query?x=1%23y&z=%2F`);
    expect(res.status).toBe(200);
    expect(seen.map((r) => r.url)).toEqual(['/a%20b/%3Fnot-a-query?x=1%23y&z=%2F']);
  });

  it('when a plain route is requested with an Upgrade header (curl --http2 offers h2c), then it is served normally', async () => {
    const answer = await raw(
      `GET /v1/sandboxes/${id} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1.1 200/);
    expect(answer).toContain(`"id":"${id}"`);
  });
});
