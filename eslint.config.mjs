// Lint: TypeScript's recommended rules, and the layering of docs/architecture.md (scripts/lint/).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import tidebox from './scripts/lint/eslint-plugin-tidebox.mjs';

const nodeGlobals = Object.fromEntries(
  [
    'process',
    'console',
    'require',
    'module',
    '__dirname',
    'Buffer',
    'setTimeout',
    'clearTimeout',
    'setInterval',
    'clearInterval',
    'URL',
  ].map((g) => [g, 'readonly']),
);

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tidebox/', 'tests/replay/histories/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: nodeGlobals },
    plugins: { tidebox },
    rules: {
      'tidebox/layers': 'error',
      'tidebox/no-cycle': 'error',
      'tidebox/workflow-weight': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      'no-empty': ['error', { allowEmptyCatch: true }],
      // Input validation matches control characters on purpose (they could end a line of a config file).
      'no-control-regex': 'off',
    },
  },
  {
    // Product code: small files (split a module before it passes this).
    files: ['{core,contracts,platform,execd,api,workflows,activities,worker,cli,scripts,bench}/**/*.{ts,mjs}'],
    rules: { 'max-lines': ['error', { max: 400 }] },
  },
  {
    // The dashboard: plain browser scripts, served as they are (no build step).
    files: ['ui/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: Object.fromEntries(['document', 'window', 'sessionStorage', 'fetch', 'setInterval', 'console'].map((g) => [g, 'readonly'])),
    },
  },
  {
    files: ['tests/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
