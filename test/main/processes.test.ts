import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { engineSkipReason, type FreshDatabase, freshDatabase, TEST_SECRET } from '../helpers/harness.js';
import { type Server, startServer, stopServer } from '../helpers/server.js';

const SERVE_TWO = ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--workers', '2'];

/** The JSON log lines of the server's output. */
function logLines(server: Server): Array<Record<string, unknown>> {
  return server
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The pids of the processes that said they were ready, in order. */
function readyPids(server: Server): number[] {
  return logLines(server)
    .filter((line) => String(line.msg).startsWith('Server listening at'))
    .map((line) => line.pid as number);
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** GET on a connection of its own (so each request may go to another process): status and request id. */
function getAlone(url: string): Promise<{ status: number; requestId: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (response) => {
      response.resume();
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, requestId: String(response.headers['x-request-id']) }),
      );
    }).on('error', reject);
  });
}

/** Which process answered each of `count` requests, as the request log lines say (pid and reqId). */
async function answeringPids(server: Server, count: number): Promise<number[]> {
  const answers: Array<{ status: number; requestId: string }> = [];
  for (let i = 0; i < count; i++) answers.push(await getAlone(`${server.url}/health`));
  assert.deepEqual(
    answers.map((a) => a.status),
    answers.map(() => 200),
  );
  return waitFor('the request log lines', () => {
    const pidOf = new Map(
      logLines(server)
        .filter((line) => line.msg === 'request completed')
        .map((line) => [line.reqId, line.pid as number]),
    );
    const pids = answers.map((a) => pidOf.get(a.requestId));
    return pids.every((pid) => pid !== undefined) ? (pids as number[]) : undefined;
  });
}

const running = (pid: number) => spawnSync('kill', ['-0', String(pid)]).status === 0;

describe('statistics serve --workers 2 on PostgreSQL', { skip: engineSkipReason('postgres') }, () => {
  let database: FreshDatabase;
  let server: Server;
  const dataDir = mkdtempSync(join(tmpdir(), 'statistics-processes-'));

  before(async () => {
    database = await freshDatabase('postgres');
    server = await startServer(database.url, dataDir, { LOG_FORMAT: 'json' }, SERVE_TWO);
  });
  after(async () => {
    await stopServer(server, 'SIGKILL');
    for (const pid of readyPids(server)) if (running(pid)) process.kill(pid, 'SIGKILL');
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers on one port from two processes, replaces a killed one, and stops both on SIGTERM', async () => {
    const first = await waitFor('two ready processes', () => {
      const pids = readyPids(server);
      return pids.length >= 2 ? pids : undefined;
    });
    assert.equal(new Set(first).size, 2, server.output());
    assert.ok(!first.includes(server.process.pid as number), 'the processes are not the one started');

    const answered = new Set(await answeringPids(server, 12));
    assert.deepEqual([...answered].sort(), [...first].sort(), 'both processes answered');

    const [killed, kept] = first as [number, number];
    process.kill(killed, 'SIGKILL');
    const replacement = await waitFor('a process in place of the killed one', () => readyPids(server)[2]);
    assert.ok(![killed, kept].includes(replacement));
    assert.ok(!running(killed));
    const after = new Set(await answeringPids(server, 12));
    assert.deepEqual(
      [...after].sort(),
      [kept, replacement].sort(),
      'the new process answers beside the kept one',
    );

    assert.equal(await stopServer(server, 'SIGTERM'), 0, server.output());
    assert.ok(!running(kept) && !running(replacement), 'no server process outlives a SIGTERM');
    const stops = logLines(server).filter((line) => line.msg === 'stopping: finishing requests in flight');
    assert.deepEqual(stops.map((line) => line.pid).sort(), [kept, replacement].sort());
  });
});

describe('statistics serve --workers 2 on SQLite', () => {
  it('refuses to start, and says why', () => {
    const dir = mkdtempSync(join(tmpdir(), 'statistics-processes-'));
    try {
      const result = spawnSync(process.execPath, SERVE_TWO, {
        env: {
          ...process.env,
          DATABASE_URL: `sqlite:${join(dir, 'x.db')}`,
          DATA_DIR: dir,
          JWT_SECRET: TEST_SECRET,
        },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(result.status, 3, result.stderr);
      assert.match(
        result.stderr,
        /WORKERS=2 \(or serve --workers\) needs PostgreSQL: SQLite stays single-process/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
