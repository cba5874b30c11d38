import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { readNumberText } from '../../src/http/number-text.js';

it('reads every finite double and safe integer as JavaScript writes it, as Number() does', () => {
  fc.assert(
    fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (value) => {
      // String(-0) is '0', so the comparison is with what Number() reads.
      assert.equal(readNumberText(String(value), 'number'), Number(String(value)));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.maxSafeInteger(), (value) => {
      assert.equal(readNumberText(String(value), 'integer'), value);
    }),
    { numRuns: 2000 },
  );
});

it('takes the forms pydantic takes for a float, and refuses hex, binary, octal and words', () => {
  const accepted: [string, number][] = [
    ['1.5', 1.5],
    [' -1.5 ', -1.5],
    ['+.5', 0.5],
    ['2.', 2],
    ['1e3', 1000],
    ['1E-3', 0.001],
    ['1_000.000_1', 1000.0001],
    ['1e400', Number.POSITIVE_INFINITY],
  ];
  for (const [text, value] of accepted) assert.equal(readNumberText(text, 'number'), value, text);
  for (const text of [
    '0x10',
    '0b1',
    '0o7',
    'Infinity',
    'inf',
    'nan',
    '.',
    'e3',
    '1e',
    '1.5.2',
    '1__0',
    '_1',
    '',
  ]) {
    assert.equal(readNumberText(text, 'number'), undefined, text);
  }
});

it('takes the forms pydantic takes for an integer: no exponent, no fraction but zeros', () => {
  const accepted: [string, number][] = [
    ['16', 16],
    ['\t16\n', 16],
    ['-016', -16],
    ['+1_000', 1000],
    ['16.00', 16],
  ];
  for (const [text, value] of accepted) assert.equal(readNumberText(text, 'integer'), value, text);
  for (const text of ['0x10', '1e1', '1e309', '16.5', '16.', '.0', '1_', '+-1', '- 1', 'Infinity', '']) {
    assert.equal(readNumberText(text, 'integer'), undefined, text);
  }
});
