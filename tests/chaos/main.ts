import { cells, FAULTS, runCell, SAGAS, startWorld, stopWorld, table, type CellResult } from './matrix';

/**
 * `npm run chaos`: the whole crash matrix (tests/chaos/matrix.ts) on one stack, printed as a table;
 * exits 1 when a cell fails. CHAOS_MATRIX=reduced runs the diagonal the suite runs;
 * CHAOS_SAGAS / CHAOS_FAULTS (comma-separated) pick rows and columns.
 */
async function main(): Promise<void> {
  const pick = (name: string, known: readonly string[]) => {
    const v = process.env[name]?.split(',').filter(Boolean);
    const unknown = v?.filter((x) => !known.includes(x)) ?? [];
    if (unknown.length) throw new Error(`${name}: unknown ${unknown.join(', ')} (known: ${known.join(', ')})`);
    return v;
  };
  const sagas = pick('CHAOS_SAGAS', Object.keys(SAGAS));
  const faults = pick('CHAOS_FAULTS', FAULTS);
  const todo = cells(process.env.CHAOS_MATRIX === 'reduced' ? 'reduced' : 'full').filter(
    (c) => (!sagas || sagas.includes(c.saga)) && (!faults || faults.includes(c.fault)),
  );
  const world = await startWorld();
  const results: CellResult[] = [];
  try {
    for (const cell of todo) {
      const r = await runCell(world, cell);
      console.log(
        `${r.ok ? 'ok  ' : 'FAIL'} ${cell.saga} × ${cell.fault} (${(r.ms / 1000).toFixed(1)} s)${r.detail ? `: ${r.detail}` : ''}`,
      );
      results.push(r);
    }
  } finally {
    await stopWorld(world);
  }
  console.log(`\n${table(results)}\n\n${results.filter((r) => r.ok).length} of ${results.length} cells green`);
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
