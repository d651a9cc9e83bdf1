import { parse as parseToml } from 'smol-toml';
import { type Config, ConfigError, parseConfig } from './config';
import { TEMPORAL_ENV_KEYS } from './temporal-config';

/**
 * Read TIDEBOX_CONFIG (TOML) if set, overlay the environment, validate. The file reader comes in
 * from the process entry point so that core/ itself does no I/O.
 */
export function loadConfig(env: NodeJS.ProcessEnv, readText: (path: string) => string): Config {
  const path = env.TIDEBOX_CONFIG;
  let fileConfig: Record<string, unknown> = {};
  if (path) {
    let text: string;
    try {
      text = readText(path);
    } catch (err) {
      throw new ConfigError(`cannot read TIDEBOX_CONFIG ${path}: ${(err as Error).message}`);
    }
    try {
      fileConfig = parseToml(text) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`cannot parse TIDEBOX_CONFIG ${path}: ${(err as Error).message}`);
    }
  }
  return parseConfig(applyEnv(fileConfig, env), path ? `config (${path} + environment)` : 'config (environment)');
}

/** Environment variables and the config key each one sets. */
const ENV_KEYS: Array<[string, string[], (v: string) => unknown]> = [
  ['TIDEBOX_DATA_DIR', ['dataDir'], String],
  ['TIDEBOX_INSTANCE', ['instance'], String],
  ['TIDEBOX_HOST', ['server', 'host'], String],
  ['TIDEBOX_PORT', ['server', 'port'], String],
  ['TIDEBOX_API_KEY', ['server', 'apiKey'], String],
  ...TEMPORAL_ENV_KEYS.map(([name, path]): [string, string[], (v: string) => unknown] => [name, path, String]),
  ['TIDEBOX_HOST_ID', ['docker', 'hostId'], String],
  ['TIDEBOX_RUNTIME', ['runtime', 'type'], String],
  ['TIDEBOX_LOG_LEVEL', ['log', 'level'], String],
  ['TIDEBOX_LOG_FORMAT', ['log', 'format'], String],
  ['TIDEBOX_KUBECONFIG', ['kubernetes', 'kubeconfig'], String],
  ['TIDEBOX_KUBERNETES_NAMESPACE', ['kubernetes', 'namespace'], String],
  ['TIDEBOX_PUBLIC_HOST', ['server', 'publicHost'], String],
  ['TIDEBOX_TEMPORAL_UI_URL', ['server', 'temporalUiUrl'], String],
  ['TIDEBOX_PAYLOAD_KEY', ['security', 'payloadKey'], String],
  ['TIDEBOX_VIEWS_POSTGRES_URL', ['views', 'postgresUrl'], String],
  ['TIDEBOX_EXECD_TOKEN_SECRET', ['execd', 'tokenSecret'], String],
  ['TIDEBOX_EXECD_ENABLED', ['execd', 'enabled'], (v) => v === 'true' || v === '1'],
  ['TIDEBOX_TENANTS_PROVIDER', ['tenants', 'provider'], String],
  ['TIDEBOX_TENANTS_FILE', ['tenants', 'file'], String],
  ['TIDEBOX_TENANTS_ENDPOINT', ['tenants', 'endpoint'], String],
  ['TIDEBOX_TENANTS_AUTH_TOKEN', ['tenants', 'authToken'], String],
  [
    'TIDEBOX_ADMIN_KEYS',
    ['tenants', 'adminKeys'],
    (v) =>
      v
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
  ],
  ['TIDEBOX_WORKER_METRICS_PORT', ['worker', 'metricsPort'], Number],
  ['TIDEBOX_WORKER_MAX_CACHED_WORKFLOWS', ['worker', 'maxCachedWorkflows'], Number],
  ['TIDEBOX_FAULT_HANG_AT', ['faults', 'hangAt'], (v) => v.split(',').filter(Boolean)],
  ['TIDEBOX_FAULT_FAIL_AT', ['faults', 'failAt'], (v) => v.split(',').filter(Boolean)],
];

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    node = (next && typeof next === 'object' ? next : (node[key] = {})) as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** Overlay environment variables onto a parsed-file object. Empty variables count as unset. */
export function applyEnv(fileConfig: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const merged = structuredClone(fileConfig);
  for (const [name, path, convert] of ENV_KEYS) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(merged, path, convert(value));
  }
  return merged;
}
