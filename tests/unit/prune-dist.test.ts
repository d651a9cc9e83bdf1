import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '../helpers/stack';

describe('build: stale outputs are pruned before tsc', () => {
  it('when a source moved (api/temporal.ts → api/temporal/index.ts), then its old .js goes, so Node cannot resolve it before the new folder', () => {
    const root = mkdtempSync(join(tmpdir(), 'tidebox-prune-'));
    const put = (path: string) => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), '');
    };
    try {
      for (const f of ['api/temporal/index.ts', 'scripts/x.mjs']) put(f);
      for (const f of [
        'dist/api/temporal.js',
        'dist/api/temporal.js.map',
        'dist/api/temporal/index.js',
        'dist/scripts/x.js',
        'dist/workflow-bundle.js',
      ])
        put(f);
      const run = spawnSync(process.execPath, [join(repoRoot(), 'scripts/prune-dist.mjs'), root], { encoding: 'utf8' });
      expect(run.status).toBe(0);
      const left = (f: string) => existsSync(join(root, f));
      expect([left('dist/api/temporal.js'), left('dist/api/temporal.js.map')]).toEqual([false, false]);
      expect([left('dist/api/temporal/index.js'), left('dist/scripts/x.js'), left('dist/workflow-bundle.js')]).toEqual([true, true, true]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
