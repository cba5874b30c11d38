import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { engineSkipReason, type FreshDatabase, freshDatabase, uniqueEmail } from '../helpers/harness.js';
import { redisSkipReason, SHARED_REDIS, uniqueRedisPrefix } from '../helpers/redis.js';
import { type Server, startServer, stopServer } from '../helpers/server.js';

const FAILED_LOGINS = 3;

/** `method path` on `server`, with a JSON body or a login form; answers the status and the JSON body. */
async function send(
  server: Server,
  route: string,
  {
    json,
    form,
    headers = {},
  }: { json?: unknown; form?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const [method, path] = route.split(' ') as [string, string];
  const body =
    json !== undefined
      ? JSON.stringify(json)
      : form !== undefined
        ? new URLSearchParams(form).toString()
        : undefined;
  const type =
    json !== undefined
      ? 'application/json'
      : form !== undefined
        ? 'application/x-www-form-urlencoded'
        : undefined;
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...(type ? { 'content-type': type } : {}), ...headers },
    body,
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function signUp(server: Server): Promise<{ email: string; token: string }> {
  const email = uniqueEmail();
  const password = 'a-good-password';
  assert.equal((await send(server, 'POST /auth/register', { json: { email, password } })).status, 201);
  const login = await send(server, 'POST /auth/jwt/login', { form: { username: email, password } });
  assert.equal(login.status, 200);
  return { email, token: String(login.body.access_token) };
}

/**
 * Two server processes (each the real entry point on a port of its own, as behind any balancer) on
 * one PostgreSQL database and one Redis: what one process learns, the other enforces.
 */
describe('two API processes on one PostgreSQL and one Redis', {
  skip: engineSkipReason('postgres') || (await redisSkipReason()),
}, () => {
  let database: FreshDatabase;
  let first: Server;
  let second: Server;
  const dataDir = mkdtempSync(join(tmpdir(), 'statistics-shared-state-'));

  before(async () => {
    database = await freshDatabase('postgres');
    const env = {
      REDIS_URL: SHARED_REDIS,
      REDIS_KEY_PREFIX: uniqueRedisPrefix(),
      INGEST_AUTH: 'token',
      LOGIN_LIMIT_PER_ACCOUNT: String(FAILED_LOGINS),
    };
    // One after the other: the first runs the migrations, the second finds them done.
    first = await startServer(database.url, dataDir, env);
    second = await startServer(database.url, dataDir, env);
  });
  after(async () => {
    await Promise.all([first, second].filter(Boolean).map((server) => stopServer(server)));
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('enforces through one process a login limit tripped through the other', async () => {
    const { email } = await signUp(first);
    const wrong = { username: email, password: 'not-the-password' };
    const throughFirst: number[] = [];
    for (let i = 0; i <= FAILED_LOGINS; i++) {
      throughFirst.push((await send(first, 'POST /auth/jwt/login', { form: wrong })).status);
    }
    assert.deepEqual(throughFirst, [...Array(FAILED_LOGINS).fill(400), 429]);

    // Its first attempt through the second process: already over the limit, even with the password.
    const right = await send(second, 'POST /auth/jwt/login', {
      form: { username: email, password: 'a-good-password' },
    });
    assert.equal(right.status, 429, JSON.stringify(right.body));
    assert.match(String(right.body.detail), /failed login per account and client address limit allows 3/);
  });

  it('refuses through one process a token logged out through the other', async () => {
    const { token } = await signUp(first);
    assert.equal((await send(second, 'GET /users/me', { headers: bearer(token) })).status, 200);
    assert.equal((await send(first, 'POST /auth/jwt/logout', { headers: bearer(token) })).status, 204);
    assert.equal((await send(second, 'GET /users/me', { headers: bearer(token) })).status, 401);
  });

  it('refuses through one process, within a second, an ingest token rotated through the other', async () => {
    const { token } = await signUp(first);
    const device = await send(first, 'POST /device/', { json: { name: 'shared' }, headers: bearer(token) });
    const deviceId = device.body.id as number;
    const oldToken = String(device.body.ingest_token);
    const reading = { device_id: deviceId, x: 1, y: 2, z: 3 };
    const ingest = (server: Server, ingestToken: string) =>
      send(server, 'POST /data/', { json: reading, headers: { 'x-device-token': ingestToken } });
    // The second process has the device (and its token) in its cache.
    assert.equal((await ingest(second, oldToken)).status, 200);

    const rotated = await send(first, `POST /device/${deviceId}/ingest-token`, { headers: bearer(token) });
    assert.equal(rotated.status, 200);
    const rotatedAt = performance.now();
    let status = (await ingest(second, oldToken)).status;
    while (status !== 401 && performance.now() - rotatedAt < 1000)
      status = (await ingest(second, oldToken)).status;
    const refusedAfterMs = performance.now() - rotatedAt;
    assert.equal(
      status,
      401,
      `the old token still worked ${Math.round(refusedAfterMs)} ms after the rotation`,
    );
    assert.ok(refusedAfterMs < 1000, `refused after ${Math.round(refusedAfterMs)} ms`);
    assert.equal((await ingest(second, String(rotated.body.ingest_token))).status, 200);
  });

  it('stores once a large keyed batch retried through the other process', async () => {
    const { token } = await signUp(first);
    const device = await send(first, 'POST /device/', { json: { name: 'retried' }, headers: bearer(token) });
    const deviceId = device.body.id as number;
    // 2,500 readings: PostgreSQL's COPY path, which records the key in the same transaction.
    const batch = Array.from({ length: 2500 }, (_, i) => ({ device_id: deviceId, x: i, y: 0, z: 0 }));
    const headers = { 'x-device-token': String(device.body.ingest_token), 'idempotency-key': 'batch-1' };
    const sent = await send(first, 'POST /data/', { json: batch, headers });
    assert.equal(sent.status, 200);
    const retried = await send(second, 'POST /data/', { json: batch, headers });
    assert.deepEqual(retried, sent);
    const changed = await send(second, 'POST /data/', { json: batch.slice(1), headers });
    assert.equal(changed.status, 409);
    const statistics = await send(second, `GET /analyze_statistics/?device_id=${deviceId}&attr=x`);
    assert.equal(statistics.body.count, batch.length);
    assert.equal(statistics.body.sum, (batch.length * (batch.length - 1)) / 2);
  });
});
