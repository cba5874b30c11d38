import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import type { InjectOptions } from 'fastify';
import { type Harness, onEachEngine, uniqueEmail } from '../helpers/harness.js';
import {
  type Located,
  nameOf,
  type OpenApiDocument,
  operationsOf,
  schemaCompiler,
} from '../helpers/openapi.js';

/**
 * Every operation is called the ways a client gets wrong (no token, a bad token, an unknown or
 * malformed id, bad query values, broken, oversized or mistyped bodies) and the right way; each
 * answer must be a status its operation documents, with a body its documented schema accepts.
 */

const BODY_LIMIT = 2048;
const LIMITS = { BODY_LIMIT_BYTES: String(BODY_LIMIT), BATCH_BODY_LIMIT_BYTES: String(BODY_LIMIT) };
const BEARER = 'OAuth2PasswordBearer';
const DEVICE_TOKEN = 'DeviceToken';
const UNKNOWN_ID = 2_000_000_000;

/** The ways a body goes wrong: what the probe says, the Content-Type (if other than the route's) and the bytes. */
const BODY_PROBES = {
  malformed: { what: 'with broken JSON', type: 'application/json', payload: '{"name": ' },
  text: { what: 'as text/plain', type: 'text/plain', payload: 'x' },
  xml: { what: 'as XML', type: 'application/xml', payload: '<name>x</name>' },
  oversized: {
    what: 'larger than the limit',
    type: undefined,
    payload: JSON.stringify({ name: 'a'.repeat(2 * BODY_LIMIT) }),
  },
  none: { what: 'without a body', type: undefined, payload: undefined },
};

interface Probe {
  what: string;
  auth?: 'user' | 'admin' | 'bogus';
  path?: 'unknown' | 'malformed';
  badQuery?: boolean;
  body?: keyof typeof BODY_PROBES;
}

/** The variants first, the well-formed call last: it may delete the device or end the session. */
function probesFor({ path, operation }: Located): Probe[] {
  const probes: Probe[] = [
    { what: 'without a token' },
    { what: 'with a token that is not one', auth: 'bogus' },
    { what: 'as a superuser', auth: 'admin' },
  ];
  if (path.includes('{')) {
    probes.push({ what: 'with an unknown id', auth: 'user', path: 'unknown' });
    probes.push({ what: 'with an id that is no number', auth: 'user', path: 'malformed' });
  }
  if (operation.parameters?.some((parameter) => parameter.in === 'query')) {
    probes.push({ what: 'with bad query values', auth: 'user', badQuery: true });
  }
  if (operation.requestBody) {
    for (const [body, { what }] of Object.entries(BODY_PROBES)) {
      probes.push({ what, auth: 'user', body: body as keyof typeof BODY_PROBES });
    }
  }
  probes.push({ what: 'well formed', auth: 'user' });
  return probes;
}

/**
 * Whether a call without credentials must be a 401 (a bearer token is required: no `{}` option), or
 * undefined where INGEST_AUTH=token decides through the device token, which the document shows optional.
 */
function needsToken(security: Record<string, string[]>[] = [], ingestAuth: string): boolean | undefined {
  if (ingestAuth === 'token' && security.some((option) => DEVICE_TOKEN in option)) return undefined;
  const anonymousAllowed = security.some((option) => Object.keys(option).length === 0);
  return security.some((option) => BEARER in option) && !anonymousAllowed;
}

async function undocumentedAnswers(
  h: Harness,
  document: OpenApiDocument,
  ingestAuth: string,
): Promise<string[]> {
  const compile = schemaCompiler(document);
  const validators = new Map<object, ValidateFunction>();
  const problems: string[] = [];

  for (const located of operationsOf(document)) {
    const { operation } = located;
    // Each operation gets its own users and device: a logout or a delete must not spoil the next.
    const admin = await h.signUp();
    await h.db.updateTable('users').set({ is_superuser: true }).where('id', '=', admin.id).execute();
    const user = await h.signUp();
    const device = await h.createDevice(user.token);
    const jsonBodies: Record<string, object> = {
      register: { email: uniqueEmail(), password: 'a-good-password' },
      updateDevice: { name: 'renamed' },
      createReadings: { device_id: device, x: 1, y: 2, z: 3 },
    };
    const tokens = { user: user.token, admin: admin.token, bogus: 'not-a-token' };
    const bodyType = Object.keys(operation.requestBody?.content ?? {})[0] ?? 'application/json';
    const wellFormedBody: Record<string, string> = {
      'application/json': JSON.stringify(jsonBodies[operation.operationId ?? ''] ?? {}),
      'application/x-www-form-urlencoded': new URLSearchParams({
        username: user.email,
        password: 'no',
      }).toString(),
      'text/csv': `device_id,x,y,z\n${device},1,2,3\n`,
    };

    for (const probe of probesFor(located)) {
      const pathValue =
        probe.path === 'unknown' ? UNKNOWN_ID : probe.path === 'malformed' ? 'abc' : undefined;
      let url = located.path
        .replace('{device_id}', String(pathValue ?? device))
        .replace(/\{(user_id|id)\}/, String(pathValue ?? user.id));
      if (probe.badQuery) {
        const names = (operation.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
        url += `?${new URLSearchParams(names.map((name) => [name, 'x!'])).toString()}`;
      }
      const headers: Record<string, string> = probe.auth
        ? { authorization: `Bearer ${tokens[probe.auth]}` }
        : {};
      const request: InjectOptions = { method: located.method as InjectOptions['method'], url, headers };
      const wrong = probe.body && BODY_PROBES[probe.body];
      if (operation.requestBody && probe.body !== 'none') {
        headers['content-type'] = wrong?.type ?? bodyType;
        request.payload = wrong ? wrong.payload : (wellFormedBody[bodyType] ?? '{}');
      }
      const answer = await h.inject(request);
      const at = `${nameOf(located)} ${probe.what}: ${answer.statusCode}`;

      const needed = needsToken(operation.security, ingestAuth);
      if (
        probe.what === 'without a token' &&
        needed !== undefined &&
        needed !== (answer.statusCode === 401)
      ) {
        problems.push(`${at}, but its security says a token is ${needed ? '' : 'not '}needed`);
      }
      const documented = operation.responses[String(answer.statusCode)];
      if (!documented) {
        problems.push(`${at} is not documented (${answer.body.slice(0, 200)})`);
        continue;
      }
      const schema = documented.content?.['application/json']?.schema;
      if (!schema || !String(answer.headers['content-type']).startsWith('application/json')) continue;
      const validate = validators.get(schema) ?? compile(schema);
      validators.set(schema, validate);
      if (!validate(answer.json())) {
        problems.push(
          `${at} does not match its schema: ${JSON.stringify(validate.errors)} in ${answer.body.slice(0, 200)}`,
        );
      }
    }
  }
  return problems;
}

for (const ingestAuth of ['open', 'token']) {
  onEachEngine(
    `the OpenAPI document lists every answer (INGEST_AUTH=${ingestAuth})`,
    (h) => {
      it('documents each status an operation answers, with a body its schema accepts', async () => {
        const document: OpenApiDocument = (await h.get('/openapi.json')).json();
        assert.deepEqual(await undocumentedAnswers(h, document, ingestAuth), []);
      });
    },
    { ...LIMITS, INGEST_AUTH: ingestAuth },
  );
}
