import { performance } from 'node:perf_hooks';

/** Small HTTP helpers for the set-up steps; the load itself always comes from wrk. */

export async function createDevice(base: string): Promise<number> {
  const response = await fetch(`${base}/device/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench' }),
  });
  const body = (await response.json()) as { id?: unknown };
  if (!response.ok || typeof body.id !== 'number') {
    throw new Error(`POST /device/ answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.id;
}

/** One POST, to learn how the server answers a body before wrk repeats it thousands of times. */
export async function probePost(url: string, body: string): Promise<{ status: number; text: string }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  return { status: response.status, text: await response.text() };
}

/** One GET, timed from the request to the last byte of the answer. */
export async function timedGet(url: string): Promise<{ ms: number; body: unknown }> {
  const began = performance.now();
  const response = await fetch(url, { signal: AbortSignal.timeout(60_000) });
  const text = await response.text();
  const ms = performance.now() - began;
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}: ${text.slice(0, 300)}`);
  return { ms, body: JSON.parse(text) as unknown };
}
