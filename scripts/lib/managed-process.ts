import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';

/** A child Node process (worker or API) that can be stopped gracefully or killed outright. */
export class ManagedProcess {
  private child?: ChildProcess;
  private exitedPromise?: Promise<number | null>;

  constructor(
    readonly name: string,
    private readonly script: string,
    private readonly env: NodeJS.ProcessEnv,
    /** A log file path, or 'inherit' to share the parent's stdout/stderr. */
    private readonly output: string | 'inherit',
  ) {}

  start(): void {
    const child = spawn(process.execPath, ['--enable-source-maps', this.script], {
      env: this.env,
      stdio: this.output === 'inherit' ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
    });
    if (this.output !== 'inherit') {
      const log = createWriteStream(this.output, { flags: 'a' });
      child.stdout!.pipe(log);
      child.stderr!.pipe(log);
    }
    this.child = child;
    this.exitedPromise = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resolves with the exit code once the process has exited. */
  exited(): Promise<number | null> {
    return this.exitedPromise ?? Promise.resolve(null);
  }

  /** SIGKILL: the crash case. No cleanup runs in the child. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGKILL');
    await this.exitedPromise;
  }

  /** SIGTERM, escalating to SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await this.exitedPromise;
    clearTimeout(timer);
  }
}
