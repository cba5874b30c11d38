import assert from 'node:assert/strict';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';

const env = (changes: Record<string, string> = {}) => ({
  NODE_ENV: 'test',
  DATA_DIR: join(tmpdir(), 'statistics-mqtt-settings'),
  JWT_SECRET: 'a-secret-that-is-long-enough-for-hs256-0123456789',
  ...changes,
});

const refused = (changes: Record<string, string>, message: RegExp) =>
  assert.throws(
    () => loadConfig(env(changes)),
    (error: unknown) => error instanceof ConfigError && message.test(error.message),
    JSON.stringify(changes),
  );

describe('MQTT settings', () => {
  it('are off without MQTT_URL, and have their defaults with it', () => {
    assert.equal(loadConfig(env()).mqtt, undefined);
    assert.deepEqual(
      { ...loadConfig(env({ MQTT_URL: 'mqtts://svc:secret@broker.example:8883' })).mqtt },
      {
        url: 'mqtts://svc:secret@broker.example:8883',
        topicPrefix: 'devices',
        sharedGroup: undefined,
        clientId: `statistics-${hostname()}`,
        sessionExpirySeconds: 604_800,
        errorsTopic: false,
        deviceAuth: 'none',
        reconnectMaxSeconds: 30,
      },
    );
  });

  it('refuses a bad broker URL without echoing its password, and topics with wildcards', () => {
    refused(
      { MQTT_URL: 'http://svc:hunter2@broker:1883' },
      /^MQTT_URL must be mqtt:\/\/\[user:password@\]host/,
    );
    assert.throws(
      () => loadConfig(env({ MQTT_URL: 'http://svc:hunter2@broker:1883' })),
      (error: unknown) => !(error as Error).message.includes('hunter2'),
    );
    refused(
      { MQTT_URL: 'mqtt://b', MQTT_TOPIC_PREFIX: 'devices/#' },
      /^MQTT_TOPIC_PREFIX must be a topic without wildcards/,
    );
    refused({ MQTT_URL: 'mqtt://b', MQTT_TOPIC_PREFIX: 'devices/' }, /^MQTT_TOPIC_PREFIX must be/);
    refused({ MQTT_URL: 'mqtt://b', MQTT_TOPIC_PREFIX: '$SYS' }, /^MQTT_TOPIC_PREFIX must be/);
    refused({ MQTT_URL: 'mqtt://b', MQTT_SHARED_GROUP: 'a/b' }, /^MQTT_SHARED_GROUP must be a name without/);
  });

  it('with INGEST_AUTH=token, needs the broker to check devices (MQTT_DEVICE_AUTH=broker)', () => {
    refused({ MQTT_URL: 'mqtt://b', INGEST_AUTH: 'token' }, /MQTT_DEVICE_AUTH=broker/);
    const config = loadConfig(
      env({ MQTT_URL: 'mqtt://b', INGEST_AUTH: 'token', MQTT_DEVICE_AUTH: 'broker' }),
    );
    assert.equal(config.mqtt?.deviceAuth, 'broker');
  });
});
