import { readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostLog } from '../../contracts/runtime';
import type { Config } from '../../core/config';
import { isMountKey } from '../../core/mounts';
import { exclusive, mountAt, mountRootOf, prepareMountRoot, run } from './mount-activities';

const unescapeMountField = (field: string) => field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
/** Never cancelled: the sweep is not an activity. */
const never = new Promise<never>(() => undefined);

export interface MountSweepOptions {
  config: Config;
  /** Whether the mount actor of `key` on this host is open (describe, not visibility). */
  actorOpen: (key: string) => Promise<boolean>;
  /** A mount must be seen without an open actor for this long before it is taken down. */
  graceMs: number;
  log: HostLog;
}

/**
 * Bucket mounts on this host that no open mount actor holds (an operator terminated the actor, or
 * its history was cut short) would stay mounted, with credentials in their daemon, for ever. Each
 * sweep lists the mounts under the mount root and asks each key's actor; a mount seen unclaimed for
 * `graceMs` is detached (under the same per-path lock the mount activities take, re-asking the actor
 * inside it, so a new actor that is mounting the same bucket waits and then mounts afresh).
 */
export function createMountSweep(o: MountSweepOptions): () => Promise<void> {
  const unclaimedSince = new Map<string, number>();
  const { ossfs } = o.config;
  return async () => {
    const root = await prepareMountRoot(mountRootOf(o.config));
    const mounted = (await readFile('/proc/mounts', 'utf8'))
      .split('\n')
      .map((line) => unescapeMountField(line.split(' ')[1] ?? ''))
      .filter((p) => p.startsWith(`${root}/`) && isMountKey(p.slice(root.length + 1)))
      .map((p) => p.slice(root.length + 1));
    for (const key of [...unclaimedSince.keys()]) if (!mounted.includes(key)) unclaimedSince.delete(key);
    for (const key of mounted) {
      if (await o.actorOpen(key)) {
        unclaimedSince.delete(key);
        continue;
      }
      const since = unclaimedSince.get(key) ?? Date.now();
      unclaimedSince.set(key, since);
      if (Date.now() - since < o.graceMs) continue;
      const hostPath = join(root, key);
      await exclusive(
        hostPath,
        async () => {
          if ((await o.actorOpen(key)) || !(await mountAt(hostPath))) return;
          await run(ossfs.fusermountBinary, ['-uz', hostPath], 30_000);
          if (await mountAt(hostPath)) await run(ossfs.umountBinary, ['-l', hostPath], 30_000);
          if (await mountAt(hostPath)) throw new Error(`${hostPath} is still mounted after a lazy detach`);
          await rmdir(hostPath).catch(() => undefined);
          unclaimedSince.delete(key);
          o.log.warn('detached a bucket mount no mount actor holds', { key });
        },
        never,
      );
    }
  };
}
