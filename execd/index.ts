import type { Readable } from 'node:stream';
import Dockerode from 'dockerode';
import type { ExecdConfig } from '../core/execd';
import { LABELS } from '../contracts/labels';
import { forEachLine } from '../platform/lines';
import { SandboxCommands } from './commands';
import { DockerProcesses } from './docker-exec';
import { ExecChannel } from './exec-channel';
import { ContainerFiles } from './docker-files';
import { ExecdError } from './errors';
import { SandboxSessions } from './sessions';
import { ShellFiles } from './shell-files';

export { ExecdError } from './errors';
export type { CommandOptions, CommandStatus } from './commands';
export type { StreamName } from './process';
export type { Permission } from './docker-files';

/**
 * The data plane behind the execd API: commands and files of running sandboxes, straight against
 * the Docker engine this API runs beside (no workflow: command output never enters Temporal's
 * history, and a command's round trip stays in milliseconds). One entry per sandbox in use: its
 * container, warm execs, commands and file access; idle entries are dropped.
 */

export interface Metrics {
  cpu_count: number;
  cpu_used_pct: number;
  mem_total_mib: number;
  mem_used_mib: number;
  timestamp: number;
}

export interface SandboxExecd {
  commands: SandboxCommands;
  sessions: SandboxSessions;
  /** Through the archive API: info, download, upload, replace (any image). */
  files: ContainerFiles;
  /** Through shell scripts: list, search, move, delete, mkdir, permissions (images with a shell). */
  paths: ShellFiles;
  metrics(): Promise<Metrics>;
  /** Stats every second until the returned stop() (or the engine ends the stream). */
  watchMetrics(onMetrics: (m: Metrics) => void, onEnd: () => void): Promise<() => void>;
}

interface Entry {
  containerId: string;
  exec: ExecChannel;
  api: SandboxExecd;
  lastUsed: number;
}

/** An entry unused this long, with no command running, is dropped (its warm execs end). */
const IDLE_MS = 10 * 60_000;

export class DockerExecd {
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly docker: Dockerode,
    private readonly config: { instance: string; execd: ExecdConfig },
  ) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  static connect(config: { instance: string; execd: ExecdConfig; docker: { socketPath?: string | undefined } }): DockerExecd {
    return new DockerExecd(new Dockerode(config.docker.socketPath ? { socketPath: config.docker.socketPath } : undefined), config);
  }

  /** The execd of a sandbox whose container runs (the caller has checked the sandbox is its and Running). */
  async open(sandboxId: string): Promise<SandboxExecd> {
    const cached = this.entries.get(sandboxId);
    if (cached) {
      cached.lastUsed = Date.now();
      return cached.api;
    }
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.instance}=${this.config.instance}`, `${LABELS.sandboxId}=${sandboxId}`] },
    });
    const container = containers[0];
    if (!container) throw new ExecdError(404, 'SANDBOX::NOT_FOUND', `sandbox ${sandboxId} has no container on this host`);
    if (container.State === 'paused') throw new ExecdError(409, 'SANDBOX::INVALID_STATE', `sandbox ${sandboxId} is paused`);
    if (container.State !== 'running')
      throw new ExecdError(409, 'SANDBOX::INVALID_STATE', `the container of sandbox ${sandboxId} is ${container.State}`);
    const again = this.entries.get(sandboxId);
    if (again) return again.api;
    const entry = this.entry(container.Id);
    this.entries.set(sandboxId, entry);
    return entry.api;
  }

  /** Drop what is kept for a sandbox (it was paused, deleted, or its container is gone). */
  forget(sandboxId: string): void {
    const entry = this.entries.get(sandboxId);
    if (!entry) return;
    this.entries.delete(sandboxId);
    entry.api.sessions.closeAll();
    entry.exec.dispose();
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const id of [...this.entries.keys()]) this.forget(id);
  }

  private sweep(): void {
    const horizon = Date.now() - IDLE_MS;
    for (const [id, e] of this.entries) if (e.lastUsed < horizon && e.api.commands.active === 0) this.forget(id);
  }

  private entry(containerId: string): Entry {
    const { execd } = this.config;
    const exec = new ExecChannel(new DockerProcesses(this.docker, containerId), execd.warmExecs);
    const container = this.docker.getContainer(containerId);
    const api: SandboxExecd = {
      commands: new SandboxCommands(exec, execd),
      sessions: new SandboxSessions(exec, execd.commandsPerSandbox),
      files: new ContainerFiles(this.docker, containerId),
      paths: new ShellFiles(exec, execd.maxListEntries),
      metrics: async () => toMetrics((await container.stats({ stream: false })) as unknown as DockerStats, await cpuLimit(container)),
      watchMetrics: async (onMetrics, onEnd) => {
        const cpus = await cpuLimit(container);
        const stream = (await container.stats({ stream: true })) as unknown as Readable;
        forEachLine(stream, (line) => {
          let stats: DockerStats;
          try {
            stats = JSON.parse(line) as DockerStats;
          } catch {
            return; // not a stats object: skip it, the next second brings another
          }
          onMetrics(toMetrics(stats, cpus));
        });
        stream.once('close', onEnd);
        stream.once('error', () => stream.destroy());
        return () => stream.destroy();
      },
    };
    return { containerId, exec, api, lastUsed: Date.now() };
  }
}

interface DockerStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: { inactive_file?: number; total_inactive_file?: number; cache?: number } };
}

/** The CPUs the sandbox may use: its limit, else the host's. */
async function cpuLimit(container: Dockerode.Container): Promise<number | undefined> {
  const info = await container.inspect();
  const nano = info.HostConfig?.NanoCpus ?? 0;
  if (nano > 0) return nano / 1e9;
  const { CpuQuota: quota = 0, CpuPeriod: period = 0 } = info.HostConfig ?? {};
  return quota > 0 && period > 0 ? quota / period : undefined;
}

const MIB = 1024 * 1024;

/** Docker's stats as execd's metrics: CPU as a share of what the sandbox may use, memory less reclaimable cache. */
export function toMetrics(s: DockerStats, cpuLimit: number | undefined): Metrics {
  const online = s.cpu_stats?.online_cpus ?? 1;
  const cpuCount = cpuLimit ?? online;
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const usedCores = systemDelta > 0 && cpuDelta > 0 ? (cpuDelta / systemDelta) * online : 0;
  const mem = s.memory_stats ?? {};
  const cache = mem.stats?.inactive_file ?? mem.stats?.total_inactive_file ?? mem.stats?.cache ?? 0;
  return {
    cpu_count: cpuCount,
    cpu_used_pct: Math.min(100, (usedCores / cpuCount) * 100),
    mem_total_mib: (mem.limit ?? 0) / MIB,
    mem_used_mib: Math.max(0, (mem.usage ?? 0) - cache) / MIB,
    timestamp: Date.now(),
  };
}
