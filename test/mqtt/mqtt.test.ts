import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import type { MqttClient } from 'mqtt';
import { buildApp } from '../../src/app.js';
import { openDatabase } from '../../src/db/database.js';
import { FUZZ_SEED } from '../helpers/fuzz.js';
import { ENGINES, engineSkipReason, Harness, testConfig } from '../helpers/harness.js';
import {
  brokerSkipReason,
  publisher,
  SHARED_BROKER,
  sample,
  subscribed,
  uniqueMqtt,
  waitUntil,
} from '../helpers/mqtt.js';
import { assertRollupsMatchReadings } from '../helpers/rollups.js';

// Issue 14: devices publish to PREFIX/{id}/readings on the shared Mosquitto; the service stores what
// POST /data/ would store, refuses (and acknowledges) everything else without ever stopping.

const brokerSkip = await brokerSkipReason();
/** Small, so that "too large" costs little to send; a 1,000-reading batch still fits. */
const LIMIT_BYTES = 262_144;
const GARBAGE_MESSAGES = 150;

for (const engine of ENGINES) {
  describe(`MQTT ingest [${engine}]`, { skip: brokerSkip || engineSkipReason(engine) }, () => {
    const h = new Harness(engine);
    const { prefix, clientId } = uniqueMqtt();
    let device: MqttClient;
    let errors: MqttClient;
    const errorMessages: { topic: string; body: { kind: string; reason: string } }[] = [];

    before(async () => {
      await h.start({
        MQTT_URL: SHARED_BROKER,
        MQTT_TOPIC_PREFIX: prefix,
        MQTT_CLIENT_ID: clientId,
        MQTT_ERRORS_TOPIC: 'true',
        // The session outlives the test by a minute at most on the shared broker.
        MQTT_SESSION_EXPIRY_SECONDS: '60',
        BATCH_BODY_LIMIT_BYTES: String(LIMIT_BYTES),
      });
      await subscribed(h);
      device = await publisher(SHARED_BROKER);
      errors = await publisher(SHARED_BROKER);
      errors.on('message', (topic, payload) =>
        errorMessages.push({ topic, body: JSON.parse(String(payload)) }),
      );
      await errors.subscribeAsync(`${prefix}/+/errors`, { qos: 0 });
    });
    after(async () => {
      await Promise.all([device?.endAsync(), errors?.endAsync()]);
      await h.stop();
    });
    afterEach(() => assertRollupsMatchReadings(h.db, 'after the test'));

    const readings = async (deviceId: number) =>
      (await h.get(`/data/?device_id=${deviceId}&limit=1000`)).json();
    const publish = (deviceId: number | string, payload: unknown) =>
      device.publishAsync(
        `${prefix}/${deviceId}/readings`,
        typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload),
        { qos: 1 },
      );

    it('stores single readings and batches published by a device, as GET /data/ and the statistics show', async () => {
      const id = await h.createDevice();
      await publish(id, { x: 4, y: 1, z: 2 });
      await publish(id, { x: 10, y: 1, z: 2, timestamp: '2026-01-01T00:00:00Z', device_id: id });
      await publish(id, [
        { x: 1, y: 5, z: 6 },
        { x: 3, y: 5, z: 6, timestamp: '2026-01-01T00:00:01+01:00' },
      ]);
      await waitUntil('four readings', async () => (await readings(id)).length === 4);
      const stored = await readings(id);
      assert.deepEqual(
        stored.map((r: { x: number }) => r.x).sort((a: number, b: number) => a - b),
        [1, 3, 4, 10],
      );
      assert.ok(stored.some((r: { timestamp: string }) => r.timestamp === '2026-01-01T00:00:00.000Z'));
      assert.ok(stored.some((r: { timestamp: string }) => r.timestamp === '2025-12-31T23:00:01.000Z'));
      const statistics = (await h.get(`/analyze_statistics/?device_id=${id}&attr=x`)).json();
      assert.deepEqual(
        { count: statistics.count, min: statistics.min, max: statistics.max, sum: statistics.sum },
        { count: 4, min: 1, max: 10, sum: 18 },
      );
      assert.equal(statistics.median, 3.5);
      assert.equal(await sample(h, 'statistics_mqtt_messages_total', { outcome: 'stored' }), 3);
      assert.equal(await sample(h, 'statistics_mqtt_connected'), 1);
      const ready = await h.get('/ready');
      assert.equal(ready.statusCode, 200);
      assert.deepEqual(ready.json().checks, { database: 'ok', mqtt: 'ok' });
    });

    it('stores a reading published at QoS 0 too, which has nothing to acknowledge', async () => {
      const id = await h.createDevice();
      await device.publishAsync(`${prefix}/${id}/readings`, '{"x": 7, "y": 8, "z": 9}', { qos: 0 });
      await waitUntil('the QoS 0 reading', async () => (await readings(id)).length === 1);
      assert.deepEqual(
        (await readings(id)).map((r: { x: number; y: number; z: number }) => [r.x, r.y, r.z]),
        [[7, 8, 9]],
      );
    });

    it('stores a message sent again with the same correlation data once, and refuses it with another payload', async () => {
      const id = await h.createDevice();
      const topic = `${prefix}/${id}/readings`;
      const correlated = (payload: string, correlation: string) =>
        device.publishAsync(topic, payload, {
          qos: 1,
          properties: { correlationData: Buffer.from(correlation) },
        });
      await correlated('[{"x": 1, "y": 0, "z": 0}, {"x": 2, "y": 0, "z": 0}]', 'message-1');
      // The publisher's own retry (it did not see the PUBACK), and a payload reusing its correlation data.
      await correlated('[{"x": 1, "y": 0, "z": 0}, {"x": 2, "y": 0, "z": 0}]', 'message-1');
      await correlated('{"x": 3, "y": 0, "z": 0}', 'message-1');
      await correlated('{"x": 4, "y": 0, "z": 0}', 'message-2');
      await waitUntil('the reused correlation data reported', async () =>
        errorMessages.some((m) => m.topic === `${prefix}/${id}/errors`),
      );
      await waitUntil('three readings', async () => (await readings(id)).length === 3);
      assert.deepEqual(
        (await readings(id)).map((r: { x: number }) => r.x).sort((a: number, b: number) => a - b),
        [1, 2, 4],
      );
      const report = errorMessages.find((m) => m.topic === `${prefix}/${id}/errors`)?.body;
      assert.match(report?.reason ?? '', /idempotency key .* was used with another request/);
    });

    it('stores a batch whole or not at all, says why on the errors topic, and goes on', async () => {
      const id = await h.createDevice();
      const before = await h.countReadings();
      const batch = Array.from({ length: 1000 }, (_, i) => ({ x: i, y: 0, z: 0 }));
      await publish(id, [...batch.slice(0, 500), { x: 'NaN', y: 0, z: 0 }, ...batch.slice(500)]);
      await publish(id, [...batch.slice(0, 10), { x: 1, y: 0, z: 0, device_id: id + 1 }]);
      await publish(id, batch);
      await waitUntil('the valid batch', async () => (await h.countReadings()) === before + 1000);
      const stored = await readings(id);
      assert.equal(stored.length, 1000);
      await waitUntil(
        'two error reports',
        async () => errorMessages.filter((m) => m.topic === `${prefix}/${id}/errors`).length === 2,
      );
      const reports = errorMessages.filter((m) => m.topic === `${prefix}/${id}/errors`).map((m) => m.body);
      assert.deepEqual(
        reports.map((r) => r.kind),
        ['invalid', 'other_device'],
      );
      assert.match(reports[0]?.reason ?? '', /^500\.x: value is not a valid float$/);
      assert.match(reports[1]?.reason ?? '', new RegExp(`^10\\.device_id is not ${id}`));
    });

    it('splits a shared subscription between two processes, each message stored once', async () => {
      const id = await h.createDevice();
      const shared = `${prefix}-shared`;
      const apps = await Promise.all(
        ['a', 'b'].map(async (name) => {
          const config = testConfig(h.databaseUrl, {
            MQTT_URL: SHARED_BROKER,
            MQTT_TOPIC_PREFIX: shared,
            MQTT_SHARED_GROUP: 'statistics',
            MQTT_CLIENT_ID: `${clientId}-${name}`,
            MQTT_SESSION_EXPIRY_SECONDS: '60',
          });
          const database = openDatabase(config.databaseUrl);
          const app = await buildApp(config, database);
          app.addHook('onClose', () => database.db.destroy());
          await app.ready();
          return app;
        }),
      );
      const storedBy = (app: FastifyInstance) =>
        app.metrics.registry
          .getSingleMetric('statistics_mqtt_messages_total')
          ?.get()
          .then((m) => m.values.find((v) => v.labels.outcome === 'stored')?.value ?? 0);
      try {
        await waitUntil('both subscriptions', async () =>
          (await Promise.all(apps.map((app) => app.inject({ url: '/ready' })))).every(
            (ready) => ready.json().checks.mqtt === 'ok',
          ),
        );
        for (let k = 0; k < 200; k++)
          await device.publishAsync(`${shared}/${id}/readings`, JSON.stringify({ x: k, y: 0, z: 0 }), {
            qos: 1,
          });
        await waitUntil('200 readings', async () => (await readings(id)).length === 200);
        const xs = (await readings(id)).map((r: { x: number }) => r.x).sort((a: number, b: number) => a - b);
        assert.deepEqual(
          xs,
          Array.from({ length: 200 }, (_, k) => k),
        );
        const counts = await Promise.all(apps.map(storedBy));
        assert.equal((counts[0] ?? 0) + (counts[1] ?? 0), 200);
        assert.ok(
          counts.every((n) => (n ?? 0) > 0),
          `split ${counts.join(' / ')}`,
        );
      } finally {
        await Promise.all(apps.map((app) => app.close()));
      }
    });

    it('refuses a fuzz set of garbage payloads and topics without storing anything or stopping', async () => {
      const id = await h.createDevice();
      const readingsBefore = await h.countReadings();
      const refusedBefore = await sample(h, 'statistics_mqtt_messages_total', { outcome: 'refused' });
      const payloads = fc.sample(garbage(id), { seed: FUZZ_SEED, numRuns: GARBAGE_MESSAGES });
      const fixed: [number | string, string | Buffer][] = [
        [id, 'x'.repeat(LIMIT_BYTES + 1)],
        [id, JSON.stringify(Array.from({ length: 10_001 }, () => ({ x: 1, y: 1, z: 1 })))],
        [id, '{"x": 1e400, "y": 1, "z": 1}'],
        [id, JSON.stringify({ x: 1, y: 1, z: 1, timestamp: '2999-01-01T00:00:00Z' })],
        [id, JSON.stringify({ x: 1, y: 1, z: 1, timestamp: '2026-01-01T00:00:00' })],
        [id, JSON.stringify({ x: 1, y: 1, z: 1, device_id: String(id) })],
        [id, '{"__proto__": {"x": 1}, "y": 1, "z": 1}'],
        [id, Buffer.from([0xff, 0xfe, 0x7b])],
        [id, ''],
        [2_000_000_000, JSON.stringify({ x: 1, y: 1, z: 1 })],
        ['abc', JSON.stringify({ x: 1, y: 1, z: 1 })],
        ['0', JSON.stringify({ x: 1, y: 1, z: 1 })],
        ['01', JSON.stringify({ x: 1, y: 1, z: 1 })],
        ['99999999999999999999', JSON.stringify({ x: 1, y: 1, z: 1 })],
      ];
      for (const payload of payloads) await publish(id, payload);
      for (const [topicDevice, payload] of fixed) await publish(topicDevice, payload);
      const sent = payloads.length + fixed.length;
      await waitUntil(
        `${sent} refusals`,
        async () =>
          (await sample(h, 'statistics_mqtt_messages_total', { outcome: 'refused' })) ===
          refusedBefore + sent,
        30_000,
      );
      assert.equal(await h.countReadings(), readingsBefore, `garbage was stored (FUZZ_SEED=${FUZZ_SEED})`);
      // Still subscribed: the next good message is stored.
      await publish(id, { x: 42, y: 0, z: 0 });
      await waitUntil('the reading after the garbage', async () => (await readings(id)).length === 1);
      assert.equal((await readings(id))[0].x, 42);
      for (const kind of [
        'too_large',
        'too_many',
        'json',
        'invalid',
        'other_device',
        'unknown_device',
        'topic',
      ])
        assert.ok((await sample(h, 'statistics_mqtt_refused_total', { kind })) > 0, kind);
    });
  });
}

