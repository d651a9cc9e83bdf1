import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/** A data dir, free ports and a config file for one launch, and the clean-up of what it left. */
async function launch(prefix: string) {
  const dataDir = mkdtempSync(join(tmpdir(), `tidebox-${prefix}-`));
  const [apiPort, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  const instance = `${prefix[0]}${Math.random().toString(36).slice(2, 8)}`;
  const configPath = join(dataDir, 'tidebox.toml');
  writeFileSync(configPath, `instance = "${instance}"\n[temporal]\ndevServerPort = ${temporalPort}\ndevServerUiPort = ${uiPort}\n`);
  const env = {
    ...process.env,
    TIDEBOX_CONFIG: configPath,
    TIDEBOX_DATA_DIR: dataDir,
    TIDEBOX_PORT: String(apiPort),
    TEMPORAL_ADDRESS: '',
  };
  const cleanUp = async () => {
    const docker = new Dockerode();
    const mine = { label: [`tidebox.io/instance=${instance}`] };
    for (const c of await docker.listContainers({ all: true, filters: mine })) await docker.getContainer(c.Id).remove({ force: true });
    // The tenant's network stays with the engine after its last sandbox (Tidebox reuses it): the test made it, the test removes it.
    for (const n of await docker.listNetworks({ filters: mine })) await docker.getNetwork(n.Id).remove();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { dataDir, apiPort, temporalPort, uiPort, env, cleanUp };
}

it('when the run command starts, then it prints the API and UI addresses, serves sandboxes, and SIGINT stops every process', async () => {
  const { apiPort, temporalPort, uiPort, env, cleanUp } = await launch('launcher');
  const child = spawn(process.execPath, [join(repoRoot(), 'dist/scripts/dev.js')], {
    env,
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
    await cleanUp();
  }
});

it('when the bootstrap had to start the Docker engine, then Ctrl-C on it leaves the engine and a container started outside Tidebox running', async () => {
  // A second engine of its own (socket, data and exec roots, no bridge), which the bootstrap finds
  // not answering and so starts, exactly as on a machine where nothing runs Docker yet.
  const dir = mkdtempSync(join(tmpdir(), 'tidebox-engine-'));
  const host = `unix://${join(dir, 'docker.sock')}`;
  const pidFile = join(dir, 'docker.pid');
  const dockerdArgs = `-H ${host} --data-root ${dir}/data --exec-root ${dir}/exec --pidfile ${pidFile} --bridge none --iptables=false --ip6tables=false`;
  const engine = new Dockerode({ socketPath: join(dir, 'docker.sock') });
  // A terminal's foreground job: a process group of its own, which Ctrl-C signals as a whole.
  const child = spawn('bash', ['scripts/bootstrap.sh', 'sleep', '600'], {
    cwd: repoRoot(),
    detached: true,
    env: { ...process.env, DOCKER_HOST: host, TIDEBOX_DOCKERD_ARGS: dockerdArgs, TIDEBOX_DOCKERD_LOG: join(dir, 'dockerd.log') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const cmdline = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    } catch {
      return '';
    }
  };
  let dockerdPid = 0;
  try {
    await waitFor('the bootstrap to start the engine and reach its command', () => cmdline(child.pid!) === 'sleep 600', 300_000, 250);
    expect(output).toContain('keeps running when Tidebox stops');
    dockerdPid = Number(readFileSync(pidFile, 'utf8').trim());
    // Its own session, not the job's: nothing sent to the job's group reaches it.
    const session = Number(readFileSync(`/proc/${dockerdPid}/stat`, 'utf8').split(') ')[1]!.split(' ')[3]);
    expect(session).toBe(dockerdPid);
    // A container that has nothing to do with Tidebox (the bootstrap imported the test image into this engine).
    const outside = await engine.createContainer({
      Image: 'tidebox/busybox:latest',
      Cmd: ['sleep', '1000'],
      HostConfig: { NetworkMode: 'none' },
    });
    await outside.start();

    process.kill(-child.pid!, 'SIGINT');
    await exited;
    // A whole container round trip after the signal: an engine that had been told to stop would refuse or be gone.
    const probe = await engine.createContainer({ Image: 'tidebox/busybox:latest', Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
    await probe.start();
    expect((await probe.wait()).StatusCode).toBe(0);
    await probe.remove();
    expect((await outside.inspect()).State.Running).toBe(true);
    expect(readFileSync(join(dir, 'dockerd.log'), 'utf8')).not.toMatch(/Processing signal/);
    await outside.remove({ force: true });
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    if (dockerdPid) {
      for (const c of await engine.listContainers({ all: true }).catch(() => [])) await engine.getContainer(c.Id).remove({ force: true });
      process.kill(dockerdPid, 'SIGTERM');
      await waitFor('the test engine to stop', () => !cmdline(dockerdPid).startsWith('dockerd'), 60_000, 200);
    }
    // dockerd binds its data root onto itself and undoes it on a clean stop; after any other, undo it here.
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '');
    for (const m of mounts.filter((m) => m.startsWith(dir)).reverse()) spawnSync('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  }
}, 400_000);

describe('the first run, readable', () => {
  it('when npm start runs, then the terminal shows one line per bootstrap step and at most 15 lines before the ready block; the tools write to the log', async () => {
    const { dataDir, env, cleanUp } = await launch('npm-start');
    const bootstrapLog = join(dataDir, 'bootstrap.log');
    const child = spawn('npm', ['start'], {
      cwd: repoRoot(),
      detached: true,
      env: { ...env, TIDEBOX_BOOTSTRAP_LOG: bootstrapLog },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await waitFor('the ready block', () => output.includes('Ctrl-C stops everything'), 180_000, 200);
      const lines = output.split('\n');
      const before = lines.slice(
        0,
        lines.findIndex((l) => l.includes('Tidebox API')),
      );
      expect(before.length).toBeLessThanOrEqual(15);
      const steps = lines.filter((l) => /^\[\d\/7\] /.test(l));
      expect(steps).toHaveLength(7);
      for (const s of steps) expect(s).toMatch(/^\[\d\/7\] .+ … .+ \(\d+ s\)$/);
      expect(output).not.toMatch(/Deprecat|FSTDEP|EBADENGINE|npm WARN/);
      // What the tools said is in the log, step by step.
      const log = readFileSync(bootstrapLog, 'utf8');
      expect(log).toMatch(/=== \[2\/7\] build\n/);
      expect(log).toMatch(/=== \[7\/7\] image tidebox\/busybox:latest\n/);
    } finally {
      try {
        process.kill(-child.pid!, 'SIGINT');
      } catch {
        // gone
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
      await cleanUp();
    }
  }, 240_000);

  it('when a bootstrap step fails, then its line says failed and why, followed by the last lines of the log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidebox-bootstrap-fail-'));
    try {
      const r = spawnSync('bash', ['scripts/bootstrap.sh', 'true'], {
        cwd: repoRoot(),
        env: {
          ...process.env,
          TEMPORAL_CLI_PATH: join(dir, 'no-such-temporal'),
          TEMPORAL_ADDRESS: '',
          TIDEBOX_BOOTSTRAP_LOG: join(dir, 'b.log'),
        },
        encoding: 'utf8',
        timeout: 180_000,
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/\[3\/7\] Temporal CLI … failed \(\d+ s\): TEMPORAL_CLI_PATH=\S+ is not executable\n/);
      expect(r.stderr).toContain(`--- the last lines of ${join(dir, 'b.log')} ---`);
      expect(r.stderr).toContain('=== [3/7] Temporal CLI');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 200_000);
});
