import assert from 'node:assert/strict';
import { it } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { onEachEngine } from '../helpers/harness.js';

const ORIGINAL_KEYS = ['минимальное значение', 'максимальное значение', 'количество', 'сумма', 'медиана'];

onEachEngine(
  'STATISTICS_KEYS=original',
  (h) => {
    it("answers /analyze_statistics/ with exactly the original's keys, in its order", async () => {
      const device = await h.createDevice();
      for (const x of [1, 4, 3, 10]) await h.post('/data/', { device_id: device, x, y: x * 2, z: 0 });
      const response = await h.get(`/analyze_statistics/?attr=x&device_id=${device}`);
      assert.equal(response.statusCode, 200);
      assert.equal(
        response.body,
        '{"минимальное значение":1,"максимальное значение":10,"количество":4,"сумма":18,"медиана":3.5}',
      );
      const several = (await h.get(`/analyze_statistics/?attr=x,y&device_id=${device}`)).json();
      assert.deepEqual(Object.keys(several), ['x', 'y']);
      assert.deepEqual(Object.keys(several.y), ORIGINAL_KEYS);
      assert.equal(several.y.сумма, 36);
      const grouped = (await h.get(`/analyze_statistics/?group_by=device&device_id=${device}`)).json();
      assert.deepEqual(Object.keys(grouped[0]), ['device_id', ...ORIGINAL_KEYS]);
      const empty = (
        await h.get(`/analyze_statistics/?device_id=${device}&start_date=2000-01-01&end_date=2000-01-02`)
      ).json();
      assert.deepEqual(empty, {
        'минимальное значение': null,
        'максимальное значение': null,
        количество: 0,
        сумма: 0,
        медиана: null,
      });
    });

    it('leaves the rest of the API as it is', async () => {
      const device = await h.createDevice();
      const reading = (await h.post('/data/', { device_id: device, x: 1, y: 2, z: 3 })).json();
      assert.deepEqual(Object.keys(reading), ['id', 'device_id', 'x', 'y', 'z', 'timestamp']);
      const series = await h.get(`/analyze_statistics/series?device_id=${device}`);
      assert.equal(series.statusCode, 200);
      assert.ok('count' in series.json()[0]);
    });

    it('says so in the OpenAPI document, which stays valid', async () => {
      const document = (await h.get('/openapi.json')).json();
      const schemas = document.components.schemas;
      assert.equal(schemas.Statistics, undefined);
      assert.deepEqual(Object.keys(schemas.OriginalStatistics.properties), [...ORIGINAL_KEYS, 'percentiles']);
      const answer = JSON.stringify(document.paths['/analyze_statistics/'].get.responses['200']);
      assert.match(answer, /#\/components\/schemas\/OriginalStatistics/);
      await SwaggerParser.validate(structuredClone(document));
    });
  },
  { STATISTICS_KEYS: 'original' },
);
