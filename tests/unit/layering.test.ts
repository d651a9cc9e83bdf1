/**
 * The lint step keeps the layering (docs/architecture.md): these run the project's real ESLint
 * configuration on files that break it, exactly as `npm run lint` would see them. By hand:
 *
 *   echo "import '../activities/messaging';" | npx eslint --stdin --stdin-filename api/x.ts
 */
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../helpers/stack';

interface LintMessage {
  ruleId: string | null;
  message: string;
}

/** Runs the project's ESLint (its real config) in one child process over files given as text; ESLint is ESM, jest is not. */
const LINT_SCRIPT = `
import { ESLint } from 'eslint';
let input = '';
for await (const chunk of process.stdin) input += chunk;
const eslint = new ESLint({ cwd: process.cwd() });
const out = [];
for (const { filePath, code } of JSON.parse(input)) {
  const [report] = await eslint.lintText(code, { filePath });
  out.push(report.messages.map(({ ruleId, message }) => ({ ruleId, message })));
}
process.stdout.write(JSON.stringify(out));
`;

const cases: Array<{ filePath: string; code: string }> = [];
let reports: LintMessage[][] = [];
/** Register a file to lint; its messages are read once every case has been linted in beforeAll. */
function lint(filePath: string, code: string): () => LintMessage[] {
  const index = cases.push({ filePath, code }) - 1;
  return () => reports[index]!;
}

const rules = (messages: LintMessage[]) => messages.map((m) => m.ruleId);

const LONG = `${Array.from({ length: 401 }, (_, i) => `export const v${i} = ${i};`).join('\n')}\n`;
const violations = [
  ['api/routes/violation.ts', "import { sandboxWorkflow } from '../../workflows/sandbox';", 'api/ must not import workflows/'],
  ['api/violation.ts', "import '../worker/main';", 'api/ must not import worker/'],
  ['worker/violation.ts', "import { buildApp } from '../api/app';", 'worker/ must not import api/'],
  [
    'workflows/violation.ts',
    "import { createContainerRuntime } from '../activities/docker/container-runtime';",
    'workflows/ must not import activities/',
  ],
  ['workflows/violation.ts', "import { readFileSync } from 'node:fs';", 'workflows/ must not use node:fs'],
  [
    'workflows/sandbox/violation.ts',
    "import { payloadCodecsFor } from '../../platform/payload-codec';",
    'workflows/ must not import platform/',
  ],
  ['activities/violation.ts', "import { sandboxWorkflow } from '../workflows/sandbox';", 'activities/ must not import workflows/'],
  ['core/violation.ts', "import { LABELS } from '../contracts/labels';", 'core/ must not import contracts/'],
  ['core/violation.ts', "import Dockerode from 'dockerode';", 'core/ must not use dockerode'],
  ['contracts/violation.ts', "import { loadKubeConfig } from '../platform/kube';", 'contracts/ must not import platform/'],
  [
    'api/routes/violation.ts',
    "import { Client } from '@temporalio/client';",
    'only api/temporal/ (and api/main.ts) use the Temporal client',
  ],
  ['api/violation.ts', "export const load = () => import('../activities/kubernetes/host');", 'api/ must not import activities/'],
].map(([file, code, message]) => ({ file: file!, code: code!, message: message!, result: lint(file!, `${code}\nexport {};\n`) }));
const apiToActivities = lint(
  'api/violation.ts',
  "import { createMessagingActivities } from '../activities/messaging';\nexport const a = createMessagingActivities;\n",
);
const fine = lint(
  'api/routes/fine.ts',
  [
    "import { TideboxError } from '../../core/errors';",
    "import { describeQuery } from '../../contracts/sandbox-actor';",
    "import type { SandboxService } from '../temporal';",
    'export const used: [typeof TideboxError, typeof describeQuery, SandboxService | undefined] = [TideboxError, describeQuery, undefined];',
    '',
  ].join('\n'),
);
const cycle = lint('core/errors.ts', "import { normalizeAbsolute } from './storage';\nexport const n = normalizeAbsolute;\n");
const heavyWorkflow = lint('workflows/heavy.ts', "import { QuotaSchema } from '../core/quota-config';\nexport const q = QuotaSchema;\n");
const zodInWorkflow = lint('workflows/sandbox/heavy.ts', "import { z } from 'zod';\nexport const s = z.string();\n");
const lightWorkflow = lint(
  'workflows/light.ts',
  "import type { Quota } from '../core/quotas';\nimport { hostTaskQueue } from '../core/sandbox';\nexport const l: [typeof hostTaskQueue, Quota | undefined] = [hostTaskQueue, undefined];\n",
);
const longProduct = lint('core/long.ts', LONG);
const longTest = lint('tests/unit/long.test.ts', LONG);

beforeAll(() => {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', LINT_SCRIPT], {
    cwd: repoRoot(),
    input: JSON.stringify(cases),
    encoding: 'utf8',
    timeout: 90_000,
  });
  if (run.status !== 0) throw new Error(`eslint failed (exit ${run.status}): ${run.stderr}`);
  reports = JSON.parse(run.stdout) as LintMessage[][];
}, 120_000);

describe('layering (npm run lint)', () => {
  it('when api/ imports activities/, then the lint fails naming the rule that forbids it', () => {
    expect(apiToActivities()).toEqual([
      expect.objectContaining({
        ruleId: 'tidebox/layers',
        message: expect.stringContaining(
          'api/ must not import activities/ (activities/messaging.ts): every lifecycle effect goes through a workflow',
        ),
      }),
    ]);
  });

  it.each(violations)('when $file has `$code`, then the lint fails: $message', ({ message, result }) => {
    expect(result()).toContainEqual(expect.objectContaining({ ruleId: 'tidebox/layers', message: expect.stringContaining(message) }));
  });

  it('when imports follow the layers, then the lint passes', () => {
    expect(fine()).toEqual([]);
  });

  it('when a change closes an import cycle, then the lint fails showing the circle', () => {
    expect(cycle()).toContainEqual(
      expect.objectContaining({ ruleId: 'tidebox/no-cycle', message: 'import cycle: core/errors.ts → core/storage.ts → core/errors.ts' }),
    );
  });

  it('when workflow code loads zod, even through a core module, then the lint fails showing the path; type-only imports and zod-free modules pass', () => {
    expect(heavyWorkflow()).toEqual([
      expect.objectContaining({
        ruleId: 'tidebox/workflow-weight',
        message: expect.stringContaining('workflows/ must not load zod (workflows/heavy.ts → core/quota-config.ts → zod)'),
      }),
    ]);
    expect(rules(zodInWorkflow())).toEqual(['tidebox/workflow-weight']);
    expect(lightWorkflow()).toEqual([]);
  });

  it('when a product file grows past 400 lines, then the lint fails; test files may', () => {
    expect(rules(longProduct())).toContain('max-lines');
    expect(rules(longTest())).not.toContain('max-lines');
  });
});