/** Payloads that must all be refused for device `id`: nothing in them is a valid reading or batch. */
function garbage(id: number): fc.Arbitrary<string | Buffer> {
  const reading = fc.record({ x: fc.double(), y: fc.double(), z: fc.double() });
  const spoiled = fc.oneof(
    fc.json(),
    fc.string(),
    fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
    // A valid reading with one field broken: the wrong type, missing, another device, a bad time.
    fc
      .tuple(
        reading,
        fc.constantFrom('x', 'y', 'z', 'device_id', 'timestamp'),
        fc.oneof(fc.string(), fc.boolean(), fc.constant(null), fc.integer({ min: id + 1 }), fc.object()),
      )
      .map(([r, field, value]) => JSON.stringify({ ...r, [field]: value })),
    // A valid batch with one bad item, or cut short.
    fc
      .tuple(fc.array(reading, { maxLength: 20 }), fc.json())
      .map(([items, bad]) => JSON.stringify([...items, JSON.parse(bad)])),
    fc.tuple(fc.array(reading, { minLength: 1, maxLength: 5 }), fc.nat()).map(([items, cut]) => {
      const text = JSON.stringify(items);
      return text.slice(0, cut % (text.length - 1));
    }),
  );
  return spoiled.filter((payload) => !couldBeValid(payload, id));
}

/**
 * Independently of the service's schema: a payload that might be a valid reading or batch (finite
 * numbers x, y and z in every item, this device or none, a timestamp that might be fine) is kept out
 * of the garbage.
 */
function couldBeValid(payload: string | Buffer, id: number): boolean {
  let value: unknown;
  try {
    value = JSON.parse(String(payload));
  } catch {
    return false;
  }
  const item = (v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
    const r = v as Record<string, unknown>;
    return (
      ['x', 'y', 'z'].every((k) => typeof r[k] === 'number' && Number.isFinite(r[k])) &&
      (r.device_id === undefined || r.device_id === id) &&
      (r.timestamp === undefined || typeof r.timestamp === 'string')
    );
  };
  return Array.isArray(value) ? value.every(item) : item(value);
}
