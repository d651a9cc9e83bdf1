import type { MemoView } from '../../core/sandbox';

/**
 * Running sandboxes' views this API process read or answered moments ago, for the data-plane routes
 * (execd, the port proxy, endpoints): an SDK's burst of calls right after a create — two endpoints, a
 * ping, the first command — or a tight loop of commands then costs Temporal one describe per sandbox
 * per `ttlMs`, not one per call (measured: a claimed sandbox's first calls took 15–20 ms longer with
 * a describe each, competing with the actors' own first tasks).
 *
 * What may be stale, and for how long: only a Running view, at most `ttlMs`, and only a change this
 * process did not make (every Update it sends drops the sandbox's entry, before and after). The
 * tenant, host and execd mode of a sandbox never change. The data plane does not rely on the state:
 * the host worker refuses a sandbox it paused (409) and one whose container is gone (404) whatever
 * the API believed — the same answer the race between a describe and the forward already needed.
 */
export class RecentViews {
  private readonly views = new Map<string, { view: MemoView; at: number }>();
  /** Drops counted (changes this process makes), and each sandbox's last: a read that began before it must not put back what it removed. */
  private drops = 0;
  private readonly droppedAt = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 4096,
    private readonly now: () => number = Date.now,
  ) {}

  /** The view if one was read within ttlMs; expired entries go as they are met. */
  get(sandboxId: string): MemoView | undefined {
    const hit = this.views.get(sandboxId);
    if (!hit) return undefined;
    if (this.now() - hit.at < this.ttlMs) return hit.view;
    this.views.delete(sandboxId);
    return undefined;
  }

  /** Before a read: the mark its `put` is checked against. */
  mark(): number {
    return this.drops;
  }

  /** Keep a view whose read began at `mark` — a Running one, unless this process changed that sandbox meanwhile. */
  put(view: MemoView, mark: number): void {
    if (this.ttlMs === 0) return;
    if (view.status.state !== 'Running' || (this.droppedAt.get(view.id) ?? 0) > mark) {
      this.views.delete(view.id);
      return;
    }
    this.views.delete(view.id); // re-inserted last: the oldest entry is the first in the map
    this.views.set(view.id, { view, at: this.now() });
    if (this.views.size > this.maxEntries) this.views.delete(this.views.keys().next().value!);
  }

  drop(sandboxId: string): void {
    this.droppedAt.delete(sandboxId);
    this.droppedAt.set(sandboxId, ++this.drops);
    // The oldest drops are forgotten: a read still in flight from before them is long over.
    if (this.droppedAt.size > 2 * this.maxEntries) this.droppedAt.delete(this.droppedAt.keys().next().value!);
    this.views.delete(sandboxId);
  }

  get size(): number {
    return this.views.size;
  }
}
