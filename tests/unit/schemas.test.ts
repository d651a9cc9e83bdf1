import { parseCreateBody } from '../helpers/create-body';
import { parseConfig } from '../../core/config';
import { TideboxError } from '../../core/errors';
import { normalizeCreateRequest } from '../../core/create-request';
import { createSandboxRequestSchema } from '../../core/schemas';
import { checkResolvedHostPaths, isUnderAllowedPrefix } from '../../core/storage';

const sandboxConfig = parseConfig({ sandbox: { allowedHostPaths: ['/srv/data/'] } }).sandbox;
const legacyConfig = { ...sandboxConfig, storageLayout: 'legacy' as const };
const schema = createSandboxRequestSchema(sandboxConfig);
const base = { image: { uri: 'busybox' }, entrypoint: ['sh'], timeout: 600 };
const normalize = (body: Record<string, unknown>, config = sandboxConfig, tenant = 'acme') =>
  normalizeCreateRequest(parseCreateBody(schema, { ...base, ...body }), config, { tenant });
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
    expect(normalize({ metadata: { name: 'Data Processing Sandbox', team: 'ml' } }).metadata).toEqual({
      name: 'Data Processing Sandbox',
      team: 'ml',
    });
  });

  it('when extensions name extra ports, then they are parsed, de-duplicated and sorted', () => {
    expect(normalize({ extensions: { 'tidebox.io/ports': ' 5173, 3000,3000' } }).ports).toEqual([3000, 5173]);
    expect(normalize({}).ports).toEqual([]);
  });

  it('when timeout is null or absent, then the sandbox is manual-cleanup', () => {
    expect(normalize({ timeout: null }).timeoutSeconds).toBeNull();
    expect(
      normalizeCreateRequest(schema.parse({ image: { uri: 'x' }, entrypoint: ['a'] }), sandboxConfig, { tenant: 'acme' }).timeoutSeconds,
    ).toBeNull();
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
    [
      {
        volumes: [
          { name: 'v', host: { path: '/srv/data' }, mountPath: '/v' },
          { name: 'v', host: { path: '/srv/data' }, mountPath: '/w' },
        ],
      },
      'SANDBOX::INVALID_PARAMETER',
      'twice',
    ],
    [
      { volumes: [{ name: 'v', pvc: { claimName: 'c', deleteOnSandboxTermination: true }, mountPath: '/v' }] },
      'SANDBOX::UNSUPPORTED',
      'deleteOnSandboxTermination',
    ],
    [{ volumes: [{ name: 'v', pvc: { claimName: 'c' }, subPath: '/etc', mountPath: '/v' }] }, 'SANDBOX::INVALID_PARAMETER', 'subPath'],
    [{ volumes: [{ name: 'v', pvc: { claimName: 'c' }, subPath: 'a/../../b', mountPath: '/v' }] }, 'SANDBOX::INVALID_PARAMETER', 'subPath'],
    [{ volumes: [{ name: 'v', host: { path: '/srv/data' }, subPath: 'a\nb', mountPath: '/v' }] }, 'SANDBOX::INVALID_PARAMETER', 'control'],
    [{ extensions: { 'tidebox.io/user-id': '../bob' } }, 'SANDBOX::INVALID_PARAMETER', 'user-id'],
    [{ extensions: { 'tidebox.io/user-id': '' } }, 'SANDBOX::INVALID_PARAMETER', 'user-id'],
    [
      {
        volumes: [
          { name: 'v', ossfs: { bucket: 'bkt', endpoint: 'oss.example.com', accessKeyId: 'a', accessKeySecret: 's' }, mountPath: '/v' },
        ],
      },
      'SANDBOX::UNSUPPORTED',
      'security.payloadKey',
    ],
  ])('when the request has %j, then it is rejected with %s', (body, code, text) => {
    const err = rejection(body);
    expect(err.code).toBe(code);
    expect(err.message).toContain(text);
  });

  it('when the layout is legacy and a host volume has a subPath under an allowed prefix, then it binds the joined path', () => {
    const [v] = normalize(
      { volumes: [{ name: 'v', host: { path: '/srv/data' }, subPath: 'a/b/', mountPath: '/v/', readOnly: true }] },
      legacyConfig,
    ).volumes;
    expect(v).toEqual({ name: 'v', hostPath: '/srv/data/a/b', mountPath: '/v', readOnly: true });
  });

  it('when the layout is scoped, then a host volume lands under <path>/<tenant>/users/<user>/<subPath>, confined there', () => {
    const body = (user?: string) => ({
      volumes: [{ name: 'v', host: { path: '/srv/data/shared' }, subPath: 'work', mountPath: '/v' }],
      ...(user ? { extensions: { 'tidebox.io/user-id': user } } : {}),
    });
    expect(normalize(body('alice')).volumes[0]).toEqual({
      name: 'v',
      hostPath: '/srv/data/acme/users/alice/shared/work',
      scope: '/srv/data/acme/users/alice',
      mountPath: '/v',
      readOnly: false,
    });
    expect(normalize(body('bob')).volumes[0]!.hostPath).toBe('/srv/data/acme/users/bob/shared/work');
    expect(normalize(body()).volumes[0]!.hostPath).toBe('/srv/data/acme/users/default/shared/work');
    expect(normalize(body('alice'), sandboxConfig, 'other').volumes[0]!.hostPath).toBe('/srv/data/other/users/alice/shared/work');
    // Naming another tenant's area as host.path only leads deeper into one's own.
    const sneaky = normalize({
      volumes: [{ name: 'v', host: { path: '/srv/data/globex/users/bob' }, mountPath: '/v' }],
      extensions: { 'tidebox.io/user-id': 'alice' },
    });
    expect(sneaky.volumes[0]!.hostPath).toBe('/srv/data/acme/users/alice/globex/users/bob');
  });

  it('when a pvc claimName is not a DNS label, then the schema refuses it', () => {
    const parsed = schema.safeParse({ ...base, volumes: [{ name: 'v', pvc: { claimName: 'Not_A_Label' }, mountPath: '/v' }] });
    expect(parsed.success).toBe(false);
    expect(JSON.stringify(parsed.error?.issues)).toContain('claimName must be a DNS label');
  });

  it('when a pvc volume is requested, then its path inside the named volume is scoped per tenant and user', () => {
    const volumes = [{ name: 'v', pvc: { claimName: 'data', storage: '1Gi' }, subPath: 'proj/', mountPath: '/v' }];
    expect(normalize({ volumes, extensions: { 'tidebox.io/user-id': 'u_1' } }).pvcs).toEqual([
      {
        name: 'v',
        claimName: 'data',
        subPath: 'acme/users/u_1/proj',
        scope: 'acme/users/u_1',
        mountPath: '/v',
        readOnly: false,
        createIfNotExists: true,
      },
    ]);
    expect(normalize({ volumes }, legacyConfig).pvcs![0]).toMatchObject({ subPath: 'proj', scope: '' });
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
