import { Type } from '@sinclair/typebox';
import type { EpochMs } from '../db/tables.js';
import { invalidQuery } from './errors.js';

export const DateQuery = (description: string) =>
  Type.String({
    description: `${description}. ISO 8601 (a time without a zone is UTC), a date (midnight UTC), or Unix seconds.`,
    examples: ['2026-11-27T08:00:00Z', '2026-11-27 08:00:00+03:00', '2026-11-27', '1795766400'],
    maxLength: 64,
  });

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Reads a query date as an exact instant in epoch milliseconds. `bound` decides how a sub-millisecond
 * fraction rounds, so an inclusive range never takes a stored reading that lies outside it.
 */
export function parseDateQuery(field: string, text: string, bound: 'start' | 'end'): EpochMs {
  const round = bound === 'start' ? Math.ceil : Math.floor;
  if (/^\d{1,12}(\.\d+)?$/.test(text)) return round(Number(text) * 1000);
  const match = ISO.exec(text.trim());
  if (!match) throw invalidQuery(field, 'invalid datetime format', 'value_error.datetime');
  const [, year, month, day, hour = '0', minute = '0', second = '0', fraction = '', zone = 'Z'] = match;
  const utc = wallClockMs([year, month, day, hour, minute, second].map(Number) as WallClock);
  if (utc === undefined) throw invalidQuery(field, 'invalid datetime format', 'value_error.datetime');
  const fractionMs = fraction === '' ? 0 : Number(`0.${fraction}`) * 1000;
  return round(utc + fractionMs) - zoneOffsetMs(zone);
}

/** Year, month (1-12), day, hour, minute, second of a clock. */
export type WallClock = [number, number, number, number, number, number];

/** A wall-clock time read as if it were UTC, or undefined when no such time exists (February 30th, 25:00). */
export function wallClockMs([year, month, day, hour, minute, second]: WallClock, milliseconds = 0) {
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, milliseconds);
  const check = new Date(utc);
  if (
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  )
    return undefined;
  return utc;
}

function zoneOffsetMs(zone: string): number {
  if (zone.toUpperCase() === 'Z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0)) * 60_000;
}

/** The query's date range, checked so that the start never lies after the end. */
export function parseDateRange(query: { start_date?: string; end_date?: string }) {
  const start =
    query.start_date === undefined ? undefined : parseDateQuery('start_date', query.start_date, 'start');
  const end = query.end_date === undefined ? undefined : parseDateQuery('end_date', query.end_date, 'end');
  if (start !== undefined && end !== undefined && start > end) {
    throw invalidQuery('start_date', 'start_date must not be after end_date', 'value_error.date_range');
  }
  return { start, end };
}

/** The largest distance from the epoch a Date holds, either way. */
const MAX_DATE_MS = 8.64e15;

/** The second last formatted, and its text up to the milliseconds ("2026-12-01T23:38:07."). */
let formattedSecond = Number.NaN;
let secondPrefix = '';

/**
 * `new Date(ms).toISOString()`, the same text for every instant: answers stored in the same second
 * share all but their milliseconds, so only those are formatted per call (a Date and its formatting
 * were 0.7 us of a single reading's request in bench/ingest-profile.md; this is a twentieth of it).
 */
export function toIsoString(ms: EpochMs): string {
  const whole = Math.trunc(ms); // as Date takes it
  // NaN and instants out of Date's range: its RangeError.
  if (!(Math.abs(whole) <= MAX_DATE_MS)) return new Date(ms).toISOString();
  const second = Math.floor(whole / 1000);
  if (second !== formattedSecond) {
    secondPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    formattedSecond = second;
  }
  const milli = whole - second * 1000;
  return `${secondPrefix}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}
