import { type ClientRequest, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Harness } from './harness.js';

/** Listens on a free port of 127.0.0.1 and answers the base URL. */
export async function listen(h: Harness): Promise<string> {
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
}

/**
 * Opens a CSV import whose body the caller writes (and may never end): `request` takes the lines,
 * `answer` settles with the status and body once the whole answer arrived.
 */
export function openImport(
  base: string,
  headers: Record<string, string> = {},
): { request: ClientRequest; answer: Promise<{ status: number; body: string }> } {
  const request = httpRequest(`${base}/data/import`, {
    method: 'POST',
    headers: { 'content-type': 'text/csv', ...headers },
  });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request.on('response', (response) => {
      let body = '';
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => {
        request.destroy();
        resolve({ status: response.statusCode ?? 0, body });
      });
    });
    request.on('error', reject);
  });
  return { request, answer };
}
