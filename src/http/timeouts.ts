import type { FastifyInstance } from 'fastify';

/** How long a connection may send nothing (headers, a body, a streamed import) before it is closed. */
export const IDLE_TIMEOUT_MS = 30_000;

/**
 * Lets the sockets of `app`'s routes (an encapsulated plugin's) stay silent while the server works on
 * an answer that may take up to `answerWithinMs`: the idle timeout counts that silence too, so a
 * statistics query allowed STATISTICS_TIMEOUT_MS (30 s by default, up to an hour) lost its connection
 * at 30 s, and the client got no answer instead of the 503 at the deadline. Once a request is read, its
 * socket may be silent for `answerWithinMs` and then IDLE_TIMEOUT_MS; Node sets the keep-alive timeout
 * again once the answer has gone out.
 */
export function allowSilenceWhileAnswering(app: FastifyInstance, answerWithinMs: number): void {
  app.addHook('preHandler', (request, _reply, done) => {
    const socket = request.raw.socket;
    // An injected request (app.inject) has a stand-in socket without timeouts.
    if (typeof socket.setTimeout === 'function') socket.setTimeout(answerWithinMs + IDLE_TIMEOUT_MS);
    done();
  });
}
