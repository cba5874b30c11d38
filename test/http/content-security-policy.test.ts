import assert from 'node:assert/strict';
import { it } from 'node:test';
import { type Harness, onEachEngine } from '../helpers/harness.js';

/** The script-src directive of an answer's content security policy. */
async function scriptSources(h: Harness, url: string): Promise<string> {
  const response = await h.get(url);
  const policy = String(response.headers['content-security-policy'] ?? '');
  return /(?:^|;)\s*script-src ([^;]*)/.exec(policy)?.[1] ?? `no script-src in "${policy}"`;
}

onEachEngine('content security policy', (h: Harness) => {
  it("allows only the service's own scripts everywhere but /docs", async () => {
    for (const url of ['/', '/health', '/device/', '/openapi.json', '/no-such-page', '/docsx']) {
      assert.equal(await scriptSources(h, url), "'self'", url);
    }
  });

  it('lets Swagger UI at /docs run its inline scripts', async () => {
    for (const url of ['/docs', '/docs/']) {
      assert.equal(await scriptSources(h, url), "'self' 'unsafe-inline'", url);
    }
  });
});
