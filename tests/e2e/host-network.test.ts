import { freePort, sandboxRequest, Stack, waitFor } from '../helpers/stack';

/** Sandboxes on host networking: nothing is published, port N of the sandbox is port N of the host. */
let stack: Stack;
beforeAll(async () => {
  stack = await Stack.start({ config: { docker: { network: 'host' } } });
});
afterAll(async () => {
  await stack?.destroy();
});

it('when a sandbox uses host networking, then its endpoint is host:port and both the endpoint and the server proxy reach it', async () => {
  const port = await freePort();
  const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({
    entrypoint: ['sh', '-c', `mkdir -p /tmp/www && echo on-host > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:${port} -h /tmp/www`],
  }));
  expect(created.body.status.state).toBe('Running');
  const id: string = created.body.id;
  const [container] = await stack.containers(id);
  const info = await stack.docker.getContainer(container!.Id).inspect();
  expect(info.HostConfig.NetworkMode).toBe('host');
  expect(info.NetworkSettings.Ports ?? {}).toEqual({});

  const endpoint = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/${port}`);
  expect(endpoint.body).toEqual({ endpoint: `127.0.0.1:${port}` });
  const page = await waitFor('httpd on the host network', async () => {
    const res = await fetch(`http://${endpoint.body.endpoint}/index.html`);
    return res.ok ? res.text() : undefined;
  }, 10_000);
  expect(page.trim()).toBe('on-host');

  const viaProxy = await stack.request('GET', `/v1/sandboxes/${id}/endpoints/${port}?use_server_proxy=true`);
  const proxied = await fetch(`http://${viaProxy.body.endpoint}/index.html`);
  expect(proxied.status).toBe(200);
  expect((await proxied.text()).trim()).toBe('on-host');
  await stack.request('DELETE', `/v1/sandboxes/${id}`);
});
