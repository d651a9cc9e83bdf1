import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { freePort, repoRoot, sandboxRequest, waitFor } from '../helpers/stack';

/** `npm start`'s launcher: starts Temporal, worker and API, prints where they are, Ctrl-C stops all. */
const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

it('when the run command starts, then it prints the API and UI addresses, serves sandboxes, and SIGINT stops every process', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tidebox-launcher-'));
  const [apiPort, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  const instance = `l${Math.random().toString(36).slice(2, 8)}`;
  const configPath = join(dataDir, 'tidebox.toml');
  writeFileSync(configPath, `instance = "${instance}"\n[temporal]\ndevServerPort = ${temporalPort}\ndevServerUiPort = ${uiPort}\n`);
  const child = spawn(process.execPath, [join(repoRoot(), 'dist/scripts/dev.js')], {
    env: { ...process.env, TIDEBOX_CONFIG: configPath, TIDEBOX_DATA_DIR: dataDir, TIDEBOX_PORT: String(apiPort), TEMPORAL_ADDRESS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor('the start-up banner', () => output.includes('Ctrl-C stops everything'), 90_000);
    expect(output).toContain(`Tidebox API   http://127.0.0.1:${apiPort}`);
    expect(output).toContain(`Temporal UI   http://127.0.0.1:${uiPort}`);

    const res = await fetch(`http://127.0.0.1:${apiPort}/v1/sandboxes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(sandboxRequest({ timeout: null })),
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { status: { state: string } }).status.state).toBe('Running');

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(await portOpen(apiPort)).toBe(false);
    expect(await portOpen(temporalPort)).toBe(false);
  } finally {
    child.kill('SIGKILL');
    const docker = new Dockerode();
    for (const c of await docker.listContainers({ all: true, filters: { label: [`tidebox.io/instance=${instance}`] } })) {
      await docker.getContainer(c.Id).remove({ force: true });
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
});
