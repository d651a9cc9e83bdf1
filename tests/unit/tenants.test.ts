import { parse as parseToml } from 'smol-toml';
import { ConfigError, listenAddress, parseConfig } from '../../core/config';
import { applyEnv } from '../../core/load-config';
import { canSee, parseTenantsFile, userIdOf } from '../../core/tenants';
import { KeyRing } from '../../api/auth/api-key';

const key = (c: string) => c.repeat(20);

describe('tenants config guards', () => {
  it.each([
    [{ server: { apiKey: key('k') }, tenants: { provider: 'file', file: '/etc/t.toml' } }, 'mutually exclusive'],
    [{ tenants: { provider: 'file' } }, 'tenants.file: required'],
    [{ tenants: { provider: 'http' } }, 'tenants.endpoint: required'],
    [{ tenants: { provider: 'ldap', file: '/x' } }, 'tenants.provider'],
    [{ tenants: { provider: 'http', endpoint: 'http://127.0.0.1:1/t', authHeader: 'Authorization' } }, 'go together'],
    [{ tenants: { provider: 'file', file: '/x', adminKeys: [key('a'), key('a')] } }, 'listed twice'],
    [{ tenants: { provider: 'file', file: '/x', adminKeys: ['short'] } }, 'at least 16'],
    [{ sandbox: { allowedHostPaths: ['/srv', '/srv/data'] } }, 'must not nest'],
  ])('when the config has %j, then start-up fails saying %s', (raw, text) => {
    expect(() => parseConfig(raw)).toThrow(ConfigError);
    expect(() => parseConfig(raw)).toThrow(text);
  });

  it('when tenants come from the environment, then admin keys are split on commas and the server may bind any host', () => {
    const c = parseConfig(
      applyEnv(
        { server: { host: '0.0.0.0' } },
        {
          TIDEBOX_TENANTS_PROVIDER: 'file',
          TIDEBOX_TENANTS_FILE: '/etc/tenants.toml',
          TIDEBOX_ADMIN_KEYS: `${key('a')}, ${key('b')}`,
        },
      ),
    );
    expect(c.tenants).toMatchObject({
      provider: 'file',
      file: '/etc/tenants.toml',
      adminKeys: [key('a'), key('b')],
      ttlSeconds: 60,
      maxStaleSeconds: 300,
    });
    expect(listenAddress(c.server, c.tenants)).toEqual({ host: '0.0.0.0' });
  });
});

describe('tenants file', () => {
  const file = (text: string) => parseTenantsFile(parseToml(text), [key('z')]);

  it('when the file is valid, then every tenant comes with its keys and namespace', () => {
    const r = file(`
      [[tenants]]
      name = "acme"
      namespace = "team-acme"
      apiKeys = ["${key('a')}", "${key('b')}"]
      [[tenants]]
      name = "globex"
      namespace = "globex"
      apiKeys = ["${key('c')}"]
    `);
    expect(r).toEqual({
      tenants: [
        { name: 'acme', namespace: 'team-acme', apiKeys: [key('a'), key('b')] },
        { name: 'globex', namespace: 'globex', apiKeys: [key('c')] },
      ],
    });
  });

  it.each([
    [`[[tenants]]\nname = "acme"\nnamespace = "acme"\napiKeys = []`, 'at least one API key'],
    [`[[tenants]]\nname = "acme"\nnamespace = "acme"`, 'apiKeys'],
    [`[[tenants]]\nname = "Acme"\nnamespace = "acme"\napiKeys = ["${key('a')}"]`, 'DNS label'],
    [`[[tenants]]\nname = "acme"\nnamespace = "a_b"\napiKeys = ["${key('a')}"]`, 'DNS label'],
    [
      `[[tenants]]\nname = "a"\nnamespace = "a"\napiKeys = ["${key('a')}"]\n[[tenants]]\nname = "b"\nnamespace = "b"\napiKeys = ["${key('a')}"]`,
      'also used by tenant "a"',
    ],
    [
      `[[tenants]]\nname = "a"\nnamespace = "a"\napiKeys = ["${key('a')}"]\n[[tenants]]\nname = "a"\nnamespace = "b"\napiKeys = ["${key('b')}"]`,
      'used twice',
    ],
    [`[[tenants]]\nname = "a"\nnamespace = "a"\napiKeys = ["${key('z')}"]`, 'admin keys'],
    [`[[tenants]]\nname = "a"\nnamespace = "a"\napiKeys = ["${key('a')}"]\nextra = 1`, 'extra'],
  ])('when the file is %j, then it is refused saying %s', (text, problem) => {
    const r = file(text);
    expect('problems' in r && r.problems.join('; ')).toContain(problem);
    // A clash is named by tenant, never by printing the key.
    expect(JSON.stringify(r)).not.toContain(key('a'));
  });
});

describe('callers and keys', () => {
  it('when a key ring is searched, then it finds the key wherever it is and nothing for a near miss', () => {
    const ring = new KeyRing([
      [key('a'), 'A'],
      [key('b'), 'B'],
      [key('c'), 'C'],
    ]);
    expect(ring.find(key('c'))).toBe('C');
    expect(ring.find(key('a'))).toBe('A');
    expect(ring.find(`${key('a')}x`)).toBeUndefined();
    expect(ring.find('')).toBeUndefined();
  });

  it('when visibility is decided, then a tenant sees only its own and an admin sees all', () => {
    expect(canSee({ kind: 'tenant', tenant: 'a', namespace: 'a' }, 'a')).toBe(true);
    expect(canSee({ kind: 'tenant', tenant: 'a', namespace: 'a' }, 'b')).toBe(false);
    expect(canSee({ kind: 'tenant', tenant: 'a', namespace: 'a' }, undefined)).toBe(false);
    expect(canSee({ kind: 'admin' }, 'b')).toBe(true);
  });

  it('when the user id extension is absent, valid or invalid, then the user is default, it, or refused', () => {
    expect(userIdOf({})).toBe('default');
    expect(userIdOf({ 'tidebox.io/user-id': 'alice_01-x' })).toBe('alice_01-x');
    expect(userIdOf({ 'tidebox.io/user-id': 'a/b' })).toBeUndefined();
    expect(userIdOf({ 'tidebox.io/user-id': '..' })).toBeUndefined();
  });
});
