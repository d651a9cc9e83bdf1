import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { sandboxRequest, Stack, waitFor } from '../helpers/stack';

// This stack also runs its containers under a seccomp profile that forbids mkdir (see the last test).
const seccompPath = join(mkdtempSync(join(tmpdir(), 'tidebox-seccomp-')), 'profile.json');
writeFileSync(
  seccompPath,
  JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] }),
);

let stack: Stack;
beforeAll(async () => {
  stack = await Stack.start({ config: { sandbox: { maxTimeoutSeconds: 3600 }, docker: { seccompProfile: seccompPath } } });
});
afterAll(async () => {
  await stack?.destroy();
  rmSync(dirname(seccompPath), { recursive: true, force: true });
});

/** Resolves at the moment the sandbox has no container left (polled every 50 ms). */
const containerGone = (id: string, timeoutMs: number) =>
  waitFor(`container of ${id} removed`, async () => ((await stack.containers(id)).length === 0 ? Date.now() : undefined), timeoutMs, 50);

const inSeconds = (s: number) => new Date(Date.now() + s * 1000).toISOString();

describe('expiry', () => {
  it('when the timeout passes, then the container is removed within 2 s of expiresAt and GET answers 404', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 3 }));
    expect(created.body.status.state).toBe('Running');
    const expiresAt = Date.parse(created.body.expiresAt);
    const removedAt = await containerGone(created.body.id, 20_000);
    expect(removedAt).toBeGreaterThanOrEqual(expiresAt);
    expect(removedAt - expiresAt).toBeLessThanOrEqual(2000);
    // The actor records Terminated right after the removal activity returns.
    await waitFor('GET 404', async () => (await stack.request('GET', `/v1/sandboxes/${created.body.id}`)).status === 404, 2000, 50);
  });

  it('when renewed before expiry, then the sandbox outlives its old deadline and expires at the new one', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 3 }));
    const id: string = created.body.id;
    const oldDeadline = Date.parse(created.body.expiresAt);
    const newExpiresAt = new Date(oldDeadline + 5000).toISOString();
    const renewed = await stack.request('POST', `/v1/sandboxes/${id}/renew-expiration`, { expiresAt: newExpiresAt });
    expect(renewed.status).toBe(200);
    expect(renewed.body).toEqual({ expiresAt: newExpiresAt });
    expect((await stack.request('GET', `/v1/sandboxes/${id}`)).body.expiresAt).toBe(newExpiresAt);

    // Past the old deadline plus the 2 s slack the expiry test allows, it must still be running.
    await waitFor('the old deadline to pass', () => Date.now() > oldDeadline + 2500, 10_000, 50);
    expect((await stack.request('GET', `/v1/sandboxes/${id}`)).body.status.state).toBe('Running');
    const [container] = await stack.containers(id);
    expect(container?.State).toBe('running');

    const removedAt = await containerGone(id, 20_000);
    expect(removedAt).toBeGreaterThanOrEqual(Date.parse(newExpiresAt));
    expect(removedAt - Date.parse(newExpiresAt)).toBeLessThanOrEqual(2000);
  });

  it('when renewing into the past, before the current expiresAt or beyond the maximum, then 400 and expiresAt is unchanged', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: 600 }));
    const id: string = created.body.id;
    const renew = (expiresAt: string) => stack.request('POST', `/v1/sandboxes/${id}/renew-expiration`, { expiresAt });

    for (const expiresAt of [inSeconds(-60), inSeconds(300), inSeconds(7200)]) {
      const r = await renew(expiresAt);
      expect(r.status).toBe(400);
      expect(r.body.code).toBe('SANDBOX::INVALID_EXPIRATION');
    }
    expect((await stack.request('GET', `/v1/sandboxes/${id}`)).body.expiresAt).toBe(created.body.expiresAt);
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });

  it('when renewing a manual-cleanup sandbox, then 409', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: null }));
    const r = await stack.request('POST', `/v1/sandboxes/${created.body.id}/renew-expiration`, { expiresAt: inSeconds(600) });
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('SANDBOX::MANUAL_CLEANUP');
    expect((await stack.request('DELETE', `/v1/sandboxes/${created.body.id}`)).status).toBe(204);
  });

  it('when renewing a sandbox that does not exist, then 404', async () => {
    const r = await stack.request('POST', '/v1/sandboxes/no-such-sandbox/renew-expiration', { expiresAt: inSeconds(600) });
    expect(r.status).toBe(404);
  });
});

describe('seccomp', () => {
  it('when docker.seccompProfile names a profile file, then sandboxes run under that profile', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest({ timeout: null }));
    expect(created.body.status.state).toBe('Running');
    const [info] = await stack.containers(created.body.id);
    const container = stack.docker.getContainer(info!.Id);
    const run = async (cmd: string[]) => {
      const exec = await container.exec({ Cmd: cmd, AttachStdout: false, AttachStderr: false });
      await exec.start({ Detach: true });
      return waitFor(
        `${cmd.join(' ')} to finish`,
        async () => {
          const r = await exec.inspect();
          return r.Running ? undefined : r.ExitCode;
        },
        10_000,
        50,
      );
    };
    expect(await run(['touch', '/tmp/allowed'])).toBe(0);
    expect(await run(['mkdir', '/tmp/forbidden'])).not.toBe(0);
    expect((await stack.request('DELETE', `/v1/sandboxes/${created.body.id}`)).status).toBe(204);
  });
});
