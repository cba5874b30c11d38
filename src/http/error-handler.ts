import type { FastifyError, FastifyInstance } from 'fastify';
import { isDatabaseUnavailable } from '../db/unavailable.js';
import { DomainError, RequestValidationError } from './errors.js';
import { toValidationIssues } from './validation.js';

/** The one place where thrown errors become HTTP answers. No stack trace or SQL ever leaves it. */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof DomainError) {
      if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
      return reply.code(error.statusCode).send({ detail: error.detail });
    }
    if (error instanceof RequestValidationError) {
      return reply.code(422).send({ detail: error.issues });
    }
    if (error.validation) {
      const issues = toValidationIssues(error.validation, error.validationContext ?? 'body', request.body);
      return reply.code(422).send({ detail: issues });
    }
    if (isDatabaseUnavailable(error)) {
      request.log.warn({ err: error }, 'database unavailable');
      return reply
        .code(503)
        .header('retry-after', '2')
        .send({ detail: 'Database unavailable, retry shortly' });
    }
    if (lostToConcurrentTransaction(error)) {
      request.log.warn({ err: error }, 'transaction lost to a concurrent one');
      return reply
        .code(503)
        .header('retry-after', '1')
        .send({ detail: 'The write met a concurrent one and was rolled back, nothing stored: retry' });
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return reply.code(status).send({ detail: error.message });
    }
    request.log.error({ err: error }, 'unhandled error');
    return reply.code(500).send({ detail: 'Internal Server Error' });
  });
}

/**
 * PostgreSQL chose this transaction to end a deadlock, or refused it as not serializable: it rolled
 * back whole, so a retry is safe (e.g. a late import's rollups meeting the rollup folder's marks).
 */
function lostToConcurrentTransaction(error: unknown): boolean {
  const { code } = error as { code?: unknown };
  return code === '40P01' || code === '40001';
}
