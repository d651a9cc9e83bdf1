import { createHmac } from 'node:crypto';
import type { OssfsSource } from './mounts';

/**
 * The identity of a shared mount. Everything that makes two mounts different goes in — tenant,
 * endpoint, bucket, prefix, version, options (sorted) and the credentials — keyed with the payload
 * key, so the id reveals nothing and cannot be brute-forced offline for weak secrets. Different
 * credentials therefore never share a mount. (Not for workflow code: it uses node:crypto.)
 */
export function mountKey(tenant: string, source: OssfsSource, hmacKey: Buffer): string {
  const canonical = JSON.stringify([
    tenant,
    source.endpoint,
    source.bucket,
    source.prefix,
    source.version,
    [...source.options].sort(),
    source.accessKeyId,
    source.accessKeySecret,
  ]);
  return createHmac('sha256', hmacKey).update(canonical).digest('hex').slice(0, 32);
}

/** The HMAC key for mount ids, derived from the payload key (so one secret is configured, two uses kept apart). */
export function mountKeyHmacKey(payloadKeyBase64: string): Buffer {
  return createHmac('sha256', Buffer.from(payloadKeyBase64, 'base64')).update('tidebox mount key v1').digest();
}
