import assert from 'node:assert/strict';
import { it } from 'node:test';
import { zoneFormatters } from '../../src/statistics/time-buckets.js';
import { type Harness, onEachEngine } from '../helpers/harness.js';

/** The n-th spelling of `zone` with its letters' case chosen by n's bits. */
function caseVariant(zone: string, n: number): string {
  let bit = 0;
  return [...zone]
    .map((c) => (/[a-z]/i.test(c) && (n >> bit++) & 1 ? c.toUpperCase() : c.toLowerCase()))
    .join('');
}

onEachEngine('series: the time-zone cache', (h: Harness) => {
  it('keeps one formatter for 300 case variants of one zone, and answers each as the canonical zone', async () => {
    const device = await h.createDevice();
    const at = Date.UTC(2026, 2, 29, 12);
    const stored = await h.post('/data/', {
      device_id: device,
      x: 1,
      y: 2,
      z: 3,
      timestamp: new Date(at).toISOString(),
    });
    assert.equal(stored.statusCode, 200, stored.body);
    const range = `start_date=2026-03-29T00:00:00Z&end_date=2026-03-29T23:00:00Z`;
    const series = (tz: string) =>
      h.get(`/analyze_statistics/series?device_id=${device}&bucket=1d&tz=${tz}&${range}`);
    const reference = await series('Europe/Berlin');
    assert.equal(reference.statusCode, 200, reference.body);
    zoneFormatters.clear();
    const variants = new Set(Array.from({ length: 300 }, (_, n) => caseVariant('Europe/Berlin', n + 1)));
    assert.equal(variants.size, 300);
    for (const tz of variants) {
      const response = await series(tz);
      assert.equal(response.statusCode, 200, `${tz}: ${response.body}`);
      assert.equal(response.body, reference.body, tz);
    }
    assert.deepEqual([...zoneFormatters.keys()], ['Europe/Berlin']);
  });
});
