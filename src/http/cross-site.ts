import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError } from './errors.js';
import { errorResponses } from './schemas.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Refuses state-changing requests that a browser sends on behalf of another site: a page anywhere
 * could otherwise make a visitor's browser create devices and write readings on an instance on
 * localhost or an intranet (a body without Content-Type is read as JSON, as FastAPI does, and such a
 * request needs no CORS preflight). Browsers say where a request comes from (`Origin`, and
 * `Sec-Fetch-Site`); the service's own pages and the origins in CORS_ORIGINS pass. Requests without
 * those headers (curl, scripts, FastAPI clients, devices) are not from a browser and keep working.
 */
export function refuseCrossSiteWrites(app: FastifyInstance, allowedOrigins: readonly string[]): void {
  const allowed = new Set(allowedOrigins);
  // Every write route documents the 403 this hook answers.
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat();
    if (methods.every((method) => SAFE_METHODS.has(method)) || !route.schema) return;
    route.schema.response = { ...errorResponses(403), ...(route.schema.response as object) };
  });
  // A callback hook, not an async one: every write passes here, and a promise each cost a microtask turn.
  app.addHook('onRequest', (request, _reply, done) => {
    const problem = SAFE_METHODS.has(request.method) ? undefined : crossSiteProblem(request, allowed);
    done(problem ? new DomainError('FORBIDDEN', `Cross-site request refused: ${problem}`) : undefined);
  });
}

function crossSiteProblem(request: FastifyRequest, allowed: Set<string>): string | undefined {
  const site = request.headers['sec-fetch-site'];
  if (site === 'same-origin') return undefined;
  const origin = request.headers.origin;
  if (origin !== undefined) {
    if (allowed.has(origin) || sameHost(origin, request.headers.host)) return undefined;
    return `origin ${origin.slice(0, 100)} is not allowed (CORS_ORIGINS)`;
  }
  if (site === 'cross-site' || site === 'same-site') return `Sec-Fetch-Site is ${site}`;
  return undefined;
}

/**
 * The page's origin names the host the request was sent to: a page of this service. The scheme is
 * not compared, so a TLS-terminating proxy in front does not make the service's own pages foreign.
 */
function sameHost(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}
