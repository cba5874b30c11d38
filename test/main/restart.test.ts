import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ENGINES,
  engineSkipReason,
  type FreshDatabase,
  freshDatabase,
  TEST_SECRET,
} from '../helpers/harness.js';

interface Server {
  process: ChildProcess;
  url: string;
  output: () => string;
}

/** Starts the real entry point (config, migrations, listen) as its own process, on a free port. */
async function startServer(databaseUrl: string, dataDir: string): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      DATA_DIR: dataDir,
      PORT: '0',
      JWT_SECRET: TEST_SECRET,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${output}`)));
  });
  return { process: child, url, output: () => output };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

for (const engine of ENGINES) {
  describe(`the real server stops cleanly and keeps what it acknowledged [${engine}]`, {
    skip: engineSkipReason(engine),
  }, () => {
    let database: FreshDatabase;
    const dataDir = mkdtempSync(join(tmpdir(), 'statistics-restart-'));

    before(async () => {
      database = await freshDatabase(engine);
    });
    after(() => database.drop());

    it('finishes requests in flight on SIGTERM, exits 0, and finds every acknowledged reading after a restart', async () => {
      const first = await startServer(database.url, dataDir);
      const device = await (
        await fetch(`${first.url}/device/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"name":"r"}',
        })
      ).json();
      const post = (x: number) =>
        fetch(`${first.url}/data/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ device_id: device.id, x, y: 0, z: 0 }),
        });
      for (let x = 0; x < 20; x++) assert.equal((await post(x)).status, 200);
      // Requests sent together with the signal: each either completes (and is then stored) or is refused.
      const inFlight = Array.from({ length: 10 }, (_, i) =>
        post(100 + i).then(
          (r) => r.status,
          () => 0,
        ),
      );
      const exit = exited(first.process);
      first.process.kill('SIGTERM');
      const statuses = await Promise.all(inFlight);
      // 0: the connection was refused or closed before an answer; never a 500.
      assert.ok(
        statuses.every((s) => s === 200 || s === 503 || s === 0),
        String(statuses),
      );
      assert.equal(await exit, 0, first.output());
      const acknowledged = 20 + statuses.filter((s) => s === 200).length;

      const second = await startServer(database.url, dataDir);
      try {
        const stats = await (await fetch(`${second.url}/analyze_statistics/?device_id=${device.id}`)).json();
        assert.equal(stats.count, acknowledged);
        assert.equal(stats.min, 0);
      } finally {
        const stopped = exited(second.process);
        second.process.kill('SIGINT');
        assert.equal(await stopped, 0);
      }
    });
  });
}
