import type { ExecChannel } from './exec-channel';
import type { ExecdBackend, Metrics, Workload } from './index';
import { type KubeConnection, PodProcesses } from './kube-exec';
import { PodFiles } from './pod-files';

/**
 * Sandboxes as pods: `sandbox-<id>` in the tenant's namespace, container `sandbox` (the names the
 * pod runtime gives them). Commands and files through the pod exec subresource; metrics from the
 * container's own cgroup (v2) files, sampled over a second.
 */
export class KubeBackend implements ExecdBackend {
  constructor(
    private readonly kube: KubeConnection,
    private readonly defaultNamespace: string,
  ) {}

  async locate(target: { id: string; namespace?: string }): Promise<Workload> {
    const processes = new PodProcesses(this.kube, {
      namespace: target.namespace ?? this.defaultNamespace,
      pod: `sandbox-${target.id}`,
      container: 'sandbox',
    });
    return {
      key: `${processes.target.namespace}/${processes.target.pod}`,
      processes,
      files: (paths) => new PodFiles(processes, paths),
      metrics: (exec) => cgroupMetrics(exec),
    };
  }
}

const CGROUP_SCRIPT = [
  'cg=/sys/fs/cgroup',
  'echo "cpu.max $(cat $cg/cpu.max 2>/dev/null || echo max 100000)"',
  'echo "memory.max $(cat $cg/memory.max 2>/dev/null || echo max)"',
  'echo "memory.current $(cat $cg/memory.current 2>/dev/null || echo 0)"',
  'echo "inactive_file $(grep "^inactive_file " $cg/memory.stat 2>/dev/null | cut -d" " -f2)"',
  'echo "nproc $(grep -c ^processor /proc/cpuinfo)"',
  'echo "memtotal $(grep ^MemTotal: /proc/meminfo | tr -s " " | cut -d" " -f2)"',
  'echo "usage0 $(grep "^usage_usec " $cg/cpu.stat | cut -d" " -f2)"',
  'sleep 1',
  'echo "usage1 $(grep "^usage_usec " $cg/cpu.stat | cut -d" " -f2)"',
].join('; ');

/** The sandbox's limits and use, read inside it from its cgroup (v2). */
export async function cgroupMetrics(exec: ExecChannel): Promise<Metrics> {
  let out = '';
  const run = await exec.run({
    command: CGROUP_SCRIPT,
    onOutput: (stream, data) => void (stream === 'stdout' && (out += data.toString('utf8'))),
  });
  await run.exited;
  return metricsFromCgroup(out, Date.now());
}

/** Parse what CGROUP_SCRIPT printed. */
export function metricsFromCgroup(out: string, timestamp: number): Metrics {
  const v = new Map(out.split('\n').map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1).trim()] as const));
  const [quota, period] = (v.get('cpu.max') ?? 'max 100000').split(/\s+/);
  const nproc = Number(v.get('nproc')) || 1;
  const cpuCount = quota && quota !== 'max' && Number(period) > 0 ? Number(quota) / Number(period) : nproc;
  const usedCores = Math.max(0, (Number(v.get('usage1')) - Number(v.get('usage0'))) / 1e6) || 0;
  const memMax = v.get('memory.max');
  const total = memMax && memMax !== 'max' ? Number(memMax) : (Number(v.get('memtotal')) || 0) * 1024;
  const used = Math.max(0, (Number(v.get('memory.current')) || 0) - (Number(v.get('inactive_file')) || 0));
  return {
    cpu_count: cpuCount,
    cpu_used_pct: Math.min(100, (usedCores / cpuCount) * 100),
    mem_total_mib: total / 2 ** 20,
    mem_used_mib: used / 2 ** 20,
    timestamp,
  };
}
