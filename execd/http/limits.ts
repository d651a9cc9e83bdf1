import type { ExecdConfig } from '../../core/execd-config';

/** What bounds the execd routes of one process (the API's for Kubernetes, a host worker's for Docker). */
export interface ExecdLimits {
  /** JSON bodies. */
  bodyLimitBytes: number;
  /** One uploaded file. */
  maxUploadBytes: number;
  /** Uploads held in memory, shared by every request this process serves. */
  uploadMemory: MemoryBudget;
}

export function execdLimits(config: { server: { bodyLimitBytes: number }; execd: ExecdConfig }): ExecdLimits {
  return {
    bodyLimitBytes: config.server.bodyLimitBytes,
    maxUploadBytes: config.execd.maxUploadBytes,
    uploadMemory: new MemoryBudget(config.execd.uploadMemoryBytes),
  };
}

/** The unit large held uploads are kept in: a request's file bytes are a list of these chunks. */
export const HELD_CHUNK_BYTES = 1024 * 1024;

/**
 * The memory a held request of n bytes occupies: n itself below a chunk (one buffer of its own),
 * else whole chunks. Budgeted as such, so a flood of tiny uploads cannot each pin a whole chunk.
 */
export function heldFootprint(n: number): number {
  return n < HELD_CHUNK_BYTES ? n : Math.ceil(n / HELD_CHUNK_BYTES) * HELD_CHUNK_BYTES;
}

/**
 * Bytes of memory shared by the uploads one process holds whole (execd.uploadMemoryBytes): a
 * request takes its footprint (heldFootprint of its Content-Length) up front or is not held at all,
 * and gives it back when done. Requests of a chunk or more are held in chunks reused from request to
 * request, up to a quarter of the budget kept while idle: a fresh 20 MB buffer per upload cost the
 * worker a full GC per upload or two (its external memory grew past V8's limit) and a page fault per
 * 4 KiB, about three quarters of its CPU for the upload (docs/benchmarks.md).
 */
export class MemoryBudget {
  private used = 0;
  private readonly free: Buffer[] = [];

  constructor(readonly total: number) {}

  /** Reserve the footprint of an n-byte request if one that large may be held (≤ a quarter of the total) and it is free. */
  take(n: number): boolean {
    const bytes = heldFootprint(n);
    if (bytes > this.total / 4 || this.used + bytes > this.total) return false;
    this.used += bytes;
    return true;
  }

  /** Give back what take(n) reserved. */
  give(n: number): void {
    this.used -= heldFootprint(n);
  }

  get inUse(): number {
    return this.used;
  }

  /** A chunk of HELD_CHUNK_BYTES, reused if one is free: whatever it held before is never read (see HeldBytes). */
  chunk(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(HELD_CHUNK_BYTES);
  }

  /** Chunks nothing reads or writes any more, kept for the next upload up to a quarter of the budget. */
  recycle(chunks: Buffer[]): void {
    for (const c of chunks) if ((this.free.length + 1) * HELD_CHUNK_BYTES <= this.total / 4) this.free.push(c);
  }

  /** Bytes kept for reuse while no upload holds them. */
  get idle(): number {
    return this.free.length * HELD_CHUNK_BYTES;
  }
}

/**
 * One request's held file bytes: appended in order, at most `capacity` of them (its Content-Length),
 * into one buffer of that size below a chunk, else into the budget's chunks; each file is a range,
 * read as views (no copy). Only what was appended is ever read, so a reused chunk shows nothing of an
 * earlier request.
 */
export class HeldBytes {
  private readonly chunks: Buffer[] = [];
  private length = 0;
  private readonly chunkBytes: number;

  constructor(
    private readonly budget: MemoryBudget,
    private readonly capacity: number,
  ) {
    this.chunkBytes = capacity < HELD_CHUNK_BYTES ? Math.max(capacity, 1) : HELD_CHUNK_BYTES;
  }

  get size(): number {
    return this.length;
  }

  append(data: Buffer): void {
    if (this.length + data.length > this.capacity) throw new Error(`more than the ${this.capacity} bytes held for this request`);
    for (let at = 0; at < data.length;) {
      const offset = this.length % this.chunkBytes;
      if (offset === 0) this.chunks.push(this.chunkBytes < HELD_CHUNK_BYTES ? Buffer.allocUnsafe(this.chunkBytes) : this.budget.chunk());
      const n = data.copy(this.chunks[this.chunks.length - 1]!, offset, at);
      at += n;
      this.length += n;
    }
  }

  /** Bytes [start, start + size), as views into the chunks. */
  range(start: number, size: number): Buffer[] {
    if (start < 0 || size < 0 || start + size > this.length)
      throw new RangeError(`[${start}, ${start + size}) is not within ${this.length} held bytes`);
    const out: Buffer[] = [];
    for (let pos = start, end = start + size; pos < end;) {
      const offset = pos % this.chunkBytes;
      const n = Math.min(this.chunkBytes - offset, end - pos);
      out.push(this.chunks[Math.floor(pos / this.chunkBytes)]!.subarray(offset, offset + n));
      pos += n;
    }
    return out;
  }

  /**
   * The chunks back to the budget for reuse. Only once no write of them can still be queued: after
   * every put that read them has succeeded (the engine answered, having read the whole archive). A
   * failed put may leave writes queued on its socket; its chunks are left to the GC instead.
   */
  release(): void {
    const chunks = this.chunks.splice(0);
    if (this.chunkBytes === HELD_CHUNK_BYTES) this.budget.recycle(chunks);
    this.length = 0;
  }
}
