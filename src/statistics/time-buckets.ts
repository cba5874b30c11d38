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

export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The zone's offset from UTC at an instant, in milliseconds (positive east of Greenwich). */
export function zoneOffsetMs(zone: string, at: EpochMs): number {
  let format = formatters.get(zone);
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
    formatters.set(zone, format);
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
