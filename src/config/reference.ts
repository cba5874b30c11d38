import type { TSchema } from '@sinclair/typebox';
import { settings } from './settings.js';

/** docs/configuration.md, written from the settings' schemas (`npm run docs:config`). */
export function configurationReference(): string {
  const rows = Object.entries(settings).map(
    ([name, schema]: [string, TSchema]) =>
      `| \`${name}\` | ${typeOf(schema)} | ${defaultOf(schema)} | ${schema.description} |`,
  );
  return [
    '# Configuration',
    '',
    '<!-- Generated from src/config/settings.ts by `npm run docs:config`; a test fails when it is stale. -->',
    '',
    'Every setting comes from an environment variable, checked at start: a bad value stops the service',
    '(and every `statistics` command) with a message naming the variable, and exit code 3. A `.env` file',
    'in the working directory is read too (`NAME=value` lines); a variable set in the environment wins',
    'over the same one in the file. An empty value counts as unset.',
    '',
    '| variable | type | default | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

function typeOf(schema: TSchema): string {
  if (schema.type === 'integer') return `whole number, ${schema.minimum} to ${schema.maximum}`;
  if (schema.type === 'boolean') return '`true` or `false` (`1`, `0`)';
  if (schema.type === 'array') return schema['x-format'] ?? 'comma-separated list';
  if (Array.isArray(schema.anyOf)) {
    return `one of ${schema.anyOf.map((choice: TSchema) => `\`${choice.const}\``).join(', ')}`;
  }
  return schema['x-format'] ?? 'text';
}

function defaultOf(schema: TSchema): string {
  if (schema['x-default']) return schema['x-default'];
  if (Array.isArray(schema.default)) return schema.default.length === 0 ? 'none' : schema.default.join(',');
  return `\`${schema.default}\``;
}
