import { parse as parseToml } from 'smol-toml';
import { applyEnv, Config, ConfigError, parseConfig } from './config';

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
