import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard is built into dist/web, which src/web/routes.ts serves at `/` from the API's own process.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: true,
  },
  server: {
    // `npx vite web` during development: the API runs on its usual port.
    proxy: Object.fromEntries(
      ['/auth', '/users', '/device', '/data', '/analyze_statistics', '/health'].map((path) => [
        path,
        'http://127.0.0.1:8000',
      ]),
    ),
  },
});
