import { benchBreakdown } from './breakdown';
import { benchConcurrent } from './concurrent';
import { benchCreateDelete } from './create-delete';
import { benchExecd } from './execd';
import { benchList } from './list';
import { benchPools } from './pools';
import { benchScale } from './scale';

/**
 * `npm run bench`: every benchmark, each beside the raw engine in the same run (docs/benchmarks.md).
 * BENCH_ONLY=lifecycle, breakdown, concurrent, execd or pools (or `npm run bench -- <name>`) runs one;
 * BENCH_ITERATIONS sets N. `scale` (thousands of actors on the noop runtime) and `list` (LIST on the
 * dev server and on a PostgreSQL cluster) run only when named.
 */
async function main(): Promise<void> {
  const only = process.argv[2] ?? process.env.BENCH_ONLY;
  if (only === 'scale') return benchScale();
  if (only === 'list') return benchList();
  if (!only || only === 'lifecycle') await benchCreateDelete();
  if (!only || only === 'breakdown') await benchBreakdown();
  if (!only || only === 'concurrent') await benchConcurrent();
  if (!only || only === 'execd') await benchExecd();
  if (!only || only === 'pools') await benchPools();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
