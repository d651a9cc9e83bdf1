import type { Readable } from 'node:stream';
import Dockerode from 'dockerode';
import { LABELS } from '../contracts/labels';
import { forEachLine } from '../platform/lines';
import { DockerProcesses } from './docker-exec';
import { ContainerFiles } from './docker-files';
import { ExecdError } from './errors';
import type { ExecdBackend, Metrics, Workload } from './index';

/**
 * Sandboxes as containers on the Docker engine beside this API: found by their labels; commands
 * through exec, files through the archive API (no shell needed), metrics from the engine's stats.
 */
export class DockerBackend implements ExecdBackend {
  constructor(
    private readonly docker: Dockerode,
    private readonly instance: string,
  ) {}

  static connect(config: { instance: string; docker: { socketPath?: string | undefined } }): DockerBackend {
    return new DockerBackend(
      new Dockerode(config.docker.socketPath ? { socketPath: config.docker.socketPath } : undefined),
      config.instance,
    );
  }

  async locate(target: { id: string }): Promise<Workload> {
    const containers = await this.docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.instance}=${this.instance}`, `${LABELS.sandboxId}=${target.id}`] },
    });
    const found = containers[0];
    if (!found) throw new ExecdError(404, 'SANDBOX::NOT_FOUND', `sandbox ${target.id} has no container on this host`);
    if (found.State === 'paused') throw new ExecdError(409, 'SANDBOX::INVALID_STATE', `sandbox ${target.id} is paused`);
    if (found.State !== 'running')
      throw new ExecdError(409, 'SANDBOX::INVALID_STATE', `the container of sandbox ${target.id} is ${found.State}`);
    const container = this.docker.getContainer(found.Id);
    return {
      key: found.Id,
      processes: new DockerProcesses(this.docker, found.Id),
      files: () => new ContainerFiles(this.docker, found.Id),
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
