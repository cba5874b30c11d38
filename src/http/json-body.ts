import type { FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';
import { RequestValidationError, unsupportedMediaType } from './errors.js';
import { jsonErrorOffset } from './json-error-offset.js';

/**
 * JSON bodies as FastAPI reads them: a missing Content-Type is JSON too, and malformed JSON is a 422
 * that points at the offending character. `__proto__` and `constructor` keys are dropped.
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  app.removeContentTypeParser(['application/json']);
  // Fastify matches a RegExp against the whole header, parameters (`; charset=utf-8`) included.
  for (const contentType of ['application/json', /^application\/[\w.+-]+\+json\s*(;.*)?$/i]) {
    app.addContentTypeParser(contentType, { parseAs: 'string' }, (_request, body, done) => {
      parseJson(String(body), done);
    });
  }
  // Fastify hands a body without Content-Type to the catch-all parser; any other type stays a 415.
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    if (request.headers['content-type'] === undefined) return parseJson(String(body), done);
    done(unsupportedMediaType(request.headers['content-type']), undefined);
  });
}

function parseJson(text: string, done: (error: Error | null, body?: unknown) => void): void {
  if (text.trim() === '') {
    done(null, undefined);
    return;
  }
  try {
    done(null, secureJson.parse(text, undefined, { protoAction: 'remove', constructorAction: 'remove' }));
  } catch (error) {
    done(malformedJson(error as Error, text), undefined);
  }
}

function malformedJson(error: Error, text: string): RequestValidationError {
  const position = jsonErrorOffset(text);
  return new RequestValidationError([
    {
      loc: ['body', position],
      msg: error.message,
      type: 'value_error.jsondecode',
      ctx: { pos: position },
    },
  ]);
}
