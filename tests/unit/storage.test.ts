import { parseConfig } from '../../core/config';
import { normalizeCreateRequest } from '../../core/create-request';
import { createSandboxRequestSchema } from '../../core/schemas';
import { checkPvcPaths, checkResolvedHostPaths, resolveExisting, resolveWithinScope, storageScopeProblem } from '../../core/storage';

/** A fake filesystem view: path → its realpath (missing = does not exist). */
const fs = (entries: Record<string, string>) => (p: string) => entries[p];

describe('storage confinement', () => {
  const links = fs({
    '/': '/',
    '/srv': '/srv',
    '/srv/data': '/srv/data',
    '/srv/data/acme': '/srv/data/acme',
    '/srv/data/acme/users': '/srv/data/acme/users',
    '/srv/data/acme/users/alice': '/srv/data/acme/users/alice',
    '/srv/data/acme/users/alice/work': '/srv/data/acme/users/alice/work',
    '/srv/data/acme/users/alice/escape': '/etc',
    '/srv/data/acme/users/alice/peek': '/srv/data/acme/users/bob',
    '/srv/data/acme/users/alice/inner': '/srv/data/acme/users/alice/work',
  });
  const scoped = (hostPath: string) => [{ name: 'v', hostPath, scope: '/srv/data/acme/users/alice', mountPath: '/v', readOnly: false }];

  it('when components are missing, then the deepest existing ancestor is resolved and the rest appended', () => {
    expect(resolveExisting('/srv/data/acme/users/alice/escape/x/y', links)).toEqual({ path: '/etc/x/y', exists: false });
    expect(resolveExisting('/srv/data/acme/users/carol/new', links)).toEqual({ path: '/srv/data/acme/users/carol/new', exists: false });
    expect(resolveExisting('/srv/data/acme/users/alice/work', links)).toEqual({ path: '/srv/data/acme/users/alice/work', exists: true });
  });

  it('when a symlink leads out of the user area (to the host or another user), then the volume is refused', () => {
    expect(() => checkResolvedHostPaths(scoped('/srv/data/acme/users/alice/escape'), ['/srv/data'], links)).toThrow(
      /outside this user's storage area/,
    );
    expect(() => checkResolvedHostPaths(scoped('/srv/data/acme/users/alice/escape/deeper'), ['/srv/data'], links)).toThrow(
      /symlink escape/,
    );
    expect(() => checkResolvedHostPaths(scoped('/srv/data/acme/users/alice/peek'), ['/srv/data'], links)).toThrow(/symlink escape/);
  });

  it('when a link stays inside the user area or the path does not exist yet, then the resolved path is bound', () => {
    expect(checkResolvedHostPaths(scoped('/srv/data/acme/users/alice/inner'), ['/srv/data'], links)[0]!.hostPath).toBe(
      '/srv/data/acme/users/alice/work',
    );
    expect(checkResolvedHostPaths(scoped('/srv/data/acme/users/alice/new/dir'), ['/srv/data'], links)[0]!.hostPath).toBe(
      '/srv/data/acme/users/alice/new/dir',
    );
  });

  it('when the scope itself resolves outside the allowed host paths, then the volume is refused', () => {
    const moved = fs({ '/': '/', '/srv': '/srv', '/srv/data': '/srv/data', '/srv/data/acme': '/opt/elsewhere' });
    expect(() => checkResolvedHostPaths(scoped('/srv/data/acme/users/alice/w'), ['/srv/data'], moved)).toThrow(
      /outside the allowed host paths/,
    );
  });

  it('when a pvc subPath escapes through a link inside a volume the API can see, then it is refused; an unseen volume is left to the host', () => {
    const vol = fs({
      '/var/lib/docker/volumes/data/_data': '/var/lib/docker/volumes/data/_data',
      '/var/lib/docker/volumes/data/_data/acme/users/alice/x': '/var/lib/docker/volumes/data/_data/acme/users/bob',
    });
    const pvc = (claimName: string, subPath: string) => [
      { name: 'v', claimName, subPath, scope: 'acme/users/alice', mountPath: '/v', readOnly: false, createIfNotExists: true },
    ];
    expect(() => checkPvcPaths(pvc('data', 'acme/users/alice/x'), '/var/lib/docker/volumes', vol)).toThrow(/symlink escape/);
    expect(() => checkPvcPaths(pvc('data', 'acme/users/alice/y'), '/var/lib/docker/volumes', vol)).not.toThrow();
    expect(() => checkPvcPaths(pvc('other', 'acme/users/alice/x'), '/var/lib/docker/volumes', vol)).not.toThrow();
    expect(() => resolveWithinScope('v', '/a/b', '/a/b', fs({}))).not.toThrow();
  });
});

describe('storage scope, as the host that binds derives it', () => {
  const config = parseConfig({ sandbox: { allowedHostPaths: ['/srv/data'] } }).sandbox;
  const schema = createSandboxRequestSchema(config);
  const spec = normalizeCreateRequest(
    schema.parse({
      image: { uri: 'busybox' },
      entrypoint: ['sh'],
      extensions: { 'tidebox.io/user-id': 'alice' },
      volumes: [
        { name: 'home', host: { path: '/srv/data' }, subPath: 'work', mountPath: '/home' },
        { name: 'cache', pvc: { claimName: 'cache' }, subPath: 'npm', mountPath: '/cache' },
      ],
    }),
    config,
    { tenant: 'acme' },
  );

  it('when the spec is what the API made for the tenant, then its storage is in the tenant’s and user’s area', () => {
    expect(storageScopeProblem(spec, 'acme', 'scoped', ['/srv/data'])).toBeUndefined();
  });

  it.each([
    ['another tenant runs it', spec, 'globex'],
    ['the host path was forged', { ...spec, volumes: [{ ...spec.volumes[0]!, hostPath: '/srv/data/globex/users/bob/work' }] }, 'acme'],
    [
      'the scope was forged along with it',
      { ...spec, volumes: [{ ...spec.volumes[0]!, hostPath: '/srv/data/globex/users/bob', scope: '/srv/data/globex/users/bob' }] },
      'acme',
    ],
    ['the pvc path was forged', { ...spec, pvcs: [{ ...spec.pvcs![0]!, subPath: 'globex/users/bob/npm' }] }, 'acme'],
    ['the user id was changed', { ...spec, extensions: { 'tidebox.io/user-id': 'bob' } }, 'acme'],
  ])('when %s, then the host refuses it', (_what, forged, tenant) => {
    expect(storageScopeProblem(forged, tenant, 'scoped', ['/srv/data'])).toMatch(/is not in tenant \S+'s area|no valid user id/);
  });

  it('when the layout is legacy, then there is no area to check', () => {
    expect(storageScopeProblem(spec, 'globex', 'legacy', ['/srv/data'])).toBeUndefined();
  });
});
