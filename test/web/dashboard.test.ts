import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../helpers/chromium.js';
import { FROM_BUILD, type Server, startServer } from '../helpers/server.js';

/**
 * The dashboard end to end: the real built server (node dist/src/main.js) on a fresh SQLite database,
 * driven by Debian's Chromium through playwright-core. Skipped when /usr/bin/chromium is missing.
 */

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const SECRET = 'dashboard-test-secret-that-is-at-least-32-bytes';
const ARTIFACTS = join(ROOT, 'test-artifacts');
const skip = existsSync(CHROMIUM)
  ? false
  : `Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium): the browser tests are skipped`;
if (skip) console.log(`# ${skip}`);

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** `npm run build` only when the build is missing or older than its sources; bounded in time. */
function buildIfNeeded(): void {
  const outputs = [join(ROOT, 'dist/web/index.html'), join(ROOT, 'dist/src/main.js')];
  const built = outputs.every((path) => existsSync(path))
    ? Math.min(...outputs.map((path) => statSync(path).mtimeMs))
    : 0;
  if (built > Math.max(newestMtime(join(ROOT, 'web')), newestMtime(join(ROOT, 'src')))) return;
  const result = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  assert.equal(result.status, 0, `npm run build failed:\n${result.stdout}\n${result.stderr}`);
}

/** The built server, as `npm start` runs it, with device ingest tokens on. */
const startDashboardServer = (dir: string) =>
  startServer(
    `sqlite:${join(dir, 'dashboard.db')}`,
    dir,
    { NODE_ENV: 'test', JWT_SECRET: SECRET, INGEST_AUTH: 'token' },
    FROM_BUILD,
  );

