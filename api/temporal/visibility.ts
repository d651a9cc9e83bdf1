/**
 * Newest first (ties by id), then one page, with the contract's pagination block. `items` holds at
 * least every item up to the page's end; `totalItems` is how many match in all (default: `items`).
 */
export function paginate<T extends { createdAt: string; id: string }>(
  items: T[],
  page: number,
  pageSize: number,
  totalItems = items.length,
) {
  const sorted = [...items].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.id.localeCompare(b.id));
  const start = (page - 1) * pageSize;
  return { items: sorted.slice(start, start + pageSize), pagination: pagination(page, pageSize, totalItems) };
}

/** The contract's pagination block of a page of `pageSize` among `totalItems`. */
export function pagination(page: number, pageSize: number, totalItems: number) {
  const totalPages = Math.ceil(totalItems / pageSize);
  return { page, pageSize, totalItems, totalPages, hasNextPage: page < totalPages };
}
