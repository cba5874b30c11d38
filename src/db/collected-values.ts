import type SQLite from 'better-sqlite3';

/** A group's values as `collect_values` gathers them, before the group ends. */
interface Collecting {
  values: Float64Array;
  length: number;
  /** An array of at least `size` entries, the query's to fill (ValueCollector's arrays). */
  allocate: (size: number) => Float64Array;
}

/** Every statistic of one value of one group, as `collect_values` answers it. */
export interface CollectedValues {
  count: number;
  min: number | null;
  max: number | null;
  /** The compensated sum, added in the scan's order as SQLite's sum() does (±Infinity past the range). */
  sum: number;
  /** The sum of squared deviations from sum / count (the two-pass variance's second pass). */
  squares: number | null;
  /** The values, in no set order: percentilesOf reorders them. */
  values: Float64Array;
}

/**
 * Exact statistics on SQLite from one copy of each value, in a heavy-query worker, in one pass over
 * the readings. `collect_values(value, expected)`, an aggregate registered on the worker's connection,
 * collects a group's values into one Float64Array of `expected` entries (the group's count, which the
 * query counts from an index first, so about 8 bytes a value) and answers a handle to them. The caller
 * takes each handle once: count, min, max, the sum and the squared deviations are computed from the
 * array as SQLite's own aggregates would (Kahan-Babuska-Neumaier sums in the scan's order), and any
 * number of percentiles come from one selection of their ranks in it (percentilesOf).
 * One JavaScript aggregate per value is the whole per-reading cost: SQLite's count, min, max, sum and
 * the squares beside it, and a first pass for the mean, cost more than collecting (measured: about
 * 0.55 s against 0.25 s per million readings on these cores), and streaming the rows out with
 * iterate() cost three times as much.
 */
export class ValueCollector {
  readonly #collected = new Map<number, Float64Array>();
  #handles = 0;
  /** The arrays handed out since the last clear(). */
  #inUse: Float64Array[] = [];
  /** The last query's arrays, by length, for this one to fill again (see clear). */
  #spare: Float64Array[] = [];

  constructor(connection: SQLite.Database) {
    const allocate = (size: number) => this.#allocate(size);
    connection.aggregate('collect_values', {
      varargs: true,
      start: (): Collecting => ({ values: NO_VALUES, length: 0, allocate }),
      // SQLite passes the value and the expected count; the typings know a single argument.
      step: collect as (collecting: Collecting, value: unknown) => Collecting,
      result: (collecting: Collecting) => {
        const handle = ++this.#handles;
        this.#collected.set(handle, collecting.values.subarray(0, collecting.length));
        return handle;
      },
    });
  }

  /** The statistics of the values behind a handle, handed over once. */
  take(handle: number): CollectedValues {
    const values = this.#collected.get(handle);
    if (!values) throw new Error(`no collected values under handle ${handle}`);
    this.#collected.delete(handle);
    return statisticsOf(values);
  }

  /**
   * Ends a query: drops what it collected and did not take (one that failed midway), and keeps its
   * arrays for the next query, which fills them again rather than allocating its own. V8 frees an
   * array's memory only when a full collection finds it dead, and let up to 64 MB of dead arrays wait
   * for one, so each thread held a query's arrays beside the last ones' (1M readings, three values:
   * 23 MB live and 23 MB dead). The arrays the next query does not need are let go when it ends.
   */
  clear(): void {
    this.#collected.clear();
    this.#spare = this.#inUse.sort((a, b) => a.length - b.length);
    this.#inUse = [];
  }

  /** The smallest spare array of at least `size` entries, or a new one of exactly `size`. */
  #allocate(size: number): Float64Array {
    const spare = this.#spare;
    let low = 0;
    let high = spare.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((spare[middle] as Float64Array).length < size) low = middle + 1;
      else high = middle;
    }
    const array = low < spare.length ? (spare.splice(low, 1)[0] as Float64Array) : new Float64Array(size);
    this.#inUse.push(array);
    return array;
  }
}

const NO_VALUES = new Float64Array(0);

/** One step of collect_values: the value appended to the group's array. */
function collect(collecting: Collecting, value: unknown, expected: unknown): Collecting {
  if (typeof value !== 'number') return collecting;
  if (collecting.length === collecting.values.length) {
    // Sized from the count at the first value; grown only if more arrive than were counted.
    const grown = collecting.allocate(Math.max(Number(expected), 2 * collecting.length, 16));
    grown.set(collecting.values.subarray(0, collecting.length));
    collecting.values = grown;
  }
  collecting.values[collecting.length++] = value;
  return collecting;
}

