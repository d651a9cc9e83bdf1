import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

const ENCODING = 'binary/encrypted';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const utf8 = (s: string) => new TextEncoder().encode(s);

/**
 * Encrypts every payload (workflow and activity arguments and results, update arguments, query
 * results, memo) with AES-256-GCM before it leaves the process, so workflow history holds only
 * ciphertext: credentials in a create request are unreadable to anyone with history access but
 * without the key. Both the API's client and the worker apply it. Payloads written before a key was
 * configured (no `binary/encrypted` encoding) pass through decode unchanged. The key id (a hash
 * prefix) is stored with each payload, so a wrong key fails loudly instead of returning garbage.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly keyId: string;

  constructor(
    private readonly key: Buffer,
    private readonly acceptPlaintextUntil = 0,
  ) {
    if (key.length !== 32) throw new Error('payload key must be 32 bytes');
    this.keyId = createHash('sha256').update(key).digest('hex').slice(0, 16);
  }

  static fromBase64(key: string, acceptPlaintextUntil?: number): AesGcmPayloadCodec {
    return new AesGcmPayloadCodec(Buffer.from(key, 'base64'), acceptPlaintextUntil);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', this.key, iv);
      const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return { metadata: { encoding: utf8(ENCODING), 'encryption-key-id': utf8(this.keyId) }, data };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.encoding ? Buffer.from(payload.metadata.encoding).toString() : undefined;
      if (encoding !== ENCODING) {
        if (Date.now() < this.acceptPlaintextUntil) return payload;
        throw new Error('refused a plaintext payload: with security.payloadKey set every payload must be encrypted with it');
      }
      const keyId = Buffer.from(payload.metadata?.['encryption-key-id'] ?? []).toString();
      if (keyId !== this.keyId) throw new Error(`payload was encrypted with key ${keyId}, this process has ${this.keyId}`);
      const data = Buffer.from(payload.data ?? []);
      const decipher = createDecipheriv('aes-256-gcm', this.key, data.subarray(0, IV_BYTES));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}

/** The data converter option for a client or worker: encryption when a key is configured. */
export function payloadCodecsFor(
  payloadKey: string | undefined,
  acceptPlaintextUntil?: string,
): { payloadCodecs: PayloadCodec[] } | undefined {
  if (!payloadKey) return undefined;
  return { payloadCodecs: [AesGcmPayloadCodec.fromBase64(payloadKey, acceptPlaintextUntil ? Date.parse(acceptPlaintextUntil) : 0)] };
}
