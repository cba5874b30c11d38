import type { FastifyInstance } from 'fastify';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import { DomainError, notFound } from './errors.js';

/**
 * What FastAPI does for a path no route serves exactly: the other trailing-slash spelling of a real
 * route gets a 307 to the canonical path, a known path with another method a 405, the rest a 404.
 * Fastify keeps its router private, so every route is also noted in a small router of our own.
 */
export function registerRoutingFallbacks(app: FastifyInstance): void {
  const known = FindMyWay();
  const methods = new Set<HTTPMethod>();
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat() as HTTPMethod[]) {
      // HEAD mirrors GET, and the CORS preflight answers OPTIONS on every path (`*`).
      if (
        method === 'HEAD' ||
        method === 'OPTIONS' ||
        route.url.includes('*') ||
        known.hasRoute(method, route.url)
      ) {
        continue;
      }
      known.on(method, route.url, () => {});
      methods.add(method);
    }
  });

  app.setNotFoundHandler(async (request, reply) => {
    const [path = '/', query] = request.url.split(/\?(.*)/s);
    const method = request.method as HTTPMethod;
    const otherSpelling = path.endsWith('/') ? withoutTrailingSlashes(path) : `${path}/`;
    if (otherSpelling !== '' && known.find(method, otherSpelling)) {
      const location = query === undefined ? otherSpelling : `${otherSpelling}?${query}`;
      return reply.code(307).header('location', location).send();
    }
    if ([...methods].some((other) => other !== method && known.find(other, path))) {
      throw new DomainError('METHOD_NOT_ALLOWED', 'Method Not Allowed');
    }
    throw notFound();
  });
}

/** `path` without its trailing slashes, in linear time (`/\/+$/` is quadratic on `/a////...//x/`). */
function withoutTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f) end--;
  return path.slice(0, end);
}
