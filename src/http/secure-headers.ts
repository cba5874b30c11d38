import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import helmet from 'helmet';

/**
 * helmet's security headers, computed once: none of them depends on the request (no CSP nonce), so
 * helmet runs a single time at start against a recorder, and every answer gets the same values.
 * Running helmet per request cost a dozen `setHeader` calls each (helmet's middleware, and before it
 * @fastify/helmet rebuilding that middleware, were 1-4% of the ingest profile).
 */
export function secureHeaderValues(): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  let failure: unknown;
  helmet({
    // Swagger UI at /docs runs its own inline scripts and styles; the API answers only JSON.
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'", "'unsafe-inline'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:', 'validator.swagger.io'],
        // Served over plain HTTP on a laptop too: upgrading would break /docs there.
        upgradeInsecureRequests: null,
      },
    },
  })({} as IncomingMessage, recorder as unknown as ServerResponse, (error?: unknown) => {
    failure = error;
  });
  if (failure) throw failure;
  return Object.freeze(headers);
}

/** Every answer carries the security headers (set as Fastify reply headers, written with the status line). */
export function sendSecureHeaders(app: FastifyInstance): void {
  const headers = secureHeaderValues();
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers);
    done();
  });
}
