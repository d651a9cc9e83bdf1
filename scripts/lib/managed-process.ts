import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';

/** A child Node process (worker or API) that can be stopped gracefully or killed outright. */
export class ManagedProcess {
  private child?: ChildProcess;
  private exitedPromise?: Promise<number | null>;
  private logClosed: Promise<void> = Promise.resolve();

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
      // Two streams into one file: neither may end it (the default), or the other's last lines — a
      // crash's stack written at exit — would be written after its end and throw in this process.
      const log = createWriteStream(this.output, { flags: 'a' });
      const ended = (s: NodeJS.ReadableStream) => new Promise<void>((resolve) => s.once('close', resolve));
      child.stdout!.pipe(log, { end: false });
      child.stderr!.pipe(log, { end: false });
      this.logClosed = Promise.all([ended(child.stdout!), ended(child.stderr!)]).then(
        () => new Promise<void>((resolve) => log.end(resolve)),
      );
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

  /**
   * Resolves once everything the process wrote is in its log file (both its streams closed), or after
   * `timeoutMs` (a child it started may hold them open).
   */
  async logFlushed(timeoutMs = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.logClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
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
