import type { HostLog, RuntimeHost, StartedWorkload } from '../../contracts/runtime';
import { fail } from '../common';

/**
 * The `noop` runtime — FOR SCALE MEASUREMENT ONLY, never for sandboxes anyone uses: every actor,
 * activity, timer, memo and search attribute of the real path, but no workload. Each "workload" is
 * an entry in this worker's memory (gone when it restarts: a later adopt finds nothing, a remove
 * removes nothing), so `npm run bench -- scale` measures Tidebox and Temporal at thousands of live
 * sandboxes without an engine making thousands of containers. Chosen only by `runtime.type = "noop"`;
 * the worker warns at start. Snapshots are refused; sandboxes have no ports, execd or bucket mounts.
 */
export function createNoopHost(log: HostLog): RuntimeHost {
  /** Sandbox id → its pretend container id. Pause and resume have nothing to freeze. */
  const workloads = new Map<string, string>();
  log.warn('runtime noop: sandboxes get no workload (scale measurement only; never for real use)');
  const unsupported = (what: string) => fail('NOT_SUPPORTED_BY_RUNTIME', `${what}: not supported on the noop runtime`);

  /** Idempotent: the pretend container id follows from the sandbox id. */
  const ensure = (sandboxId: string): string => {
    const containerId = `noop-${sandboxId}`;
    workloads.set(sandboxId, containerId);
    return containerId;
  };
  const started = (sandboxId: string): StartedWorkload => {
    const containerId = workloads.get(sandboxId);
    if (!containerId) throw fail('CONTAINER_EXITED', `sandbox ${sandboxId} has no workload on this noop host (its worker restarted)`);
    return { containerId, network: { hostNetwork: false, ports: {} } };
  };

  return {
    activities: {
      ensureContainer: async ({ sandboxId }) => ({ containerId: ensure(sandboxId) }),
      startContainer: async ({ sandboxId }) => started(sandboxId),
      createAndStartContainer: async ({ sandboxId }) => {
        ensure(sandboxId);
        return started(sandboxId);
      },
      adoptContainer: async ({ sandboxId }) => started(sandboxId),
      pauseContainer: async () => undefined,
      resumeContainer: async () => undefined,
      removeContainers: async ({ sandboxId }) => ({ removed: workloads.delete(sandboxId) ? 1 : 0 }),
      findSnapshotSource: async () => {
        throw unsupported('snapshots');
      },
      commitSnapshot: async () => {
        throw unsupported('snapshots');
      },
      inspectSnapshotImage: async () => {
        throw unsupported('snapshots');
      },
      removeSnapshotImage: async () => ({ outcome: 'absent' as const }),
    },
    // Nothing ends on its own.
    watchExits: (signal) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
      }),
  };
}
