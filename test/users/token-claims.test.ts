import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { type Harness, onEachEngine, TEST_SECRET } from '../helpers/harness.js';

const AUDIENCE = 'fastapi-users:auth';
const now = () => Math.floor(Date.now() / 1000);
const encode = (text: string) => Buffer.from(text).toString('base64url');

/** A token signed with the secret over the exact payload text given (JSON numbers such as 1e400 included). */
function signText(payload: string): string {
  const input = `${encode('{"alg":"HS256","typ":"JWT"}')}.${encode(payload)}`;
  return `${input}.${createHmac('sha256', TEST_SECRET).update(input).digest('base64url')}`;
}

/** Other spellings of the same signature: `=` padding, and the unused low bits of the last character set. */
function respellings(token: string): string[] {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // 32 bytes are 43 characters: the last one carries 2 bits that no byte uses.
  const last = alphabet.indexOf(signature.at(-1) as string);
  const flipped = `${signature.slice(0, -1)}${alphabet[last | 1]}`;
  assert.equal(Buffer.from(flipped, 'base64url').toString('base64url'), signature, 'the same bytes');
  return [
    `${header}.${payload}.${signature}=`,
    `${header}.${payload}.${flipped}`,
    `${header}=.${payload}.${signature}`,
  ];
}

onEachEngine('tokens: canonical spelling, deny list and claims', (h: Harness) => {
  let user: { id: number; token: string; email: string };
  const me = (token: string) => h.get('/users/me', token);
  const logout = (token: string) =>
    h.inject({ method: 'POST', url: '/auth/jwt/logout', headers: { authorization: `Bearer ${token}` } });
  const assert401 = (response: LightMyRequestResponse, what: string) => {
    assert.equal(response.statusCode, 401, `${what}: ${response.body}`);
    assert.deepEqual(response.json(), { detail: 'Unauthorized' }, what);
  };

  before(async () => {
    user = await h.signUp();
  });

  describe('logout cannot be bypassed by re-spelling the token', () => {
    it('refuses other spellings of a valid token, and after logout every spelling', async () => {
      const token = await h.logIn(user.email, 'a-good-password');
      assert.equal((await me(token)).statusCode, 200);
      for (const other of respellings(token))
        assert401(await me(other), `re-spelled before logout: ${other}`);
      assert.equal((await logout(token)).statusCode, 204);
      assert401(await me(token), 'after logout');
      for (const other of respellings(token)) assert401(await me(other), `re-spelled after logout: ${other}`);
    });

    it("ends a token of the original service (no jti) on logout, keyed on its signature's bytes", async () => {
      const token = signText(JSON.stringify({ user_id: String(user.id), aud: [AUDIENCE], exp: now() + 600 }));
      assert.equal((await me(token)).statusCode, 200);
      assert.equal((await logout(token)).statusCode, 204);
      assert401(await me(token), 'after logout');
      for (const other of respellings(token)) assert401(await me(other), `re-spelled: ${other}`);
    });
  });

  it('still refuses a token logged out before the upgrade (listed under the digest of its text)', async () => {
    const token = await h.logIn(user.email, 'a-good-password');
    const digest = createHash('sha256').update(token).digest('hex');
    await h.db
      .insertInto('revoked_tokens')
      .values({ token_digest: digest, expires_at: Date.now() + 3_600_000 })
      .execute();
    assert401(await me(token), 'listed by its text');
  });

  describe('numeric claims', () => {
    const claims = () => `"sub":"${user.id}","aud":["${AUDIENCE}"]`;

    it('accepts a token within the configured lifetime', async () => {
      const token = signText(`{${claims()},"iat":${now()},"exp":${now() + 3600}}`);
      assert.equal((await me(token)).statusCode, 200);
    });

    it('refuses infinite, absurd and non-numeric exp, iat and nbf, and a lifetime beyond the configured one', async () => {
      const cases: [string, string][] = [
        ['exp 1e400', `{${claims()},"exp":1e400}`],
        ['exp -1e400', `{${claims()},"exp":-1e400}`],
        ['exp a string', `{${claims()},"exp":"${now() + 60}"}`],
        ['iat 1e400', `{${claims()},"iat":1e400,"exp":${now() + 60}}`],
        ['iat -1e400', `{${claims()},"iat":-1e400,"exp":${now() + 60}}`],
        ['nbf -1e400', `{${claims()},"nbf":-1e400,"exp":${now() + 60}}`],
        ['exp ten years ahead', `{${claims()},"exp":${now() + 315_360_000}}`],
        ['exp 1e15', `{${claims()},"exp":1e15}`],
        ['exp - iat twice the lifetime', `{${claims()},"iat":${now() - 3600},"exp":${now() + 3600}}`],
        ['iat in the future', `{${claims()},"iat":${now() + 3000},"exp":${now() + 3500}}`],
      ];
      for (const [what, payload] of cases) assert401(await me(signText(payload)), what);
    });
  });
});
