import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

/**
 * The production shape (docs/deploy.md): `docker compose config` (or docker-compose 1.29+, which
 * scripts/bootstrap.sh installs from Debian) must accept docker-compose.yml, and the Dockerfile must
 * build a non-root, non-Alpine image. No image is pulled or run here.
 */

const ROOT = join(__dirname, '..', '..');
const API_KEY = 'compose-test-api-key-0123456789';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Argument vectors only, no shell. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd = ROOT): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (err && !stdout ? err.message : '')) });
    });
  });
}

/** `docker compose` (v2, JSON output) if it answers, else `docker-compose` (v1, YAML output). */
async function findCompose(): Promise<{ file: string; pre: string[]; v2: boolean }> {
  if ((await run('docker', ['compose', 'version'])).code === 0) return { file: 'docker', pre: ['compose'], v2: true };
  if ((await run('docker-compose', ['version'])).code === 0) return { file: 'docker-compose', pre: [], v2: false };
  throw new Error('neither `docker compose` nor `docker-compose` works: install one (scripts/bootstrap.sh tries Debian docker-compose)');
}

/** What the assertions look at, read from either tool's normalised output. */
interface ComposeModel {
  services: string[];
  images: string[];
  volumeTargets: Record<string, string[]>;
  groupAdd: Record<string, string[]>;
  /** host_ip of every published port, across services ('' = all interfaces). */
  publishedHostIps: string[];
}

type JsonService = {
  image?: string;
  volumes?: Array<{ target?: string }>;
  group_add?: Array<string | number>;
  ports?: Array<{ host_ip?: string; published?: string | number }>;
};

function fromJson(text: string): ComposeModel {
  const doc = JSON.parse(text) as { services: Record<string, JsonService> };
  const entries = Object.entries(doc.services);
  return {
    services: entries.map(([name]) => name),
    images: entries.map(([, s]) => s.image ?? ''),
    volumeTargets: Object.fromEntries(entries.map(([name, s]) => [name, (s.volumes ?? []).map((v) => v.target ?? '')])),
    groupAdd: Object.fromEntries(entries.map(([name, s]) => [name, (s.group_add ?? []).map(String)])),
    publishedHostIps: entries.flatMap(([, s]) => (s.ports ?? []).filter((p) => p.published !== undefined).map((p) => p.host_ip ?? '')),
  };
}

/**
 * docker-compose 1.29 has no JSON output. Its `config` prints a normalised YAML with a fixed layout
 * (services at two spaces, keys at four, sequences as `    - item`), which is all this reads.
 */
