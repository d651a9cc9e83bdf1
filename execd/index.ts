import type { ExecdConfig } from '../core/execd-config';
import { LogBudget, SandboxCommands } from './commands';
import { ExecChannel } from './exec-channel';
import type { FilesPort } from './files-port';
import type { ProcessStarter } from './process';
import { SandboxSessions } from './sessions';
import { ShellFiles } from './shell-files';

import { ExecdError } from './errors';

export { ExecdError };
export type { CommandOptions, CommandStatus } from './commands';
export type { StreamName } from './process';
export type { Permission } from './files-port';

/**
 * The data plane behind the execd API: commands and files of running sandboxes, straight against
 * the runtime beside this API — the Docker engine (docker-backend.ts) or the Kubernetes API's pod
 * exec (kube-backend.ts). No workflow: command output never enters Temporal's history, and a
 * command's round trip stays in milliseconds. One entry per sandbox in use: its warm execs,
 * commands, sessions and file access; idle entries are dropped.
 */

export interface Metrics {
  cpu_count: number;
  cpu_used_pct: number;
  mem_total_mib: number;
  mem_used_mib: number;
  timestamp: number;
}

/** A sandbox's workload as a runtime finds it. */
export interface Workload {
  /** Changes when the workload is replaced (a new container or pod). */
  key: string;
  processes: ProcessStarter;
  files(paths: ShellFiles): FilesPort;
  metrics(exec: ExecChannel): Promise<Metrics>;
  /** A stream of metrics where the runtime has one; else metrics() is polled every second. */
  watchMetrics?(onMetrics: (m: Metrics) => void, onEnd: () => void): Promise<() => void>;
}

export interface ExecdBackend {
  /** The running workload of a sandbox; 404 without one, 409 when it is not running. */
  locate(target: { id: string; namespace?: string }): Promise<Workload>;
}

export interface SandboxExecd {
  commands: SandboxCommands;
  sessions: SandboxSessions;
  /** Bytes in and out: Docker's archive API (any image), or tar over a pod exec. */
  files: FilesPort;
  /** Through shell scripts: info, list, search, move, delete, mkdir, permissions (images with a shell). */
  paths: ShellFiles;
  metrics(): Promise<Metrics>;
  /** Metrics about every second until the returned stop() (or the runtime ends the stream). */
  watchMetrics(onMetrics: (m: Metrics) => void, onEnd: () => void): Promise<() => void>;
}

interface Entry {
  exec: ExecChannel;
  api: SandboxExecd;
  lastUsed: number;
  /** Asked for by a caller (not only primed): swept once idle. Primed only, it is kept while its warm exec lives. */
  opened: boolean;
}

/** An entry unused this long, with no command running, is dropped (its warm execs end). */
const IDLE_MS = 10 * 60_000;

export class Execd {
  private readonly entries = new Map<string, Entry>();
  /** Sandboxes this process paused: refused (409) until resumed, whatever the API believed a moment before. */
  private readonly paused = new Set<string>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly logs: LogBudget;

  constructor(
    private readonly backend: ExecdBackend,
    private readonly config: ExecdConfig,
  ) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
    this.logs = new LogBudget(config.logBytesTotal);
  }

  /** The execd of a sandbox whose workload runs (the caller has checked the sandbox is its and Running). */
  async open(target: { id: string; namespace?: string }): Promise<SandboxExecd> {
    if (this.paused.has(target.id)) throw new ExecdError(409, 'SANDBOX::INVALID_STATE', `sandbox ${target.id} is paused`);
    const entry = await this.entryOf(target);
    entry.lastUsed = Date.now();
    entry.opened = true;
    return entry.api;
  }

  /**
   * Make the first command of a sandbox as fast as its next ones: ask its image what it has and start
   * a warm exec now. For a warm pool member, before it is frozen: its processes (Tidebox's shell, not
   * user code) thaw with it when a claim makes it a sandbox of the same id. Kept, however long the
   * member waits, while that exec lives; the member's removal ends it and the entry goes at the next sweep.
   */
  async prime(target: { id: string; namespace?: string }): Promise<void> {
    await (await this.entryOf(target)).exec.prime();
  }

  private async entryOf(target: { id: string; namespace?: string }): Promise<Entry> {
    const cached = this.entries.get(target.id);
    if (cached) return cached;
    const workload = await this.backend.locate(target);
    const again = this.entries.get(target.id);
    if (again) return again;
    const entry = this.entry(workload);
    this.entries.set(target.id, entry);
    return entry;
  }

  /**
   * The runtime beside this execd pauses (true, before the freeze) and resumes (false, after the thaw)
   * or removes (false) the sandbox's workload. After a restart the engine's own state says it (locate).
   */
  setPaused(sandboxId: string, paused: boolean): void {
    if (paused) this.paused.add(sandboxId);
    else this.paused.delete(sandboxId);
  }

  /** Drop what is kept for a sandbox (it was paused, deleted, or its workload is gone). */
  forget(sandboxId: string): void {
    const entry = this.entries.get(sandboxId);
    if (!entry) return;
    this.entries.delete(sandboxId);
    entry.api.sessions.closeAll();
    entry.api.commands.dispose();
    entry.exec.dispose();
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const id of [...this.entries.keys()]) this.forget(id);
  }

  private sweep(): void {
    const horizon = Date.now() - IDLE_MS;
    for (const [id, e] of this.entries) {
      if (!e.opened && e.exec.warmCount > 0) continue; // a primed pool member, waiting for its claim
      if (e.lastUsed < horizon && e.api.commands.active === 0) this.forget(id);
    }
  }

  private entry(workload: Workload): Entry {
    const exec = new ExecChannel(workload.processes, this.config.warmExecs);
    const paths = new ShellFiles(exec, this.config.maxListEntries);
    const api: SandboxExecd = {
      commands: new SandboxCommands(exec, this.config, this.logs),
      sessions: new SandboxSessions(exec, this.config.commandsPerSandbox),
      files: workload.files(paths),
      paths,
      metrics: () => workload.metrics(exec),
      watchMetrics:
        workload.watchMetrics?.bind(workload) ?? ((onMetrics, onEnd) => pollMetrics(() => workload.metrics(exec), onMetrics, onEnd)),
    };
    return { exec, api, lastUsed: Date.now(), opened: false };
  }
}

/** metrics() again as soon as the last one is in (each samples about a second) until stopped or failing. */
async function pollMetrics(read: () => Promise<Metrics>, onMetrics: (m: Metrics) => void, onEnd: () => void): Promise<() => void> {
  let stopped = false;
  void (async () => {
    while (!stopped) {
      try {
        onMetrics(await read());
      } catch {
        break;
      }
    }
    onEnd();
  })();
  return () => (stopped = true);
}
