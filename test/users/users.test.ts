import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import type { LightMyRequestResponse } from 'fastify';
import { SignJWT } from 'jose';
import { sql } from 'kysely';
import { type Harness, onEachEngine, TEST_SECRET, uniqueEmail } from '../helpers/harness.js';

const AUDIENCE = 'fastapi-users:auth';
const USER_KEYS = ['email', 'id', 'is_active', 'is_superuser', 'is_verified'];
const key = new TextEncoder().encode(TEST_SECRET);
const now = () => Math.floor(Date.now() / 1000);

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function payloadOf(token: string): Record<string, unknown> {
  const [, payload] = token.split('.');
  return JSON.parse(Buffer.from(payload as string, 'base64url').toString('utf8'));
}

/** A token as another service with the same secret (or a forger) would mint it. */
function mint(
  claims: Record<string, unknown>,
  options: { secret?: string; audience?: string | string[] | null; exp?: number | null } = {},
): Promise<string> {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' });
  const audience = options.audience === undefined ? [AUDIENCE] : options.audience;
  if (audience !== null) jwt = jwt.setAudience(audience);
  const exp = options.exp === undefined ? now() + 3600 : options.exp;
  if (exp !== null) jwt = jwt.setExpirationTime(exp);
  const secret = options.secret === undefined ? key : new TextEncoder().encode(options.secret);
  return jwt.sign(secret);
}

/** Every 422 item is FastAPI-shaped; answers the last element of each `loc`. */
function validationFields(response: LightMyRequestResponse): unknown[] {
  assert.equal(response.statusCode, 422, response.body);
  const { detail } = response.json();
  assert.ok(Array.isArray(detail) && detail.length > 0, response.body);
  for (const item of detail) {
    assert.ok(Array.isArray(item.loc), response.body);
    assert.equal(typeof item.msg, 'string');
    assert.equal(typeof item.type, 'string');
  }
  return detail.map((item: { loc: unknown[] }) => item.loc.at(-1));
}

function assertUnauthorized(response: LightMyRequestResponse, what = '') {
  assert.equal(response.statusCode, 401, `${what}: ${response.body}`);
  assert.deepEqual(response.json(), { detail: 'Unauthorized' }, what);
}

function assertDetail(response: LightMyRequestResponse, status: number, detail: unknown) {
  assert.equal(response.statusCode, status, response.body);
  assert.deepEqual(response.json(), { detail });
}

