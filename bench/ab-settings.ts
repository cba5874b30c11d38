/** Settings the A/B benches (ab.ts, heavy-ab.ts) read from their environment. */

/** A whole number >= 1 from the environment variable `name`, or `fallback` when it is unset or empty. */
export function wholeSetting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${name} must be a whole number >= 1, not "${raw}"`);
  return value;
}

/** Server settings given as `NAME=value,NAME=value` (BENCH_AB_ENV and the like); pairs without `=` are skipped. */
export function serverSettings(text: string | undefined): Record<string, string> {
  return Object.fromEntries(
    (text ?? '')
      .split(',')
      .filter((pair) => pair.includes('='))
      .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
  );
}
