import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { buildApp } from '../../src/app.js';
import { openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { testConfig } from '../helpers/harness.js';
import { OwnPostgres, ownPostgresSkipReason } from '../helpers/own-postgres.js';

// Issue 13, item 3: statistics, series, lists and exports read from a real streaming replica while it
// is up and current; a replica behind MAX_REPLICA_LAG_MS is skipped; stopping it loses no request.
// The test owns both clusters (the machine's shared server allows no replication connections).

interface App {
  app: FastifyInstance;
  close(): Promise<void>;
}

async function appWithReplica(primary: OwnPostgres, replica: OwnPostgres, maxLagMs: number): Promise<App> {
  const config = testConfig(primary.url, {
    DATABASE_READ_URL: replica.url,
    MAX_REPLICA_LAG_MS: String(maxLagMs),
  });
  const database = openDatabase(config.databaseUrl, 'server');
  await migrateToLatest(database.db);
  const app = await buildApp(config, database);
  await app.ready();
  return {
    app,
    close: async () => {
      await app.close();
      await database.close();
    },
  };
}

/** statistics_database_reads_total for `target` (replica or primary). */
async function readsOn(app: FastifyInstance, target: 'replica' | 'primary'): Promise<number> {
  const metric = await app.metrics.registry.getSingleMetric('statistics_database_reads_total')?.get();
  return metric?.values.find((value) => value.labels.target === target)?.value ?? 0;
}

async function countOf(app: FastifyInstance, deviceId: number): Promise<number> {
  const response = await app.inject(`/analyze_statistics/?device_id=${deviceId}`);
  assert.equal(response.statusCode, 200, response.body);
  return response.json().count;
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function onReplica<T>(replica: OwnPostgres, text: string): Promise<T> {
  const client = new pg.Client({ connectionString: replica.url });
  await client.connect();
  try {
    return (await client.query(text)).rows[0] as T;
  } finally {
    await client.end();
  }
}

describe('read replicas (DATABASE_READ_URL) on a real streaming replica', {
  skip: ownPostgresSkipReason(),
}, () => {
  const primary = new OwnPostgres();
  const replica = new OwnPostgres();
  const onExit = () => {
    replica.destroy();
    primary.destroy();
  };
  let deviceId: number;

  before(async () => {
    process.once('exit', onExit);
    await primary.init();
    primary.start();
    await replica.initReplicaOf(primary);
    replica.start();
  });
  after(() => {
    onExit();
    process.off('exit', onExit);
  });

  it('answers statistics, lists and exports from the replica, and skips it once it lags', async () => {
    const current = await appWithReplica(primary, replica, 600_000);
    try {
      const { app } = current;
      const device = await app.inject({ method: 'POST', url: '/device/', payload: { name: 'replicated' } });
      deviceId = device.json().id;
      const batch = [1, 2, 3].map((x) => ({ device_id: deviceId, x, y: 0, z: 0 }));
      assert.equal((await app.inject({ method: 'POST', url: '/data/', payload: batch })).statusCode, 200);
      await until('the replica to hold the readings', async () => {
        const row = await onReplica<{ n: string }>(replica, 'select count(*) as n from data');
        return Number(row.n) === 3;
      });
      await until('a read served by the replica', async () => {
        await countOf(app, deviceId);
        return (await readsOn(app, 'replica')) > 0;
      });

      // The replica stops replaying: what is written now is on the primary only, so an answer without
      // it can only have come from the replica.
      await onReplica(replica, 'select pg_wal_replay_pause()');
      const more = { device_id: deviceId, x: 4, y: 0, z: 0 };
      assert.equal((await app.inject({ method: 'POST', url: '/data/', payload: more })).statusCode, 200);
      const replicaReads = await readsOn(app, 'replica');
      assert.equal(await countOf(app, deviceId), 3, 'statistics from the replica');
      const list = await app.inject(`/data/?device_id=${deviceId}`);
      assert.equal(list.json().length, 3, 'the list from the replica');
      const exported = await app.inject(`/data/export?device_id=${deviceId}&format=ndjson`);
      assert.equal(exported.body.trim().split('\n').length, 3, 'the export from the replica');
      const series = await app.inject(`/analyze_statistics/series?device_id=${deviceId}&bucket=1d`);
      assert.equal(series.statusCode, 200, series.body);
      assert.equal(
        series.json().reduce((sum: number, bucket: { count: number }) => sum + bucket.count, 0),
        3,
        'the series from the replica',
      );
      assert.ok((await readsOn(app, 'replica')) >= replicaReads + 4);
      // A read of one's own write stays on the primary: the device just written to is found.
      const own = await app.inject(`/device/${deviceId}`);
      assert.equal(own.statusCode, 200);
    } finally {
      await current.close();
    }

    // With a lag limit of a second: the replica answers while current, and is skipped once it lags.
    await onReplica(replica, 'select pg_wal_replay_resume()');
    const strict = await appWithReplica(primary, replica, 1000);
    try {
      const { app } = strict;
      await until('the resumed replica to answer', async () => {
        const count = await countOf(app, deviceId);
        return count === 4 && (await readsOn(app, 'replica')) > 0;
      });
      await onReplica(replica, 'select pg_wal_replay_pause()');
      const fifth = { device_id: deviceId, x: 5, y: 0, z: 0 };
      assert.equal((await app.inject({ method: 'POST', url: '/data/', payload: fifth })).statusCode, 200);
      await sleep(2500);
      const replicaReads = await readsOn(app, 'replica');
      assert.equal(await countOf(app, deviceId), 5, 'the lagging replica is skipped: the primary answers');
      assert.equal(await readsOn(app, 'replica'), replicaReads);
      await onReplica(replica, 'select pg_wal_replay_resume()');
      await until('the caught-up replica to answer again', async () => {
        assert.equal(await countOf(app, deviceId), 5);
        return (await readsOn(app, 'replica')) > replicaReads;
      });
    } finally {
      await strict.close();
    }
  });

  it('loses no request when the replica stops mid-test', async () => {
    const { app, close } = await appWithReplica(primary, replica, 5000);
    try {
      await until('a read served by the replica', async () => {
        await countOf(app, deviceId);
        return (await readsOn(app, 'replica')) > 0;
      });
      const statuses: number[] = [];
      const counts: number[] = [];
      let stopped = false;
      const client = async () => {
        for (let i = 0; i < 15; i++) {
          const response = await app.inject(`/analyze_statistics/?device_id=${deviceId}`);
          statuses.push(response.statusCode);
          if (response.statusCode === 200) counts.push(response.json().count);
          if (statuses.length === 12 && !stopped) {
            stopped = true;
            replica.stop('immediate');
          }
        }
      };
      await Promise.all([client(), client(), client(), client()]);
      assert.ok(stopped);
      assert.deepEqual(
        statuses,
        statuses.map(() => 200),
      );
      assert.deepEqual(
        counts,
        counts.map(() => 5),
      );
      // The replica is still taken for up until its next check (within a second): the reads sent to it
      // meanwhile failed there and were answered by the primary.
      const fallbacks = await app.metrics.registry
        .getSingleMetric('statistics_replica_fallbacks_total')
        ?.get();
      assert.ok(
        (fallbacks?.values[0]?.value ?? 0) > 0,
        'reads failed on the stopped replica ran on the primary',
      );
      assert.ok((await readsOn(app, 'primary')) > 0);
    } finally {
      await close();
    }
  });
});
