import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import {
  API_TYPES_FILE,
  openApiDocument,
  REGENERATE_COMMAND,
  renderApiTypes,
} from '../../scripts/generate-client.js';
import { onEachEngine } from '../helpers/harness.js';
import { nameOf, type OpenApiDocument, operationsOf, schemaCompiler, schemasOf } from '../helpers/openapi.js';

/** Every operation and its operationId: generated clients name their methods after these. */
const OPERATION_IDS: Record<string, string> = {
  'POST /auth/register': 'register',
  'POST /auth/jwt/login': 'login',
  'POST /auth/jwt/logout': 'logout',
  'GET /users/me': 'getMe',
  'PATCH /users/me': 'updateMe',
  'GET /users/{id}': 'getUser',
  'PATCH /users/{id}': 'updateUser',
  'DELETE /users/{id}': 'deleteUser',
  'POST /device/': 'createDevice',
  'GET /device/': 'listDevices',
  'GET /device/{device_id}': 'getDevice',
  'PATCH /device/{device_id}': 'updateDevice',
  'DELETE /device/{device_id}': 'deleteDevice',
  'POST /device/{device_id}/ingest-token': 'rotateIngestToken',
  'POST /data/': 'createReadings',
  'GET /data/': 'listReadings',
  'POST /data/import': 'importReadings',
  'GET /data/export': 'exportReadings',
  'GET /analyze_statistics/': 'getStatistics',
  'GET /analyze_statistics/{user_id}': 'getUserStatistics',
  'GET /analyze_statistics/series': 'getSeries',
  'GET /health': 'getHealth',
  'GET /ready': 'getReadiness',
};

onEachEngine('the OpenAPI document', (h) => {
  let document: OpenApiDocument;

  before(async () => {
    const response = await h.get('/openapi.json');
    assert.equal(response.statusCode, 200);
    document = response.json();
  });

  it('is valid OpenAPI 3.1 for swagger-parser', async () => {
    assert.equal(document.openapi, '3.1.0');
    // validate() dereferences the document it is given: a copy keeps this one as served.
    await SwaggerParser.validate(structuredClone(document) as never);
  });

  it('holds only valid JSON Schema 2020-12, as OpenAPI 3.1 requires', () => {
    const compile = schemaCompiler(document);
    const invalid: string[] = [];
    for (const [where, schema] of schemasOf(document)) {
      try {
        compile(schema);
      } catch (error) {
        invalid.push(`${where}: ${(error as Error).message}`);
      }
    }
    assert.deepEqual(invalid, []);
  });

  it('names every operation once, with a summary and declared tags', () => {
    const operations = operationsOf(document);
    assert.deepEqual(
      Object.fromEntries(operations.map((located) => [nameOf(located), located.operation.operationId])),
      OPERATION_IDS,
      'a new or renamed operation: give it an operationId and list it here',
    );
    const ids = operations.map(({ operation }) => operation.operationId);
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    const declared = new Set(document.tags.map((tag) => tag.name));
    for (const located of operations) {
      const { summary, tags = [] } = located.operation;
      assert.ok(summary?.trim(), `${nameOf(located)} has a summary`);
      assert.ok(tags.length > 0, `${nameOf(located)} has a tag`);
      for (const tag of tags) assert.ok(declared.has(tag), `${nameOf(located)}: tag ${tag} is declared`);
    }
  });

  it('references each named shape where a body or an answer holds it, rather than repeating it', () => {
    const text = JSON.stringify(document.paths);
    const unreferenced = Object.keys(document.components.schemas).filter(
      (name) => !text.includes(`"#/components/schemas/${name}"`),
    );
    assert.deepEqual(unreferenced, []);
  });

  it('shows the body of POST /data/ as a reading or an array of readings, which the API agrees with', async () => {
    const schema = document.paths['/data/']?.post?.requestBody?.content['application/json']?.schema;
    assert.deepEqual(
      (schema as { oneOf?: unknown }).oneOf,
      [
        { $ref: '#/components/schemas/ReadingCreate' },
        { type: 'array', items: { $ref: '#/components/schemas/ReadingCreate' }, maxItems: 10_000 },
      ],
      'generators read oneOf, not the if/then/else the route validates with',
    );
    const validate = schemaCompiler(document)(schema as object);
    const device = await h.createDevice();
    const reading = { device_id: device, x: 1, y: 2, z: 3 };
    const bodies = [
      reading,
      [reading, { ...reading, timestamp: '2026-11-27T08:00:00Z' }],
      { device_id: device, x: 1, y: 2 },
      [reading, { ...reading, x: 'one' }],
      { ...reading, x: true },
    ];
    for (const body of bodies) {
      const answer = await h.post('/data/', body);
      assert.equal(validate(body), answer.statusCode === 200, `${JSON.stringify(body)}: ${answer.body}`);
    }
  });

  it('lets /docs log in: the OAuth2 password flow posts the form Swagger UI sends to the login route', async () => {
    const scheme = document.components.securitySchemes.OAuth2PasswordBearer;
    assert.equal(scheme?.type, 'oauth2');
    const tokenUrl = scheme?.flows?.password?.tokenUrl as string;
    assert.ok(document.paths[tokenUrl]?.post?.requestBody?.content['application/x-www-form-urlencoded']);
    const user = await h.signUp();
    const login = await h.inject({
      method: 'POST',
      url: tokenUrl,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({
        grant_type: 'password',
        username: user.email,
        password: 'a-good-password',
      }).toString(),
    });
    assert.equal(login.statusCode, 200, login.body);
    assert.equal(login.json().token_type, 'bearer');
    const me = await h.get('/users/me', login.json().access_token);
    assert.equal(me.json().email, user.email);
  });

  it('is the document the client types are generated from, whatever the engine', async () => {
    assert.deepEqual(document, await openApiDocument());
  });
});

describe('the generated API types (web/src/api-types.ts)', () => {
  it('match the document', async () => {
    const expected = await renderApiTypes(await openApiDocument());
    const actual = readFileSync(API_TYPES_FILE, 'utf8');
    assert.ok(
      actual === expected,
      `web/src/api-types.ts is stale: run \`${REGENERATE_COMMAND}\` and commit the result`,
    );
  });
});
