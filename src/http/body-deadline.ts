import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The handler reads the body as a stream for as long as it flows (imports): no total deadline. */
    streamedBody?: boolean;
  }
}

interface Waiting {
  request: FastifyRequest;
  reply: FastifyReply;
  payload: Readable;
}

/**
 * A body read whole (JSON, a login form) still arriving `deadlineMs` after its headers is answered 408,
 * and the connection closed (BODY_TIMEOUT_MS). The idle timeout bounds the silence between two bytes,
 * not the total: without this, a client sending a byte every few seconds holds a connection and a
 * growing buffer for days.
 *
 * A body is often not whole yet at preParsing (its bytes come in the same packet as the headers, but
 * Node parses them after the route's first hooks have run). Rather than a timer per request, the
 * requests of one event-loop turn are looked at once, by one `setImmediate`: by then almost every body
 * has arrived, and only those still incomplete get a timer (the turn's delay is taken off their
 * deadline).
 */
export function limitBodyTime(app: FastifyInstance, deadlineMs: number): void {
  let waiting: Waiting[] = [];
  let since = 0;
  const armTurn = () => {
    const turn = waiting;
    waiting = [];
    const remaining = Math.max(0, deadlineMs - (performance.now() - since));
    for (const entry of turn) armIfIncomplete(entry, deadlineMs, remaining);
  };
  app.addHook('preParsing', (request, reply, payload, done) => {
    if (request.raw.complete) return done(null, payload); // whole by now: no deadline
    if (waiting.length === 0) {
      since = performance.now();
      setImmediate(armTurn);
    }
    waiting.push({ request, reply, payload });
    done(null, payload);
  });
}

function armIfIncomplete(entry: Waiting, deadlineMs: number, remainingMs: number): void {
  const { request, reply, payload } = entry;
  // Arrived in the meantime, already answered (a 415, a GET whose body nobody reads), gone, or read as
  // a stream for as long as it flows (the route's options are read only here: a copy each time).
  if (
    request.raw.complete ||
    reply.sent ||
    reply.raw.writableEnded ||
    payload.destroyed ||
    payload.readableEnded ||
    request.routeOptions.config.streamedBody
  ) {
    return;
  }
  const timer = setTimeout(() => {
    reply.header('connection', 'close');
    // Fastify's body reader answers an error of its stream with the error's status, through the
    // error handler; the socket stays open for that answer.
    payload.emit(
      'error',
      new DomainError('REQUEST_TIMEOUT', `The body did not arrive within ${deadlineMs / 1000} s`),
    );
  }, remainingMs);
  // A body nobody reads never ends: the answer going out ends its deadline too. Unref'd, it never
  // holds up the process's exit.
  timer.unref();
  const stop = () => clearTimeout(timer);
  payload.once('end', stop);
  payload.once('close', stop);
  reply.raw.once('close', stop);
}
