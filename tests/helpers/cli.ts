import { execFile } from 'node:child_process';
import { repoRoot } from './stack';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The operator CLI as the README runs it (`npx tidebox …`), against the API at `url`. */
export function runCli(url: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      'npx',
      ['--no-install', 'tidebox', ...args],
      { cwd: repoRoot(), env: { ...process.env, TIDEBOX_URL: url, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      },
    );
  });
}