describe('dashboard in Chromium', { skip, timeout: 240_000 }, () => {
  let dir: string;
  let server: Server;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  // What the strict content security policy refused: the dashboard must need nothing it refuses.
  const refusedByPolicy: string[] = [];
  const email = `ada-${Date.now()}@example.com`;
  const password = 'a long secret for the browser';
  let deviceId = 0;
  let ingestToken = '';

  const api = async (path: string, init: RequestInit = {}) => fetch(`${server.url}${path}`, init);

  before(async () => {
    buildIfNeeded();
    dir = mkdtempSync(join(tmpdir(), 'statistics-dashboard-'));
    server = await startDashboardServer(dir);
    context = await launchChromium(join(dir, 'chromium-profile'), { acceptDownloads: true, timeout: 30_000 });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) refusedByPolicy.push(message.text());
    });
  });

  after(async () => {
    await context?.close().catch(() => {});
    if (server) {
      const exited = new Promise((done) => server.process.once('exit', done));
      server.process.kill('SIGTERM');
      await Promise.race([exited, new Promise((done) => setTimeout(done, 5_000))]);
      if (server.process.exitCode === null) server.process.kill('SIGKILL');
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the dashboard at / and keeps the API and its 404s as they were', async () => {
    const home = await api('/');
    assert.equal(home.status, 200);
    assert.match(home.headers.get('content-type') ?? '', /text\/html/);
    assert.doesNotMatch(home.headers.get('content-security-policy') ?? '', /script-src[^;]*unsafe-inline/);
    const html = await home.text();
    assert.match(html, /<script type="module" crossorigin src="\/assets\/[^"]+\.js"><\/script>/);
    assert.doesNotMatch(html, /https?:\/\//, 'every asset is local');
    const missing = await api('/no-such-page');
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { detail: 'Not Found' });
    assert.equal((await api('/device/999999')).status, 404);
    assert.equal((await api('/openapi.json')).status, 200);
  });

  it('registers, signs out and signs in again', async () => {
    await page.goto(`${server.url}/`);
    await page.waitForURL(/#\/login$/);
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { level: 1, name: 'Devices' }).waitFor();
    assert.ok(await page.evaluate(() => sessionStorage.getItem('statistics.token')));

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await page.getByLabel('E-mail').fill(email);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong e-mail or password' }).waitFor();
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Devices' }).waitFor();
    await page.getByText('You have no devices yet.').waitFor();
  });

  it('creates a device and shows its ingest token once, with a copy button', async () => {
    await page.getByLabel('Name').fill('greenhouse');
    await page.getByRole('button', { name: 'Create device' }).click();
    const token = page.locator('#ingest-token');
    await token.waitFor();
    ingestToken = (await token.textContent()) ?? '';
    assert.match(ingestToken, /^dev_/);
    assert.ok(await page.getByRole('button', { name: 'Copy the ingest token' }).isVisible());
    const row = page.locator('tr', { hasText: 'greenhouse' });
    await row.waitFor();
    deviceId = Number(await row.getAttribute('data-device-id'));
    assert.ok(deviceId > 0);
    assert.equal(await row.locator('[data-count]').getAttribute('data-count'), '0');
  });

  it('lists the readings posted through the API with their count and last time', async () => {
    const now = Date.now();
    // 600 readings, one every 10 s over the last 100 minutes, and 50 from three days ago.
    const recent = Array.from({ length: 600 }, (_, i) => ({
      device_id: deviceId,
      x: Math.sin(i / 20) * 10,
      y: i % 7,
      z: 100 + (i % 13),
      timestamp: new Date(now - (600 - i) * 10_000).toISOString(),
    }));
    const old = Array.from({ length: 50 }, (_, i) => ({
      device_id: deviceId,
      x: i,
      y: -i,
      z: 2 * i,
      timestamp: new Date(now - 3 * 86400_000 + i * 60_000).toISOString(),
    }));
    const response = await api('/data/', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-device-token': ingestToken },
      body: JSON.stringify([...old, ...recent]),
    });
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal(((await response.json()) as { stored: number }).stored, 650);

    await page.reload();
    const row = page.locator('tr', { hasText: 'greenhouse' });
    await row.locator('[data-count="650"]').waitFor();
    const last = row.locator('td[data-time]');
    await last.waitFor();
    assert.equal(await last.getAttribute('data-time'), recent.at(-1)?.timestamp);
  });

  it('draws the chart and shows statistics that match the API', async () => {
    await page.getByRole('link', { name: 'greenhouse' }).click();
    await page.waitForURL(new RegExp(`#/device/${deviceId}$`));
    const chart = page.locator('#chart[data-bucket][aria-busy="false"]');
    await chart.waitFor();
    await page.locator('#chart canvas').waitFor();

    // The canvas shows the x mean line in its colour (#1d4ed8), not only axes.
    const blue = await page.evaluate(() => {
      const canvas = document.querySelector('#chart canvas') as HTMLCanvasElement;
      const { data } = (canvas.getContext('2d') as CanvasRenderingContext2D).getImageData(
        0,
        0,
        canvas.width,
        canvas.height,
      );
      let count = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (
          Math.abs((data[i] ?? 0) - 29) < 12 &&
          Math.abs((data[i + 1] ?? 0) - 78) < 12 &&
          (data[i + 2] ?? 0) > 190
        )
          count++;
      }
      return count;
    });
    assert.ok(blue > 200, `the x line is drawn (${blue} pixels)`);

    // The x axis spans the chosen range (last day, the default) and its caption says so.
    const from = Number(await chart.getAttribute('data-from'));
    const to = Number(await chart.getAttribute('data-to'));
    assert.ok(Math.abs(to - from - 86400_000) < 1000);
    assert.ok(Math.abs(Date.now() - to) < 60_000);
    const caption = (await page.locator('#range-caption').textContent()) ?? '';
    const [fromText, toText] = await page.evaluate(
      ([a, b]) =>
        [a, b].map((t) =>
          new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' }).format(t),
        ),
      [from, to],
    );
    assert.ok(caption.includes(fromText as string) && caption.includes(toText as string), caption);
    const ticks = await page.evaluate(() => document.querySelectorAll('.u-axis').length);
    assert.ok(ticks >= 2);

    // Hovering reads values off the chart.
    const over = page.locator('#chart .u-over');
    const box = await over.boundingBox();
    assert.ok(box);
    await page.mouse.move(box.x + box.width - 20, box.y + box.height / 2);
    const hovered = page.locator('.u-legend .u-series:nth-child(2) .u-value');
    await page.waitForFunction(
      () => {
        const cell = document.querySelector('.u-legend .u-series:nth-child(2) .u-value');
        return cell && cell.textContent !== '—' && cell.textContent !== '--' && cell.textContent !== '';
      },
      undefined,
      { timeout: 5_000 },
    );
    assert.ok(await hovered.textContent());

    // Statistics for the same range, as the API answers them.
    const start = await chart.getAttribute('data-start');
    const end = await chart.getAttribute('data-end');
    const expected = (await (
      await api(
        `/analyze_statistics/?attr=all&percentiles=5,25,75,95&device_id=${deviceId}&start_date=${start}&end_date=${end}`,
      )
    ).json()) as Record<string, Record<string, number | null> & { percentiles: Record<string, number> }>;
    await page.locator(`#statistics[data-start="${start}"] td[data-stat]`).first().waitFor();
    const shown = await page.$$eval('#statistics td[data-stat]', (cells) =>
      cells.map((cell) => [cell.getAttribute('data-stat'), cell.getAttribute('data-value')]),
    );
    assert.equal(shown.length, 30);
    for (const [stat, value] of shown) {
      const [axis, key] = (stat as string).split('.') as [string, string];
      const answer = expected[axis] as Record<string, number | null> & {
        percentiles: Record<string, number>;
      };
      const want = key.startsWith('p') ? answer.percentiles[key.slice(1)] : answer[key];
      assert.equal(value === 'null' ? null : Number(value), want, stat as string);
    }
    assert.equal(expected.x?.count, 600);
    assert.equal(await page.locator('[data-stat="x.count"]').textContent(), '600');
  });

  it('changes the range, toggles an axis, and downloads the range as CSV', async () => {
    await page.getByRole('link', { name: 'Last week' }).click();
    await page.waitForURL(/range=7d$/);
    await page.locator('[data-stat="x.count"][data-value="650"]').waitFor();
    // The statistics may show before the chart is drawn: wait for the chart of the same range.
    const weekStart = await page.locator('#statistics').getAttribute('data-start');
    const chart = page.locator(`#chart[data-start="${weekStart}"]`);
    await chart.waitFor();
    const span = Number(await chart.getAttribute('data-to')) - Number(await chart.getAttribute('data-from'));
    assert.ok(Math.abs(span - 7 * 86400_000) < 1000);

    await page.getByLabel('y', { exact: true }).uncheck();
    await page.waitForFunction(() =>
      document.querySelector('.u-legend .u-series:nth-child(5)')?.classList.contains('u-off'),
    );
    await page.getByLabel('y', { exact: true }).check();

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.mouse.move(0, 0);
    await page.screenshot({ path: join(ARTIFACTS, 'device-page.png'), fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#csv-link').click()]);
    const path = await download.path();
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    assert.match(lines[0] ?? '', /device_id/);
    assert.equal(lines.length, 651, 'a header and the 650 readings of the week');

    // A custom range in the browser's zone: the last two hours hold the 600 recent readings.
    const now = new Date();
    const local = (date: Date) =>
      new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    await page.getByLabel('From', { exact: true }).fill(local(new Date(now.getTime() - 2 * 3600_000)));
    await page.getByLabel('To', { exact: true }).fill(local(new Date(now.getTime() + 120_000)));
    await page.getByRole('button', { name: 'Show range' }).click();
    await page.waitForURL(/range=custom/);
    await page.locator('[data-stat="x.count"][data-value="600"]').waitFor();
  });

  it('shows the statistics without waiting for the chart', async () => {
    // The series held back: the panel still fills, and the chart follows once the series arrives.
    let release = () => {};
    const held = new Promise<void>((done) => {
      release = done;
    });
    const series = (url: URL) => url.pathname === '/analyze_statistics/series';
    await page.route(series, async (route) => {
      await held;
      await route.continue();
    });
    try {
      await page.goto(`${server.url}/#/device/${deviceId}?range=7d`);
      await page.locator('[data-stat="x.count"][data-value="650"]').waitFor();
      assert.equal(await page.locator('#chart canvas').count(), 0, 'the chart waits for its series');
      assert.equal(await page.locator('#chart').getAttribute('aria-busy'), 'true');
      release();
      await page.locator('#chart[aria-busy="false"] canvas').waitFor();
    } finally {
      release();
      await page.unroute(series);
    }
  });

  it('shows the overall statistics with filters', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Statistics' }).click();
    await page.getByRole('heading', { level: 1, name: 'Statistics' }).waitFor();
    await page.locator('[data-stat="x.count"][data-value="650"]').waitFor();
    await page.getByLabel('Device').selectOption(String(deviceId));
    await page.getByLabel('Owner (user id)').fill('999');
    await page.getByRole('button', { name: 'Show statistics' }).click();
    await page.getByRole('alert').waitFor();
    await page.getByLabel('Owner (user id)').fill('');
    await page.getByRole('button', { name: 'Show statistics' }).click();
    await page.locator('[data-stat="x.count"][data-value="650"]').waitFor();
  });

  it('shows approximate medians and percentiles over many readings, with the bound, and the exact ones on a click', async () => {
    // A device with 100,000 readings (the dashboard's threshold) over the last 20 hours.
    const bearer = {
      authorization: `Bearer ${await page.evaluate(() => sessionStorage.getItem('statistics.token'))}`,
    };
    const created = (await (
      await api('/device/', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer },
        body: JSON.stringify({ name: 'busy' }),
      })
    ).json()) as { id: number; ingest_token: string };
    const now = Date.now();
    for (let batch = 0; batch < 10; batch++) {
      const readings = Array.from({ length: 10_000 }, (_, j) => {
        const i = batch * 10_000 + j;
        return {
          device_id: created.id,
          x: ((i * 7919) % 2001) - 500,
          y: (i % 977) / 10,
          z: 1000 + (i % 37),
          timestamp: new Date(now - 20 * 3600_000 + i * 700).toISOString(),
        };
      });
      const response = await api('/data/', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-device-token': created.ingest_token },
        body: JSON.stringify(readings),
      });
      assert.equal(response.status, 200, await response.clone().text());
    }

    type Answer = Record<string, Record<string, number> & { percentiles: Record<string, number> }>;
    const exactOf = async (filters: string) =>
      (await (await api(`/analyze_statistics/?attr=all&percentiles=5,25,75,95&${filters}`)).json()) as Answer;
    const cells = () =>
      page.$$eval('#statistics td[data-stat], #overall-result td[data-stat]', (found) =>
        found.map((cell) => ({
          stat: cell.getAttribute('data-stat') as string,
          value: Number(cell.getAttribute('data-value')),
          approximate: cell.getAttribute('data-approximate') === 'true',
          text: cell.textContent ?? '',
        })),
      );
    /** Every cell as the exact answer has it, or, where marked approximate, within 1% of it. */
    const assertCells = async (exact: Answer, approximate: boolean) => {
      const shown = await cells();
      assert.equal(shown.length, 30);
      for (const { stat, value, approximate: marked, text } of shown) {
        const [axis, key] = stat.split('.') as [string, string];
        const answer = exact[axis] as Answer[string];
        const want = key.startsWith('p')
          ? (answer.percentiles[key.slice(1)] as number)
          : (answer[key] as number);
        const sketched = approximate && (key === 'median' || key.startsWith('p'));
        assert.equal(marked, sketched, `${stat} marked approximate`);
        assert.equal(text.startsWith('≈'), sketched, `${stat}: "${text}"`);
        if (sketched)
          assert.ok(Math.abs(value - want) <= 0.01 * Math.abs(want) + 1e-9, `${stat}: ${value} vs ${want}`);
        else if (key === 'count' || key === 'min' || key === 'max') assert.equal(value, want, stat);
        else
          assert.ok(
            Math.abs(value - want) <= 1e-9 * Math.max(1, Math.abs(want)),
            `${stat}: ${value} vs ${want}`,
          );
      }
    };

    // The device page: its range holds 100,000 readings, so the statistics are approximate.
    await page.goto(`${server.url}/#/device/${created.id}`);
    const chart = page.locator('#chart[data-bucket][aria-busy="false"]');
    await chart.waitFor();
    const start = await chart.getAttribute('data-start');
    const note = page.locator('#approximate-note');
    await note.waitFor({ timeout: 30_000 });
    assert.match((await note.textContent()) ?? '', /approximate \(≈ ±1%\)/);
    const range = `device_id=${created.id}&start_date=${start}&end_date=${await chart.getAttribute('data-end')}`;
    const exact = await exactOf(range);
    assert.equal(exact.x?.count, 100_000);
    await assertCells(exact, true);

    // One click: the exact values, the note gone.
    await page.getByRole('button', { name: 'Show exact values' }).click();
    await page.locator('#statistics .statistics-panel[data-accuracy="exact"]').waitFor({ timeout: 30_000 });
    assert.equal(await note.count(), 0);
    await assertCells(exact, false);

    // The overall page over that device: approximate too, exact on a click.
    await page.goto(`${server.url}/#/stats?device_id=${created.id}`);
    await page
      .locator('#overall-result .statistics-panel[data-accuracy="approx"]')
      .waitFor({ timeout: 30_000 });
    await assertCells(await exactOf(`device_id=${created.id}`), true);
    await page.getByRole('button', { name: 'Show exact values' }).click();
    await page
      .locator('#overall-result .statistics-panel[data-accuracy="exact"]')
      .waitFor({ timeout: 30_000 });
    await assertCells(await exactOf(`device_id=${created.id}`), false);
  });

  it('signs out, and a token that stops working sends the user to sign in with a message', async () => {
    const token = await page.evaluate(() => sessionStorage.getItem('statistics.token'));
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You are signed out.').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('statistics.token')), null);
    const me = await api('/users/me', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(me.status, 401, 'the token was logged out on the server');

    // The same (now refused) token put back, as an expired one would be.
    await page.evaluate(
      ([t, e]) => {
        sessionStorage.setItem('statistics.token', t as string);
        sessionStorage.setItem('statistics.user', JSON.stringify({ id: 1, email: e, is_superuser: false }));
        location.hash = '#/devices';
      },
      [token, email],
    );
    await page.getByText('Your session has expired or was ended: please sign in again.').waitFor();
    assert.match(page.url(), /#\/login$/);
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(refusedByPolicy, []);
  });
});
