import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import SQLite from 'better-sqlite3';
import { type Answer, call, type Server, startServer, stopServer } from '../helpers/server.js';

// Issue 10: under sustained ingest SQLite's write-ahead log must not grow without bound. With
// SQLITE_WAL_LIMIT_MB=1 the server starts the log over (at the head of its `-wal` file) whenever it
// holds more than 1 MB, while batches and statistics keep coming, and empties the file once the load
// stops: every batch is stored and answered 200, none is refused. SQLite only: the
// log is SQLite's (PostgreSQL recycles its own WAL segments).

const LIMIT_MB = 1;
const MB = 1024 * 1024;
const LOAD_MS = 8000;
const BATCH = 1000;
const SENDERS = 2;
/** How long the log may take to empty once the load stopped. */
const IDLE_WAIT_MS = 15_000;

function walBytes(databaseFile: string): number {
  try {
    return statSync(`${databaseFile}-wal`).size;
  } catch {
    return 0;
  }
}

/**
 * The checkpoint sequence number in the `-wal` file's header (bytes 12-15, big-endian: SQLite's WAL
 * format), which SQLite adds one to each time the log starts over; undefined before a header is written.
 */
function logGeneration(databaseFile: string): number | undefined {
  try {
    const header = readFileSync(`${databaseFile}-wal`).subarray(0, 32);
    return header.length === 32 ? header.readUInt32BE(12) : undefined;
  } catch {
    return undefined;
  }
}

describe('SQLite write-ahead log under sustained ingest (SQLITE_WAL_LIMIT_MB)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'statistics-wal-limit-'));
  const databaseFile = join(dir, 'db.sqlite');
  let server: Server | undefined;

  after(async () => {
    if (server !== undefined) await stopServer(server, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the log near its limit, empties it once the load stops, and stores every reading', async (t) => {
    server = await startServer(`sqlite:${databaseFile}`, join(dir, 'service'), {
      SQLITE_WAL_LIMIT_MB: String(LIMIT_MB),
    });
    const base = server.url;
    const device = await call(base, 'POST /device/', { name: 'wal' });
    assert.equal(device.status, 200, device.body);
    const deviceId: number = JSON.parse(device.body).id;

    let acknowledged = 0;
    let next = 0;
    const failures: Answer[] = [];
    const sizes: number[] = [];
    const generations = new Set<number>();
    const began = performance.now();
    const loading = () => performance.now() - began < LOAD_MS;
    const send = async () => {
      while (loading()) {
        const rows = Array.from({ length: BATCH }, () => {
          const x = ++next + 0.5;
          return { device_id: deviceId, x, y: x / 2, z: 1 };
        });
        const answer = await call(base, 'POST /data/', rows, 30_000);
        if (answer.status === 200) acknowledged += JSON.parse(answer.body).stored;
        else failures.push(answer);
      }
    };
    const read = async () => {
      while (loading()) {
        const answer = await call(base, `GET /analyze_statistics/?device_id=${deviceId}`, undefined, 30_000);
        if (answer.status !== 200) failures.push(answer);
      }
    };
    const sample = async () => {
      while (loading()) {
        sizes.push(walBytes(databaseFile));
        const generation = logGeneration(databaseFile);
        if (generation !== undefined) generations.add(generation);
        await sleep(50);
      }
    };
    await Promise.all([sample(), read(), ...Array.from({ length: SENDERS }, send)]);

    // Emptied once the load stopped: nothing appended for a checkpoint's turn (one a second), then a
    // TRUNCATE, tried again 5 s later if a statistics reader kept it from emptying the file
    // (checkpointer.ts); the rest is room for a loaded machine.
    let idle = walBytes(databaseFile);
    for (let waited = 0; idle > LIMIT_MB * MB && waited < IDLE_WAIT_MS; waited += 100) {
      await sleep(100);
      idle = walBytes(databaseFile);
    }
    const largest = Math.max(...sizes);
    t.diagnostic(
      `${acknowledged} readings stored; -wal largest ${(largest / MB).toFixed(1)} MB, the log started over ` +
        `${generations.size - 1} times during the load, ${(idle / MB).toFixed(1)} MB after it`,
    );

    assert.deepEqual(
      failures.map((f) => `${f.route}: ${f.status} ${f.body.slice(0, 200)}`),
      [],
      'every batch and statistics request answered 200',
    );
    assert.ok(largest > LIMIT_MB * MB, 'the load never took the log past its limit: the test proves nothing');
    // Without the limit the log never starts over while writes keep coming (each PASSIVE copy ends behind
    // the frames appended meanwhile), and the file keeps every byte the load wrote.
    assert.ok(
      generations.size >= 3,
      `the log started over ${generations.size - 1} times while the load ran, not at least twice`,
    );
    assert.ok(idle <= LIMIT_MB * MB, `the log is ${(idle / MB).toFixed(1)} MB once the load stopped`);

    await stopServer(server);
    const database = new SQLite(databaseFile, { readonly: true });
    try {
      const { stored } = database
        .prepare('select count(*) as stored from data where device_id = ?')
        .get(deviceId) as { stored: number };
      assert.equal(stored, acknowledged, 'readings in the database against those acknowledged');
      assert.equal(stored, next, 'readings in the database against those sent');
    } finally {
      database.close();
    }
  });
});
