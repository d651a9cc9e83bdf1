import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { repoRoot, sandboxRequest, Stack, waitFor } from '../helpers/stack';
import { TemporalTlsFront } from '../helpers/temporal-tls-front';

/**
 * Tidebox talking to a Temporal that authenticates its clients, as a production cluster does: the
 * frontend (here a TLS terminator in front of the dev server, which speaks neither) requires a client
 * certificate from the install's CA and an API key on every call. The certificates come from the
 * script operators use (deploy/temporal/make-certs.sh).
 */
const run = promisify(execFile);
const certs = join(mkdtempSync(join(tmpdir(), 'tidebox-test-tls-')), 'certs');
const API_KEY = `tk-${randomBytes(16).toString('hex')}`;
const SERVER_NAME = 'temporal.test';
const file = (name: string) => join(certs, name);

let front: TemporalTlsFront;
let stack: Stack;
beforeAll(async () => {
  await run('sh', [join(repoRoot(), 'deploy/temporal/make-certs.sh'), certs, SERVER_NAME]);
  stack = await Stack.start({
    temporalFront: async (upstream) => {
      front = new TemporalTlsFront({
        upstream,
        ca: readFileSync(file('ca.crt')),
        cert: readFileSync(file('server.crt')),
        key: readFileSync(file('server.key')),
        apiKey: API_KEY,
      });
      await front.start();
      return front.address;
    },
    // The same variable names the `temporal` CLI reads (TEMPORAL_TLS_*, TEMPORAL_API_KEY).
    env: {
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: file('ca.crt'),
      TEMPORAL_TLS_CLIENT_CERT_PATH: file('client.crt'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: file('client.key'),
      TEMPORAL_TLS_SERVER_NAME: SERVER_NAME,
      TEMPORAL_API_KEY: API_KEY,
    },
  });
});
afterAll(async () => {
  await stack?.destroy();
  await front?.stop();
  rmSync(join(certs, '..'), { recursive: true, force: true });
});

describe('Temporal with mTLS and an API key', () => {
  it('when a sandbox is created and deleted, then every call the API and worker made carried the client certificate and the key, and no log shows the key', async () => {
    const created = await stack.request('POST', '/v1/sandboxes', sandboxRequest());
    expect(created.status).toBe(202);
    expect(created.body.status.state).toBe('Running');
    expect(await stack.containers(created.body.id)).toHaveLength(1);
    expect((await stack.request('DELETE', `/v1/sandboxes/${created.body.id}`)).status).toBe(204);
    await waitFor('the container to go', async () => (await stack.containers(created.body.id)).length === 0, 30_000);

    expect(front.calls).toBeGreaterThan(10);
    expect(front.refusedCalls).toBe(0);
    expect([...front.clientSubjects]).toEqual(['tidebox']);
    const logs = ['api.log', 'worker.log'].map((name) => readFileSync(join(stack.dataDir, name), 'utf8'));
    for (const log of logs) {
      expect(log).toContain('mTLS + API key');
      expect(log).not.toContain(API_KEY);
    }
  });

  it('when a client has no certificate, the wrong API key or no TLS, then Temporal refuses it', async () => {
    const ca = readFileSync(file('ca.crt'));
    const client = { crt: readFileSync(file('client.crt')), key: readFileSync(file('client.key')) };
    const attempt = async (options: Parameters<typeof Connection.connect>[0]) => {
      const connection = await Connection.connect({ address: front.address, connectTimeout: 3000, ...options });
      try {
        await connection.workflowService.getSystemInfo({});
      } finally {
        await connection.close();
      }
    };
    // The door itself: with the client certificate and the key, a call goes through...
    await expect(
      attempt({ tls: { serverRootCACertificate: ca, serverNameOverride: SERVER_NAME, clientCertPair: client }, apiKey: API_KEY }),
    ).resolves.toBeUndefined();
    // ...without a certificate the handshake fails, with a wrong key the call is refused, and plaintext never connects.
    await expect(attempt({ tls: { serverRootCACertificate: ca, serverNameOverride: SERVER_NAME }, apiKey: API_KEY })).rejects.toThrow();
    const refusedBefore = front.refusedCalls;
    await expect(
      attempt({ tls: { serverRootCACertificate: ca, serverNameOverride: SERVER_NAME, clientCertPair: client }, apiKey: 'not-the-key' }),
    ).rejects.toThrow();
    expect(front.refusedCalls).toBeGreaterThan(refusedBefore); // it reached the door and was turned away there
    await expect(attempt({})).rejects.toThrow();
  });

  it('when an operator uses the temporal CLI with the same variables, then it lists the sandbox actors; without the certificate it cannot', async () => {
    const cli = process.env.TEMPORAL_CLI_PATH ?? 'temporal';
    const env = {
      PATH: process.env.PATH,
      HOME: stack.dataDir,
      TEMPORAL_ADDRESS: front.address,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: file('ca.crt'),
      TEMPORAL_TLS_CLIENT_CERT_PATH: file('client.crt'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: file('client.key'),
      TEMPORAL_TLS_SERVER_NAME: SERVER_NAME,
      TEMPORAL_API_KEY: API_KEY,
    };
    const listed = await run(cli, ['workflow', 'list', '--limit', '5', '--output', 'json'], { env });
    expect(listed.stdout).toContain('sandbox/');
    const withoutCert = { ...env, TEMPORAL_TLS_CLIENT_CERT_PATH: '', TEMPORAL_TLS_CLIENT_KEY_PATH: '' };
    await expect(run(cli, ['workflow', 'list', '--limit', '1', '--command-timeout', '5s'], { env: withoutCert })).rejects.toThrow();
  });
});
