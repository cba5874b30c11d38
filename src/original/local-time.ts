import { Temporal } from 'temporal-polyfill';
import type { EpochMs } from '../db/tables.js';
import { type WallClock, wallClockMs } from '../http/dates.js';

/**
 * How a wall-clock time of the source zone became an instant: `exact`; `ambiguous` (it happened
 * twice, when the clocks went back: the earlier instant is taken); `nonexistent` (it fell in the gap
 * when the clocks went forward: it is moved forward by the gap, so 02:30 on a spring-forward night in
 * Europe/Berlin becomes 03:30 CEST). This is Temporal's (and java.time's) `compatible` rule.
 */
export type TimeResolution = 'exact' | 'ambiguous' | 'nonexistent';

export interface ResolvedTime {
  at: EpochMs;
  resolution: TimeResolution;
}

/** The original's `create_date`: `YYYY-MM-DD HH:MM:SS[.ffffff]`, naive server-local time. */
const NAIVE = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;
const DAY_MS = 86_400_000;

/**
 * Turns naive local times of one IANA zone into UTC epoch milliseconds (the microseconds are cut to
 * milliseconds, the precision stored here). Temporal (its polyfill) decides every time near an
 * offset change; a day whose neighbourhood (two days either side) has none uses one offset for all
 * its times, which keeps a million conversions to a few hundred Temporal calls.
 */
export class LocalTimes {
  readonly #zone: string;
  readonly #dayOffsets = new Map<string, number | null>();

  /** Throws a RangeError for a zone Temporal does not know. */
  constructor(zone: string) {
    this.#zone = Temporal.Now.zonedDateTimeISO(zone).timeZoneId;
  }

  get zone(): string {
    return this.#zone;
  }

  /** The instant, or undefined when `text` is not a naive date and time. */
  toUtc(text: string): ResolvedTime | undefined {
    const match = NAIVE.exec(text);
    if (!match) return undefined;
    const clock = match.slice(1, 7).map(Number) as WallClock;
    const micros = Number((match[7] ?? '').padEnd(6, '0'));
    const asUtc = wallClockMs(clock, Math.floor(micros / 1000));
    if (asUtc === undefined) return undefined;
    const offset = this.#steadyOffset(asUtc - (asUtc % DAY_MS), `${match[1]}-${match[2]}-${match[3]}`);
    if (offset !== null) return { at: asUtc - offset, resolution: 'exact' };
    const [year, month, day, hour, minute, second] = clock;
    const local = Temporal.PlainDateTime.from({
      year,
      month,
      day,
      hour,
      minute,
      second,
      millisecond: Math.floor(micros / 1000),
      microsecond: micros % 1000,
    });
    const earlier = local.toZonedDateTime(this.#zone, { disambiguation: 'earlier' });
    const later = local.toZonedDateTime(this.#zone, { disambiguation: 'later' });
    if (earlier.epochMilliseconds === later.epochMilliseconds)
      return { at: earlier.epochMilliseconds, resolution: 'exact' };
    if (earlier.toPlainDateTime().equals(local))
      return { at: earlier.epochMilliseconds, resolution: 'ambiguous' };
    return { at: later.epochMilliseconds, resolution: 'nonexistent' };
  }

  /** The zone's offset all through the local day starting at `midnight` (as if UTC), or null near a change. */
  #steadyOffset(midnight: number, key: string): number | null {
    let offset = this.#dayOffsets.get(key);
    if (offset === undefined) {
      const from = Temporal.Instant.fromEpochMilliseconds(midnight - 2 * DAY_MS).toZonedDateTimeISO(
        this.#zone,
      );
      const change = from.getTimeZoneTransition('next');
      offset =
        change === null || change.epochMilliseconds > midnight + 3 * DAY_MS
          ? from.offsetNanoseconds / 1e6
          : null;
      this.#dayOffsets.set(key, offset);
    }
    return offset;
  }
}
