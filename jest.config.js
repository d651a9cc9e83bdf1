/**
 * ES-module-only dependencies of the app (Fastify's swagger UI → @fastify/static, app.inject →
 * light-my-request): Node requires them natively, jest's module runtime cannot, so the tests compile
 * them to CommonJS.
 */
const ESM_ONLY = ['content-disposition', 'cookie'];

/** Tests run against real Temporal, Docker and HTTP; they share one Docker engine, so run in band. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }],
    [`/node_modules/(${ESM_ONLY.join('|')})/.+\\.js$`]: ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${ESM_ONLY.join('|')})/)`],
  testTimeout: 120000,
  verbose: true,
  reporters: ['default', '<rootDir>/tests/reporters/closing-line.js'],
  // The real Temporal cluster (tests/helpers/temporal-cluster.ts) some files run on: named before, stopped after.
  globalSetup: '<rootDir>/tests/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/tests/helpers/global-teardown.ts',
  // Docker's pooled sockets (dockerode exec/events) can outlive the last test by minutes; the
  // stacks themselves are torn down in afterAll, so do not let a stray socket hang CI.
  forceExit: true,
};
