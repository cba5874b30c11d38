import type { Readable } from 'node:stream';

export interface Line {
  number: number;
  text: string;
  /** The line was longer than the limit; `text` holds only its start. */
  tooLong: boolean;
}

/**
 * Splits a byte stream into lines in constant memory: a line longer than `maxLength` is cut short
 * and flagged rather than buffered whole, so one giant line cannot exhaust memory.
 */
export async function* readLines(stream: Readable, maxLength: number): AsyncGenerator<Line> {
  let buffer = '';
  let number = 0;
  let overflowing = false;
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of stream) {
    buffer += decoder.decode(chunk as Buffer, { stream: true });
    let newline = buffer.indexOf('\n');
    while (newline !== -1) {
      number++;
      yield {
        number,
        text: stripCarriageReturn(buffer.slice(0, Math.min(newline, maxLength))),
        tooLong: overflowing || newline > maxLength,
      };
      overflowing = false;
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf('\n');
    }
    if (buffer.length > maxLength) {
      buffer = buffer.slice(0, maxLength);
      overflowing = true;
    }
  }
  buffer += decoder.decode();
  if (buffer.length > 0 || overflowing) {
    yield { number: number + 1, text: stripCarriageReturn(buffer), tooLong: overflowing };
  }
}

const stripCarriageReturn = (text: string) => (text.endsWith('\r') ? text.slice(0, -1) : text);
