import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_DECLARATIONS } from '../../contracts/search-attributes';

export interface DevServerOptions {
  cliPath: string;
  dbFile: string;
  port: number;
  /** undefined = headless (no UI). */
  uiPort?: number;
  logFile: string;
  namespace?: string;
  /** Dynamic config values (`--dynamic-config-value KEY=VALUE`, VALUE as JSON), e.g. to lower a server limit in a test. */
  dynamicConfig?: Record<string, unknown>;
}

/**
 * The embedded Temporal: `temporal server start-dev` with a SQLite file, so workflow state survives
 * restarts of the dev server. Used by the run command and by tests (which stop and restart it).
 */
export class TemporalDevServer {
  private child?: ChildProcess;
  private exited?: Promise<void>;

  constructor(readonly options: DevServerOptions) {}

  get address(): string {
    return `127.0.0.1:${this.options.port}`;
  }

  async start(timeoutMs = 60_000): Promise<void> {
    const o = this.options;
    mkdirSync(dirname(o.dbFile), { recursive: true });
    const args = [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(o.port),
      '--db-filename',
      o.dbFile,
      // Write-ahead log, still synced at every commit: as durable as the rollback journal SQLite uses
      // by default, and measured 1.6–1.8× the creates/s and half the expiry lateness at 300 live
      // sandboxes (docs/benchmarks.md). Back up temporal.db with its -wal file, or stopped.
      ...['journal_mode=wal', 'synchronous=full'].flatMap((p) => ['--sqlite-pragma', p]),
      '--namespace',
      o.namespace ?? 'default',
      '--log-level',
      'warn',
      ...SEARCH_ATTRIBUTE_DECLARATIONS.flatMap((d) => ['--search-attribute', `${d.name}=${d.cliType}`]),
      ...(o.uiPort ? ['--ui-port', String(o.uiPort), '--ui-ip', '127.0.0.1'] : ['--headless']),
      ...Object.entries(o.dynamicConfig ?? {}).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${JSON.stringify(value)}`]),
    ];
    const log = createWriteStream(o.logFile, { flags: 'a' });
    const child = spawn(o.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let exitedEarly = false;
    void this.exited.then(() => (exitedEarly = true));

    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exitedEarly) throw new Error(`temporal dev server exited during start-up; see ${o.logFile}`);
      try {
        const connection = await Connection.connect({ address: this.address, connectTimeout: 1000 });
        try {
          await connection.withDeadline(Date.now() + 2000, () =>
            connection.workflowService.describeNamespace({ namespace: o.namespace ?? 'default' }),
          );
          return;
        } finally {
          await connection.close();
        }
      } catch (err) {
        if (Date.now() > deadline) {
          await this.stop();
          throw new Error(`temporal dev server not ready after ${timeoutMs} ms: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
