import { realpathSync } from 'node:fs';

/** The path with every symlink resolved, or undefined when it does not exist (the storage checks take this). */
export function realpathOrUndefined(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}
