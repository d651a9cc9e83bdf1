import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { repoRoot, sandboxRequest, Stack, waitFor, writeTenantsFile } from '../helpers/stack';

/**
 * The dashboard at /ui in a real headless browser (Debian's chromium) against the real stack: a
 * tenant's page lists its sandboxes with their countdowns and never another tenant's; an admin's
 * lists every tenant's; a sandbox's history shows as a timeline with a link to its workflow; the
 * Retry button brings a failed snapshot to Ready. A screenshot is kept in .tidebox/artifacts/.
 */
const CHROMIUM = process.env.TIDEBOX_CHROMIUM ?? '/usr/bin/chromium';
const KEY_A = 'acme-dashboard-key-0123456789';
const KEY_B = 'globex-dashboard-key-0123456789';
const ADMIN = 'admin-dashboard-key-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'tidebox-test-dashboard-'));
const tenantsFile = join(dir, 'tenants.toml');

let stack: Stack;
let browser: Browser;
beforeAll(async () => {
  writeTenantsFile(tenantsFile, { acme: KEY_A, globex: KEY_B });
  stack = await Stack.start({
    config: {
      tenants: { provider: 'file', file: tenantsFile, adminKeys: [ADMIN], pollSeconds: 1 },
      // Only written into links; never dialed.
      server: { temporalUiUrl: 'http://127.0.0.1:8233' },
    },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});
afterAll(async () => {
  await browser?.close();
  await stack?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh page (its own sessionStorage) with the dashboard open under `key`. */
async function dashboard(key: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${stack.baseUrl}/ui`);
  await page.fill('#key', key);
  await page.click('#key-form button');
  return page;
}
const row = (page: Page, table: string, id: string) => page.locator(`#${table} tr[data-id="${id}"]`);

it('when a tenant opens the dashboard, then it lists its own sandboxes with a live countdown and never another tenant’s; an admin sees both', async () => {
  const mine = await stack.as(KEY_A)('POST', '/v1/sandboxes', sandboxRequest({ timeout: 600 }));
  const theirs = await stack.as(KEY_B)('POST', '/v1/sandboxes', sandboxRequest({ timeout: 600 }));
  expect([mine.status, theirs.status]).toEqual([202, 202]);

  const page = await dashboard(KEY_A);
  const r = row(page, 'sandboxes', mine.body.id);
  await r.waitFor({ timeout: 15_000 });
  expect(await r.locator('td').nth(1).textContent()).toBe('Running');
  expect(await r.locator('td').nth(2).textContent()).toBe('acme');
  const countdown = r.locator('td.countdown');
  const first = await countdown.textContent();
  expect(first).toMatch(/^(9m|10m) \d\ds$/);
  // It counts down between refreshes.
  await waitFor('the countdown to move', async () => (await countdown.textContent()) !== first, 5_000, 100);
  expect(await page.content()).not.toContain(theirs.body.id);
  expect(await row(page, 'sandboxes', theirs.body.id).count()).toBe(0);

  // One sandbox's history: a timeline, and a link to its actor in the Temporal UI.
  await r.locator('button').click();
  await page.locator('#timeline li').first().waitFor({ timeout: 10_000 });
  expect(await page.locator('#timeline li').allTextContents()).toEqual([
    expect.stringMatching(/ Pending {2}by api/),
    expect.stringMatching(/ Running {2}by runtime/),
  ]);
  expect(await page.locator('#history-temporal').getAttribute('href')).toBe(
    `http://127.0.0.1:8233/namespaces/default/workflows/${encodeURIComponent(`sandbox/${mine.body.id}`)}`,
  );
  mkdirSync(join(repoRoot(), '.tidebox', 'artifacts'), { recursive: true });
  await page.screenshot({ path: join(repoRoot(), '.tidebox', 'artifacts', 'dashboard.png'), fullPage: true });

  const admin = await dashboard(ADMIN);
  await row(admin, 'sandboxes', theirs.body.id).waitFor({ timeout: 15_000 });
  expect(await row(admin, 'sandboxes', theirs.body.id).locator('td').nth(2).textContent()).toBe('globex');
  expect(await row(admin, 'sandboxes', mine.body.id).locator('td').nth(2).textContent()).toBe('acme');

  // A key the API refuses: the page says so, and shows nothing.
  const stranger = await dashboard('not-a-key-0123456789abc');
  await stranger.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
  expect(await stranger.locator('#error').textContent()).toContain('401');
  expect(await row(stranger, 'sandboxes', mine.body.id).count()).toBe(0);
}, 120_000);

it('when a failed snapshot is retried from the page, then it comes back Ready', async () => {
  const source = await stack.as(KEY_A)('POST', '/v1/sandboxes', sandboxRequest({ timeout: 600 }));
  await stack.worker.stop();
  stack.startWorker({ TIDEBOX_FAULT_FAIL_AT: 'snapshot-commit' });
  const snap = await stack.as(KEY_A)('POST', `/v1/sandboxes/${source.body.id}/snapshots`, {});
  expect(snap.status).toBeLessThan(300);
  await waitFor(
    'the snapshot to fail',
    async () => (await stack.as(KEY_A)('GET', `/v1/snapshots/${snap.body.id}`)).body.status.state === 'Failed',
    60_000,
    250,
  );
  // The cause is gone: a worker without the fault.
  await stack.worker.stop();
  stack.startWorker();
  await stack.workerReady();

  const page = await dashboard(KEY_A);
  const r = row(page, 'snapshots', snap.body.id);
  await r.waitFor({ timeout: 15_000 });
  expect(await r.locator('td').nth(1).textContent()).toBe('Failed');
  expect(await r.locator('td').nth(3).textContent()).toContain('failed at commit');
  await r.locator('button.retry').click();
  await waitFor('the retried snapshot to show Ready', async () => (await r.locator('td').nth(1).textContent()) === 'Ready', 60_000, 250);
  expect((await stack.as(KEY_A)('GET', `/v1/snapshots/${snap.body.id}`)).body.status.state).toBe('Ready');
  expect(await r.locator('button.retry').count()).toBe(0);
  await stack.as(KEY_A)('DELETE', `/v1/snapshots/${snap.body.id}`);
}, 180_000);

it('when the page is served, then it needs no key, holds no secret, and forbids loading or sending anything elsewhere', async () => {
  const res = await fetch(`${stack.baseUrl}/ui`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-security-policy')).toContain("default-src 'none'; script-src 'self'");
  expect(res.headers.get('content-security-policy')).toContain("connect-src 'self'");
  const html = await res.text();
  for (const secret of [KEY_A, KEY_B, ADMIN]) expect(html).not.toContain(secret);
  expect(await (await fetch(`${stack.baseUrl}/ui/config.json`)).json()).toEqual({
    temporalUi: 'http://127.0.0.1:8233',
    namespace: 'default',
  });
  // The API behind it still wants a key.
  expect((await fetch(`${stack.baseUrl}/v1/sandboxes`)).status).toBe(401);
});
