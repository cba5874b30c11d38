/**
 * How the text of a query, path or header value is read as a number: pydantic v2's rule (pydantic-core's
 * `str_as_int` and `str_as_float`), not JavaScript's Number(), which ajv's coercion uses and which also
 * takes hex (`0x10`), binary (`0b1`), octal (`0o7`), `Infinity`, and `1e1` for an integer.
 * - an integer: decimal digits with an optional sign, single underscores between digits (`1_000`), and
 *   an optional fraction of zeros (`16.0`);
 * - a number: the same, with any fraction and an optional exponent (`1.5`, `.5`, `2.`, `1e-3`);
 * - either may be surrounded by whitespace. `inf` and `nan`, which pydantic reads as floats, are refused
 *   like every other non-finite value here.
 */
const DIGITS = String.raw`\d+(?:_\d+)*`;
const INTEGER = new RegExp(`^[+-]?${DIGITS}(?:\\.0+)?$`);
const NUMBER = new RegExp(`^[+-]?(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?${DIGITS})?$`);

export type NumericType = 'integer' | 'number';

/**
 * The value the text stands for, or undefined if the text is not a `type` by the rule above. The value
 * may be ±Infinity: a text of that form beyond the range of a double.
 */
export function readNumberText(text: string, type: NumericType): number | undefined {
  const trimmed = text.trim();
  if (!(type === 'integer' ? INTEGER : NUMBER).test(trimmed)) return undefined;
  return Number(trimmed.replaceAll('_', ''));
}