onEachEngine('users', (h: Harness) => {
  const login = (fields: Record<string, string>) =>
    h.inject({
      method: 'POST',
      url: '/auth/jwt/login',
      payload: new URLSearchParams(fields).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });

  const me = (authorization?: string) =>
    h.inject({ method: 'GET', url: '/users/me', headers: authorization ? { authorization } : {} });

  const send = (method: 'PATCH' | 'DELETE', url: string, body?: unknown, token?: string) =>
    h.inject({
      method,
      url,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
    });

  const logout = (token?: string) =>
    h.inject({
      method: 'POST',
      url: '/auth/jwt/logout',
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  async function row(id: number) {
    const found = await h.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    if (!found) return undefined;
    return {
      ...found,
      is_active: Boolean(found.is_active),
      is_superuser: Boolean(found.is_superuser),
      is_verified: Boolean(found.is_verified),
    };
  }

  const setFlags = (
    id: number,
    flags: { is_active?: boolean; is_superuser?: boolean; is_verified?: boolean },
  ) => h.db.updateTable('users').set(flags).where('id', '=', id).execute();

  async function countByEmail(email: string): Promise<number> {
    const found = await h.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where(sql<string>`lower(email)`, '=', email.toLowerCase())
      .executeTakeFirstOrThrow();
    return Number(found.n);
  }

  async function superuser() {
    const admin = await h.signUp();
    await setFlags(admin.id, { is_superuser: true });
    return admin;
  }

  describe('POST /auth/register', () => {
    it('creates an active, unverified, normal user and answers 201 with the user JSON only', async () => {
      const email = uniqueEmail();
      const response = await h.post('/auth/register', { email, password: 'a-good-password' });
      assert.equal(response.statusCode, 201, response.body);
      const body = response.json();
      assert.deepEqual(Object.keys(body).sort(), USER_KEYS);
      assert.ok(Number.isInteger(body.id) && body.id > 0);
      assert.deepEqual(body, {
        id: body.id,
        email,
        is_active: true,
        is_superuser: false,
        is_verified: false,
      });
      assert.ok(!/password|hash/i.test(response.body), response.body);
      const stored = await row(body.id);
      assert.equal(stored?.email, email);
      assert.ok(stored?.hashed_password.startsWith('$argon2id$'), stored?.hashed_password);
      assert.ok(!stored?.hashed_password.includes('a-good-password'));
    });

    it('ignores the flags and the id a client sends', async () => {
      const email = uniqueEmail();
      const response = await h.post('/auth/register', {
        id: 424242,
        email,
        password: 'a-good-password',
        is_active: false,
        is_superuser: true,
        is_verified: true,
        unknown_key: 'ignored',
      });
      assert.equal(response.statusCode, 201, response.body);
      const body = response.json();
      assert.notEqual(body.id, 424242);
      assert.deepEqual(body, {
        id: body.id,
        email,
        is_active: true,
        is_superuser: false,
        is_verified: false,
      });
      const stored = await row(body.id);
      assert.equal(stored?.is_active, true);
      assert.equal(stored?.is_superuser, false);
      assert.equal(stored?.is_verified, false);
      assert.equal(await row(424242), undefined);
    });

    it("lowercases the e-mail's domain and keeps the local part", async () => {
      const local = `Mixed.Case.${Date.now()}`;
      const response = await h.post('/auth/register', {
        email: `${local}@Example.COM`,
        password: 'a-good-password',
      });
      assert.equal(response.statusCode, 201, response.body);
      assert.equal(response.json().email, `${local}@example.com`);
      assert.equal((await row(response.json().id))?.email, `${local}@example.com`);
    });

    it('refuses an e-mail already registered, also when it differs only in case', async () => {
      const { email } = await h.signUp();
      for (const again of [email, email.toUpperCase(), email.replace('user', 'USER')]) {
        const response = await h.post('/auth/register', { email: again, password: 'another-password' });
        assertDetail(response, 400, 'REGISTER_USER_ALREADY_EXISTS');
      }
      assert.equal(await countByEmail(email), 1);
    });

    it('refuses a password under 3 characters, the empty one included', async () => {
      for (const password of ['', 'a', 'ab']) {
        const email = uniqueEmail();
        const response = await h.post('/auth/register', { email, password });
        assertDetail(response, 400, {
          code: 'REGISTER_INVALID_PASSWORD',
          reason: 'Password should be at least 3 characters',
        });
        assert.equal(await countByEmail(email), 0);
      }
      const email = uniqueEmail();
      assert.equal((await h.post('/auth/register', { email, password: 'abc' })).statusCode, 201);
    });

    it('refuses a password that contains the e-mail', async () => {
      const email = uniqueEmail();
      const response = await h.post('/auth/register', { email, password: `my ${email} password` });
      assertDetail(response, 400, {
        code: 'REGISTER_INVALID_PASSWORD',
        reason: 'Password should not contain e-mail',
      });
      assert.equal(await countByEmail(email), 0);
    });

    it('reports the password error before the duplicate e-mail', async () => {
      const { email } = await h.signUp();
      const response = await h.post('/auth/register', { email, password: 'ab' });
      assertDetail(response, 400, {
        code: 'REGISTER_INVALID_PASSWORD',
        reason: 'Password should be at least 3 characters',
      });
    });

    it('answers 422 naming the field for a bad e-mail or missing fields', async () => {
      for (const email of ['not-an-email', 'a@', '@example.com', '', 42]) {
        const response = await h.post('/auth/register', { email, password: 'a-good-password' });
        assert.deepEqual(validationFields(response), ['email'], `${email}: ${response.body}`);
        assert.deepEqual(response.json().detail[0].loc, ['body', 'email']);
      }
      assert.deepEqual(validationFields(await h.post('/auth/register', { email: uniqueEmail() })), [
        'password',
      ]);
      assert.deepEqual(validationFields(await h.post('/auth/register', { password: 'a-good-password' })), [
        'email',
      ]);
      assert.deepEqual(validationFields(await h.post('/auth/register', {})).sort(), ['email', 'password']);
      const missing = await h.post('/auth/register', { email: uniqueEmail() });
      assert.deepEqual(missing.json().detail[0], {
        loc: ['body', 'password'],
        msg: 'field required',
        type: 'value_error.missing',
      });
      const bad = await h.post('/auth/register', { email: 'nope', password: 'a-good-password' });
      assert.equal(bad.json().detail[0].type, 'value_error.email');
    });

    it('answers 422, not 500, for malformed JSON, a non-object body and nulls', async () => {
      const malformed = await h.post('/auth/register', '{"email": ');
      assert.equal(malformed.statusCode, 422, malformed.body);
      assert.equal(malformed.json().detail[0].loc[0], 'body');
      assert.equal((await h.post('/auth/register', [1, 2])).statusCode, 422);
      assert.deepEqual(
        validationFields(await h.post('/auth/register', { email: uniqueEmail(), password: null })),
        ['password'],
      );
    });

    it('lets exactly one of five concurrent registrations of one e-mail win', async () => {
      const email = uniqueEmail();
      const responses = await Promise.all(
        Array.from({ length: 5 }, (_, i) => h.post('/auth/register', { email, password: `password-${i}` })),
      );
      const statuses = responses.map((r) => r.statusCode).sort();
      assert.deepEqual(statuses, [201, 400, 400, 400, 400], responses.map((r) => r.body).join('\n'));
      for (const response of responses.filter((r) => r.statusCode === 400)) {
        assert.deepEqual(response.json(), { detail: 'REGISTER_USER_ALREADY_EXISTS' });
      }
      assert.equal(await countByEmail(email), 1);
    });
  });

  describe('POST /auth/jwt/login', () => {
    let user: { id: number; email: string };
    const password = 'login-password';

    before(async () => {
      const signed = await h.signUp(uniqueEmail(), password);
      user = { id: signed.id, email: signed.email };
    });

    it('answers a bearer token whose claims follow FastAPI Users', async () => {
      const response = await login({ username: user.email, password });
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json();
      assert.deepEqual(Object.keys(body).sort(), ['access_token', 'token_type']);
      assert.equal(body.token_type, 'bearer');
      const [header] = body.access_token.split('.');
      assert.equal(JSON.parse(Buffer.from(header, 'base64url').toString()).alg, 'HS256');
      const claims = payloadOf(body.access_token);
      assert.equal(claims.sub, String(user.id));
      assert.equal(claims.user_id, String(user.id));
      assert.deepEqual(claims.aud, [AUDIENCE]);
      assert.equal(typeof claims.exp, 'number');
      assert.ok(Math.abs((claims.exp as number) - (now() + 3600)) <= 5, `exp ${claims.exp}`);
      const who = await me(`Bearer ${body.access_token}`);
      assert.equal(who.statusCode, 200);
      assert.equal(who.json().id, user.id);
    });

    it('accepts grant_type=password and the other OAuth2 form fields', async () => {
      const response = await login({
        username: user.email,
        password,
        grant_type: 'password',
        scope: '',
        client_id: 'x',
        client_secret: 'y',
      });
      assert.equal(response.statusCode, 200, response.body);
    });

    it('finds the e-mail case-insensitively', async () => {
      for (const username of [user.email.toUpperCase(), user.email.replace('user', 'User')]) {
        const response = await login({ username, password });
        assert.equal(response.statusCode, 200, `${username}: ${response.body}`);
        assert.equal(payloadOf(response.json().access_token).sub, String(user.id));
      }
    });

    it('answers LOGIN_BAD_CREDENTIALS for a wrong password, an unknown e-mail and an inactive user', async () => {
      assertDetail(
        await login({ username: user.email, password: 'wrong-password' }),
        400,
        'LOGIN_BAD_CREDENTIALS',
      );
      assertDetail(await login({ username: user.email, password: '' }), 400, 'LOGIN_BAD_CREDENTIALS');
      assertDetail(await login({ username: uniqueEmail(), password }), 400, 'LOGIN_BAD_CREDENTIALS');
      const inactive = await h.signUp(uniqueEmail(), password);
      await setFlags(inactive.id, { is_active: false });
      assertDetail(await login({ username: inactive.email, password }), 400, 'LOGIN_BAD_CREDENTIALS');
    });

    it('answers 422 for missing fields and a grant_type other than password', async () => {
      assert.deepEqual(validationFields(await login({ username: user.email })), ['password']);
      assert.deepEqual(validationFields(await login({ password })), ['username']);
      assert.deepEqual(validationFields(await login({})).sort(), ['password', 'username']);
      for (const grant_type of ['client_credentials', 'passwords', 'PASSWORD']) {
        assert.deepEqual(
          validationFields(await login({ username: user.email, password, grant_type })),
          ['grant_type'],
          grant_type,
        );
      }
    });

    it('logs in a user with a bcrypt hash from the original and upgrades it to argon2id', async () => {
      const email = uniqueEmail();
      const legacy = bcrypt.hashSync('legacy-password', 4).replace(/^\$2a\$/, '$2b$');
      assert.ok(legacy.startsWith('$2b$04$'), legacy);
      const inserted = await h.db
        .insertInto('users')
        .values({ email, hashed_password: legacy, is_active: true, is_superuser: false, is_verified: false })
        .returning('id')
        .executeTakeFirstOrThrow();
      assertDetail(
        await login({ username: email, password: 'wrong-password' }),
        400,
        'LOGIN_BAD_CREDENTIALS',
      );
      assert.equal((await row(inserted.id))?.hashed_password, legacy);

      const response = await login({ username: email, password: 'legacy-password' });
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(payloadOf(response.json().access_token).sub, String(inserted.id));
      const upgraded = (await row(inserted.id))?.hashed_password ?? '';
      assert.ok(upgraded.startsWith('$argon2id$'), upgraded);

      assert.equal((await login({ username: email, password: 'legacy-password' })).statusCode, 200);
      assertDetail(
        await login({ username: email, password: 'wrong-password' }),
        400,
        'LOGIN_BAD_CREDENTIALS',
      );
    });
  });

  describe('tokens', () => {
    let user: { id: number; token: string; email: string };

    before(async () => {
      user = await h.signUp();
    });

    it('accepts a token with only user_id, as FastAPI Users 10.0.4 issued them', async () => {
      const token = await mint({ user_id: String(user.id) });
      assert.equal(payloadOf(token).sub, undefined);
      const response = await me(`Bearer ${token}`);
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(response.json(), {
        id: user.id,
        email: user.email,
        is_active: true,
        is_superuser: false,
        is_verified: false,
      });
    });

    it('accepts a token with only sub, and the bearer scheme in any case', async () => {
      const token = await mint({ sub: String(user.id) });
      assert.equal((await me(`Bearer ${token}`)).statusCode, 200);
      assert.equal((await me(`bearer ${user.token}`)).statusCode, 200);
      assert.equal((await me(`BEARER ${user.token}`)).statusCode, 200);
    });

    it('refuses forged, foreign, expired and malformed tokens with 401 Unauthorized', async () => {
      const claims = { user_id: String(user.id), sub: String(user.id) };
      const noneToken = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({
        ...claims,
        aud: [AUDIENCE],
        exp: now() + 3600,
      })}.`;
      const cases: [string, string][] = [
        ['another key', await mint(claims, { secret: 'another-secret-that-is-at-least-32-bytes!!' })],
        ['alg none', noneToken],
        ['another audience', await mint(claims, { audience: ['someone-else'] })],
        ['no audience', await mint(claims, { audience: null })],
        ['expired', await mint(claims, { exp: now() - 10 })],
        ['no exp', await mint(claims, { exp: null })],
        ['unknown user', await mint({ user_id: '999999', sub: '999999' })],
        ['id not an integer', await mint({ user_id: 'abc', sub: 'abc' })],
        ['id a decimal', await mint({ user_id: '1.5', sub: '1.5' })],
        ['no id', await mint({})],
        ['garbage', 'garbage'],
        ['three garbage parts', 'a.b.c'],
        ['truncated signature', user.token.slice(0, -4)],
      ];
      for (const [what, token] of cases) {
        assertUnauthorized(await me(`Bearer ${token}`), what);
      }
    });

    it('treats no header, another scheme or an empty value as no token: 401', async () => {
      for (const authorization of [
        undefined,
        `Token ${user.token}`,
        `Basic ${user.token}`,
        'Bearer',
        'Bearer ',
      ]) {
        assertUnauthorized(await me(authorization), String(authorization));
      }
    });

    it("refuses a deactivated user's token, and accepts it again once reactivated", async () => {
      const victim = await h.signUp();
      await setFlags(victim.id, { is_active: false });
      assertUnauthorized(await h.get('/users/me', victim.token), 'inactive');
      assertUnauthorized(await logout(victim.token), 'inactive logout');
      await setFlags(victim.id, { is_active: true });
      assert.equal((await h.get('/users/me', victim.token)).statusCode, 200);
    });
  });

  describe('POST /auth/jwt/logout', () => {
    it('answers 204 with an empty body, and the token is refused afterwards', async () => {
      const user = await h.signUp();
      const other = await h.logIn(user.email, 'a-good-password');
      const response = await logout(user.token);
      assert.equal(response.statusCode, 204, response.body);
      assert.equal(response.body, '');
      assertUnauthorized(await h.get('/users/me', user.token), 'after logout');
      assertUnauthorized(await logout(user.token), 'second logout');
      // Only that token ended (a token issued in the same second may be identical; skip then).
      if (other !== user.token) assert.equal((await h.get('/users/me', other)).statusCode, 200);
    });

    it('lets the user log in again right after logging out', async () => {
      const user = await h.signUp();
      assert.equal((await logout(user.token)).statusCode, 204);
      const fresh = await h.logIn(user.email, 'a-good-password');
      const response = await h.get('/users/me', fresh);
      const same = fresh === user.token ? ' (the new token is identical to the revoked one)' : '';
      assert.equal(response.statusCode, 200, `${response.body}${same}`);
      assert.equal(response.json().id, user.id);
    });

    it('answers 401 without a valid token', async () => {
      assertUnauthorized(await logout(), 'no token');
      assertUnauthorized(await logout('garbage'), 'garbage');
    });
  });

  describe('/users/me', () => {
    it('shows the signed-in user', async () => {
      const user = await h.signUp();
      const response = await h.get('/users/me', user.token);
      assert.equal(response.statusCode, 200);
      assert.deepEqual(response.json(), {
        id: user.id,
        email: user.email,
        is_active: true,
        is_superuser: false,
        is_verified: false,
      });
    });

    it('ignores the flags a normal user sends: 200, unchanged', async () => {
      const user = await h.signUp();
      const response = await send(
        'PATCH',
        '/users/me',
        { is_active: false, is_superuser: true, is_verified: true, id: 777777 },
        user.token,
      );
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(response.json(), {
        id: user.id,
        email: user.email,
        is_active: true,
        is_superuser: false,
        is_verified: false,
      });
      const stored = await row(user.id);
      assert.deepEqual([stored?.is_active, stored?.is_superuser, stored?.is_verified], [true, false, false]);
      assert.equal(await row(777777), undefined);
    });

    it('changes the e-mail and resets is_verified', async () => {
      const user = await h.signUp();
      await setFlags(user.id, { is_verified: true });
      assert.equal((await h.get('/users/me', user.token)).json().is_verified, true);
      const email = uniqueEmail();
      const response = await send('PATCH', '/users/me', { email }, user.token);
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(response.json().email, email);
      assert.equal(response.json().is_verified, false);
      const stored = await row(user.id);
      assert.equal(stored?.email, email);
      assert.equal(stored?.is_verified, false);
      assert.equal((await login({ username: email, password: 'a-good-password' })).statusCode, 200);
      assertDetail(
        await login({ username: user.email, password: 'a-good-password' }),
        400,
        'LOGIN_BAD_CREDENTIALS',
      );
    });

    it('keeps is_verified when the same e-mail is sent again', async () => {
      const user = await h.signUp();
      await setFlags(user.id, { is_verified: true });
      const response = await send('PATCH', '/users/me', { email: user.email }, user.token);
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(response.json().is_verified, true);
    });

    it('lets a user change only the case of their own e-mail', async () => {
      const user = await h.signUp();
      const email = user.email.replace(/^user/, 'User');
      assert.notEqual(email, user.email);
      const response = await send('PATCH', '/users/me', { email }, user.token);
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(response.json().email, email);
      assert.equal((await row(user.id))?.email, email);
      assert.equal(await countByEmail(email), 1);
    });

    it('refuses an e-mail that another user has, in any case', async () => {
      const user = await h.signUp();
      const other = await h.signUp();
      for (const email of [other.email, other.email.toUpperCase()]) {
        const response = await send('PATCH', '/users/me', { email }, user.token);
        assertDetail(response, 400, 'UPDATE_USER_EMAIL_ALREADY_EXISTS');
      }
      assert.equal((await row(user.id))?.email, user.email);
    });

    it('refuses a bad password with UPDATE_USER_INVALID_PASSWORD', async () => {
      const user = await h.signUp();
      const before = (await row(user.id))?.hashed_password;
      const cases: [string, string][] = [
        ['ab', 'Password should be at least 3 characters'],
        ['', 'Password should be at least 3 characters'],
        [`x${user.email}x`, 'Password should not contain e-mail'],
      ];
      for (const [password, reason] of cases) {
        const response = await send('PATCH', '/users/me', { password }, user.token);
        assertDetail(response, 400, { code: 'UPDATE_USER_INVALID_PASSWORD', reason });
      }
      assert.equal((await row(user.id))?.hashed_password, before);
    });

    it('changes the password: the new one logs in, the old one does not', async () => {
      const user = await h.signUp();
      const response = await send('PATCH', '/users/me', { password: 'a-new-password' }, user.token);
      assert.equal(response.statusCode, 200, response.body);
      assert.ok(!/password|hash/i.test(response.body), response.body);
      assert.ok((await row(user.id))?.hashed_password.startsWith('$argon2id$'));
      assert.equal((await login({ username: user.email, password: 'a-new-password' })).statusCode, 200);
      assertDetail(
        await login({ username: user.email, password: 'a-good-password' }),
        400,
        'LOGIN_BAD_CREDENTIALS',
      );
    });

    it('answers 422 (never 500) for nulls and wrong types', async () => {
      const user = await h.signUp();
      const before = await row(user.id);
      const cases: [unknown, string][] = [
        [{ password: null }, 'password'],
        [{ email: null }, 'email'],
        [{ is_active: null }, 'is_active'],
        [{ email: 'not-an-email' }, 'email'],
        [{ password: 12345 }, 'password'],
      ];
      for (const [body, field] of cases) {
        const response = await send('PATCH', '/users/me', body, user.token);
        assert.deepEqual(validationFields(response), [field], JSON.stringify(body));
      }
      assert.deepEqual(await row(user.id), before);
    });

    it('answers 200 with nothing changed for an empty object', async () => {
      const user = await h.signUp();
      const before = await row(user.id);
      const response = await send('PATCH', '/users/me', {}, user.token);
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(response.json(), {
        id: user.id,
        email: user.email,
        is_active: true,
        is_superuser: false,
        is_verified: false,
      });
      assert.deepEqual(await row(user.id), before);
    });

    it('answers 401 before validating the body', async () => {
      assertUnauthorized(await send('PATCH', '/users/me', { email: 'not-an-email' }), 'invalid body');
      assertUnauthorized(await send('PATCH', '/users/me', '{"broken'), 'malformed body');
      assertUnauthorized(await send('PATCH', '/users/me', { password: null }, 'garbage'), 'bad token');
      assertUnauthorized(await h.get('/users/me'), 'GET without token');
    });
  });

  describe('/users/{id}', () => {
    let admin: { id: number; token: string; email: string };
    let normal: { id: number; token: string; email: string };

    before(async () => {
      admin = await superuser();
      normal = await h.signUp();
    });

    it('is 401 without a token and 403 for a normal user, before any 404 or 422', async () => {
      for (const path of [`/users/${admin.id}`, '/users/abc', '/users/999999']) {
        assertUnauthorized(await h.get(path), `GET ${path}`);
        assertDetail(await h.get(path, normal.token), 403, 'Forbidden');
        assertUnauthorized(await send('PATCH', path, { email: 'not-an-email' }), `PATCH ${path}`);
        assertDetail(await send('PATCH', path, { email: 'not-an-email' }, normal.token), 403, 'Forbidden');
        assertDetail(await send('PATCH', path, { is_superuser: true }, normal.token), 403, 'Forbidden');
      }
      assert.equal((await row(normal.id))?.is_superuser, false);
    });

    it('shows any user to a superuser', async () => {
      const response = await h.get(`/users/${normal.id}`, admin.token);
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(response.json(), {
        id: normal.id,
        email: normal.email,
        is_active: true,
        is_superuser: false,
        is_verified: false,
      });
      assert.equal((await h.get(`/users/${admin.id}`, admin.token)).json().is_superuser, true);
    });

    it('answers 404 Not Found to a superuser for an unknown or non-integer id', async () => {
      for (const id of ['999999', 'abc', '1.5', '-1', '99999999999999999999']) {
        assertDetail(await h.get(`/users/${id}`, admin.token), 404, 'Not Found');
        assertDetail(
          await send('PATCH', `/users/${id}`, { is_active: false }, admin.token),
          404,
          'Not Found',
        );
      }
    });

    it("lets a superuser set another user's flags; a deactivated user cannot log in", async () => {
      const target = await h.signUp();
      const promoted = await send('PATCH', `/users/${target.id}`, { is_superuser: true }, admin.token);
      assert.equal(promoted.statusCode, 200, promoted.body);
      assert.equal(promoted.json().is_superuser, true);
      assert.equal((await row(target.id))?.is_superuser, true);
      assert.equal((await h.get(`/users/${normal.id}`, target.token)).statusCode, 200);

      const verified = await send('PATCH', `/users/${target.id}`, { is_verified: true }, admin.token);
      assert.equal(verified.json().is_verified, true);
      assert.equal((await row(target.id))?.is_verified, true);

      const deactivated = await send('PATCH', `/users/${target.id}`, { is_active: false }, admin.token);
      assert.equal(deactivated.statusCode, 200, deactivated.body);
      assert.deepEqual(deactivated.json(), {
        id: target.id,
        email: target.email,
        is_active: false,
        is_superuser: true,
        is_verified: true,
      });
      assert.equal((await row(target.id))?.is_active, false);
      assertDetail(
        await login({ username: target.email, password: 'a-good-password' }),
        400,
        'LOGIN_BAD_CREDENTIALS',
      );
      assertUnauthorized(await h.get('/users/me', target.token), 'deactivated');
      assertUnauthorized(await h.get(`/users/${normal.id}`, target.token), 'deactivated superuser');
      // Still there, and visible to a superuser.
      assert.equal((await h.get(`/users/${target.id}`, admin.token)).json().is_active, false);
    });

    it("lets a superuser change another user's e-mail and password, with the same rules", async () => {
      const target = await h.signUp();
      const other = await h.signUp();
      assertDetail(
        await send('PATCH', `/users/${target.id}`, { email: other.email }, admin.token),
        400,
        'UPDATE_USER_EMAIL_ALREADY_EXISTS',
      );
      assertDetail(await send('PATCH', `/users/${target.id}`, { password: 'ab' }, admin.token), 400, {
        code: 'UPDATE_USER_INVALID_PASSWORD',
        reason: 'Password should be at least 3 characters',
      });
      assert.deepEqual(
        validationFields(await send('PATCH', `/users/${target.id}`, { password: null }, admin.token)),
        ['password'],
      );
      const email = uniqueEmail();
      const response = await send(
        'PATCH',
        `/users/${target.id}`,
        { email, password: 'set-by-admin' },
        admin.token,
      );
      assert.equal(response.statusCode, 200, response.body);
      assert.equal(response.json().email, email);
      assert.equal((await login({ username: email, password: 'set-by-admin' })).statusCode, 200);
    });
  });

  describe('DELETE /users/{id}', () => {
    it('is 405 with a message for everyone, and the user stays', async () => {
      const admin = await superuser();
      const victim = await h.signUp();
      for (const token of [undefined, victim.token, admin.token]) {
        for (const path of [`/users/${victim.id}`, '/users/me', '/users/999999']) {
          const response = await send('DELETE', path, undefined, token);
          assert.equal(response.statusCode, 405, `${path}: ${response.body}`);
          const { detail } = response.json();
          assert.equal(typeof detail, 'string');
          assert.ok(detail.length > 0);
        }
      }
      assert.ok(await row(victim.id));
      assert.equal((await h.get('/users/me', victim.token)).statusCode, 200);
      assert.equal((await h.get(`/users/${victim.id}`, admin.token)).statusCode, 200);
    });
  });
});
