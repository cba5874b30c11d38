import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/** The parts of an OpenAPI 3.1 document the tests read. */
export interface OpenApiDocument {
  openapi: string;
  tags: { name: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: {
    schemas: Record<string, object>;
    securitySchemes: Record<string, { type: string; flows?: { password?: { tokenUrl: string } } }>;
  };
}

export interface Parameter {
  name: string;
  in: 'query' | 'path' | 'header' | 'cookie';
  required?: boolean;
  schema: object;
}

interface Media {
  schema: object;
}

export interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { content: Record<string, Media> };
  responses: Record<string, { content?: Record<string, Media> }>;
}

export interface Located {
  method: string;
  path: string;
  operation: Operation;
}

export function operationsOf(document: OpenApiDocument): Located[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
  );
}

/** `GET /device/{device_id}`: how failures name an operation. */
export const nameOf = ({ method, path }: { method: string; path: string }) => `${method} ${path}`;

/** Every schema of the document with where it sits: components, parameters, bodies and answers. */
export function schemasOf(document: OpenApiDocument): [where: string, schema: object][] {
  const found: [string, object][] = Object.entries(document.components.schemas).map(([name, schema]) => [
    `#/components/schemas/${name}`,
    schema,
  ]);
  for (const located of operationsOf(document)) {
    const { parameters = [], requestBody, responses } = located.operation;
    const at = nameOf(located);
    for (const parameter of parameters)
      found.push([`${at} ${parameter.in} ${parameter.name}`, parameter.schema]);
    for (const [type, media] of Object.entries(requestBody?.content ?? {})) {
      found.push([`${at} body ${type}`, media.schema]);
    }
    for (const [status, response] of Object.entries(responses)) {
      for (const [type, media] of Object.entries(response.content ?? {})) {
        found.push([`${at} ${status} ${type}`, media.schema]);
      }
    }
  }
  return found;
}

/**
 * Compiles the document's schemas as JSON Schema 2020-12 (what OpenAPI 3.1 says they are), in strict
 * mode, so an unknown keyword or a wrong type is an error; `#/components/...` references resolve.
 */
export function schemaCompiler(document: OpenApiDocument): (schema: object) => ValidateFunction {
  const ajv = addFormats.default(new Ajv2020({ strict: true, allErrors: true }));
  // The OpenAPI vocabulary on top of JSON Schema, and the holder of the components.
  for (const keyword of ['components', 'example', 'discriminator', 'xml', 'externalDocs']) {
    ajv.addKeyword(keyword);
  }
  ajv.addSchema({ $id: 'openapi', components: { schemas: document.components.schemas } });
  return (schema) =>
    ajv.compile(JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/')));
}
