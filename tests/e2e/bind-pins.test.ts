import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BindPins, mountPoints } from '../../activities/docker/bind-pins';

/**
 * Host-volume pins on real mounts (root, this machine's mount namespace): what Docker binds is the
 * directory that was checked, opened once — a symlink swapped in before or after the check is never
 * followed — and the pin is nosuid,nodev.
 */
const dir = mkdtempSync(join(tmpdir(), 'tidebox-test-pins-'));
const area = join(dir, 'storage', 'acme', 'users', 'u1');
const outside = join(dir, 'secret');
const pins = new BindPins(join(dir, 'binds'));

beforeAll(() => {
  mkdirSync(join(area, 'work'), { recursive: true });
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(area, 'work', 'mine'), 'mine\n');
  writeFileSync(join(outside, 'key'), 'not yours\n');
});
afterAll(async () => {
  for (const { sandboxId } of pins.sandboxes()) await pins.release(sandboxId);
  rmSync(dir, { recursive: true, force: true });
});

const options = (path: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === path)
    ?.split(' ')[5];

describe('host-volume pins', () => {
  it('when a checked directory is pinned, then the pin holds exactly it, nosuid and nodev, read-only when asked, and release removes it', async () => {
    const pin = await pins.pin('sbx-a', 0, 'data', join(area, 'work'), [area], true);
    expect(pin).toEqual({ path: join(dir, 'binds', 'sbx-a', '0'), resolved: join(area, 'work') });
    expect(readFileSync(join(pin.path, 'mine'), 'utf8')).toBe('mine\n');
    expect(options(pin.path)?.split(',')).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
    expect(pins.held('sbx-a')).toEqual([pin.path]);
    expect(pins.allHeld([pin.path, '/somewhere/else'])).toBe(true);

    expect(await pins.release('sbx-a')).toBe(1);
    expect(mountPoints().has(pin.path)).toBe(false);
    expect(pins.sandboxes().map((s) => s.sandboxId)).not.toContain('sbx-a');
    expect(pins.allHeld([pin.path])).toBe(false);
    expect(await pins.release('sbx-a')).toBe(0);
  });

  it('when the directory is a symlink out of the area (swapped in after the check), then nothing is pinned', async () => {
    symlinkSync(outside, join(area, 'escape'));
    await expect(pins.pin('sbx-b', 0, 'data', join(area, 'escape'), [area], false)).rejects.toThrow(
      `volume "data": ${join(area, 'escape')} resolves to ${outside}, outside its allowed area`,
    );
    // A link in an intermediate component is resolved the same way.
    await expect(pins.pin('sbx-b', 0, 'data', join(area, 'escape', '.'), [area], false)).rejects.toThrow('outside its allowed area');
    expect(pins.held('sbx-b')).toEqual([]);
  });

  it('when the checked directory is swapped for a symlink after pinning, then the pin still holds the original directory', async () => {
    mkdirSync(join(area, 'proj'));
    writeFileSync(join(area, 'proj', 'file'), 'original\n');
    const pin = await pins.pin('sbx-c', 0, 'proj', join(area, 'proj'), [area], false);
    renameSync(join(area, 'proj'), join(area, 'proj-moved'));
    symlinkSync(outside, join(area, 'proj'));
    expect(readFileSync(join(pin.path, 'file'), 'utf8')).toBe('original\n');
    expect(() => readFileSync(join(pin.path, 'key'))).toThrow();
    await pins.release('sbx-c');
  });
});
