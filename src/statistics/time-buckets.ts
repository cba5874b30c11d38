import { LRUCache } from 'lru-cache';
import type { EpochMs } from '../db/tables.js';

/** A bucket width: N minutes or hours (fixed length), or N days or weeks (the zone's calendar). */
export interface BucketSize {
  count: number;
  unit: 'm' | 'h' | 'd' | 'w';
}

const FIXED_MS = { m: 60_000, h: 3_600_000 } as const;
const DAY_MS = 86_400_000;

export function parseBucket(text: string): BucketSize | undefined {
  const match = /^(\d{1,4})([mhdw])$/.exec(text);
  if (!match || Number(match[1]) === 0) return undefined;
  return { count: Number(match[1]), unit: match[2] as BucketSize['unit'] };
}

/**
 * The zone's canonical IANA name (`europe/BERLIN` -> `Europe/Berlin`), or undefined for no zone.
 * Zone names match case-insensitively: the rest of the work, and the formatter cache, use this name.
 */
export function canonicalTimeZone(zone: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/**
 * A formatter per canonical zone name: building one costs ~30 µs, and a series asks for an offset per
 * bucket. Bounded (there are some 600 IANA zones), so no client text can grow it without end: keyed by
 * the raw text, 300 case variants of one zone cost 8.9 MB that never came back.
 */
export const zoneFormatters = new LRUCache<string, Intl.DateTimeFormat>({ max: 1000 });

/** The zone's offset from UTC at an instant, in milliseconds (positive east of Greenwich). */
export function zoneOffsetMs(zone: string, at: EpochMs): number {
  let format = zoneFormatters.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    // Cached only under the canonical name; other spellings build a formatter each time, unkept.
    if (format.resolvedOptions().timeZone === zone) zoneFormatters.set(zone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(at).map((part) => [part.type, Number(part.value)]));
  const wall = Date.UTC(
    parts.year ?? 1970,
    (parts.month ?? 1) - 1,
    parts.day,
    parts.hour,
    parts.minute,
    parts.second,
  );
  return wall - (at - (((at % 1000) + 1000) % 1000));
}

/** The instant at which the zone's clock shows `wall` (a wall-clock time written as UTC milliseconds). */
function instantOfWallTime(zone: string, wall: EpochMs): EpochMs {
  const guess = wall - zoneOffsetMs(zone, wall);
  const instant = wall - zoneOffsetMs(zone, guess);
  // In a spring-forward gap the wall time does not exist; the first instant after the gap is used.
  return zoneOffsetMs(zone, instant) === zoneOffsetMs(zone, guess) ? instant : guess;
}

/**
 * The bucket starts covering [start, end], aligned in `zone`: minute and hour buckets are fixed
 * lengths aligned to the zone's clock; day and week buckets (weeks start on Monday) begin at the
 * zone's midnight, so a daylight-saving day lasts 23 or 25 hours. Returns one more boundary than
 * buckets (the end of the last), or undefined when there would be more than `limit` buckets.
 */
export function bucketBoundaries(
  size: BucketSize,
  zone: string,
  start: EpochMs,
  end: EpochMs,
  limit: number,
): EpochMs[] | undefined {
  const boundaries: EpochMs[] = [];
  if (size.unit === 'm' || size.unit === 'h') {
    const width = size.count * FIXED_MS[size.unit];
    if ((end - start) / width > limit + 1) return undefined;
    const offset = zoneOffsetMs(zone, start);
    let boundary = Math.floor((start + offset) / width) * width - offset;
    if (boundary > start) boundary -= width;
    while (boundary <= end) {
      boundaries.push(boundary);
      boundary += width;
      if (boundaries.length > limit) return undefined;
    }
    boundaries.push(boundary);
    return boundaries;
  }
  const days = size.unit === 'd' ? size.count : size.count * 7;
  if ((end - start) / (days * DAY_MS) > limit + 1) return undefined;
  const startWall = start + zoneOffsetMs(zone, start);
  let dayNumber = Math.floor(startWall / DAY_MS);
  if (size.unit === 'w') dayNumber -= (new Date(dayNumber * DAY_MS).getUTCDay() + 6) % 7; // back to Monday
  for (;;) {
    const boundary = instantOfWallTime(zone, dayNumber * DAY_MS);
    boundaries.push(boundary);
    if (boundary > end) return boundaries.length - 1 > limit ? undefined : boundaries;
    if (boundaries.length > limit + 1) return undefined;
    dayNumber += days;
  }
}

/**
 * ISO 8601 with the zone's offset at that instant: `2026-03-29T00:00:00+01:00`. RFC 3339 offsets are
 * whole minutes: an offset with seconds (local mean time, before 1900: Brussels +00:17:30) is rounded,
 * and the wall clock moved with it, so that the string still names the exact instant.
 */
export function formatInZone(zone: string, at: EpochMs): string {
  const offset = Math.round(zoneOffsetMs(zone, at) / 60_000) * 60_000;
  const wall = new Date(at + offset).toISOString().slice(0, 19);
  const sign = offset < 0 ? '-' : '+';
  const minutes = Math.abs(offset) / 60_000;
  const hh = String(Math.floor(minutes / 60)).padStart(2, '0');
  const mm = String(minutes % 60).padStart(2, '0');
  return `${wall}${sign}${hh}:${mm}`;
}
