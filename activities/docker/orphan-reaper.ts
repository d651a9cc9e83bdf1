import type { HostLog } from '../../contracts/runtime';
import type { BindPins } from './bind-pins';
import type { DockerEngine } from './docker-engine';

export interface OrphanReaperOptions {
  engine: DockerEngine;
  /** The actor's own word: its workflow is gone or closed (a live sandbox, whatever its state, is never reaped). */
  actorGone: (sandboxId: string) => Promise<boolean>;
  /** A warm pool member: whether its pool actor still holds it in its ledger (then it has no sandbox actor yet). */
  poolHolds?: (pool: string, sandboxId: string) => Promise<boolean>;
  /** A container younger than this is left alone (its actor may not be visible yet). */
  graceMs: number;
  intervalMs: number;
  log: HostLog;
  signal: AbortSignal;
  /** Host-volume pins: only a container not yet started needs its pins; any other pin is released. */
  pins?: BindPins;
  /** More of this host's leftovers to sweep on the same beat (e.g. bucket mounts no actor holds). */
  sweeps?: Array<{ name: string; sweep: () => Promise<void> }>;
}

/**
 * Docker has no owner references: a container whose actor ended without removing it (terminated by
 * an operator, its history cut short, a crash between create and record) would run forever. Every
 * `intervalMs` this sweep asks each container's actor whether it still claims it, and removes the
 * ones no actor claims once they are older than the grace period. It also releases host-volume pins
 * left by a worker that crashed between pinning and starting (only a created, unstarted container
 * needs them).
 */
export function startOrphanReaper(o: OrphanReaperOptions): void {
  let running = false;
  const sweep = async () => {
    const containers = await o.engine.instanceContainers();
    for (const container of containers) {
      if (Date.now() - container.createdMs < o.graceMs) continue;
      if (container.pool && o.poolHolds && (await o.poolHolds(container.pool, container.sandboxId))) continue;
      if (!(await o.actorGone(container.sandboxId))) continue;
      if (await o.engine.removeContainer(container.id))
        o.log.warn('removed a container no sandbox actor claims', {
          sandboxId: container.sandboxId,
          containerId: container.id.slice(0, 12),
        });
    }
    if (!o.pins) return;
    const starting = new Set(containers.filter((c) => c.state === 'created').map((c) => c.sandboxId));
    for (const { sandboxId, ageMs } of o.pins.sandboxes()) {
      if (ageMs < o.graceMs || starting.has(sandboxId)) continue;
      const released = await o.pins.release(sandboxId);
      if (released) o.log.warn('released host-volume pins no starting container needs', { sandboxId, count: released });
    }
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    const all = [{ name: 'containers', sweep }, ...(o.sweeps ?? [])];
    void (async () => {
      for (const s of all)
        await s.sweep().catch((err: unknown) => o.log.warn('the orphan sweep failed', { of: s.name, error: (err as Error).message }));
    })().finally(() => (running = false));
  }, o.intervalMs);
  timer.unref();
  o.signal.addEventListener('abort', () => clearInterval(timer), { once: true });
}
