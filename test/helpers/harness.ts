import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { type OpenedDatabase, openDatabase } from '../../src/db/database.js';
import type { Engine } from '../../src/db/dialect.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/tables.js';
import { assertRollupsMatchReadings } from './rollups.js';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';

/** A fresh, migrated database of one engine, removed again when the test file is done. */
export interface FreshDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function freshDatabase(engine: Engine): Promise<FreshDatabase> {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'statistics-test-'));
    return {
      url: `sqlite:${join(dir, 'test.db')}`,
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const adminUrl = process.env.TEST_DATABASE_URL as string;
  const name = `statistics_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const nodes = citus ? await citusWorkers(adminUrl) : [];
  for (const url of [adminUrl, ...nodes])
    await onDatabase(url, (client) => client.query(`create database ${name}`));
  const databaseUrl = (url: string) => {
    const own = new URL(url);
    own.pathname = `/${name}`;
    return own.toString();
  };
  if (citus) {
    // One set-up at a time across every test process: citus_add_node copies the roles to the worker,
    // and two at once fail there with "tuple concurrently updated" (the roles are the cluster's).
    await onDatabase(adminUrl, async (lock) => {
      await lock.query('select pg_advisory_lock($1)', [CITUS_SETUP_LOCK]);
      for (const url of [adminUrl, ...nodes])
        await onDatabase(databaseUrl(url), (client) => client.query('create extension citus'));
      const coordinator = new URL(adminUrl);
      await onDatabase(databaseUrl(adminUrl), async (client) => {
        await client.query('select citus_set_coordinator_host($1, $2)', [
          coordinator.hostname,
          Number(coordinator.port),
        ]);
        for (const url of nodes) {
          const worker = new URL(url);
          await client.query('select citus_add_node($1, $2)', [worker.hostname, Number(worker.port)]);
        }
      });
    });
  }
  return {
    url: databaseUrl(adminUrl),
    async drop() {
      // The coordinator first: its maintenance daemon and cached connections reach into the workers'
      // copies, and one arriving between FORCE's terminations and the drop fails it (55006): again.
      for (const url of [adminUrl, ...nodes]) {
        for (let attempt = 1; ; attempt++) {
          try {
            await onDatabase(url, (client) => client.query(`drop database if exists ${name} with (force)`));
            break;
          } catch (error) {
            if ((error as { code?: string }).code !== '55006' || attempt === 10) throw error;
            await sleep(200 * attempt);
          }
        }
      }
    },
  };
}

/**
 * TEST_CITUS=1: TEST_DATABASE_URL is a Citus coordinator, and each fresh database is made on every
 * node, with the extension and the workers registered (what `citus-cluster createdb` does), so that
 * the migrations distribute the tables as they would in production.
 */
const citus = process.env.TEST_CITUS === '1';
/** The advisory lock (in the coordinator's admin database) that serializes the set-up of databases. */
const CITUS_SETUP_LOCK = 7_301_308;

/** The worker nodes the coordinator of `adminUrl` knows, as URLs to their `postgres` database. */
async function citusWorkers(adminUrl: string): Promise<string[]> {
  const { rows } = await onDatabase(adminUrl, (client) =>
    client.query<{ host: string; port: number }>(
      `select nodename as host, nodeport as port from pg_dist_node where noderole = 'primary' and groupid > 0`,
    ),
  );
  return rows.map(({ host, port }) => {
    const url = new URL(adminUrl);
    url.hostname = host;
    url.port = String(port);
    return url.toString();
  });
}

async function onDatabase<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export function testConfig(databaseUrl: string, overrides: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    DATA_DIR: join(tmpdir(), 'statistics-test-data'),
    LOG_LEVEL: 'silent',
    JWT_SECRET: TEST_SECRET,
    // Suites log in hundreds of times from one address; the rate-limit suite sets its own limits.
    LOGIN_LIMIT_PER_ADDRESS: '100000',
    LOGIN_LIMIT_PER_ACCOUNT: '100000',
    REGISTER_LIMIT_PER_ADDRESS: '100000',
    ...overrides,
  });
}

/** The real app on a fresh database of one engine, with the real migrations; see `onEachEngine`. */
export class Harness {
  app!: FastifyInstance;
  db!: Kysely<Database>;
  config!: Config;
  #database!: FreshDatabase;
  #opened!: OpenedDatabase;

  constructor(readonly engine: Engine) {}

  async start(overrides: Record<string, string> = {}): Promise<void> {
    this.#database = await freshDatabase(this.engine);
    await this.open(overrides);
  }

  async open(overrides: Record<string, string> = {}): Promise<void> {
    this.config = testConfig(this.#database.url, overrides);
    // As the server opens it (src/server.ts).
    const database = openDatabase(this.config.databaseUrl, 'server', this.config.sqliteWalLimitBytes);
    await migrateToLatest(database.db, { waitMs: this.config.databaseWaitMs });
    this.#opened = database;
    this.db = database.db;
    this.app = await buildApp(this.config, database);
    await this.app.ready();
  }

  /** Closes the app and the database handle, keeping the database itself. */
  async close(): Promise<void> {
    await this.app.close();
    await this.#opened.close();
  }

  async stop(): Promise<void> {
    await this.close();
    await this.#database.drop();
  }

  get databaseUrl(): string {
    return this.#database.url;
  }

  inject(options: InjectOptions): Promise<LightMyRequestResponse> {
    return this.app.inject(options);
  }

  /** POSTs JSON (or, with a string, the exact bytes given as JSON). */
  post(url: string, body: unknown, token?: string): Promise<LightMyRequestResponse> {
    return this.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  get(url: string, token?: string): Promise<LightMyRequestResponse> {
    return this.app.inject({
      method: 'GET',
      url,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  }

  /** Registers a user and logs in; answers the user's id and bearer token. */
  async signUp(
    email = uniqueEmail(),
    password = 'a-good-password',
  ): Promise<{ id: number; token: string; email: string }> {
    const registered = await this.post('/auth/register', { email, password });
    if (registered.statusCode !== 201) throw new Error(`register failed: ${registered.body}`);
    return { id: registered.json().id, token: await this.logIn(email, password), email };
  }

  async logIn(email: string, password: string): Promise<string> {
    const response = await this.app.inject({
      method: 'POST',
      url: '/auth/jwt/login',
      payload: new URLSearchParams({ username: email, password }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    if (response.statusCode !== 200) throw new Error(`login failed: ${response.body}`);
    return response.json().access_token;
  }

  async createDevice(token?: string, name: string | null = 'sensor'): Promise<number> {
    const response = await this.post('/device/', { name }, token);
    if (response.statusCode !== 200) throw new Error(`device failed: ${response.body}`);
    return response.json().id;
  }

  /**
   * Two devices the service knows (a reading of each stored, so their next readings skip the device
   * look-up), then `deleted` removed behind the service's back, as another process would: the insert
   * itself must refuse its readings.
   */
  async devicesWithOneDeletedBehindTheCache(): Promise<{ kept: number; deleted: number }> {
    const kept = await this.createDevice();
    const deleted = await this.createDevice();
    const known = await this.post('/data/', [
      { device_id: kept, x: 1, y: 1, z: 1 },
      { device_id: deleted, x: 1, y: 1, z: 1 },
    ]);
    if (known.statusCode !== 200) throw new Error(`readings failed: ${known.body}`);
    await this.db.deleteFrom('devices').where('id', '=', deleted).execute();
    return { kept, deleted };
  }

  async countRows(table: 'data' | 'devices' | 'users'): Promise<number> {
    const row = await this.db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  countReadings(): Promise<number> {
    return this.countRows('data');
  }
}

/** The `rel="next"` target of a Link header, or undefined on the last page. */
export function nextLink(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  return /<([^>]+)>\s*;\s*rel="next"/.exec(header)?.[1];
}

let emailCounter = 0;
export const uniqueEmail = () => `user${++emailCounter}.${randomBytes(3).toString('hex')}@example.com`;

/** Both, or those TEST_ENGINES lists (the runner's Citus pass runs the PostgreSQL half alone). */
export const ENGINES: Engine[] = (['sqlite', 'postgres'] as const).filter(
  (engine) => process.env.TEST_ENGINES?.split(',').includes(engine) ?? true,
);

export function engineSkipReason(engine: Engine): string | false {
  return engine === 'postgres' && !process.env.TEST_DATABASE_URL
    ? 'PostgreSQL half skipped: set TEST_DATABASE_URL=postgres://... to run it'
    : false;
}

/**
 * Declares the same suite once per engine, each on its own fresh database: SQLite always,
 * PostgreSQL when TEST_DATABASE_URL is set (the runner reports the skip otherwise). After each test,
 * the per-minute rollups must still be what the stored readings imply, whatever the test wrote.
 */
export function onEachEngine(
  title: string,
  suite: (harness: Harness) => void,
  overrides: Record<string, string> = {},
) {
  for (const engine of ENGINES) {
    describe(`${title} [${engine}]`, { skip: engineSkipReason(engine) }, () => {
      const harness = new Harness(engine);
      before(() => harness.start(overrides));
      after(() => harness.stop());
      afterEach(() => assertRollupsMatchReadings(harness.db, 'after the test'));
      suite(harness);
    });
  }
}
