import { execFile, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Sandbox } from '@alibaba-group/opensandbox';
import Dockerode from 'dockerode';
import * as tar from 'tar-stream';
import { Stack, TEST_IMAGE } from '../tests/helpers/stack';
import { interleaved, quantile } from './create-delete';

/**
 * The execd part of `npm run bench`, in one run beside the raw engine, on the same running sandbox:
 *  - a command round trip (`true`, `echo hi`) through the OpenSandbox TS SDK → Tidebox's execd,
 *    vs one Engine API exec (create, start with attach, wait, inspect) — what `docker exec` does;
 *  - a 20 MB file written and read through the SDK vs the `docker cp` command (a host file in and
 *    out), and vs the Engine's archive API called directly with the bytes in memory (what `docker cp`
 *    does, without the CLI and the host file), as throughput. The SDK client runs in a process of
 *    its own (execd-client.ts), as the `docker cp` CLI does.
 * Bounded: N iterations per measure, and a time budget.
 */
const N = Number(process.env.BENCH_ITERATIONS ?? 50);
const FILE_RUNS = Math.max(5, Math.round(N / 5));
const FILE_BYTES = 20 * 1024 * 1024;
const BUDGET_MS = 10 * 60_000;
const API_KEY = 'bench-execd-key-0123456789';

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function repeat(n: number, deadline: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n + 2; i++) {
    if (Date.now() > deadline) throw new Error('time budget exhausted');
    const ms = await timed(fn);
    if (i >= 2) out.push(ms); // two warm-up rounds
  }
  return out;
}

/** `docker exec` through the Engine API: create, start attached, read to the end, inspect the exit code. */
async function rawExec(container: Dockerode.Container, cmd: string[]): Promise<string> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = (await exec.start({ hijack: true, stdin: false })) as unknown as Readable;
  let out = '';
  stream.on('data', (d: Buffer) => (out += d.subarray(8).toString()));
  await new Promise((r) => stream.once('end', r));
  const info = await exec.inspect();
  if (info.ExitCode !== 0) throw new Error(`raw exec exited ${info.ExitCode}`);
  return out;
}

/** The `docker cp` command itself (the engine the bench's Stack uses: the default socket or DOCKER_HOST). */
async function dockerCp(from: string, to: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile('docker', ['cp', '-q', from, to], { timeout: 60_000 }, (err) => (err ? reject(err) : resolve()));
  });
}

/** What `docker cp` does in, without the CLI: a one-file tar to the archive API. */
async function rawPut(container: Dockerode.Container, data: Buffer): Promise<void> {
  const pack = tar.pack();
  pack.entry({ name: 'raw.bin', size: data.length, mode: 0o644 }, data);
  pack.finalize();
  await container.putArchive(pack as unknown as Readable, { path: '/tmp' });
}

/** What `docker cp` does out, without the CLI: the archive of one file, its bytes read to the end. */
async function rawGet(container: Dockerode.Container): Promise<number> {
  const stream = (await container.getArchive({ path: '/tmp/raw.bin' })) as unknown as Readable;
  const extract = tar.extract();
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    extract.on('entry', (_h, s, next) => {
      s.on('data', (c) => (size += (c as Buffer).length));
      s.on('end', next);
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    stream.pipe(extract);
  });
  return size;
}

