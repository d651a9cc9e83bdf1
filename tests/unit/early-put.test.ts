import { randomBytes } from 'node:crypto';
import { boundaryOf, GrowingSlice, lastPartSize, secondPartDataStart } from '../../execd/http/early-put';

/** The bytes and Content-Type Node's own fetch (undici, what the TS SDK uses) sends for a form. */
async function encoded(form: FormData): Promise<{ body: Buffer; type: string }> {
  const r = new Response(form);
  return { body: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type')! };
}

describe('where an upload guesses its file to be', () => {
  it('when a form is encoded as the TS SDK encodes it (metadata, then the file), then the guess is exactly the file', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 7);
    const form = new FormData();
    form.append('metadata', new Blob([JSON.stringify({ path: '/a/b.bin', mode: 644 })], { type: 'application/json' }), 'metadata');
    form.append('file', new Blob([data], { type: 'application/octet-stream' }), 'b.bin');
    const { body, type } = await encoded(form);
    const boundary = boundaryOf(type)!;
    expect(boundary).toBeTruthy();
    const start = secondPartDataStart(body.subarray(0, 80 * 1024), boundary)!;
    const size = lastPartSize(body.length, start, boundary);
    expect(size).toBe(data.length);
    expect(body.subarray(start, start + size).equals(data)).toBe(true);
  });

  it("when the head ends inside the second part's headers, or the body has a preamble, then no guess", () => {
    const b = 'xyz';
    const body = Buffer.from(
      `--${b}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}\r\n--${b}\r\nContent-Disposition: form-data; name="file"\r\n\r\nDATA`,
    );
    expect(secondPartDataStart(body, b)).toBe(body.length - 4);
    expect(secondPartDataStart(body.subarray(0, body.length - 6), b)).toBeUndefined();
    expect(secondPartDataStart(Buffer.concat([Buffer.from('preamble\r\n'), body]), b)).toBeUndefined();
    expect(secondPartDataStart(body, 'other')).toBeUndefined();
  });

  it('when the boundary is quoted, bare or missing, then it is read or refused', () => {
    expect(boundaryOf('multipart/form-data; boundary="a b;c"')).toBe('a b;c');
    expect(boundaryOf('multipart/form-data; charset=utf-8; BOUNDARY=----x1')).toBe('----x1');
    expect(boundaryOf('multipart/form-data')).toBeUndefined();
  });
});

describe('a slice of a buffer still being filled', () => {
  it('when the buffer fills in steps, then the reader gets exactly [from, to) and ends', async () => {
    const buf = randomBytes(1000);
    let filled = 0;
    const slice = new GrowingSlice(buf, 100, 900, () => filled);
    const read = (async () => {
      const got: Buffer[] = [];
      for await (const c of slice) got.push(c as Buffer);
      return Buffer.concat(got);
    })();
    for (const to of [50, 150, 150, 600, 1000]) {
      filled = to;
      slice.grew();
      await new Promise((r) => setImmediate(r));
    }
    expect((await read).equals(buf.subarray(100, 900))).toBe(true);
  });

  it('when it is destroyed while its reader waits for bytes that will not come, then the reader fails', async () => {
    const buf = Buffer.alloc(10);
    const slice = new GrowingSlice(buf, 0, 10, () => 4);
    const read = (async () => {
      for await (const c of slice) void c;
    })();
    await new Promise((r) => setImmediate(r));
    slice.destroy(new Error('the body ended short'));
    await expect(read).rejects.toThrow('the body ended short');
  });

  it('when it is destroyed with an error before anyone reads it, then nothing throws', async () => {
    const slice = new GrowingSlice(Buffer.alloc(4), 0, 4, () => 0);
    slice.destroy(new Error('the put failed first'));
    await new Promise((r) => setImmediate(r));
    expect(slice.destroyed).toBe(true);
  });

  it('when no bytes come for stallMs, then it gives up and says so', async () => {
    const slice = new GrowingSlice(Buffer.alloc(10), 0, 10, () => 4, { stallMs: 30, maxMs: 60_000 });
    const read = (async () => {
      for await (const c of slice) void c;
    })();
    await expect(read).rejects.toThrow('waited 30 ms for bytes');
    expect(slice.gaveUp).toBe(true);
  });

  it('when bytes keep coming but slower than maxMs allows, then it gives up and says so', async () => {
    let filled = 0;
    const slice = new GrowingSlice(Buffer.alloc(1000), 0, 1000, () => filled, { stallMs: 60_000, maxMs: 80 });
    const tick = setInterval(() => {
      filled = Math.min(1000, filled + 1);
      slice.grew();
    }, 5);
    const read = (async () => {
      for await (const c of slice) void c;
    })();
    await expect(read).rejects.toThrow('took more than 80 ms');
    clearInterval(tick);
    expect(slice.gaveUp).toBe(true);
    expect(filled).toBeLessThan(1000);
  });

  it('when it ends in time, then no bound fires afterwards', async () => {
    const buf = randomBytes(8);
    const slice = new GrowingSlice(buf, 0, 8, () => 8, { stallMs: 10, maxMs: 20 });
    const got: Buffer[] = [];
    for await (const c of slice) got.push(c as Buffer);
    await new Promise((r) => setTimeout(r, 40));
    expect(Buffer.concat(got).equals(buf)).toBe(true);
    expect(slice.gaveUp).toBe(false);
  });
});
