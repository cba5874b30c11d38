import { randomInt } from 'node:crypto';

/**
 * The seed of this run's properties: FUZZ_SEED=<n> replays a run, otherwise every run draws a new
 * one (so that each run explores other inputs). Each property prints it.
 */
export const FUZZ_SEED =
  process.env.FUZZ_SEED === undefined ? randomInt(2 ** 31) : Number(process.env.FUZZ_SEED);

/** FUZZ_RUNS=<n> overrides every property's number of runs. */
export const FUZZ_RUNS = process.env.FUZZ_RUNS === undefined ? undefined : Number(process.env.FUZZ_RUNS);

/** A property stopped by its time limit must still have run this share of its runs. */
const MINIMUM_SHARE = 0.5;

/**
 * Why the property's result is not good enough although no run failed: it was stopped by its time
 * limit before half its runs (a slow service would otherwise pass on a handful of inputs).
 */
export function tooFewRuns(
  details: { interrupted: boolean; numRuns: number },
  numRuns: number,
): string | undefined {
  const minimum = Math.ceil(numRuns * MINIMUM_SHARE);
  if (!details.interrupted || details.numRuns >= minimum) return undefined;
  return `stopped by its time limit after ${details.numRuns} runs, fewer than ${minimum} (seed ${FUZZ_SEED})`;
}
