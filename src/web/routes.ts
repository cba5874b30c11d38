import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

export interface WebRoutesOptions {
  /** Where the built dashboard is; by default dist/web under the package root. */
  root?: string;
}

/** The package root: the nearest folder above this file with a package.json (works from src/ and dist/src/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
  return dir;
}

export function defaultWebRoot(): string {
  return resolve(packageRoot(), 'dist', 'web');
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Statistics</title></head>
<body><h1>Statistics</h1><p>The dashboard is not built yet: run <code>npm run build</code> (or <code>npm start</code>,
which builds it) and reload. The API docs are at <a href="/docs">/docs</a>.</p></body></html>`;

/**
 * The dashboard: the files Vite built, served from the same process. Only the files that exist at start
 * get routes (no wildcard), and the UI uses hash routing, so every other path still answers the API's 404.
 */
export const webRoutes: FastifyPluginAsync<WebRoutesOptions> = async (app, options) => {
  const root = options.root ?? defaultWebRoot();
  if (!existsSync(join(root, 'index.html'))) {
    app.log.warn({ root }, 'dashboard not built: run npm run build');
    app.get('/', { schema: { hide: true } }, async (_request, reply) =>
      reply.code(200).type('text/html; charset=utf-8').send(NOT_BUILT),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    wildcard: false,
    decorateReply: false,
    index: ['index.html'],
    schemaHide: true,
    setHeaders(res, path) {
      // Vite names assets by their content hash: they never change; the page itself is always revalidated.
      if (path.includes(`${join(root, 'assets')}`)) {
        res.setHeader('cache-control', 'public, max-age=31536000, immutable');
      } else {
        res.setHeader('cache-control', 'no-cache');
      }
    },
  });
};