function fromYaml(text: string, services: string[]): ComposeModel {
  const lines = text.split('\n');
  const start = lines.indexOf('services:');
  const block = (name: string): string[] => {
    const from = lines.indexOf(`  ${name}:`, start);
    if (start < 0 || from < 0) return [];
    const end = lines.findIndex((l, i) => i > from && /^ {0,2}\S/.test(l));
    return lines.slice(from + 1, end < 0 ? undefined : end);
  };
  const list = (svc: string[], key: string): string[] => {
    const at = svc.indexOf(`    ${key}:`);
    if (at < 0) return [];
    const out: string[] = [];
    for (const l of svc.slice(at + 1)) {
      const m = /^ {4}- (.*)$/.exec(l);
      if (!m) break;
      out.push(m[1]!.replace(/^(['"])(.*)\1$/, '$2'));
    }
    return out;
  };
  const volumeTarget = (v: string) => v.split(':')[1] ?? v;
  const hostIp = (p: string) => (p.split(':').length >= 3 ? p.split(':')[0]! : '');
  return {
    services,
    images: services.map(
      (s) =>
        block(s)
          .find((l) => l.startsWith('    image: '))
          ?.slice(11) ?? '',
    ),
    volumeTargets: Object.fromEntries(services.map((s) => [s, list(block(s), 'volumes').map(volumeTarget)])),
    groupAdd: Object.fromEntries(services.map((s) => [s, list(block(s), 'group_add')])),
    publishedHostIps: services.flatMap((s) =>
      list(block(s), 'ports')
        .filter((p) => p.includes(':'))
        .map(hostIp),
    ),
  };
}

/** `config` of the files layered in order, normalised. */
async function composeModel(
  compose: { file: string; pre: string[]; v2: boolean },
  files: string[],
  env: NodeJS.ProcessEnv,
): Promise<ComposeModel> {
  const args = [...compose.pre, ...files.flatMap((f) => ['-f', f]), 'config'];
  let r = await run(compose.file, compose.v2 ? [...args, '--format', 'json'] : args, env);
  if (compose.v2 && r.code !== 0 && /unknown flag/.test(r.stderr)) r = await run(compose.file, args, env);
  if (r.code !== 0) throw new Error(`${compose.file} ${args.join(' ')} rejected ${files.join(' + ')} (exit ${r.code}):\n${r.stderr}`);
  if (r.stdout.trimStart().startsWith('{')) return fromJson(r.stdout);
  const names = await run(compose.file, [...args, '--services'], env);
  expect(names.code).toBe(0);
  return fromYaml(
    r.stdout,
    names.stdout
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

describe('docker-compose.yml', () => {
  let compose: { file: string; pre: string[]; v2: boolean };
  let model: ComposeModel;
  const env = { ...process.env, TIDEBOX_API_KEY: API_KEY, TIDEBOX_EXECD_TOKEN_SECRET: 'e'.repeat(64) };

  beforeAll(async () => {
    compose = await findCompose();
    model = await composeModel(compose, ['docker-compose.yml'], env);
  });

  it('when validated by docker compose config, then it holds the whole stack', () => {
    expect(model.services).toEqual(expect.arrayContaining(['postgresql', 'temporal', 'temporal-ui', 'api', 'worker']));
  });

  it('when validated, then the worker mounts the Docker socket and joins its group', () => {
    expect(model.volumeTargets.worker).toContain('/var/run/docker.sock');
    expect(model.groupAdd.worker?.length).toBeGreaterThan(0);
    expect(model.volumeTargets.api).not.toContain('/var/run/docker.sock');
  });

  it('when validated, then every published port binds 127.0.0.1 only', () => {
    expect(model.publishedHostIps.length).toBeGreaterThan(0);
    expect(new Set(model.publishedHostIps)).toEqual(new Set(['127.0.0.1']));
  });

  it('when validated, then it uses the upstream server and admin-tools images, not the deprecated auto-setup', () => {
    expect(model.images.some((i) => i.startsWith('temporalio/server:'))).toBe(true);
    expect(model.images.some((i) => i.startsWith('temporalio/admin-tools:'))).toBe(true);
    expect(model.images.some((i) => i.startsWith('temporalio/ui:'))).toBe(true);
    expect(model.images.filter((i) => i.includes('auto-setup'))).toEqual([]);
  });

  it('when TIDEBOX_API_KEY is not set, then config refuses the file naming the variable', async () => {
    const { TIDEBOX_API_KEY: _unset, ...withoutKey } = env;
    const r = await run(compose.file, [...compose.pre, '-f', 'docker-compose.yml', 'config'], withoutKey);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/TIDEBOX_API_KEY/);
  });

  it('when a compose file is invalid, then the same check fails (the validator is not a no-op)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidebox-compose-'));
    try {
      writeFileSync(join(dir, 'docker-compose.yml'), 'services:\n  api:\n    image: x\n    no_such_key: 1\n');
      const r = await run(compose.file, [...compose.pre, '-f', 'docker-compose.yml', 'config'], env, dir);
      expect(r.code).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/compose.tls.yml over docker-compose.yml', () => {
  it('when layered, then Temporal, its UI, the api and the worker all read the certificates', async () => {
    const model = await composeModel(await findCompose(), ['docker-compose.yml', 'deploy/compose.tls.yml'], {
      ...process.env,
      TIDEBOX_API_KEY: API_KEY,
      TIDEBOX_EXECD_TOKEN_SECRET: 'e'.repeat(64),
    });
    for (const service of ['temporal', 'temporal-ui', 'api', 'worker']) expect(model.volumeTargets[service]).toContain('/tls');
    expect(model.volumeTargets.worker).toContain('/var/run/docker.sock');
  });
});

/**
 * What the suite proves (scripts/temporal-test-cluster, run by tests/e2e/cluster) is what operators
 * deploy: the same Temporal server version, PostgreSQL major, server environment, schema script and
 * dynamic config in docker-compose.yml, and the same versions named by the Kubernetes manifests.
 */
describe('the tested Temporal cluster and the deployment files', () => {
  const script = readFileSync(join(ROOT, 'scripts/temporal-test-cluster'), 'utf8');
  const testedVersion = /TEMPORAL_VERSION="\$\{TIDEBOX_TEMPORAL_VERSION:-v([0-9.]+)\}"/.exec(script)?.[1];
  // The server's environment in the script: the KEY=value words of its `exec env ... temporal-server` command.
  const launch = /exec env ([\s\S]*?)setsid "\$BIN\/temporal-server" start/.exec(script)?.[1] ?? '';
  const scriptEnv = Object.fromEntries([...launch.matchAll(/([A-Z_]+)="?([^"\s]+)"?/g)].map((m) => [m[1]!, m[2]!]));
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { image?: string; environment?: Record<string, string>; entrypoint?: string[]; volumes?: string[] }>;
  };
  const tag = (image: string | undefined) =>
    /:\$\{[A-Z_]+:-([^}]+)\}$|:([^:$]+)$/
      .exec(image ?? '')
      ?.slice(1)
      .find(Boolean);
  /** The PostgreSQL major the script runs (Debian's, pinned). */
  const pgMajor = () => /PG_MAJOR="\$\{TIDEBOX_PG_MAJOR:-(\d+)\}"/.exec(script)?.[1];

  it('when read, then the script pins a version and passes the server its settings', () => {
    expect(testedVersion).toMatch(/^1\.\d+\.\d+$/);
    expect(pgMajor()).toMatch(/^\d+$/);
    expect(scriptEnv).toMatchObject({
      DB: 'postgres12',
      DBNAME: 'temporal',
      VISIBILITY_DBNAME: 'temporal_visibility',
      BIND_ON_IP: '127.0.0.1',
    });
  });

  it('when compared, then compose runs the tested server and schema versions on the tested PostgreSQL major', () => {
    expect(tag(compose.services.temporal?.image)).toBe(testedVersion);
    expect(tag(compose.services['temporal-schema']?.image)).toBe(testedVersion);
    expect(tag(compose.services.postgresql?.image)).toBe(pgMajor());
  });

  it('when compared, then the compose server gets the same database settings, dynamic config and schema script', () => {
    const env = compose.services.temporal?.environment ?? {};
    for (const key of ['DB', 'DBNAME', 'VISIBILITY_DBNAME']) expect([key, env[key]]).toEqual([key, scriptEnv[key]]);
    expect(basename(env.DYNAMIC_CONFIG_FILE_PATH ?? '')).toBe(basename(scriptEnv.DYNAMIC_CONFIG_FILE_PATH ?? '-'));
    expect(scriptEnv.DYNAMIC_CONFIG_FILE_PATH).toContain('deploy/temporal/dynamicconfig/');
    expect(compose.services.temporal?.volumes).toContain('./deploy/temporal/dynamicconfig:/etc/temporal/config/dynamicconfig:ro');
    expect(compose.services['temporal-schema']?.entrypoint).toEqual(['/bin/sh', '/deploy/setup-schema.sh']);
    expect(compose.services['temporal-schema']?.environment?.SQL_PLUGIN).toBe('postgres12');
    expect(script).toMatch(/SQL_PLUGIN=postgres12 [\s\S]{0,300}?sh "\$REPO\/deploy\/temporal\/setup-schema.sh"/);
  });

  it('when compared, then the Kubernetes manifests name the tested server version and PostgreSQL major', () => {
    const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy/kubernetes/config.yaml'), 'utf8')).map((d) => d.toJS());
    const annotations = docs.find((d) => d?.kind === 'ConfigMap' && d.metadata?.name === 'tidebox-config')?.metadata?.annotations ?? {};
    expect(annotations['tidebox.io/tested-temporal-server']).toBe(testedVersion);
    expect(annotations['tidebox.io/tested-postgresql']).toBe(pgMajor());
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  // Instructions with continuation lines joined, comments dropped.
  const instructions = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const firstFrom = instructions.findIndex((l) => /^FROM\s/i.test(l));
  const globalArgs = Object.fromEntries(
    instructions
      .slice(0, firstFrom)
      .map((l) => /^ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)/i.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
  const resolve = (s: string) => s.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_m, name: string) => globalArgs[name] ?? '');
  const froms = instructions.filter((l) => /^FROM\s/i.test(l)).map((l) => resolve(l.split(/\s+/)[1]!));
  const finalStage = instructions.slice(instructions.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true));

  it('when read, then no stage is based on Alpine and the final stage is Debian bookworm', () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const base of froms) expect(base).not.toMatch(/alpine/i);
    expect(froms[froms.length - 1]).toMatch(/^node:20-bookworm/);
  });

  it('when read, then the final stage runs as a non-root user in production mode', () => {
    const users = finalStage.filter((l) => /^USER\s/i.test(l)).map((l) => l.split(/\s+/)[1]!);
    expect(users.length).toBeGreaterThan(0);
    const user = users[users.length - 1]!.split(':')[0]!;
    expect(['root', '0']).not.toContain(user);
    expect(finalStage.some((l) => /^ENV\s.*\bNODE_ENV=production\b/i.test(l))).toBe(true);
  });
});
