import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLUSTER_MARKER, stopCluster } from './temporal-cluster';

const PREFIX = 'tidebox-temporal-cluster-';

/** Whether a process of this pid is alive (signal 0 probes without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * jest global set-up: makes the run's Temporal cluster state dir (private, unpredictable) and notes
 * whose it is; the first stack that needs the cluster starts it, the global tear-down stops it. A
 * cluster left by a run that was killed before its tear-down (its owner gone) is stopped here.
 */
export default async function globalSetup(): Promise<void> {
  for (const name of readdirSync(tmpdir()).filter((n) => n.startsWith(PREFIX))) {
    const dir = join(tmpdir(), name);
    const owner = existsSync(join(dir, '.owner')) ? Number(readFileSync(join(dir, '.owner'), 'utf8')) : NaN;
    if (!Number.isSafeInteger(owner) || alive(owner) || statSync(dir).uid !== process.getuid?.()) continue;
    if (existsSync(join(dir, CLUSTER_MARKER))) await stopCluster(dir);
    else rmSync(dir, { recursive: true, force: true });
  }
  if (!process.env.TIDEBOX_TEST_CLUSTER_DIR) {
    const dir = mkdtempSync(join(tmpdir(), PREFIX));
    writeFileSync(join(dir, '.owner'), String(process.pid));
    process.env.TIDEBOX_TEST_CLUSTER_DIR = dir;
  }
}
