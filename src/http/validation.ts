import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import type { ValidationIssue } from './errors.js';
import { type NumericType, readNumberText } from './number-text.js';

const shared: Options = { allErrors: true, useDefaults: true, strict: false, strictNumbers: true };

// A JSON body keeps its types: "1.5" or true where a number belongs is an error, not a silent guess.
const bodyAjv = addFormats.default(new Ajv({ ...shared, coerceTypes: false }));
// Query strings and paths are text by nature, so they are read as the declared types.
const textAjv = addFormats.default(new Ajv({ ...shared, coerceTypes: 'array' }));

/** A validator with the same rules as a JSON body, for values that arrive another way (import lines). */
export const compileBodyValidator = <T>(schema: object) => bodyAjv.compile<T>(schema);

export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) =>
  httpPart === 'body' ? bodyAjv.compile(schema) : withNumberText(schema, textAjv.compile(schema));

/**
 * ajv would coerce a query, path or header value with Number(): `0x10` passes as 16, `1e1` as an integer,
 * `1e400` as Infinity past every numeric keyword. The fields declared integer or number are read here
 * first, by one rule (number-text.ts); ajv then checks numbers, and a text the rule refuses is reported
 * as the type error it is, whatever ajv made of it.
 */
function withNumberText(schema: object, validate: ValidateFunction): ValidateFunction {
  const numeric = numericFields(schema);
  if (numeric.size === 0) return validate;
  const order = Object.keys((schema as { properties?: object }).properties ?? {});
  const checked = ((data: unknown) => {
    const refused: ErrorObject[] = [];
    if (data !== null && typeof data === 'object') {
      const fields = data as Record<string, unknown>;
      for (const [key, type] of numeric) {
        const text = fields[key];
        if (typeof text !== 'string') continue;
        const value = readNumberText(text, type);
        if (value === undefined) refused.push(refusal(key, 'type', { type }));
        else if (!Number.isFinite(value)) refused.push(refusal(key, 'finite', {}));
        else fields[key] = value;
      }
    }
    const valid = validate(data);
    const refusedPaths = new Set(refused.map((error) => error.instancePath));
    const errors = [...refused, ...(validate.errors ?? []).filter((e) => !refusedPaths.has(e.instancePath))];
    // In the order of the declared fields, as ajv reports them (a missing field: at its own place).
    const place = (error: ErrorObject) =>
      order.indexOf(String(error.params.missingProperty ?? error.instancePath.slice(1)));
    checked.errors = errors.length === 0 ? null : errors.sort((a, b) => place(a) - place(b));
    return valid && refused.length === 0;
  }) as ValidateFunction;
  return checked;
}

/** The top-level fields declared integer or number: query, path and header values are flat. */
function numericFields(schema: object): Map<string, NumericType> {
  const fields = new Map<string, NumericType>();
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  for (const [key, field] of Object.entries(properties)) {
    if (field.type === 'integer' || field.type === 'number') fields.set(key, field.type);
  }
  return fields;
}

const refusal = (key: string, keyword: string, params: Record<string, unknown>): ErrorObject => ({
  instancePath: `/${key}`,
  schemaPath: '',
  keyword,
  params,
});

const sourceByPart: Record<string, string> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'header',
};

const typeNames: Record<string, string> = {
  number: 'float',
  integer: 'integer',
  string: 'str',
  boolean: 'bool',
  object: 'dict',
  array: 'list',
};

/** Translates ajv's errors into FastAPI's 422 items, whose `loc` ends with the field's name. */
export function toValidationIssues(
  errors: Partial<ErrorObject>[],
  httpPart: string,
  body: unknown,
): ValidationIssue[] {
  const source = sourceByPart[httpPart] ?? httpPart;
  if (source === 'body' && body === undefined) {
    return [{ loc: ['body'], msg: 'field required', type: 'value_error.missing' }];
  }
  const byPath = new Map<string | undefined, Partial<ErrorObject>[]>();
  for (const error of errors) {
    const samePath = byPath.get(error.instancePath);
    if (samePath) samePath.push(error);
    else byPath.set(error.instancePath, [error]);
  }
  return dedupe(
    errors
      .filter((error) => !isBranchNoise(error, byPath.get(error.instancePath) ?? []))
      .map((error) => toIssue(error, source, body)),
  );
}

