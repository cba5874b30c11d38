import type { FastifyInstance } from 'fastify';
import { DomainError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The handler reads the body as a stream for as long as it flows (imports): no total deadline. */
    streamedBody?: boolean;
  }
}

/**
 * A body read whole (JSON, a login form) still arriving `deadlineMs` after its headers is answered 408,
 * and the connection closed (BODY_TIMEOUT_MS). The idle timeout bounds the silence between two bytes,
 * not the total: without this, a client sending a byte every few seconds holds a connection and a
 * growing buffer for days.
 */
export function limitBodyTime(app: FastifyInstance, deadlineMs: number): void {
  app.addHook('preParsing', (request, reply, payload, done) => {
    // Most bodies are whole by now (they came with the headers): no timer for them.
    if (request.raw.complete || request.routeOptions.config.streamedBody) return done(null, payload);
    const timer = setTimeout(() => {
      reply.header('connection', 'close');
      // Fastify's body reader answers an error of its stream with the error's status, through the
      // error handler; the socket stays open for that answer.
      payload.emit(
        'error',
        new DomainError('REQUEST_TIMEOUT', `The body did not arrive within ${deadlineMs / 1000} s`),
      );
    }, deadlineMs);
    // A body nobody reads (an answer sent before the parser ran: a 415, a POST without a body) never
    // ends: the answer going out ends its deadline too. Unref'd, it never holds up the process's exit.
    timer.unref();
    const stop = () => clearTimeout(timer);
    payload.once('end', stop);
    payload.once('close', stop);
    reply.raw.once('close', stop);
    done(null, payload);
  });
}
