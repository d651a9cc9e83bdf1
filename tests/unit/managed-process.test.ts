import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess } from '../../scripts/lib/managed-process';

describe('ManagedProcess (the worker and API processes of the test stacks and the bench)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tidebox-managed-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('when the child closes its stdout and then writes to stderr as it dies, then both reach the log and this process does not throw', async () => {
    const script = join(dir, 'child.js');
    // A crash's shape: stdout done (here: closed outright), the stack on stderr at exit.
    writeFileSync(
      script,
      "process.stdout.write('first line\\n', () => { require('node:fs').closeSync(1); setTimeout(() => { process.stderr.write('last words\\n'); process.exit(3); }, 100); });\n",
    );
    const errors: Error[] = [];
    const onError = (err: Error) => errors.push(err);
    process.on('uncaughtException', onError);
    try {
      const child = new ManagedProcess('child', script, { PATH: process.env.PATH }, join(dir, 'child.log'));
      child.start();
      expect(await child.exited()).toBe(3);
      await child.logFlushed();
      expect(readFileSync(join(dir, 'child.log'), 'utf8')).toBe('first line\nlast words\n');
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(errors).toEqual([]);
  });
});
