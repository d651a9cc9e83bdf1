import type { HostLog } from '../../contracts/runtime';
import type { DockerEngine } from './docker-engine';

export interface OrphanReaperOptions {
  engine: DockerEngine;
  /** The actor's own word: its workflow is gone or closed (a live sandbox, whatever its state, is never reaped). */
  actorGone: (sandboxId: string) => Promise<boolean>;
  /** A container younger than this is left alone (its actor may not be visible yet). */
  graceMs: number;
  intervalMs: number;
  log: HostLog;
  signal: AbortSignal;
}

/**
 * Docker has no owner references: a container whose actor ended without removing it (terminated by
 * an operator, its history cut short, a crash between create and record) would run forever. Every
 * `intervalMs` this sweep asks each container's actor whether it still claims it, and removes the
 * ones no actor claims once they are older than the grace period.
 */
export function startOrphanReaper(o: OrphanReaperOptions): void {
  let running = false;
  const sweep = async () => {
    for (const container of await o.engine.instanceContainers()) {
      if (Date.now() - container.createdMs < o.graceMs) continue;
      if (!(await o.actorGone(container.sandboxId))) continue;
      if (await o.engine.removeContainer(container.id))
        o.log.warn('removed a container no sandbox actor claims', {
          sandboxId: container.sandboxId,
          containerId: container.id.slice(0, 12),
        });
    }
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sweep()
      .catch((err) => o.log.warn('the orphan sweep failed', { error: (err as Error).message }))
      .finally(() => (running = false));
  }, o.intervalMs);
  timer.unref();
  o.signal.addEventListener('abort', () => clearInterval(timer), { once: true });
}
