import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { FirstEntry, singleFileArchive } from '../../execd/tar';

/** The small tar of execd's byte path, checked against tar-stream (a general archiver) both ways. */

const collect = async (s: AsyncIterable<unknown>) => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};

describe('tar for transfers', () => {
  it('when one file (with a long name, under new directories) is archived, then a general archiver reads exactly it', async () => {
    const data = randomBytes(700_001);
    const longName = `dir/${'n'.repeat(150)}.bin`;
    const mtime = new Date(1_700_000_000_000);
    const archive = singleFileArchive(
      [{ name: 'dir', type: 'directory', size: 0, mode: 0o755, uid: 0, gid: 0, mtime }],
      { name: longName, type: 'file', size: data.length, mode: 0o640, uid: 1000, gid: 1001, mtime },
      Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
    );
    const extract = tar.extract();
    const seen: Array<{ name: string; type: string; mode?: number; uid?: number; gid?: number; body: Buffer }> = [];
    extract.on('entry', (h, stream, next) => {
      void collect(stream as unknown as AsyncIterable<Buffer>).then((body) => {
        seen.push({ name: h.name, type: h.type!, mode: h.mode, uid: h.uid, gid: h.gid, body });
        next();
      });
    });
    const finished = new Promise<void>((r) => extract.on('finish', () => r()));
    archive.pipe(extract as unknown as NodeJS.WritableStream);
    await finished;
    expect(seen.map((e) => [e.name, e.type])).toEqual([
      ['dir/', 'directory'],
      [longName, 'file'],
    ]);
    expect(seen[1]).toMatchObject({ mode: 0o640, uid: 1000, gid: 1001 });
    expect(seen[1]!.body.equals(data)).toBe(true);
  });

  it('when the content is shorter than its header says, then the archive fails instead of lying', async () => {
    const archive = singleFileArchive(
      [],
      { name: 'x', type: 'file', size: 10, mode: 0o644, uid: 0, gid: 0, mtime: new Date() },
      Readable.from([Buffer.from('short')]),
    );
    await expect(collect(archive)).rejects.toThrow(/5 bytes, not the 10/);
  });

  it.each([
    [
      'a file',
      (p: tar.Pack) => p.entry({ name: 'f.bin', size: 5, mode: 0o600, uid: 7 }, Buffer.from('hello')),
      { name: 'f.bin', typeflag: '0', size: 5, mode: 0o600, uid: 7 },
      'hello',
    ],
    [
      'a long-named file (PAX)',
      (p: tar.Pack) => p.entry({ name: 'l'.repeat(120), size: 2 }, Buffer.from('ok')),
      { name: 'l'.repeat(120), typeflag: '0', size: 2 },
      'ok',
    ],
    [
      'a symbolic link',
      (p: tar.Pack) => p.entry({ name: 'ln', type: 'symlink', linkname: '../target' }),
      { name: 'ln', typeflag: '2', linkname: '../target' },
      '',
    ],
    ['a directory', (p: tar.Pack) => p.entry({ name: 'd/', type: 'directory' }), { name: 'd/', typeflag: '5' }, ''],
  ])('when the first entry is %s, then the reader gives its header and exactly its bytes', async (_what, add, header, body) => {
    const pack = tar.pack();
    add(pack);
    pack.entry({ name: 'second', size: 3 }, Buffer.from('nop'));
    pack.finalize();
    const reader = new FirstEntry();
    (pack as unknown as Readable).pipe(reader);
    expect(await reader.entry).toMatchObject(header);
    expect((await collect(reader)).toString()).toBe(body);
  });
});
