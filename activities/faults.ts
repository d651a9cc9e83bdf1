import { Context } from '@temporalio/activity';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../core/config';

export type FaultPoint = Config['faults']['hangAt'][number];
export type FailurePoint = Config['faults']['failAt'][number];

/**
 * Test-only crash points. When a point is configured, the activity records that it got there
 * (a file `<dataDir>/faults/<point>.<subject>`) and then hangs, heartbeating, until cancelled,
 * killed, or released (a file of the same name plus `.release`: a fault elsewhere — the API killed,
 * Temporal restarted — was made at that moment, and the step goes on). Crash tests wait for the file
 * and SIGKILL the worker at exactly that moment.
 */
export function createFaults(config: Pick<Config, 'faults' | 'dataDir'>) {
  const points = new Set<FaultPoint>(config.faults.hangAt);
  const failures = new Set<FailurePoint>(config.faults.failAt);
  return {
    /** Throw `error()` when this failure point is configured. */
    failIf(point: FailurePoint, error: () => Error): void {
      if (failures.has(point)) throw error();
    },
    async reached(point: FaultPoint, subject: string): Promise<void> {
      if (!points.has(point)) return;
      const dir = join(config.dataDir, 'faults');
      await mkdir(dir, { recursive: true });
      const file = join(dir, `${point}.${subject}`);
      await writeFile(file, `${process.pid}\n`);
      while (!existsSync(`${file}.release`)) {
        Context.current().heartbeat(point);
        await Context.current().sleep(500);
      }
    },
  };
}
export type Faults = ReturnType<typeof createFaults>;
