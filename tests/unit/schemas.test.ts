import { parseConfig } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { checkResolvedHostPaths, createSandboxRequestSchema, isUnderAllowedPrefix, normalizeCreateRequest } from '../../core/schemas';

const sandboxConfig = parseConfig({ sandbox: { allowedHostPaths: ['/srv/data/'] } }).sandbox;
const schema = createSandboxRequestSchema(sandboxConfig);
const base = { image: { uri: 'busybox' }, entrypoint: ['sh'], timeout: 600 };
const normalize = (body: Record<string, unknown>) => normalizeCreateRequest(schema.parse({ ...base, ...body }), sandboxConfig);
const rejection = (body: Record<string, unknown>) => {
  try {
    normalize(body);
  } catch (err) {
    return err as TideboxError;
  }
  throw new Error('expected a rejection');
};

describe('create request normalisation', () => {
  it('when limits are omitted, then config defaults apply; when given, they are parsed', () => {
    expect(normalize({}).resources).toEqual({ cpuMillis: 1000, memoryBytes: 512 * 2 ** 20 });
    expect(normalize({ resourceLimits: { cpu: '250m', memory: '1Gi' } }).resources).toEqual({ cpuMillis: 250, memoryBytes: 2 ** 30 });
  });

  it('when metadata values are free text (the contract example), then create accepts them', () => {
    expect(normalize({ metadata: { name: 'Data Processing Sandbox', team: 'ml' } }).metadata).toEqual({ name: 'Data Processing Sandbox', team: 'ml' });
  });

  it('when extensions name extra ports, then they are parsed, de-duplicated and sorted', () => {
    expect(normalize({ extensions: { 'tidebox.io/ports': ' 5173, 3000,3000' } }).ports).toEqual([3000, 5173]);
    expect(normalize({}).ports).toEqual([]);
  });

  it('when timeout is null or absent, then the sandbox is manual-cleanup', () => {
    expect(normalize({ timeout: null }).timeoutSeconds).toBeNull();
    expect(normalizeCreateRequest(schema.parse({ image: { uri: 'x' }, entrypoint: ['a'] }), sandboxConfig).timeoutSeconds).toBeNull();
  });

  it.each([
    [{ resourceLimits: { cpu: 'abc' } }, 'SANDBOX::INVALID_PARAMETER', 'cpu'],
    [{ resourceLimits: { gpu: '1' } }, 'SANDBOX::UNSUPPORTED', 'gpu'],
    [{ snapshotId: 's', image: { uri: 'x' } }, 'SANDBOX::INVALID_PARAMETER', 'mutually exclusive'],
    [{ networkPolicy: { defaultAction: 'deny' } }, 'SANDBOX::UNSUPPORTED', 'networkPolicy'],
    [{ image: { uri: 'x', auth: { username: 'u', password: 'p' } } }, 'SANDBOX::UNSUPPORTED', 'image.auth'],
    [{ metadata: { 'tidebox.io/x': 'y' } }, 'SANDBOX::INVALID_PARAMETER', 'reserved'],
    [{ metadata: { 'a=b': 'y' } }, 'SANDBOX::INVALID_PARAMETER', 'metadata key'],
    [{ metadata: { a: 'x'.repeat(257) } }, 'SANDBOX::INVALID_PARAMETER', 'metadata value'],
    [{ metadata: { a: 'line\nbreak' } }, 'SANDBOX::INVALID_PARAMETER', 'control characters'],
    [{ metadata: { 'has space': 'x' } }, 'SANDBOX::INVALID_PARAMETER', 'metadata key'],
    [{ extensions: { 'tidebox.io/ports': '3000,http' } }, 'SANDBOX::INVALID_PARAMETER', '"http" is not a port'],
    [{ extensions: { 'tidebox.io/ports': '70000' } }, 'SANDBOX::INVALID_PARAMETER', 'is not a port'],
    [{ env: { 'A=B': 'y' } }, 'SANDBOX::INVALID_PARAMETER', 'env key'],
    [{ volumes: [{ name: 'v', host: { path: '/srv/data/../etc' }, mountPath: '/v' }] }, 'SANDBOX::INVALID_PARAMETER', '".."'],
    [{ volumes: [{ name: 'v', host: { path: '/srv/database' }, mountPath: '/v' }] }, 'SANDBOX::INVALID_PARAMETER', 'outside'],
    [{ volumes: [{ name: 'v', host: { path: '/srv/data' }, subPath: '../x', mountPath: '/v' }] }, 'SANDBOX::INVALID_PARAMETER', 'subPath'],
    [{ volumes: [{ name: 'v', host: { path: '/srv/data' }, mountPath: '/v' }, { name: 'v', host: { path: '/srv/data' }, mountPath: '/w' }] }, 'SANDBOX::INVALID_PARAMETER', 'twice'],
    [{ volumes: [{ name: 'v', pvc: { claimName: 'c' }, mountPath: '/v' }] }, 'SANDBOX::UNSUPPORTED', 'Kubernetes runtime'],
    [{ volumes: [{ name: 'v', ossfs: { bucket: 'bkt', endpoint: 'oss.example.com', accessKeyId: 'a', accessKeySecret: 's' }, mountPath: '/v' }] }, 'SANDBOX::UNSUPPORTED', 'security.payloadKey'],
  ])('when the request has %j, then it is rejected with %s', (body, code, text) => {
    const err = rejection(body);
    expect(err.code).toBe(code);
    expect(err.message).toContain(text);
  });

  it('when a host volume has a subPath under an allowed prefix, then it binds the joined path', () => {
    const [v] = normalize({ volumes: [{ name: 'v', host: { path: '/srv/data' }, subPath: 'a/b/', mountPath: '/v/', readOnly: true }] }).volumes;
    expect(v).toEqual({ name: 'v', hostPath: '/srv/data/a/b', mountPath: '/v', readOnly: true });
  });

  it('when prefixes are compared, then only whole path segments match', () => {
    expect(isUnderAllowedPrefix('/srv/data', ['/srv/data/'])).toBe(true);
    expect(isUnderAllowedPrefix('/srv/data/x', ['/srv/data'])).toBe(true);
    expect(isUnderAllowedPrefix('/srv/database', ['/srv/data'])).toBe(false);
    expect(isUnderAllowedPrefix('/anything', ['/'])).toBe(true);
  });

  it('when a host path resolves through a link out of the prefix, or does not exist, then it is rejected', () => {
    const links: Record<string, string> = { '/srv/data/ok': '/srv/data/ok', '/srv/data/link': '/etc', '/srv/data': '/srv/data' };
    const realpath = (p: string) => links[p];
    const vol = (hostPath: string) => [{ name: 'v', hostPath, mountPath: '/v', readOnly: false }];
    expect(() => checkResolvedHostPaths(vol('/srv/data/ok'), ['/srv/data'], realpath)).not.toThrow();
    expect(() => checkResolvedHostPaths(vol('/srv/data/link'), ['/srv/data'], realpath)).toThrow(/resolves to \/etc/);
    expect(() => checkResolvedHostPaths(vol('/srv/data/missing'), ['/srv/data'], realpath)).toThrow(/does not exist/);
  });
});
