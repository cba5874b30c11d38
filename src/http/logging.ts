import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import type { Config } from '../config.js';

export const REQUEST_ID_HEADER = 'x-request-id';

/** A caller's own request id is kept when it is a plain token of reasonable length (no log injection). */
const VALID_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/**
 * Logs a person can read on a terminal in development (pino-pretty), JSON lines anywhere else;
 * every request's lines carry its id (`reqId`), which the answer repeats in X-Request-Id.
 */
export function loggingOptions(config: Config): Pick<FastifyServerOptions, 'logger' | 'genReqId'> {
  const pretty =
    config.logFormat === 'pretty' ||
    (config.logFormat === 'auto' && config.environment === 'development' && process.stdout.isTTY === true);
  return {
    logger: {
      level: config.logLevel,
      ...(pretty
        ? {
            transport: {
              target: 'pino-pretty',
              options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
            },
          }
        : {}),
    },
    genReqId: (request: IncomingMessage) => {
      const given = request.headers[REQUEST_ID_HEADER];
      return typeof given === 'string' && VALID_REQUEST_ID.test(given) ? given : randomUUID();
    },
  };
}

/** Every answer, errors included, names its request id. */
export function answerRequestIds(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
}
