import swagger, { type SwaggerTransform, type SwaggerTransformObject } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';

/**
 * The scheme FastAPI Users declares (its BearerTransport is an OAuth2PasswordBearer), under the same
 * name, so code generated from the original service's document keeps its names. Its password flow
 * is what lets /docs "Authorize" log in with an e-mail and a password.
 */
const BEARER_SCHEME = 'OAuth2PasswordBearer';
const DEVICE_TOKEN_SCHEME = 'DeviceToken';

type Security = Record<string, string[]>[];
/** Route security: a bearer token is required. */
export const BEARER: Security = [{ [BEARER_SCHEME]: [] }];
/** Route security: a bearer token is accepted (and must then be valid), not needed. */
export const OPTIONAL_BEARER: Security = [{}, { [BEARER_SCHEME]: [] }];
/** Route security: the device's ingest token, which INGEST_AUTH=token requires. */
export const OPTIONAL_DEVICE_TOKEN: Security = [{}, { [DEVICE_TOKEN_SCHEME]: [] }];

const TAGS = [
  { name: 'devices', description: 'Devices that send readings' },
  { name: 'data', description: 'Readings' },
  { name: 'statistics', description: 'Statistics over readings' },
  { name: 'auth', description: 'Register, log in, log out' },
  { name: 'users', description: 'Accounts' },
  { name: 'health', description: 'Liveness and database health' },
];

/**
 * The OpenAPI 3.1 document at /openapi.json (its schemas are JSON Schema 2020-12, as TypeBox emits
 * them) and Swagger UI at /docs. `components` are the shapes that get a name in the document, and so
 * in generated clients: each is referenced wherever a route's body or answer is that shape.
 */
export async function registerOpenApi(app: FastifyInstance, components: TSchema[]): Promise<void> {
  for (const schema of components) app.addSchema(schema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Statistics',
        version: '0.1.0',
        description:
          'Readings from devices, and statistics over them. Accounts follow FastAPI Users: log in at ' +
          '`POST /auth/jwt/login` and send the token as `Authorization: Bearer ...`.',
      },
      components: {
        securitySchemes: {
          [BEARER_SCHEME]: {
            type: 'oauth2',
            description: 'A token from POST /auth/jwt/login (e-mail as the username), sent as a Bearer token',
            flows: { password: { tokenUrl: '/auth/jwt/login', scopes: {} } },
          },
          [DEVICE_TOKEN_SCHEME]: {
            type: 'apiKey',
            in: 'header',
            name: 'X-Device-Token',
            description:
              "A device's ingest token: needed to send readings when the server runs with INGEST_AUTH=token",
          },
        },
      },
      tags: TAGS,
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    transform: referenceComponents(new Set(components.map((schema) => String(schema.$id)))),
    transformObject: defaultedParametersOptional,
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // A token from "Authorize" survives a reload of the page.
    uiConfig: { persistAuthorization: true },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

const shownAs = new WeakMap<object, TSchema>();

/**
 * `schema` as the route validates with it, shown in the document as `shown`: for a schema written
 * for ajv's error messages in a way client generators do not read (if/then/else).
 */
export function documentedAs<T extends TSchema>(schema: T, shown: TSchema): T {
  shownAs.set(schema, shown);
  return schema;
}

/**
 * Wherever a body or an answer is, or holds, a named shape, the document references its component:
 * @fastify/swagger would otherwise inline it, and generators would name it after the operation.
 */
function referenceComponents(names: Set<string>): SwaggerTransform {
  const reference = (schema: unknown): unknown => {
    if (Array.isArray(schema)) return schema.map(reference);
    if (schema === null || typeof schema !== 'object') return schema;
    const id = (schema as { $id?: unknown }).$id;
    if (typeof id === 'string' && names.has(id)) return { $ref: id };
    return Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, reference(value)]));
  };
  return ({ schema, url }) => {
    const { body, response } = schema as { body?: object; response?: object };
    return {
      url,
      schema: {
        ...schema,
        ...(body ? { body: reference(shownAs.get(body) ?? body) } : {}),
        ...(response ? { response: reference(response) } : {}),
      },
    };
  };
}

interface Parameter {
  in: string;
  required?: boolean;
  schema?: { default?: unknown };
}
type Paths = Record<string, Record<string, { parameters?: Parameter[] } | undefined>>;

/**
 * A query parameter with a default need not be sent, though the route's schema lists it as required
 * (so the handler always gets a value): the document says it is optional, as FastAPI's does.
 */
const defaultedParametersOptional: SwaggerTransformObject = (document) => {
  const { openapiObject } = document as { openapiObject: { paths?: Paths } };
  for (const pathItem of Object.values(openapiObject.paths ?? {})) {
    for (const operation of Object.values(pathItem)) {
      for (const parameter of operation?.parameters ?? []) {
        if (parameter.in !== 'path' && parameter.schema?.default !== undefined) parameter.required = false;
      }
    }
  }
  return openapiObject as ReturnType<SwaggerTransformObject>;
};
