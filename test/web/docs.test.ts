import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../helpers/chromium.js';
import { Harness } from '../helpers/harness.js';

/**
 * /docs in Debian's Chromium: Swagger UI renders under the service's content security policy with
 * nothing refused, "Authorize" logs in through the OAuth2 password flow the document declares, and
 * "Try it out" then calls a route that needs the token. Skipped without Chromium (a failure with CI=true).
 */

const skip = existsSync(CHROMIUM)
  ? false
  : `Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): the browser tests are skipped`;

describe('/docs in Chromium', { skip, timeout: 120_000 }, () => {
  const harness = new Harness('sqlite');
  const password = 'a long secret for the docs';
  let dir: string;
  let context: BrowserContext;
  let page: Page;
  let email: string;
  let docsHeaders: Record<string, string> = {};
  /** Uncaught errors in the page, and whatever the content security policy refused. */
  const pageErrors: string[] = [];

  before(async () => {
    await harness.start();
    await harness.app.listen({ host: '127.0.0.1', port: 0 });
    ({ email } = await harness.signUp(undefined, password));
    dir = mkdtempSync(join(tmpdir(), 'statistics-docs-'));
    context = await launchChromium(join(dir, 'chromium-profile'), { timeout: 30_000 });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) pageErrors.push(message.text());
    });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    const { port } = harness.app.server.address() as AddressInfo;
    docsHeaders = (await (await page.goto(`http://127.0.0.1:${port}/docs`))?.allHeaders()) ?? {};
  });

  after(async () => {
    await context?.close().catch(() => {});
    await harness.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs "Try it out" on GET /users/me and answers the status and body Swagger UI shows. */
  async function tryGetMe(): Promise<{ status: string; body: string }> {
    const operation = page.locator('#operations-users-getMe');
    if (!(await operation.locator('.try-out__btn').isVisible()))
      await operation.locator('.opblock-summary').click();
    const tryOut = operation.locator('.try-out__btn');
    if ((await tryOut.textContent())?.trim() === 'Try it out') await tryOut.click();
    await operation.locator('.execute').click();
    const live = operation.locator('.live-responses-table .response');
    await live.waitFor();
    const status = (await live.locator('.response-col_status').textContent())?.trim() ?? '';
    const body = (await live.locator('.response-col_description .microlight').first().textContent()) ?? '';
    await operation.locator('.btn-clear').click();
    return { status, body };
  }

  it('renders every operation under the content security policy, with nothing refused', async () => {
    assert.match(docsHeaders['content-security-policy'] ?? '', /default-src 'self'/);
    await page.locator('.swagger-ui .info .title', { hasText: 'Statistics' }).waitFor();
    await page.locator('.opblock').first().waitFor();
    const paths = Object.keys(harness.app.swagger().paths ?? {});
    assert.ok(
      (await page.locator('.opblock').count()) >= paths.length,
      'an operation block per path at least',
    );
    assert.deepEqual(pageErrors, []);
  });

  it('answers 401 to "Try it out" before Authorize', async () => {
    const { status } = await tryGetMe();
    assert.equal(status, '401');
  });

  it('logs in through Authorize with e-mail and password, and then "Try it out" is signed in', async () => {
    await page.locator('.auth-wrapper .authorize').click();
    const dialog = page.locator('.dialog-ux');
    await dialog.locator('#oauth_username').fill(email);
    await dialog.locator('#oauth_password').fill(password);
    await dialog.locator('.auth-btn-wrapper .authorize').first().click();
    // Swagger UI shows the flow as authorized (a Logout button) once the login answered a token.
    await dialog.locator('button.authorize', { hasText: 'Logout' }).first().waitFor();
    await dialog.locator('.close-modal').click();

    const { status, body } = await tryGetMe();
    assert.equal(status, '200');
    assert.equal(JSON.parse(body).email, email);
    assert.deepEqual(pageErrors, []);
  });
});
