import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configurationReference } from '../../src/config/reference.js';
import { ConfigError, loadConfig, processEnvironment } from '../../src/config.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SECRET = 'a-secret-that-is-long-enough-for-hs256-0123456789';

describe('settings declared once', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'statistics-settings-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const env = (changes: Record<string, string | undefined> = {}) => ({
    NODE_ENV: 'test',
    DATA_DIR: join(dir, 'data'),
    JWT_SECRET: SECRET,
    ...changes,
  });

  it('docs/configuration.md is the reference generated from the schema (run `npm run docs:config`)', () => {
    const written = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
    assert.equal(written, configurationReference());
    // Every variable the loader reads is in the reference, with its default.
    for (const name of ['DATABASE_URL', 'METRICS_TOKEN', 'METRICS_PORT', 'STATISTICS_KEYS', 'LOG_FORMAT']) {
      assert.match(written, new RegExp(`\\| \`${name}\` \\|`));
    }
    assert.match(written, /\| `PORT` \| whole number, 0 to 65535 \| `8000` \|/);
  });

  it('refuses bad values of the new settings, naming the variable and never echoing a secret', () => {
    const cases: [string, string, RegExp][] = [
      ['STATISTICS_KEYS', 'russian', /STATISTICS_KEYS must be one of english, original, not "russian"/],
      ['LOG_FORMAT', 'colour', /LOG_FORMAT must be one of auto, json, pretty/],
      ['METRICS_PORT', '65536', /METRICS_PORT must be a whole number from 0 to 65535/],
      ['SHUTDOWN_DELAY_MS', '-1', /SHUTDOWN_DELAY_MS must be a whole number/],
      ['METRICS_TOKEN', 'short-token', /METRICS_TOKEN must be at least 16 characters$/],
    ];
    for (const [name, value, message] of cases) {
      assert.throws(
        () => loadConfig(env({ [name]: value })),
        (error: unknown) => error instanceof ConfigError && message.test(error.message),
        `${name}=${value}`,
      );
    }
  });

  it('turns metrics on by a token or a port of their own, off by default', () => {
    assert.equal(loadConfig(env()).metrics.enabled, false);
    const byToken = loadConfig(env({ METRICS_TOKEN: 'x'.repeat(16) })).metrics;
    assert.deepEqual(
      { ...byToken },
      { enabled: true, token: 'x'.repeat(16), port: undefined, host: '127.0.0.1' },
    );
    const byPort = loadConfig(env({ METRICS_PORT: '9464', HOST: '0.0.0.0' })).metrics;
    assert.deepEqual({ ...byPort }, { enabled: true, token: undefined, port: 9464, host: '0.0.0.0' });
  });

  it('reads a .env file, and the environment wins over it', () => {
    const file = join(dir, '.env');
    writeFileSync(file, '# settings\nPORT=9100\nSTATISTICS_KEYS=original\nLOG_LEVEL="debug"\n');
    const saved = { PORT: process.env.PORT, LOG_LEVEL: process.env.LOG_LEVEL };
    process.env.PORT = '9200';
    delete process.env.LOG_LEVEL;
    try {
      const environment = processEnvironment(file);
      assert.equal(environment.PORT, '9200', 'the environment wins');
      assert.equal(environment.STATISTICS_KEYS, 'original');
      const config = loadConfig({ ...environment, ...env() });
      assert.equal(config.port, 9200);
      assert.equal(config.statisticsKeys, 'original');
      assert.equal(config.logLevel, 'debug');
      // A bad value in the file is refused like one in the environment.
      writeFileSync(file, 'PORT=eighty\n');
      delete process.env.PORT;
      assert.throws(() => loadConfig({ ...processEnvironment(file), ...env() }), /PORT must be/);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});
