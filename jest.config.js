/** Tests run against real Temporal, Docker and HTTP; they share one Docker engine, so run in band. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  testTimeout: 120000,
  verbose: true,
  // Docker's pooled sockets (dockerode exec/events) can outlive the last test by minutes; the
  // stacks themselves are torn down in afterAll, so do not let a stray socket hang CI.
  forceExit: true,
};