function toIssue(error: Partial<ErrorObject>, source: string, body: unknown): ValidationIssue {
  const path = (error.instancePath ?? '')
    .split('/')
    .slice(1)
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part.replace(/~1/g, '/').replace(/~0/g, '~')));
  const loc: (string | number)[] = [source, ...path];
  const params = (error.params ?? {}) as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return {
        loc: [...loc, String(params.missingProperty)],
        msg: 'field required',
        type: 'value_error.missing',
      };
    case 'type': {
      const value = source === 'body' ? valueAt(body, path) : undefined;
      if (value === null)
        return { loc, msg: 'none is not an allowed value', type: 'type_error.none.not_allowed' };
      // JSON.parse reads 1e400 as Infinity: say so, rather than "not a number".
      if (typeof value === 'number' && !Number.isFinite(value)) return notFinite(loc);
      const expected = String(params.type).split(',')[0] ?? 'value';
      const name = typeNames[expected] ?? expected;
      return { loc, msg: `value is not a valid ${name}`, type: `type_error.${name}` };
    }
    case 'finite':
      return notFinite(loc);
    case 'maxLength':
      return limit(
        loc,
        `ensure this value has at most ${params.limit} characters`,
        'value_error.any_str.max_length',
        params.limit,
      );
    case 'minLength':
      return limit(
        loc,
        `ensure this value has at least ${params.limit} characters`,
        'value_error.any_str.min_length',
        params.limit,
      );
    case 'maxItems':
      return limit(
        loc,
        `ensure this value has at most ${params.limit} items`,
        'value_error.list.max_items',
        params.limit,
      );
    case 'minimum':
      return limit(
        loc,
        `ensure this value is greater than or equal to ${params.limit}`,
        'value_error.number.not_ge',
        params.limit,
      );
    case 'maximum':
      return limit(
        loc,
        `ensure this value is less than or equal to ${params.limit}`,
        'value_error.number.not_le',
        params.limit,
      );
    case 'enum':
      return {
        loc,
        msg: `unexpected value; permitted: ${(params.allowedValues as unknown[]).map((v) => `'${v}'`).join(', ')}`,
        type: 'type_error.enum',
        ctx: { enum_values: params.allowedValues },
      };
    case 'format':
      return params.format === 'email'
        ? { loc, msg: 'value is not a valid email address', type: 'value_error.email' }
        : { loc, msg: `value is not a valid ${params.format}`, type: `value_error.${params.format}` };
    case 'pattern':
      return {
        loc,
        msg: `string does not match regex "${params.pattern}"`,
        type: 'value_error.str.regex',
        ctx: { pattern: params.pattern },
      };
    default:
      return {
        loc,
        msg: error.message ?? 'invalid value',
        type: `value_error.${error.keyword ?? 'invalid'}`,
      };
  }
}

/**
 * Summaries of schema combinators say nothing a field's own error does not: if/then/else adds
 * "must match then schema", and a nullable field (`anyOf [string, null]`) adds "must match a schema
 * in anyOf" plus "not a null" beside the real problem. FastAPI reports only the real problem.
 */
function isBranchNoise(error: Partial<ErrorObject>, samePath: Partial<ErrorObject>[]): boolean {
  if (error.keyword === 'if') return true;
  const others = samePath.filter((other) => other !== error);
  if (error.keyword === 'anyOf') return others.some((other) => other.keyword !== 'anyOf');
  const nullBranch =
    error.keyword === 'type' && (error.params as { type?: unknown } | undefined)?.type === 'null';
  return nullBranch && others.some((other) => other.keyword !== 'anyOf');
}

function notFinite(loc: (string | number)[]): ValidationIssue {
  return { loc, msg: 'number is beyond the range of a double', type: 'value_error.number.not_finite' };
}

function limit(loc: (string | number)[], msg: string, type: string, limitValue: unknown): ValidationIssue {
  return { loc, msg, type, ctx: { limit_value: limitValue } };
}

function valueAt(value: unknown, path: (string | number)[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

function dedupe(issues: ValidationIssue[]): ValidationIssue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = `${issue.loc.join('\u0000')}|${issue.type}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
