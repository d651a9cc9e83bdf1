import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopCluster, USE_CLUSTER_ENV } from '../tests/helpers/temporal-cluster';

/** The Temporal a bench's stacks run on: the dev server (SQLite), or the real cluster (scripts/temporal-test-cluster). */
export const BACKENDS = { dev: 'dev server (SQLite)', cluster: 'cluster (PostgreSQL 15)' } as const;
export type Backend = keyof typeof BACKENDS;

/** The backends named in an env var's value ("dev,cluster"), refusing any other name. */
export function backendsFrom(variable: string, fallback: string): Backend[] {
  const names = (process.env[variable] ?? fallback).split(',').map((s) => s.trim());
  const bad = names.find((n) => !(n in BACKENDS));
  if (bad !== undefined || !names.length) throw new Error(`${variable}: dev and/or cluster, comma-separated (not "${bad}")`);
  return names as Backend[];
}

/** Run `fn` with every Stack started meanwhile on `backend`: a cluster is started in a private dir and removed after. */
export async function onBackend<T>(backend: Backend, fn: () => Promise<T>): Promise<T> {
  if (backend === 'dev') {
    delete process.env[USE_CLUSTER_ENV];
    return fn();
  }
  const dir = mkdtempSync(join(tmpdir(), 'tidebox-bench-cluster-'));
  Object.assign(process.env, { [USE_CLUSTER_ENV]: '1', TIDEBOX_TEST_CLUSTER_DIR: dir });
  try {
    return await fn();
  } finally {
    await stopCluster(dir);
    rmSync(dir, { recursive: true, force: true });
    delete process.env[USE_CLUSTER_ENV];
    delete process.env.TIDEBOX_TEST_CLUSTER_DIR;
  }
}

/** fn over 0..n-1 with `width` in flight; throws once the deadline has passed. */
export async function inParallel<T>(n: number, width: number, deadline: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        if (Date.now() > deadline) throw new Error('time budget exhausted');
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}