/** count, min, max, sum and squared deviations of values in the scan's order. */
function statisticsOf(values: Float64Array): CollectedValues {
  const count = values.length;
  if (count === 0) return { count, min: null, max: null, sum: 0, squares: null, values };
  let min = values[0] as number;
  let max = min;
  const sum = new CompensatedSum();
  for (const value of values) {
    if (value < min) min = value;
    if (value > max) max = value;
    sum.add(value);
  }
  const total = sum.total();
  const mean = total / count;
  const squares = new CompensatedSum();
  for (const value of values) {
    const deviation = value - mean;
    squares.add(deviation * deviation);
  }
  return { count, min, max, sum: total, squares: squares.total(), values };
}

/**
 * SQLite's sum() of doubles (Kahan-Babuska-Neumaier, since 3.43): the running sum and the error it
 * dropped, added at the end unless the error overflowed.
 */
class CompensatedSum {
  #sum = 0;
  #error = 0;

  add(value: number): void {
    const sum = this.#sum;
    const next = sum + value;
    this.#error += Math.abs(sum) > Math.abs(value) ? sum - next + value : value - next + sum;
    this.#sum = next;
  }

  total(): number {
    return Number.isFinite(this.#error) ? this.#sum + this.#error : this.#sum;
  }
}

/**
 * The percentiles `fractions` (0 to 1) of values, each interpolated linearly between the two nearest
 * ranks as numpy's default and both databases' percentile_cont do. The values are reordered in place
 * so that each rank needed holds the value a sort would put there (selectRanks), which costs a few
 * passes over them where a sort costs log2(n).
 */
export function percentilesOf(values: Float64Array, fractions: readonly number[]): Array<number | null> {
  const ranks = fractions.flatMap((fraction) => {
    const rank = fraction * (values.length - 1);
    return [Math.floor(rank), Math.ceil(rank)];
  });
  selectRanks(values, ranks);
  return fractions.map((fraction) => percentileOfRanked(values, fraction));
}

/**
 * The percentile `fraction` of values whose ranks around it are in place: a + (b - a) * t. Where
 * b - a overflows (values of opposite signs beyond half the double range) the same formula is
 * computed on the halved values, which is exact, and doubled. Null for no values.
 */
export function percentileOfRanked(values: Float64Array, fraction: number): number | null {
  if (values.length === 0) return null;
  const rank = fraction * (values.length - 1);
  const below = Math.floor(rank);
  const a = values[below] as number;
  const t = rank - below;
  if (t === 0) return a;
  const b = values[below + 1] as number;
  const step = b - a;
  return Number.isFinite(step) ? a + step * t : 2 * (a / 2 + (b / 2 - a / 2) * t);
}

/** Below this many values a segment is sorted rather than partitioned. */
const SMALL_SEGMENT = 32;

/**
 * Reorders values so that each of `ranks` holds the value it would hold sorted (a multiple
 * quickselect: partition around a median of three, then only into the sides that hold a rank). A
 * segment that partitions badly for too long is sorted instead, so no input costs more than a sort.
 */
export function selectRanks(values: Float64Array, ranks: readonly number[]): void {
  const wanted = [...new Set(ranks)].filter((r) => r >= 0 && r < values.length).sort((a, b) => a - b);
  if (wanted.length === 0) return;
  const budget = 2 * Math.ceil(Math.log2(values.length + 1));
  const segments: Array<[lo: number, hi: number, first: number, last: number, depth: number]> = [
    [0, values.length - 1, 0, wanted.length - 1, 0],
  ];
  for (let segment = segments.pop(); segment; segment = segments.pop()) {
    const [lo, hi, first, last, depth] = segment;
    if (hi - lo < SMALL_SEGMENT || depth > budget) {
      values.subarray(lo, hi + 1).sort();
      continue;
    }
    const [below, above] = partition(values, lo, hi);
    // Ranks in (below, above) hold the pivot's value already.
    let split = first;
    while (split <= last && (wanted[split] as number) <= below) split++;
    let after = split;
    while (after <= last && (wanted[after] as number) < above) after++;
    if (split > first) segments.push([lo, below, first, split - 1, depth + 1]);
    if (after <= last) segments.push([above, hi, after, last, depth + 1]);
  }
}

/**
 * Hoare's partition of values[lo..hi] around the median of its first, middle and last values:
 * answers [j, i] with every value up to j at most the pivot, every value from i on at least it, and
 * the pivot's value between them.
 */
function partition(values: Float64Array, lo: number, hi: number): [number, number] {
  const first = values[lo] as number;
  const middle = values[(lo + hi) >>> 1] as number;
  const last = values[hi] as number;
  const pivot = Math.max(Math.min(first, middle), Math.min(Math.max(first, middle), last));
  let i = lo;
  let j = hi;
  while (i <= j) {
    while ((values[i] as number) < pivot) i++;
    while ((values[j] as number) > pivot) j--;
    if (i <= j) {
      const swap = values[i] as number;
      values[i] = values[j] as number;
      values[j] = swap;
      i++;
      j--;
    }
  }
  return [j, i];
}
