import { randomBytes } from 'node:crypto';
import { DefaultPayloadConverter } from '@temporalio/common';
import { AesGcmPayloadCodec } from '../../platform/payload-codec';
import { mountKey } from '../../core/mount-key';
import type { OssfsSource } from '../../core/mounts';

const converter = new DefaultPayloadConverter();

describe('payload codec', () => {
  it('when a payload is encoded, then its bytes hide the plaintext and decode restores it exactly', async () => {
    const codec = new AesGcmPayloadCodec(randomBytes(32));
    const payload = converter.toPayload({ accessKeySecret: 'very-secret-value' });
    const [encoded] = await codec.encode([payload]);
    expect(Buffer.from(encoded!.data!).toString('latin1')).not.toContain('very-secret-value');
    expect(Buffer.from(encoded!.metadata!.encoding!).toString()).toBe('binary/encrypted');
    const [decoded] = await codec.decode([encoded!]);
    expect(converter.fromPayload(decoded!)).toEqual({ accessKeySecret: 'very-secret-value' });
  });

  it('when decoding with another key, then it fails loudly', async () => {
    const [encoded] = await new AesGcmPayloadCodec(randomBytes(32)).encode([converter.toPayload('x')]);
    await expect(new AesGcmPayloadCodec(randomBytes(32)).decode([encoded!])).rejects.toThrow(/encrypted with key/);
  });

  it('when a payload is plaintext, then it is refused, unless the migration window is still open', async () => {
    const plain = converter.toPayload('forged');
    await expect(new AesGcmPayloadCodec(randomBytes(32)).decode([plain])).rejects.toThrow(/refused a plaintext payload/);
    expect(await new AesGcmPayloadCodec(randomBytes(32), Date.now() + 60_000).decode([plain])).toEqual([plain]);
    await expect(new AesGcmPayloadCodec(randomBytes(32), Date.now() - 1).decode([plain])).rejects.toThrow(/plaintext/);
  });

  it('when a ciphertext is tampered with, then decoding fails', async () => {
    const codec = new AesGcmPayloadCodec(randomBytes(32));
    const [encoded] = await codec.encode([converter.toPayload('x')]);
    const data = Buffer.from(encoded!.data!);
    data[20] = data[20]! ^ 1;
    await expect(codec.decode([{ ...encoded!, data }])).rejects.toThrow();
  });
});

describe('mount keys', () => {
  const source: OssfsSource = {
    bucket: 'b',
    endpoint: 'oss.example.com',
    version: '1.0',
    prefix: 'p',
    options: ['a', 'b=1'],
    accessKeyId: 'id',
    accessKeySecret: 's',
  };
  const key = randomBytes(32);

  it('when everything but option order is equal, then the key is equal; any other difference, incl. credentials and tenant, changes it', () => {
    const k = mountKey('t', source, key);
    expect(mountKey('t', { ...source, options: ['b=1', 'a'] }, key)).toBe(k);
    for (const other of [
      mountKey('t2', source, key),
      mountKey('t', { ...source, accessKeySecret: 's2' }, key),
      mountKey('t', { ...source, accessKeyId: 'id2' }, key),
      mountKey('t', { ...source, prefix: '' }, key),
      mountKey('t', { ...source, version: '2.0' }, key),
      mountKey('t', { ...source, options: ['a'] }, key),
      mountKey('t', { ...source, endpoint: 'other' }, key),
      mountKey('t', source, randomBytes(32)),
    ]) {
      expect(other).not.toBe(k);
    }
    expect(k).toMatch(/^[0-9a-f]{32}$/);
  });
});
