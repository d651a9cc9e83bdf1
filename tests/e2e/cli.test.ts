import { runCli } from '../helpers/cli';
import { freePort, Stack, TEST_IMAGE } from '../helpers/stack';

/**
 * The `tidebox` CLI end to end against a real stack: sandboxes listed, created, renewed, paused,
 * resumed, read back with their history and deleted; tables for people, `--json` that parses;
 * refusals and an unreachable API exit with the documented codes.
 */
const API_KEY = 'cli-test-key-0123456789abcdef';
let stack: Stack;
beforeAll(async () => {
  // A grace window: an entrypoint that exits at once fails its create, which the CLI must report (without one it fails moments later).
  stack = await Stack.start({ apiKey: API_KEY, config: { docker: { startupGraceMs: 1000 } } });
});
afterAll(async () => {
  await stack?.destroy();
});

const cli = (...args: string[]) => runCli(stack.baseUrl, args, { OPEN_SANDBOX_API_KEY: API_KEY });
/** Exit 0 and stdout parsed as JSON. */
async function cliJson<T>(...args: string[]): Promise<T> {
  const r = await cli(...args, '--json');
  expect([r.code, r.stderr]).toEqual([0, '']);
  return JSON.parse(r.stdout) as T;
}

describe('tidebox sandboxes', () => {
  it('when a sandbox is created, listed, renewed, paused, resumed, read and deleted with the CLI, then each step is what the API holds', async () => {
    const created = await cliJson<{ id: string; status: { state: string }; expiresAt: string }>(
      'sandboxes',
      'create',
      '--image',
      TEST_IMAGE,
      '--timeout',
      '600',
      '--cpu',
      '250m',
      '--memory',
      '64Mi',
      '--metadata',
      'team=cli',
    );
    expect(created.status.state).toBe('Running');
    const { id } = created;
    expect((await stack.request('GET', `/v1/sandboxes/${id}`)).body).toMatchObject({
      metadata: { team: 'cli' },
      status: { state: 'Running' },
    });
    expect(await stack.containers(id)).toHaveLength(1);

    // The table: a header, then the sandbox with its state, image and a countdown to expiry.
    const table = await cli('sandboxes', 'ls');
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+IMAGE\s+AGE\s+EXPIRES$/);
    expect(table.stdout).toMatch(new RegExp(`${id}\\s+Running\\s+${TEST_IMAGE.replace(/[/.]/g, '\\$&')}\\s+\\S+\\s+in (9m|10m) \\d\\ds`));
    const filtered = await cliJson<Array<{ id: string }>>('sandboxes', 'ls', '--metadata', 'team=cli');
    expect(filtered.map((s) => s.id)).toEqual([id]);
    expect(await cliJson<unknown[]>('sandboxes', 'ls', '--metadata', 'team=nobody')).toEqual([]);

    const renewed = await cli('sandboxes', 'renew', id, '--for', '3600');
    expect(renewed.code).toBe(0);
    expect(renewed.stdout).toMatch(/in (59m \d\ds|1h 00m)/);
    const expiresAt = Date.parse((await stack.request('GET', `/v1/sandboxes/${id}`)).body.expiresAt);
    expect(expiresAt - Date.now()).toBeGreaterThan(3500_000);

    expect(await cli('sandboxes', 'pause', id)).toMatchObject({ code: 0, stdout: `${id}  Paused\n` });
    expect((await stack.containers(id))[0]!.State).toBe('paused');
    expect(await cli('sandboxes', 'resume', id)).toMatchObject({ code: 0, stdout: `${id}  Running\n` });

    const got = await cli('sandboxes', 'get', id);
    expect(got.stdout).toMatch(/^state:\s+Running \(resumed/m);
    expect(got.stdout).toMatch(/^metadata:\s+team=cli$/m);
    const history = await cliJson<{ events: Array<{ state: string; actor: string }> }>('sandboxes', 'events', id);
    // The renewal is an event of its own (Running, by the API).
    expect(history.events.map((e) => `${e.state}/${e.actor}`)).toEqual([
      'Pending/api',
      'Running/runtime',
      'Running/api',
      'Pausing/api',
      'Paused/runtime',
      'Resuming/api',
      'Running/runtime',
    ]);
    expect((await cli('sandboxes', 'events', id)).stdout).toMatch(/Pausing\s+api/);

    expect(await cli('sandboxes', 'rm', id)).toMatchObject({ code: 0, stdout: `${id}  deleted\n` });
    expect(await stack.containers(id)).toHaveLength(0);
    const gone = await cli('sandboxes', 'get', id);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain('404');
  }, 120_000);

  it('when a created sandbox fails, then the CLI says why and exits 1', async () => {
    const r = await cli('sandboxes', 'create', '--image', TEST_IMAGE, '--', 'sh', '-c', 'exit 3');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\s+Failed/);
    expect(r.stderr).toMatch(/failed/);
    const id = r.stdout.split(/\s+/)[0]!;
    expect((await stack.request('DELETE', `/v1/sandboxes/${id}`)).status).toBe(204);
  });
});

describe('tidebox, the rest', () => {
  it('when mounts, schedules, pools and usage are listed, then tables and JSON say what the API holds', async () => {
    expect((await cli('mounts', 'ls')).stdout).toBe('no mounts\n');
    expect((await cli('pools', 'ls')).stdout).toBe('no pools\n');
    const usage = await cliJson<{ usage: { sandboxes: number } }>('usage');
    expect(usage.usage.sandboxes).toBeGreaterThanOrEqual(0);
    expect((await cli('usage')).stdout).toMatch(/^sandboxes\s+\d+\s+unlimited$/m);

    const id = (await cliJson<{ id: string }>('sandboxes', 'create', '--image', TEST_IMAGE)).id;
    expect(
      (await stack.request('PUT', `/v1/sandboxes/${id}/renew-schedule`, { intervalSeconds: 60, extendBySeconds: 600 })).status,
    ).toBeLessThan(300);
    const schedules = await cliJson<Array<{ sandboxId: string; intervalSeconds: number }>>('schedules', 'ls');
    expect(schedules).toEqual([expect.objectContaining({ sandboxId: id, intervalSeconds: 60 })]);
    expect((await cli('schedules', 'ls')).stdout).toMatch(new RegExp(`${id}\\s+60s\\s+\\+600s`));
    expect((await cli('sandboxes', 'rm', id)).code).toBe(0);
    expect((await cli('schedules', 'ls')).stdout).toBe('no renew schedules\n');
  });

  it('when the usage is wrong, the key is refused or the API cannot be reached, then the exit code says which', async () => {
    const unknown = await cli('sandboxes', 'frobnicate');
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringContaining('usage: tidebox')]);
    expect((await cli('sandboxes', 'create')).code).toBe(2);
    expect((await cli('sandboxes', 'renew', 'x', '--for', 'soon')).code).toBe(2);
    const refused = await runCli(stack.baseUrl, ['sandboxes', 'ls'], { OPEN_SANDBOX_API_KEY: 'not-a-key-0123456789' });
    expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining('401')]);
    // A port nothing listens on.
    const nowhere = await runCli(`http://127.0.0.1:${await freePort()}`, ['sandboxes', 'ls']);
    expect([nowhere.code, nowhere.stderr]).toEqual([3, expect.stringContaining('cannot reach')]);
  });
});
