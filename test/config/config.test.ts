import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Config, ConfigError, loadConfig } from '../../src/config.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const GOOD_SECRET = 'a-secret-that-is-long-enough-for-hs256-0123456789';

/** Asserts that `fn` throws a ConfigError whose message matches every pattern. */
function assertConfigError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

describe('configuration', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'statistics-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** An environment that loads, plus the given changes (undefined removes a variable). */
  const env = (changes: Record<string, string | undefined> = {}) => ({
    NODE_ENV: 'test',
    DATA_DIR: join(dir, 'unused'),
    JWT_SECRET: GOOD_SECRET,
    ...changes,
  });

  describe('JWT_SECRET', () => {
    it('is required with NODE_ENV=production', () => {
      for (const secret of [undefined, '']) {
        const dataDir = join(dir, `production-${secret === undefined ? 'unset' : 'empty'}`);
        assertConfigError(
          () => loadConfig(env({ NODE_ENV: 'production', JWT_SECRET: secret, DATA_DIR: dataDir })),
          /JWT_SECRET/,
          /required/,
          /NODE_ENV=production/,
        );
        // Production never falls back to a generated secret.
        assert.equal(existsSync(join(dataDir, 'jwt-secret')), false);
      }
    });

    it('must be at least 32 bytes, in every environment', () => {
      for (const NODE_ENV of ['production', 'development', 'test', undefined]) {
        for (const secret of ['short', 'x'.repeat(31), `${'é'.repeat(15)}x`]) {
          assertConfigError(
            () => loadConfig(env({ NODE_ENV, JWT_SECRET: secret })),
            /JWT_SECRET/,
            /at least 32 bytes/,
          );
        }
      }
    });

    it('accepts 32 bytes, counted as bytes, not characters', () => {
      assert.equal(
        loadConfig(env({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) })).jwtSecret,
        'x'.repeat(32),
      );
      // 16 two-byte characters are 32 bytes.
      assert.equal(
        loadConfig(env({ NODE_ENV: 'production', JWT_SECRET: 'é'.repeat(16) })).jwtSecret,
        'é'.repeat(16),
      );
      assert.equal(
        loadConfig(env({ NODE_ENV: 'production', JWT_SECRET: GOOD_SECRET })).jwtSecret,
        GOOD_SECRET,
      );
    });

    it('is generated in development, kept in DATA_DIR/jwt-secret and reused on the next load', () => {
      const dataDir = join(dir, 'development', 'nested');
      const first = loadConfig({ DATA_DIR: dataDir });
      assert.equal(first.environment, 'development');
      assert.ok(Buffer.byteLength(first.jwtSecret) >= 32, 'a generated secret is strong');
      const file = join(dataDir, 'jwt-secret');
      assert.ok(existsSync(file), 'the secret is kept in the data folder');
      assert.equal(readFileSync(file, 'utf8').trim(), first.jwtSecret);
      if (process.platform !== 'win32') {
        assert.equal(statSync(file).mode & 0o077, 0, 'only the owner may read the secret file');
      }

      const second = loadConfig({ DATA_DIR: dataDir, NODE_ENV: 'development' });
      assert.equal(second.jwtSecret, first.jwtSecret, 'tokens survive a restart');

      // Another data folder gets another secret: none is a built-in default.
      const elsewhere = loadConfig({ DATA_DIR: join(dir, 'development-2') });
      assert.notEqual(elsewhere.jwtSecret, first.jwtSecret);
    });

    it('prefers JWT_SECRET over the generated file', () => {
      const dataDir = join(dir, 'explicit');
      loadConfig({ DATA_DIR: dataDir });
      assert.equal(loadConfig({ DATA_DIR: dataDir, JWT_SECRET: GOOD_SECRET }).jwtSecret, GOOD_SECRET);
    });
  });

  describe('bad values stop the service with a message naming the variable', () => {
    const cases: [string, string[]][] = [
      ['PORT', ['abc', '-1', '70000', '80.5', '8000x', ' 80']],
      ['LOG_LEVEL', ['loud', 'INFO', 'verbose']],
      ['DATABASE_URL', ['mysql://root@localhost/db', 'sqlite:', 'statistics.db', 'postgres:/nohost']],
      ['INGEST_AUTH', ['closed', 'TOKEN', 'jwt', 'true']],
      [
        'TRUST_PROXY',
        ['yes', 'on', 'TRUE', 'true', '1000', '10.0.0.300', '10.0.0.0/33', 'fe80::1/129', 'a, b'],
      ],
      ['NODE_ENV', ['prod', 'staging']],
      ['RATE_LIMIT_WINDOW_SECONDS', ['0', 'abc', '-5']],
      ['LOGIN_LIMIT_PER_ACCOUNT', ['-1', 'ten']],
      ['LOGIN_LIMIT_PER_ADDRESS', ['1.5']],
      ['REGISTER_LIMIT_PER_ADDRESS', ['lots']],
    ];
    for (const [name, values] of cases) {
      it(name, () => {
        for (const value of values) {
          assertConfigError(() => loadConfig(env({ [name]: value })), new RegExp(`\\b${name}\\b`));
        }
      });
    }

    it('accepts the good values of the same variables', () => {
      const config = loadConfig(
        env({
          PORT: '0',
          LOG_LEVEL: 'silent',
          DATABASE_URL: 'postgresql://user@db.example:5432/stats',
          INGEST_AUTH: 'token',
          TRUST_PROXY: '10.0.0.1, 172.16.0.0/12 ,fd00::/8',
          CORS_ORIGINS: ' https://a.example , ,https://b.example',
          RATE_LIMIT_WINDOW_SECONDS: '60',
          LOGIN_LIMIT_PER_ACCOUNT: '0',
        }),
      );
      assert.equal(config.port, 0);
      assert.equal(config.logLevel, 'silent');
      assert.equal(config.databaseUrl, 'postgresql://user@db.example:5432/stats');
      assert.equal(config.ingestAuth, 'token');
      assert.deepEqual(config.trustProxy, ['10.0.0.1', '172.16.0.0/12', 'fd00::/8']);
      assert.equal(loadConfig(env({ TRUST_PROXY: '2' })).trustProxy, 2);
      assert.equal(loadConfig(env({ TRUST_PROXY: '0' })).trustProxy, false);
      assert.deepEqual(config.corsOrigins, ['https://a.example', 'https://b.example']);
      assert.equal(config.rateLimits.windowSeconds, 60);
      assert.equal(config.rateLimits.loginPerAccount, 0);
    });
  });

  it('refuses TRUST_PROXY=true, saying what to set instead', () => {
    assertConfigError(() => loadConfig(env({ TRUST_PROXY: 'true' })), /TRUST_PROXY=1 for one/);
  });

  it('keeps readings and rollups forever by default, and refuses rollups kept shorter than readings', () => {
    assert.deepEqual({ ...loadConfig(env()).retention }, { readingsDays: undefined, rollupsDays: undefined });
    assert.deepEqual(
      { ...loadConfig(env({ RETENTION_DAYS: '30', ROLLUP_RETENTION_DAYS: '30' })).retention },
      { readingsDays: 30, rollupsDays: 30 },
    );
    assertConfigError(
      () => loadConfig(env({ RETENTION_DAYS: '30', ROLLUP_RETENTION_DAYS: '7' })),
      /ROLLUP_RETENTION_DAYS=7 must be at least RETENTION_DAYS \(30\)/,
    );
    assertConfigError(() => loadConfig(env({ ROLLUP_RETENTION_DAYS: '7' })), /readings kept forever/);
    assertConfigError(
      () => loadConfig(env({ RETENTION_DAYS: '0' })),
      /RETENTION_DAYS must be a whole number/,
    );
  });

  it('runs statistics queries a core each on SQLite, and on half the cores on PostgreSQL, unless told', () => {
    const cores = availableParallelism();
    const concurrency = (changes: Record<string, string>) =>
      loadConfig(env(changes)).heavyQueries.concurrency;
    assert.equal(concurrency({ DATABASE_URL: `sqlite:${join(dir, 'cores.db')}` }), Math.max(2, cores));
    // PostgreSQL's backends run at the priority of ingest's: one on 2 cores (issue 10).
    const postgres = 'postgres://postgres@127.0.0.1:5432/statistics';
    assert.equal(concurrency({ DATABASE_URL: postgres }), Math.max(1, Math.floor(cores / 2)));
    assert.equal(concurrency({ DATABASE_URL: postgres, STATISTICS_CONCURRENCY: '3' }), 3);
  });

  it('lets heavy queries run half the time while ingest is busy on PostgreSQL, all of it on SQLite, unless told', () => {
    const share = (changes: Record<string, string>) => loadConfig(env(changes)).heavyQueries.busyShare;
    const postgres = 'postgres://postgres@127.0.0.1:5432/statistics';
    assert.equal(share({ DATABASE_URL: `sqlite:${join(dir, 'share.db')}` }), 1);
    assert.equal(share({ DATABASE_URL: postgres }), 0.5);
    assert.equal(share({ DATABASE_URL: postgres, STATISTICS_BUSY_SHARE: '100' }), 1);
    assertConfigError(
      () => loadConfig(env({ STATISTICS_BUSY_SHARE: '0' })),
      /STATISTICS_BUSY_SHARE must be a whole number from 1 to 100/,
    );
  });

  it('refuses a STATISTICS_THREAD_MEMORY_MB too small for a fold step of ordinary readings', () => {
    // At 16 MB the SQLite folder's 5,000-reading plan over uniform x, y and z ended its thread at every
    // ROLLUP_FOLD_INTERVAL_MS, never folding an hour: a server that starts there never catches up.
    const memory = (value: string) => loadConfig(env({ STATISTICS_THREAD_MEMORY_MB: value })).heavyQueries;
    assert.equal(memory('32').threadMemoryMb, 32);
    assertConfigError(
      () => memory('16'),
      /STATISTICS_THREAD_MEMORY_MB must be a whole number from 32 to 65536/,
    );
  });

  it('has safe defaults: ingest open, CORS closed, no proxy trusted, the documented limits', () => {
    const config = loadConfig(env());
    assert.equal(config.ingestAuth, 'open');
    assert.deepEqual(config.corsOrigins, []);
    assert.equal(config.trustProxy, false);
    assert.equal(config.host, '127.0.0.1');
    assert.deepEqual(
      { ...config.rateLimits },
      { windowSeconds: 900, loginPerAccount: 10, loginPerAddress: 100, registerPerAddress: 20 },
    );
  });

  it('answers a frozen Config, nested parts included', () => {
    const config = loadConfig(env({ CORS_ORIGINS: 'https://a.example' }));
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.rateLimits));
    assert.ok(Object.isFrozen(config.corsOrigins));
    const mutable = config as { -readonly [K in keyof Config]: Config[K] };
    assert.throws(() => {
      mutable.jwtSecret = 'changed';
    }, TypeError);
    assert.throws(() => {
      (mutable.rateLimits as { loginPerAccount: number }).loginPerAccount = 0;
    }, TypeError);
    assert.throws(() => {
      (mutable.corsOrigins as string[]).push('https://evil.example');
    }, TypeError);
    assert.equal(config.jwtSecret, GOOD_SECRET);
    assert.equal(config.rateLimits.loginPerAccount, 10);
    assert.deepEqual(config.corsOrigins, ['https://a.example']);
  });

  describe('the entry point refuses to start with a weak secret', () => {
    /** Runs `node --import tsx src/main.ts` with the given environment; kills it once it listens, or after `timeoutMs`. */
    function start(
      changes: Record<string, string | undefined>,
      // Generous: a refusal comes within a second or two, but tsx's start alone took over 15 s at a
      // load of 10 on 2 cores; a service that starts instead is stopped once it says it listens.
      timeoutMs = 120_000,
    ): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string; timedOut: boolean }> {
      const environment: Record<string, string | undefined> = { ...process.env };
      for (const name of Object.keys(environment)) {
        if (/^(JWT_SECRET|DATABASE_URL|DATA_DIR|PORT|HOST|NODE_ENV|LOG_LEVEL|NODE_OPTIONS)$/.test(name)) {
          delete environment[name];
        }
      }
      const dataDir = mkdtempSync(join(dir, 'main-'));
      Object.assign(environment, {
        DATA_DIR: dataDir,
        DATABASE_URL: `sqlite:${join(dataDir, 'statistics.db')}`,
        HOST: '127.0.0.1',
        PORT: '0',
        LOG_LEVEL: 'info',
        ...changes,
      });
      for (const [name, value] of Object.entries(environment))
        if (value === undefined) delete environment[name];
      return new Promise((resolveRun, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
          cwd: ROOT,
          env: environment as NodeJS.ProcessEnv,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        let timedOut = false;
        // A service that listens has not refused: stopped at once, and reported as timed out.
        const onOutput = (chunk: Buffer) => {
          output += chunk;
          if (output.includes('Server listening at') && !timedOut) {
            timedOut = true;
            child.kill('SIGKILL');
          }
        };
        child.stdout.on('data', onOutput);
        child.stderr.on('data', onOutput);
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, timeoutMs);
        child.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        child.on('exit', (code, signal) => {
          clearTimeout(timer);
          resolveRun({ code, signal, output, timedOut });
        });
      });
    }

    it('exits non-zero and says why with NODE_ENV=production and a short JWT_SECRET', async () => {
      const run = await start({ NODE_ENV: 'production', JWT_SECRET: 'too-short-secret' });
      assert.equal(run.timedOut, false, `the service started instead of refusing:\n${run.output}`);
      assert.notEqual(run.code, 0, run.output);
      assert.notEqual(run.code, null, run.output);
      assert.match(run.output, /Configuration error/);
      assert.match(run.output, /JWT_SECRET must be at least 32 bytes/);
      assert.doesNotMatch(run.output, /too-short-secret/, 'the secret itself is not printed');
    });

    it('exits non-zero and says why with NODE_ENV=production and no JWT_SECRET', async () => {
      const run = await start({ NODE_ENV: 'production' });
      assert.equal(run.timedOut, false, `the service started instead of refusing:\n${run.output}`);
      assert.notEqual(run.code, 0, run.output);
      assert.notEqual(run.code, null, run.output);
      assert.match(run.output, /JWT_SECRET is required when NODE_ENV=production/);
    });
  });
});
