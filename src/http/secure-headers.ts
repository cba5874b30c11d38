import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import helmet from 'helmet';

/**
 * helmet's security headers, computed once: none of them depends on the request (no CSP nonce), so
 * helmet runs a single time at start against a recorder, and every answer gets the same values.
 * Running helmet per request cost a dozen `setHeader` calls each (helmet's middleware, and before it
 * @fastify/helmet rebuilding that middleware, were 1-4% of the ingest profile).
 */
export function secureHeaderValues(options: { inlineScripts: boolean }): Readonly<Record<string, string>> {
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
  const inline = options.inlineScripts;
  helmet({
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: inline ? ["'self'", "'unsafe-inline'"] : ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:', ...(inline ? ['validator.swagger.io'] : [])],
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

/**
 * Every answer carries the security headers (set as Fastify reply headers, written with the status
 * line). Scripts run only from the service's own files: the dashboard keeps the token in
 * sessionStorage, where an injected inline script could read it. Swagger UI at /docs runs its own
 * inline scripts: only there are they allowed.
 */
export function sendSecureHeaders(app: FastifyInstance): void {
  const strictHeaders = secureHeaderValues({ inlineScripts: false });
  const docsHeaders = secureHeaderValues({ inlineScripts: true });
  app.addHook('onRequest', (request, reply, done) => {
    const isDocs = request.url === '/docs' || request.url.startsWith('/docs/');
    reply.headers(isDocs ? docsHeaders : strictHeaders);
    done();
  });
}
