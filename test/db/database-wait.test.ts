import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ENGINES, engineSkipReason, type FreshDatabase, freshDatabase } from '../helpers/harness.js';
import { call, startServer, stopServer } from '../helpers/server.js';

// DATABASE_WAIT_MS: a server started while its PostgreSQL cannot be reached yet (starting, restarting,
// behind a proxy not up) tries its migrations again until the database answers, then serves; past
// the wait it exits with the error. Between the server and PostgreSQL sits a TCP relay that drops
// the first connections (as a database still starting does) and then passes them on.

const RETRY_LOG = 'the database cannot be reached, trying again in';

/** A relay to `target` that closes the first `refuse` connections at once; counts every connection. */
async function relay(
  target: URL,
  refuse: number,
): Promise<{ server: TcpServer; port: number; seen: () => number }> {
  let seen = 0;
  const server = createServer((client: Socket) => {
    seen += 1;
    if (seen <= refuse) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port || 5432), target.hostname);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { server, port: address.port, seen: () => seen };
}

function through(url: string, port: number): string {
  const relayed = new URL(url);
  relayed.hostname = '127.0.0.1';
  relayed.port = String(port);
  return relayed.toString();
}

for (const engine of ENGINES.filter((e) => e === 'postgres')) {
  describe(`DATABASE_WAIT_MS: a start waits for an unreachable database [${engine}]`, {
    skip: engineSkipReason(engine),
  }, () => {
    let database: FreshDatabase;
    let dataDir: string;
    before(async () => {
      database = await freshDatabase(engine);
      dataDir = mkdtempSync(join(tmpdir(), 'statistics-wait-'));
    });
    after(async () => {
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('tries its migrations again until the database answers, then stores and answers readings', async () => {
      const { server: tcp, port, seen } = await relay(new URL(database.url), 3);
      try {
        const server = await startServer(through(database.url, port), dataDir, { DATABASE_WAIT_MS: '60000' });
        try {
          assert.ok(seen() > 3, `the relay saw ${seen()} connections`);
          assert.ok(server.output().includes(RETRY_LOG), server.output());
          const device = await call(server.url, 'POST /device/', { name: 'waited' });
          assert.equal(device.status, 200, device.body);
          const { id } = JSON.parse(device.body) as { id: number };
          const stored = await call(server.url, 'POST /data/', { device_id: id, x: 1.5, y: 2.5, z: 3.5 });
          assert.equal(stored.status, 200, stored.body);
          const statistics = await call(server.url, `GET /analyze_statistics/?device_id=${id}&attr=x`);
          assert.equal(statistics.status, 200, statistics.body);
          assert.equal(JSON.parse(statistics.body).count, 1, statistics.body);
        } finally {
          await stopServer(server);
        }
      } finally {
        tcp.close();
      }
    });

    it('gives up past DATABASE_WAIT_MS and exits with the error, having tried more than once', async () => {
      const { server: tcp, port, seen } = await relay(new URL(database.url), Number.POSITIVE_INFINITY);
      try {
        await assert.rejects(
          startServer(through(database.url, port), dataDir, { DATABASE_WAIT_MS: '1500' }),
          (error: Error) => {
            assert.match(error.message, /server exited with 1 before listening/);
            assert.match(error.message, new RegExp(RETRY_LOG));
            assert.match(error.message, /Connection terminated/);
            return true;
          },
        );
        assert.ok(seen() >= 3, `the relay saw ${seen()} connections`);
      } finally {
        tcp.close();
      }
    });
  });
}
