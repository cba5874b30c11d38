import { DDSketch } from '@datadog/sketches-js';

/**
 * The quantile sketch of the hour, day and month rollups: a DDSketch (`@datadog/sketches-js`) with a
 * guaranteed relative error: the value it answers for a reading's rank is within RELATIVE_ACCURACY of
 * that reading (sketchQuantile interpolates between two ranks as the exact path does); zero and
 * negative values are kept exactly as such.
 */
export const RELATIVE_ACCURACY = 0.01;

export function newSketch(): DDSketch {
  return new DDSketch({ relativeAccuracy: RELATIVE_ACCURACY });
}

/**
 * The sketch in a compact binary form: the zero count, then each store (positive, then negative) as
 * its non-empty bins only, each a key delta and a count in LEB128 varints (the first key zigzagged).
 * The library's own `toProto` writes every bin between the lowest and highest key as a double (about
 * 6 KB for 1,500 readings spread over three decades where this takes a few hundred bytes) and decodes
 * through protobufjs, about 10x slower; merging decodes hundreds of these per approximate answer.
 */
export function encodeSketch(sketch: DDSketch): Uint8Array {
  const bytes: number[] = [];
  writeVarint(bytes, sketch.zeroCount);
  for (const store of [sketch.store, sketch.negativeStore]) {
    const bins: Array<[number, number]> = [];
    for (let key = store.minKey; key <= store.maxKey; key++) {
      const count = store.bins[key - store.offset] ?? 0;
      if (count > 0) bins.push([key, count]);
    }
    writeVarint(bytes, bins.length);
    let previous = 0;
    bins.forEach(([key, count], i) => {
      writeVarint(bytes, i === 0 ? zigzag(key) : key - previous);
      writeVarint(bytes, count);
      previous = key;
    });
  }
  return Uint8Array.from(bytes);
}

/** Adds an encoded sketch's bins into `into` (the library's own merge drops the negative values). */
export function addEncodedSketch(into: DDSketch, encoded: Uint8Array): void {
  const reader = { bytes: encoded, at: 0 };
  const zeros = readVarint(reader);
  into.zeroCount += zeros;
  let total = zeros;
  for (const store of [into.store, into.negativeStore]) {
    const bins = readVarint(reader);
    let key = 0;
    for (let i = 0; i < bins; i++) {
      const step = readVarint(reader);
      key = i === 0 ? unzigzag(step) : key + step;
      const count = readVarint(reader);
      store.add(key, count);
      total += count;
    }
  }
  into.count += total;
}

/**
 * The percentile at `fraction` (0 to 1) as the exact path answers it (numpy's default): interpolated
 * linearly between the readings of ranks floor and ceil of fraction * (count - 1), each taken from the
 * sketch. Each is within RELATIVE_ACCURACY of its reading, so the answer is within it of the exact
 * percentile (of the larger of the two readings in magnitude when their signs differ). Kept within the
 * exact min and max the rollups also hold.
 */
export function sketchQuantile(sketch: DDSketch, fraction: number, min: number, max: number): number | null {
  const { count } = sketch;
  if (count === 0) return null;
  const rank = fraction * (count - 1);
  const lower = Math.floor(rank);
  const below = valueOfRank(sketch, lower);
  const value = rank === lower ? below : below + (valueOfRank(sketch, lower + 1) - below) * (rank - lower);
  return Math.min(max, Math.max(min, value));
}

/**
 * The sketch's value for the reading of rank `rank` (0 = the smallest). The library takes a quantile
 * and ranks it as quantile * (count - 1); asking for the middle of the rank, not the rank itself,
 * keeps floating-point rounding from landing on the neighbouring one.
 */
function valueOfRank(sketch: DDSketch, rank: number): number {
  const last = sketch.count - 1;
  return sketch.getValueAtQuantile(last === 0 ? 0 : Math.min(1, (rank + 0.5) / last));
}

function zigzag(n: number): number {
  return n >= 0 ? 2 * n : -2 * n - 1;
}

function unzigzag(n: number): number {
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/** Unsigned LEB128, by arithmetic rather than bit operations so counts up to 2^53 survive. */
function writeVarint(bytes: number[], value: number): void {
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) + 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
}

function readVarint(reader: { bytes: Uint8Array; at: number }): number {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = reader.bytes[reader.at++];
    if (byte === undefined) throw new Error('truncated sketch');
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return value;
    scale *= 0x80;
  }
}
