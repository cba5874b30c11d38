import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type FreshDatabase, freshDatabase, type Harness, onEachEngine } from '../helpers/harness.js';
import { startServer, stopServer, waitForOutput } from '../helpers/server.js';

const TOKEN = 'metrics-token-0123456789';

/** The value of one sample of a Prometheus text exposition (labels in any order), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) return Number(match[3]);
  }
  return undefined;
}

onEachEngine(
  'GET /metrics behind METRICS_TOKEN',
  (h: Harness) => {
    const scrape = async () => {
      const response = await h.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(response.statusCode, 200, response.body);
      assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      return response.body;
    };

    it('is refused without the token, or with another one', async () => {
      assert.equal((await h.get('/metrics')).statusCode, 401);
      assert.equal((await h.get('/metrics', 'metrics-token-0123456780')).statusCode, 401);
      // Not an API route: absent from the public API document.
      assert.equal((await h.get('/openapi.json')).json().paths['/metrics'], undefined);
    });

    it('counts the readings stored by each path, the group commits and the rollup rows they merged', async () => {
      const device = await h.createDevice();
      const before = await scrape();
      const stored = (path: string, text: string) =>
        sample(text, 'statistics_readings_stored_total', { path }) ?? 0;
      assert.equal((await h.post('/data/', { device_id: device, x: 1, y: 2, z: 3 })).statusCode, 200);
      const batch = [0, 1, 61].map((second) => ({
        device_id: device,
        x: second,
        y: 0,
        z: 0,
        timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString(),
      }));
      assert.equal((await h.post('/data/', batch)).statusCode, 200);
      const imported = await h.inject({
        method: 'POST',
        url: '/data/import',
        headers: { 'content-type': 'text/csv' },
        payload: `${device},1,1,1,2026-02-01T00:00:00Z\n${device},2,2,2,2026-02-01T00:00:30Z\n`,
      });
      assert.equal(imported.json().stored, 2);

      const after = await scrape();
      assert.equal(stored('single', after) - stored('single', before), 1);
      assert.equal(stored('batch', after) - stored('batch', before), 3);
      assert.equal(stored('import', after) - stored('import', before), 2);
      const commits = (text: string) => sample(text, 'statistics_group_commit_readings_sum') ?? 0;
      assert.equal(commits(after) - commits(before), 1);
      // One minute for the single reading, two for the batch (00:00 and 00:01), one for the import.
      const merged = (text: string) => sample(text, 'statistics_minute_rollups_merged_total') ?? 0;
      assert.equal(merged(after) - merged(before), 4);
    });

    it('measures requests by route template and status, and the process', async () => {
      await h.get('/device/999999');
      const text = await scrape();
      assert.ok(
        (sample(text, 'statistics_http_request_duration_seconds_count', {
          method: 'POST',
          route: '/data/',
          status_code: '200',
        }) ?? 0) >= 2,
      );
      assert.equal(
        sample(text, 'statistics_http_request_duration_seconds_count', {
          method: 'GET',
          route: '/device/:device_id',
          status_code: '404',
        }),
        1,
      );
      for (const name of [
        'nodejs_eventloop_lag_seconds',
        'process_resident_memory_bytes',
        'nodejs_heap_size_used_bytes',
      ]) {
        assert.ok((sample(text, name) ?? -1) >= 0, name);
      }
      if (h.engine === 'postgres') {
        assert.ok((sample(text, 'statistics_db_pool_connections') ?? 0) >= 1);
        assert.equal(sample(text, 'statistics_db_pool_waiting_requests'), 0);
      } else {
        assert.equal(sample(text, 'statistics_db_pool_connections'), undefined);
      }
    });
  },
  { METRICS_TOKEN: TOKEN },
);

onEachEngine('metrics are off by default', (h: Harness) => {
  it('has no /metrics route', async () => {
    assert.equal((await h.get('/metrics')).statusCode, 404);
  });
});

describe('METRICS_PORT: metrics on a listener of their own', () => {
  let database: FreshDatabase;
  const dataDir = mkdtempSync(join(tmpdir(), 'statistics-metrics-port-'));
  before(async () => {
    database = await freshDatabase('sqlite');
  });
  after(async () => {
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves /metrics there (behind the token when one is set) and never on the API port', async () => {
    const server = await startServer(database.url, dataDir, { METRICS_PORT: '0', METRICS_TOKEN: TOKEN });
    try {
      await waitForOutput(server, 'Metrics at ');
      const metricsUrl = /Metrics at (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(server.output())?.[1];
      assert.ok(metricsUrl, server.output());
      assert.equal(
        (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status,
        404,
      );
      assert.equal((await fetch(`${metricsUrl}/metrics`)).status, 401);
      const scraped = await fetch(`${metricsUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(scraped.status, 200);
      assert.match(
        await scraped.text(),
        /^statistics_readings_stored_total\{path="single"\}|# HELP statistics_readings_stored_total/m,
      );
      assert.equal((await fetch(`${metricsUrl}/health`)).status, 404);
    } finally {
      assert.equal(await stopServer(server), 0);
    }
  });
});