/** The SDK file client's process: `run('up' | 'down')` answers the SDK call's time in ms. */
async function sdkFilesClient(args: { domain: string; apiKey: string; sandboxId: string; path: string; bytes: number }) {
  const child: ChildProcess = fork(join(__dirname, 'execd-client.js'), [JSON.stringify(args)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = () =>
    new Promise<{ ms?: number; error?: string; ready?: boolean }>((resolve, reject) => {
      const exited = (code: number | null) => reject(new Error(`the SDK file client exited (${code})`));
      child.once('exit', exited);
      child.once('message', (m) => {
        child.off('exit', exited);
        resolve(m as { ms?: number; error?: string });
      });
    });
  await next();
  return {
    async run(op: 'up' | 'down'): Promise<number> {
      const answer = next();
      child.send(op);
      const { ms, error } = await answer;
      if (error !== undefined || ms === undefined) throw new Error(`SDK ${op}: ${error}`);
      return ms;
    },
    close: () => child.kill(),
  };
}

export async function benchExecd(): Promise<void> {
  const deadline = Date.now() + BUDGET_MS;
  const stack = await Stack.start({ apiKey: API_KEY });
  const sandbox = await Sandbox.create({
    connectionConfig: { domain: stack.baseUrl, apiKey: API_KEY },
    image: TEST_IMAGE,
    entrypoint: ['tail', '-f', '/dev/null'],
    resource: { cpu: '1', memory: '256Mi' },
    timeoutSeconds: 1800,
  });
  try {
    const [info] = await stack.containers(sandbox.id);
    const container = stack.docker.getContainer(info!.Id);
    const rows: string[] = [];
    const row = (what: string, t: number[], r: number[]) => {
      const [t50, t95, r50, r95] = [quantile(t, 0.5), quantile(t, 0.95), quantile(r, 0.5), quantile(r, 0.95)];
      rows.push(`| ${what} | ${t50.toFixed(1)} | ${t95.toFixed(1)} | ${r50.toFixed(1)} | ${r95.toFixed(1)} | ${(t50 / r50).toFixed(2)} |`);
    };
    for (const [label, command, argv] of [
      ['command `true`', 'true', ['true']],
      ['command `echo hi`', 'echo hi', ['echo', 'hi']],
    ] as const) {
      const t = await repeat(N, deadline, async () => {
        const run = await sandbox.commands.run(command);
        if (run.exitCode !== 0) throw new Error(`${command} exited ${run.exitCode}`);
      });
      const r = await repeat(N, deadline, () => rawExec(container, [...argv]));
      row(label, t, r);
    }

    const data = randomBytes(FILE_BYTES);
    const sdk = await sdkFilesClient({
      domain: stack.baseUrl,
      apiKey: API_KEY,
      sandboxId: sandbox.id,
      path: '/tmp/sdk.bin',
      bytes: FILE_BYTES,
    });
    const dir = await mkdtemp(join(tmpdir(), 'tidebox-bench-'));
    const files = await (async () => {
      try {
        await writeFile(join(dir, 'in.bin'), data);
        const cpIn = () => dockerCp(join(dir, 'in.bin'), `${info!.Id}:/tmp/cli.bin`);
        const cpOut = async () => {
          await dockerCp(`${info!.Id}:/tmp/cli.bin`, join(dir, 'out.bin'));
          if ((await stat(join(dir, 'out.bin'))).size !== FILE_BYTES) throw new Error('docker cp out short');
        };
        // Each file a read reads exists before the rounds start.
        await cpIn();
        await rawPut(container, data);
        await sdk.run('up');
        // Side by side, round by round: a slow minute of the VM is charged to both.
        return await interleaved(
          {
            up: () => sdk.run('up'),
            rawUp: () => timed(() => rawPut(container, data)),
            cpUp: () => timed(cpIn),
            down: () => sdk.run('down'),
            rawDown: () =>
              timed(async () => {
                if ((await rawGet(container)) !== FILE_BYTES) throw new Error('raw read short');
              }),
            cpDown: () => timed(cpOut),
          },
          FILE_RUNS,
          deadline,
        );
      } finally {
        sdk.close();
        await rm(dir, { recursive: true, force: true });
      }
    })();
    const { up, rawUp, cpUp, down, rawDown, cpDown } = files;
    const mbps = (ms: number) => FILE_BYTES / 2 ** 20 / (ms / 1000);
    const thru = (what: string, t: number[], r: number[]) => {
      const [t50, r50] = [mbps(quantile(t, 0.5)), mbps(quantile(r, 0.5))];
      rows.push(`| ${what} (MB/s at p50) | ${t50.toFixed(0)} | | ${r50.toFixed(0)} | | ${(t50 / r50).toFixed(2)} |`);
    };
    thru('20 MB upload vs `docker cp`', up, cpUp);
    thru('20 MB download vs `docker cp`', down, cpDown);
    thru('20 MB upload vs archive API', up, rawUp);
    thru('20 MB download vs archive API', down, rawDown);

    console.log(`\nexecd: ${N} sequential commands, ${FILE_RUNS} interleaved rounds of file transfers (after 2 warm-up), times in ms\n`);
    console.log('| measure | Tidebox p50 | Tidebox p95 | raw p50 | raw p95 | ratio p50 (Tidebox/raw) |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    await sandbox.kill().catch(() => undefined);
    await stack.destroy();
  }
}
