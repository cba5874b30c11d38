import assert from 'node:assert/strict';
import { type AddressInfo, connect } from 'node:net';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Harness, onEachEngine } from '../helpers/harness.js';

const DEADLINE_MS = 1500;

/**
 * Sends `head` (request line, headers, the start of a body), then `drip` one byte every `gapMs` up to
 * `bytes` bytes or until the server answers; resolves with all the server sent and whether it closed.
 */
async function dripRequest(
  port: number,
  head: string,
  drip: { byte: string; gapMs: number; bytes: number; tail?: string },
): Promise<{ answer: string; closed: boolean; ms: number }> {
  const started = performance.now();
  const socket = connect(port, '127.0.0.1');
  let answer = '';
  let closed = false;
  socket.on('data', (chunk) => {
    answer += chunk;
  });
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('close', () => {
    closed = true;
  });
  socket.on('error', () => {});
  socket.write(head);
  for (let sent = 0; sent < drip.bytes && !closed && answer === ''; sent++) {
    socket.write(drip.byte);
    await sleep(drip.gapMs);
  }
  if (drip.tail !== undefined && !closed) socket.write(drip.tail);
  // The answer, and the close that follows a 408 (bounded: a kept-alive socket is ended here).
  await Promise.race([ended, sleep(3000)]);
  const ms = performance.now() - started;
  socket.destroy();
  return { answer, closed, ms };
}

function requestHead(path: string, body: string, contentLength: number): string {
  return (
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${contentLength}\r\n\r\n${body}`
  );
}

onEachEngine(
  'a body read whole has a total deadline (BODY_TIMEOUT_MS)',
  (h: Harness) => {
    let port = 0;
    it('answers a body still dripping in after the deadline with a JSON 408, closes the connection and stores nothing', async () => {
      await h.app.listen({ host: '127.0.0.1', port: 0 });
      port = (h.app.server.address() as AddressInfo).port;
      const device = await h.createDevice();
      const before = await h.countRows('data');
      const start = `{"device_id": ${device}, "x": 1, "y": 2, "z": 3`;
      // A space every 100 ms for 5 s: never idle, never done (the body would need 10,000 of them).
      const { answer, closed, ms } = await dripRequest(
        port,
        requestHead('/data/', start, start.length + 10_000),
        {
          byte: ' ',
          gapMs: 100,
          bytes: 50,
        },
      );
      const [status, body] = [answer.split(' ')[1], answer.slice(answer.indexOf('\r\n\r\n') + 4)];
      assert.equal(status, '408', answer);
      assert.match(answer, /\r\nconnection: close\r\n/i);
      assert.deepEqual(JSON.parse(body), {
        detail: `The body did not arrive within ${DEADLINE_MS / 1000} s`,
      });
      assert.ok(closed, 'the server closed the connection');
      assert.ok(ms >= DEADLINE_MS, `answered after ${ms} ms`);
      assert.equal(await h.countRows('data'), before);
    });

    it('takes a body that arrives in pieces within the deadline', async () => {
      const device = await h.createDevice();
      const body = JSON.stringify({ device_id: device, x: 1, y: 2, z: 3 });
      const { answer } = await dripRequest(port, requestHead('/data/', body.slice(0, 5), body.length), {
        byte: '',
        gapMs: 300,
        bytes: 2,
        tail: body.slice(5),
      });
      assert.match(answer, /^HTTP\/1\.1 200 /, answer);
      const stored = await h.db.selectFrom('data').select('x').where('device_id', '=', device).execute();
      assert.deepEqual(stored, [{ x: 1 }]);
    });

    it('ends the deadline with the answer, for a request whose body nobody reads', async () => {
      const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
      const before = timers();
      // Injected requests (no socket) are never "complete", and a GET's body is never read: the body's
      // end, which stops the deadline, never comes. The answer going out must stop it.
      for (let i = 0; i < 50; i++) assert.equal((await h.get('/device/')).statusCode, 200);
      const left = timers() - before;
      // Each kept its timer, and the request with it, for BODY_TIMEOUT_MS (120 s by default): a test
      // process waited that long before it could exit.
      assert.ok(left < 10, `${left} more timers after 50 answered requests`);
    });
  },
  { BODY_TIMEOUT_MS: String(DEADLINE_MS) },
);
