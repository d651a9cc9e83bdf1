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

/**
 * Bytes of memory shared by the uploads one process holds whole (execd.uploadMemoryBytes): a
 * request takes its Content-Length up front or is not held at all, and gives it back when done.
 */
export class MemoryBudget {
  private used = 0;

  constructor(readonly total: number) {}

  /** Reserve n bytes if a request that large may be held (≤ a quarter of the total) and they are free. */
  take(n: number): boolean {
    if (n > this.total / 4 || this.used + n > this.total) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used -= n;
  }

  get inUse(): number {
    return this.used;
  }
}
