import { cells, runCell, SAGAS, startWorld, stopWorld, table, type CellResult } from '../chaos/matrix';

/**
 * The crash matrix's diagonal (tests/chaos/matrix.ts): every saga step, each with one of the three
 * faults (worker SIGKILL, API SIGKILL, Temporal restart) in turn. `npm run chaos` runs every cell.
 */
let world: Awaited<ReturnType<typeof startWorld>>;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await stopWorld(world);
});

describe('the reduced crash matrix', () => {
  it('covers every saga, and every fault at least once', () => {
    const reduced = cells('reduced');
    expect(reduced.map((c) => c.saga).sort()).toEqual(Object.keys(SAGAS).sort());
    expect(new Set(reduced.map((c) => c.fault)).size).toBe(3);
  });

  const results: CellResult[] = [];
  for (const cell of cells('reduced')) {
    it(`when ${cell.fault} strikes while ${cell.saga} hangs at ${SAGAS[cell.saga]!.point}, then it converges and nothing is left`, async () => {
      const r = await runCell(world, cell);
      results.push(r);
      expect(r.detail ?? 'ok').toBe('ok');
    }, 300_000);
  }

  afterAll(() => {
    console.log(table(results));
  });
});
