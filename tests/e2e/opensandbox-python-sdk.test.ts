import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot, Stack, TEST_IMAGE, waitFor } from '../helpers/stack';

/**
 * The published OpenSandbox Python SDK (`opensandbox`, pinned in tests/python/requirements.lock),
 * unmodified, against a real Tidebox: one lifecycle through its async API and one through its sync
 * API (tests/python/sdk_lifecycle.py), each leaving no container behind; then commands and files
 * through Tidebox's execd with the SDK's health check on (tests/python/sdk_execd.py).
 */
const API_KEY = 'python-sdk-test-key-0123456789';
let stack: Stack;
beforeAll(async () => {
  stack = await Stack.start({ apiKey: API_KEY });
});
afterAll(async () => {
  await stack?.destroy();
});

function lifecycle(
  mode: 'async' | 'sync',
  script = 'sdk_lifecycle.py',
): Promise<{ code: number; steps: Array<Record<string, unknown>>; output: string }> {
  const venv = process.env.TIDEBOX_PYTHON_VENV;
  if (!venv) throw new Error('TIDEBOX_PYTHON_VENV is not set: run the suite with npm test (scripts/bootstrap.sh makes the venv)');
  return new Promise((resolve) => {
    execFile(
      join(venv, 'bin', 'python'),
      [join(repoRoot(), 'tests/python', script), mode],
      {
        timeout: 120_000,
        env: { PATH: process.env.PATH, TIDEBOX_URL: stack.baseUrl, TIDEBOX_API_KEY: API_KEY, TIDEBOX_IMAGE: TEST_IMAGE },
      },
      (err, stdout, stderr) => {
        const steps = stdout
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, steps, output: `${stdout}\n${stderr}` });
      },
    );
  });
}

it.each(['async', 'sync'] as const)(
  'when the Python SDK drives a lifecycle through its %s API, then create, list, renew, patch, endpoint, pause, resume and kill work unchanged',
  async (mode) => {
    const run = await lifecycle(mode);
    if (run.code !== 0) console.log(run.output);
    expect(run.code).toBe(0);
    expect(run.steps.map((s) => s.step)).toEqual([
      'created',
      'listed',
      'renewed',
      'patched',
      'endpoint',
      'paused',
      'resumed',
      'killed',
      'done',
    ]);
    const id = run.steps[0]!.id as string;
    expect(await stack.containers(id)).toHaveLength(0);
    // The SDK's create telemetry reached /metrics.
    await waitFor('the Python SDK telemetry event to be counted', async () =>
      /tidebox_client_events_total\{event="sandbox\.create",success="true"\} [1-9]/.test(
        await (await fetch(`${stack.baseUrl}/metrics`)).text(),
      ),
    );
  },
);

it.each(['async', 'sync'] as const)(
  'when the Python SDK runs commands and moves files through its %s API, with the health check on, then execd answers as the SDK expects',
  async (mode) => {
    const run = await lifecycle(mode, 'sdk_execd.py');
    if (run.code !== 0) console.log(run.output);
    expect(run.code).toBe(0);
    expect(run.steps.map((s) => s.step)).toEqual([
      'created',
      'echo',
      'stderr',
      'background',
      'interrupted',
      'roundtrip',
      'files',
      'killed',
      'done',
    ]);
    expect(run.steps.find((s) => s.step === 'interrupted')!.seconds).toBeLessThan(1);
    expect(await stack.containers(run.steps[0]!.id as string)).toHaveLength(0);
  },
);
