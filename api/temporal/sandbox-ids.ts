import { createHash } from 'node:crypto';
import type { SandboxSpec } from '../../core/sandbox';

/**
 * SHA-256 of the request without credentials (the memo keeps it): the mount keys already stand for
 * the ossfs secrets, the registry user name tells image credentials apart. No pvc volumes hash like a
 * request made before they existed, so a retry across that upgrade still matches.
 */
export function requestHashOf(spec: SandboxSpec): string {
  const { pvcs, imageAuth, ...rest } = spec;
  const hashable = {
    ...rest,
    ...(imageAuth ? { imageAuth: { username: imageAuth.username } } : {}),
    ...(pvcs?.length ? { pvcs } : {}),
    ossfs: spec.ossfs.map(({ source: { accessKeyId: _id, accessKeySecret: _secret, ...src }, ...v }) => ({ ...v, source: src })),
  };
  return createHash('sha256').update(JSON.stringify(hashable)).digest('hex');
}

/** Same tenant + key → same sandbox id, so a retried POST can never make a second sandbox. */
export function idempotentSandboxId(tenant: string, key: string): string {
  const h = createHash('sha256').update(`${tenant}\0${key}`).digest('hex');
  // Shape it as a UUID (version nibble 5-like, variant 10xx) so ids look alike whichever way they were made.
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
