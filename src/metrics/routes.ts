import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Histogram } from 'prom-client';
import type { MetricsSettings } from '../config.js';
import { unauthorized } from '../http/errors.js';
import type { Metrics } from './metrics.js';

export interface MetricsRoutesOptions {
  metrics: Metrics;
  token: string | undefined;
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Whether an Authorization header carries the metrics token (compared in constant time). */
function authorized(header: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  const match = /^bearer\s+(.+)$/i.exec(header ?? '');
  return match?.[1] !== undefined && timingSafeEqual(digest(match[1]), digest(token));
}

/** `GET /metrics` on the API port, behind METRICS_TOKEN; hidden from the API docs. */
export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, { metrics, token }) => {
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (!authorized(request.headers.authorization, token)) throw unauthorized();
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
};

/**
 * Records each answered request by method, route template (not the raw URL) and status. A callback
 * hook with the labelled child cached: this runs on every request.
 */
export function recordRequests(app: FastifyInstance, metrics: Metrics): void {
  const children = new Map<string, Histogram.Internal<'method' | 'route' | 'status_code'>>();
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const key = `${request.method} ${reply.statusCode} ${route}`;
    let child = children.get(key);
    if (!child) {
      child = metrics.httpRequests.labels(request.method, route, String(reply.statusCode));
      children.set(key, child);
    }
    child.observe(reply.elapsedTime / 1000);
    done();
  });
}

/** METRICS_PORT: a listener of its own that answers only `GET /metrics` (behind METRICS_TOKEN if set). */
export async function listenForMetrics(metrics: Metrics, settings: MetricsSettings): Promise<Server> {
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Not Found"}');
    } else if (!authorized(request.headers.authorization, settings.token)) {
      response.writeHead(401, { 'content-type': 'application/json' }).end('{"detail":"Unauthorized"}');
    } else {
      metrics.registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => response.writeHead(500).end(),
      );
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => resolve());
  });
  return server;
}
