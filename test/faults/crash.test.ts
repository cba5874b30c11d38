import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDatabase } from '../../src/db/database.js';
import { ENGINES, engineSkipReason, type FreshDatabase, freshDatabase } from '../helpers/harness.js';
import { assertRollupsMatchReadingsAt } from '../helpers/rollups.js';
import { alive, type Server, startServer, stopServer, waitForOutput } from '../helpers/server.js';

// Issue 5, item 6: a reading that got a 2xx is stored exactly once, whether the server is killed
// (SIGKILL) mid-stream or stopped (SIGTERM) under load; a SIGTERM lets requests in flight finish.

/** Concurrent clients, each posting one reading at a time. */
const LOOPS = 8;
/** How long the clients post before the signal. */
const LOAD_MS = 1500;
/** Bounds, so that a server that never stops cannot keep a loop going. */
const MAX_PER_LOOP = 20_000;
const LOOP_DEADLINE_MS = 20_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** How long a SIGTERM may take to drain and exit (half of Docker's grace period before its SIGKILL). */
const EXIT_BUDGET_MS = 5_000;

/** What Fastify answers (return503OnClosing) to a request that arrives once the server is closing. */
const CLOSING_BODY = '{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}';

interface Outcome {
  x: number;
  /** 0: no answer (connection refused, reset or closed). */
  status: number;
  body: string;
}

/** Every x sent, and the id acknowledged for each x that got a 2xx. */
class Ledger {
  readonly sent = new Set<number>();
  readonly acknowledged = new Map<number, number>();
  /** Answered with an error status: must not be stored (a client would send it again). */
  readonly refused = new Set<number>();
  #nextX = 1;

  take(): number {
    const x = this.#nextX++;
    this.sent.add(x);
    return x;
  }
}

async function postReading(url: string, deviceId: number, ledger: Ledger): Promise<Outcome> {
  const x = ledger.take();
  try {
    const response = await fetch(`${url}/data/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ device_id: deviceId, x, y: 1, z: 2 }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const body = await response.text();
    if (response.ok) ledger.acknowledged.set(x, (JSON.parse(body) as { id: number }).id);
    else ledger.refused.add(x);
    return { x, status: response.status, body };
  } catch (error) {
    return { x, status: 0, body: String((error as Error).cause ?? error) };
  }
}

/** LOOPS clients posting readings until the server stops answering (or `stop.stopped` is set). */
function postContinuously(url: string, deviceId: number, ledger: Ledger, stop = { stopped: false }) {
  const deadline = Date.now() + LOOP_DEADLINE_MS;
  const loop = async () => {
    const outcomes: Outcome[] = [];
    while (!stop.stopped && outcomes.length < MAX_PER_LOOP && Date.now() < deadline) {
      const outcome = await postReading(url, deviceId, ledger);
      outcomes.push(outcome);
      if (outcome.status === 0) break;
    }
    return outcomes;
  };
  return Promise.all(Array.from({ length: LOOPS }, loop)).then((all) => all.flat());
}

/** Every reading of a device, through the paginated list. */
async function storedReadings(url: string, deviceId: number): Promise<{ id: number; x: number }[]> {
  const rows: { id: number; x: number }[] = [];
  let next: string | undefined = `/data/?device_id=${deviceId}&limit=1000`;
  while (next !== undefined) {
    const response: Response = await fetch(new URL(next, url));
    assert.equal(response.status, 200, await response.clone().text());
    rows.push(...((await response.json()) as { id: number; x: number }[]));
    next = /<([^>]+)>\s*;\s*rel="next"/.exec(response.headers.get('link') ?? '')?.[1];
  }
  return rows;
}

/** Every reading of a device, read from the database file or server itself (the service is stopped). */
async function readingsInDatabase(
  databaseUrl: string,
  deviceId: number,
): Promise<{ id: number; x: number }[]> {
  const { db } = openDatabase(databaseUrl);
  try {
    const rows = await db.selectFrom('data').select(['id', 'x']).where('device_id', '=', deviceId).execute();
    return rows.map((row) => ({ id: Number(row.id), x: Number(row.x) }));
  } finally {
    await db.destroy();
  }
}

/** Every acknowledged reading is stored once with the id it was acknowledged with; nothing else appears. */
function assertLedgerStored(rows: { id: number; x: number }[], ledger: Ledger) {
  const idsByX = new Map<number, number[]>();
  for (const row of rows) idsByX.set(row.x, [...(idsByX.get(row.x) ?? []), row.id]);
  const duplicated = [...idsByX].filter(([, ids]) => ids.length > 1);
  assert.deepEqual(duplicated.slice(0, 10), [], `${duplicated.length} readings stored more than once`);
  const unknown = [...idsByX.keys()].filter((x) => !ledger.sent.has(x));
  assert.deepEqual(unknown.slice(0, 10), [], 'readings stored that were never sent');
  const lost = [...ledger.acknowledged].filter(([x]) => !idsByX.has(x));
  assert.deepEqual(
    lost.slice(0, 10).map(([x]) => x),
    [],
    `${lost.length} of ${ledger.acknowledged.size} acknowledged readings are missing`,
  );
  for (const [x, id] of ledger.acknowledged) assert.deepEqual(idsByX.get(x), [id], `reading x=${x}`);
  const refusedButStored = [...ledger.refused].filter((x) => idsByX.has(x));
  assert.deepEqual(refusedButStored.slice(0, 10), [], 'readings refused with an error status were stored');
  return { stored: rows.length, unacknowledgedButStored: rows.length - ledger.acknowledged.size };
}

/**
 * A POST whose headers and first half of the body are sent now and the rest when `finish()` is called:
 * a request that is certainly in flight while the server is told to stop. Sent on a keep-alive
 * connection, as fetch, browsers and most HTTP clients send theirs; `close()` drops that connection.
 */
function halfSentPost(base: string, path: string, body: string) {
  const url = new URL(path, base);
  const agent = new Agent({ keepAlive: true });
  const request = httpRequest({
    host: url.hostname,
    port: url.port,
    path: `${url.pathname}${url.search}`,
    method: 'POST',
    agent,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  const answer = new Promise<{ status: number; body: string }>((resolve) => {
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        text += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      response.on('error', (error) => resolve({ status: 0, body: String(error) }));
    });
    request.on('error', (error) => resolve({ status: 0, body: String(error) }));
  });
  const half = Math.floor(body.length / 2);
  request.write(body.slice(0, half));
  return { finish: () => request.end(body.slice(half)), answer, close: () => agent.destroy() };
}

/** The requests (reqId) the server logged as incoming but never as completed, from its pino output. */
function unansweredRequests(output: string): string[] {
  const open = new Set<string>();
  for (const line of output.split('\n')) {
    const reqId = /"reqId":"([^"]+)"/.exec(line)?.[1];
    if (reqId === undefined) continue;
    if (line.includes('"msg":"incoming request"')) open.add(reqId);
    else if (/"res":\{"statusCode":\d+\}/.test(line)) open.delete(reqId);
  }
  return [...open];
}

/** The unexpected answers among `outcomes`, for an assertion message. */
function unexpected(outcomes: Outcome[], allowClosing: boolean) {
  return outcomes
    .filter((o) => !(o.status === 0 || o.status === 200 || (allowClosing && o.body === CLOSING_BODY)))
    .slice(0, 10)
    .map((o) => `x=${o.x}: ${o.status} ${o.body.slice(0, 200)}`);
}

for (const engine of ENGINES) {
  describe(`a killed or stopped server keeps exactly what it acknowledged [${engine}]`, {
    skip: engineSkipReason(engine),
  }, () => {
    let database: FreshDatabase;
    const dataDir = mkdtempSync(join(tmpdir(), 'statistics-crash-'));
    const ledger = new Ledger();
    let server: Server | undefined;
    let deviceId: number | undefined;

    const serve = async () => {
      if (server === undefined || !alive(server)) server = await startServer(database.url, dataDir);
      return server;
    };
    const device = async (url: string) => {
      if (deviceId === undefined) {
        const response = await fetch(`${url}/device/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"name":"crash"}',
        });
        assert.equal(response.status, 200);
        deviceId = ((await response.json()) as { id: number }).id;
      }
      return deviceId;
    };

    before(async () => {
      database = await freshDatabase(engine);
    });
    after(async () => {
      if (server !== undefined) await stopServer(server, 'SIGKILL');
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('SIGKILL mid-stream: after a restart every acknowledged reading is stored exactly once', async (t) => {
      const first = await serve();
      const id = await device(first.url);
      const load = postContinuously(first.url, id, ledger);
      const started = Date.now();
      await sleep(LOAD_MS);
      // At least a hundred acknowledgements before the kill, so there is something to lose.
      while (ledger.acknowledged.size < 100 && Date.now() - started < 10_000) await sleep(50);
      const acknowledgedBefore = ledger.acknowledged.size;
      assert.equal(await stopServer(first, 'SIGKILL'), null, 'the server was killed, it did not exit');
      const outcomes = await load;
      t.diagnostic(
        `${engine}: ${outcomes.length} requests, ${ledger.acknowledged.size} acknowledged ` +
          `(${acknowledgedBefore} before the kill), ${outcomes.filter((o) => o.status === 0).length} unanswered`,
      );
      assert.ok(acknowledgedBefore >= 100, `only ${acknowledgedBefore} readings acknowledged`);
      assert.deepEqual(unexpected(outcomes, false), [], 'answers other than 200 before the kill');

      server = await serve();
      const rows = await storedReadings(server.url, id);
      const result = assertLedgerStored(rows, ledger);
      t.diagnostic(
        `${engine}: ${result.stored} stored, ${result.unacknowledgedButStored} of them unacknowledged`,
      );
      const stats = await (await fetch(`${server.url}/analyze_statistics/?device_id=${id}`)).json();
      assert.equal(stats.count, rows.length, 'statistics count the stored readings');
      // Each insert and its rollups were one transaction: the kill left no half of one.
      await assertRollupsMatchReadingsAt(database.url, 'after SIGKILL');
    });

    it('SIGTERM under load: requests in flight finish, the exit code is 0, nothing acknowledged is lost', async (t) => {
      const running = await serve();
      const id = await device(running.url);
      const load = postContinuously(running.url, id, ledger);
      await sleep(LOAD_MS / 2);

      // A batch whose request is being received when the signal comes: it must be stored and answered.
      const batchXs = Array.from({ length: 500 }, () => ledger.take());
      const marker = `inflight-${randomBytes(6).toString('hex')}`;
      const batch = halfSentPost(
        running.url,
        `/data/?${marker}`,
        JSON.stringify(batchXs.map((x) => ({ device_id: id, x, y: 1, z: 2 }))),
      );
      // Fastify logs "incoming request" once it has routed the request (and let it past its closing check).
      await waitForOutput(running, marker);

      const acknowledgedBefore = ledger.acknowledged.size;
      const signalled = Date.now();
      const exit = stopServer(running, 'SIGTERM', EXIT_BUDGET_MS).then((code) => ({
        code,
        afterMs: Date.now() - signalled,
      }));
      await sleep(300);
      batch.finish();
      const [outcomes, batchAnswer] = await Promise.all([load, batch.answer]);
      // The client keeps its connection open, idle, as keep-alive clients do: the server must still exit.
      const { code, afterMs } = await exit;
      batch.close();

      t.diagnostic(
        `${engine}: ${outcomes.length} requests, ${ledger.acknowledged.size - acknowledgedBefore} acknowledged ` +
          `after the signal, ${outcomes.filter((o) => o.body === CLOSING_BODY).length} refused as closing, ` +
          `${outcomes.filter((o) => o.status === 0).length} unanswered; exit ${code} after ${afterMs} ms`,
      );
      assert.equal(batchAnswer.status, 200, `the batch in flight: ${batchAnswer.body}`);
      const stored = JSON.parse(batchAnswer.body) as { stored: number; ids: number[] };
      assert.equal(stored.stored, batchXs.length);
      for (const [i, x] of batchXs.entries()) ledger.acknowledged.set(x, stored.ids[i] as number);
      // No 5xx: a request is answered 200, refused because the server is closing, or not accepted.
      assert.deepEqual(unexpected(outcomes, true), [], 'answers other than 200 or the closing refusal');
      // Every request the server began (logged "incoming request") was answered before it exited.
      assert.deepEqual(unansweredRequests(running.output()), [], 'requests cut off by the shutdown');

      // The server is gone (exited, or killed after the budget): read what it left in the database.
      const result = assertLedgerStored(await readingsInDatabase(database.url, id), ledger);
      await assertRollupsMatchReadingsAt(database.url, 'after SIGTERM');
      t.diagnostic(
        `${engine}: ${result.stored} stored, ${result.unacknowledgedButStored} of them unacknowledged`,
      );
      assert.equal(
        code,
        0,
        `the server did not exit 0 within ${EXIT_BUDGET_MS} ms of SIGTERM (${code === null ? 'still running, killed' : `exit ${code}`}), ` +
          `though every request had been answered (a keep-alive client still holds an idle connection):\n` +
          running.output().slice(-3000),
      );
    });
  });
}
