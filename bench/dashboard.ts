/**
 * The dashboard's device page on a big device: 1,000,000 readings over 30 days, the whole range shown,
 * timed from navigation until the chart is drawn and until the statistics panel is drawn (medians of
 * 5, headless Chromium; goal 500 ms each). The readings end before the current hour, and the timing
 * starts once the rollup folder has folded every minute (read from the database), as on a server that
 * has been running. Also checks that the device page never asks for raw readings (/data/). Run with
 * `npm run bench:dashboard` (builds first).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Sqlite from 'better-sqlite3';
import { CHROMIUM, launchChromium } from '../test/helpers/chromium.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const READINGS = Number(process.env.READINGS ?? 1_000_000);
const DAYS = 30;
const RUNS = 5;
const BATCH = 10_000;
const HOUR_MS = 3_600_000;

async function startServer(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['dist/src/main.js'], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: `sqlite:${join(dir, 'bench.db')}`,
      DATA_DIR: dir,
      JWT_SECRET: 'dashboard-bench-secret-that-is-at-least-32-bytes',
      LOG_LEVEL: 'info',
      LOGIN_LIMIT_PER_ADDRESS: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        done(match[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return { child, url };
}

async function main(): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  if (!existsSync(join(ROOT, 'dist/web/index.html'))) throw new Error('run npm run build first');
  const dir = mkdtempSync(join(tmpdir(), 'statistics-dashboard-bench-'));
  const { child, url } = await startServer(dir);
  try {
    const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
      const response = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
      return response.json() as Promise<Record<string, unknown>>;
    };
    const email = 'bench@example.com';
    const password = 'a long bench secret';
    await post('/auth/register', { email, password });
    const login = await fetch(`${url}/auth/jwt/login`, {
      method: 'POST',
      body: new URLSearchParams({ username: email, password }),
    });
    const { access_token: token } = (await login.json()) as { access_token: string };
    const me = (await (
      await fetch(`${url}/users/me`, { headers: { authorization: `Bearer ${token}` } })
    ).json()) as {
      id: number;
    };
    const device = await post('/device/', { name: 'million' }, { authorization: `Bearer ${token}` });

    const started = Date.now();
    // The last reading before the current hour: the folder folds only hours that have ended.
    const now = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - 1000;
    const step = (DAYS * 86400_000) / READINGS;
    for (let offset = 0; offset < READINGS; offset += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, READINGS - offset) }, (_, i) => {
        const n = offset + i;
        return {
          device_id: device.id,
          x: Math.sin(n / 5000) * 100 + (n % 17),
          y: Math.cos(n / 7000) * 50,
          z: (n % 1000) / 10,
          timestamp: new Date(now - DAYS * 86400_000 + n * step).toISOString(),
        };
      });
      await post('/data/', batch);
    }
    console.log(
      `stored ${READINGS} readings over ${DAYS} days in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );

    const folding = Date.now();
    const database = new Sqlite(join(dir, 'bench.db'), { readonly: true });
    const unfolded = database.prepare('select count(*) as n from reading_minutes where folded = 0');
    try {
      for (;;) {
        const { n } = unfolded.get() as { n: number };
        if (n === 0) break;
        if (Date.now() - folding > 600_000) throw new Error(`${n} minutes still unfolded after 10 minutes`);
        await sleep(500);
      }
    } finally {
      database.close();
    }
    console.log(`the folder folded them in ${((Date.now() - folding) / 1000).toFixed(1)} s`);

    const context = await launchChromium(join(dir, 'profile'));
    // When the chart and the panel reach the DOM, by the page's own clock (from navigation start):
    // the bench's times above add what Playwright takes to notice them.
    await context.addInitScript(`
      new MutationObserver(() => {
        if (!window.chartInDom && document.querySelector('#chart[data-bucket] canvas'))
          window.chartInDom = performance.now();
        if (!window.statisticsInDom && document.querySelector('#statistics td[data-stat="x.count"]'))
          window.statisticsInDom = performance.now();
      }).observe(document, { childList: true, subtree: true, attributes: true });
    `);
    const page = context.pages()[0] ?? (await context.newPage());
    const rawReads: string[] = [];
    page.on('request', (request) => {
      const path = new URL(request.url()).pathname;
      if (path === '/data/') rawReads.push(request.url());
    });
    await page.goto(`${url}/#/login`);
    await page.evaluate(
      ([t, user]) => {
        sessionStorage.setItem('statistics.token', t as string);
        sessionStorage.setItem('statistics.user', user as string);
      },
      [token, JSON.stringify({ id: me.id, email, is_superuser: false })],
    );
    const times: number[] = [];
    const statsTimes: number[] = [];
    const pageTimes: number[] = [];
    const pageStatsTimes: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      await page.goto('about:blank');
      const t0 = Date.now();
      await page.goto(`${url}/#/device/${device.id}?range=30d`);
      await page.locator('#chart[data-bucket] canvas').waitFor({ timeout: 30_000 });
      const elapsed = Date.now() - t0;
      const bucket = await page.locator('#chart').getAttribute('data-bucket');
      await page.locator('#statistics td[data-stat="x.count"]').waitFor({ timeout: 60_000 });
      const statsElapsed = Date.now() - t0;
      const accuracy = await page.locator('#statistics .statistics-panel').getAttribute('data-accuracy');
      times.push(elapsed);
      statsTimes.push(statsElapsed);
      // Where the time went, as the browser timed it from navigation start: the page's own boot (its
      // HTML, its script loaded and run), then the series and statistics requests.
      const timing = await page.evaluate(() => {
        const resources = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
        const navigation = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
        // Inline callbacks only: tsx names arrow functions held in constants with a helper the page lacks.
        const [series, statistics] = ['/analyze_statistics/series', '/analyze_statistics/?'].map((part) => {
          const entry = resources.find((e) => e.name.includes(part));
          return entry
            ? {
                sent: Math.round(entry.requestStart),
                took: Math.round(entry.responseEnd - entry.requestStart),
              }
            : { sent: -1, took: -1 };
        }) as [{ sent: number; took: number }, { sent: number; took: number }];
        const script = resources.find((e) => e.initiatorType === 'script' || e.name.endsWith('.js'));
        const seen = window as unknown as { chartInDom?: number; statisticsInDom?: number };
        return {
          chartInDom: Math.round(seen.chartInDom ?? -1),
          statisticsInDom: Math.round(seen.statisticsInDom ?? -1),
          origin: performance.timeOrigin,
          html: Math.round(navigation.responseEnd),
          script: script ? Math.round(script.responseEnd) : -1,
          ready: Math.round(navigation.domContentLoadedEventEnd),
          series,
          statistics,
        };
      });
      console.log(
        `run ${run + 1}: chart drawn in ${elapsed} ms (bucket ${bucket}); statistics (${accuracy}) ` +
          `drawn in ${statsElapsed} ms; navigation started ${Math.round(timing.origin - t0)} ms after ` +
          `the bench asked, then: html at ${timing.html} ms, script loaded at ${timing.script} ms, ` +
          `DOMContentLoaded at ${timing.ready} ms; series asked at ${timing.series.sent} ms, answered ` +
          `in ${timing.series.took} ms; statistics asked at ${timing.statistics.sent} ms, answered in ` +
          `${timing.statistics.took} ms; in the DOM at ${timing.chartInDom} ms (chart) and ` +
          `${timing.statisticsInDom} ms (statistics)`,
      );
      pageTimes.push(timing.chartInDom);
      pageStatsTimes.push(timing.statisticsInDom);
    }
    await context.close();
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    console.log(`median chart time over ${RUNS} runs: ${median(times)} ms (goal: 500 ms)`);
    console.log(`median statistics panel time over ${RUNS} runs: ${median(statsTimes)} ms (goal: 500 ms)`);
    console.log(
      `in the DOM by the page's clock, medians: chart ${median(pageTimes)} ms, statistics ${median(pageStatsTimes)} ms`,
    );
    console.log(`raw reading requests from the device page: ${rawReads.length}`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((done) => setTimeout(done, 500));
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
