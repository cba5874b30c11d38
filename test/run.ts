/**
 * `npm test`: the whole suite, one command, one summary.
 *
 * - The fault and fuzz files run after the others, one file at a time (`--test-concurrency=1`), so
 *   their timing limits do not depend on what else runs; the other files run side by side, at least two
 *   at a time.
 * - Every skip and todo is listed at the end with its reason. With `CI=true` each one is a failure:
 *   a suite that needs PostgreSQL, Chromium, root or the PostgreSQL binaries must run in CI.
 * - The time each file took (its process, from start to end) is listed, slowest first, to keep the
 *   suite within its budget.
 *
 * - With TEST_CITUS_URL (a Citus coordinator, e.g. postgres://postgres@127.0.0.1:9700/postgres), the
 *   files that use the shared PostgreSQL run a second time, their PostgreSQL half only, against the
 *   cluster: each fresh database is made on every node, and the migrations distribute its tables.
 *   Files that start PostgreSQL servers of their own stay out of it.
 *
 * - A file that runs longer than FILE_TIMEOUT_MS fails, and its process is stopped.
 *
 * `npm test -- test/data/data.test.ts ...` runs only the files given, with the same rules.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';
import { run } from 'node:test';
import { spec, type TestEvent } from 'node:test/reporters';

/** Files whose timing limits must not compete with other test processes. */
const ONE_AT_A_TIME = ['test/faults/', 'test/fuzz/', 'test/statistics/heavy-queries.test.ts'];
/**
 * A file still running after this long fails and its process is killed: a file whose `before` failed
 * but left a server open would otherwise wait until CI's own limit (it cost one run 20 minutes). The
 * slowest files take a few minutes on a busy machine.
 */
const FILE_TIMEOUT_MS = 15 * 60_000;
const ci = process.env.CI === 'true' || process.env.CI === '1';

function suiteFiles(): string[] {
  return readdirSync('test', { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((dir) =>
      readdirSync(join('test', dir.name))
        .filter((name) => name.endsWith('.test.ts'))
        .map((name) => join('test', dir.name, name)),
    )
    .sort();
}

interface Unrun {
  file: string;
  name: string;
  reason: string;
}

const tally = { tests: 0, suites: 0, pass: 0, fail: 0, cancelled: 0, failedSuites: 0 };
const skipped: Unrun[] = [];
const todo: Unrun[] = [];
const fileMs = new Map<string, number>();

const reporter = new spec();
reporter.pipe(process.stdout);
const diagnostic = (message: string) =>
  reporter.write({ type: 'test:diagnostic', data: { nesting: 0, message, file: undefined } });

/** Counts one event of `file`, and answers whether the reporter shows it (each run's own summary is replaced). */
function count(file: string, event: TestEvent): boolean {
  if (event.type === 'test:diagnostic') return event.data.nesting > 0 || event.data.file !== undefined;
  if (event.type !== 'test:pass' && event.type !== 'test:fail') return true;
  const { data } = event;
  const details = data.details as { type?: string; error?: { failureType?: string } };
  const reason = (value: unknown) => (typeof value === 'string' ? value : '(no reason given)');
  if (data.skip !== undefined) skipped.push({ file, name: data.name, reason: reason(data.skip) });
  else if (data.todo !== undefined) todo.push({ file, name: data.name, reason: reason(data.todo) });
  if (details.type === 'suite') {
    tally.suites++;
    if (event.type === 'test:fail') tally.failedSuites++;
    return true;
  }
  tally.tests++;
  if (data.skip !== undefined || data.todo !== undefined) return true;
  if (event.type === 'test:pass') tally.pass++;
  else if (details.error?.failureType === 'cancelledByParent') tally.cancelled++;
  else tally.fail++;
  return true;
}

/** One file in its own process; its events are shown together once it is done. */
async function runFile(file: string, pass: string): Promise<void> {
  const started = performance.now();
  const events: TestEvent[] = [];
  for await (const event of run({ files: [file], timeout: FILE_TIMEOUT_MS }) as AsyncIterable<TestEvent>)
    events.push(event);
  fileMs.set(`${pass}${file}`, performance.now() - started);
  for (const event of events) if (count(file, event)) reporter.write(event);
}

/** Runs the files, `concurrency` processes at a time. */
async function runFiles(files: string[], concurrency: number, pass = ''): Promise<void> {
  const queue = [...files];
  const worker = async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) await runFile(file, pass);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
}

/** The files, the alone ones after the others, one at a time. */
async function runSuite(files: string[], pass = ''): Promise<void> {
  // One process fewer than the cores, as `node --test` runs files, but at least two: most files wait on
  // servers, databases and browsers rather than compute (on 2 cores: 4m18s instead of 5m42s).
  await runFiles(
    files.filter((file) => !alone(file)),
    Math.max(2, availableParallelism() - 1),
    pass,
  );
  await runFiles(files.filter(alone), 1, pass);
}

/** Whether a file runs against the shared PostgreSQL (TEST_DATABASE_URL), and only that one. */
function usesSharedPostgres(file: string): boolean {
  const text = readFileSync(file, 'utf8');
  return (
    /onEachEngine|ENGINES|freshDatabase|TEST_DATABASE_URL|engineSkipReason\('postgres'\)/.test(text) &&
    !/own-postgres/.test(text)
  );
}

const started = performance.now();
const files = (process.argv.length > 2 ? process.argv.slice(2) : suiteFiles()).map((file) =>
  relative('.', file),
);
const alone = (file: string) => ONE_AT_A_TIME.some((prefix) => file.startsWith(prefix));
await runSuite(files);
const citusUrl = process.env.TEST_CITUS_URL;
if (citusUrl) {
  diagnostic(`Citus pass: the PostgreSQL half again, on the cluster of ${new URL(citusUrl).host}`);
  // The test processes inherit these.
  Object.assign(process.env, { TEST_DATABASE_URL: citusUrl, TEST_CITUS: '1', TEST_ENGINES: 'postgres' });
  await runSuite(files.filter(usesSharedPostgres), 'citus: ');
}

diagnostic('time per file (its process, start to end):');
for (const [file, ms] of [...fileMs].sort((a, b) => b[1] - a[1])) {
  diagnostic(`  ${(ms / 1000).toFixed(1).padStart(6)} s  ${file}`);
}
const unrun = [
  ...skipped.map((s) => ({ ...s, kind: 'skipped' })),
  ...todo.map((t) => ({ ...t, kind: 'todo' })),
];
for (const { kind, file, name, reason } of unrun) {
  diagnostic(`${ci ? 'FAILED (CI=true allows no skip or todo): ' : ''}${kind}: ${file}: ${name}: ${reason}`);
}
// In CI a skip or a todo counts as a failure: what CI does not run, it does not check. A test cancelled
// by its suite (a hook that failed) is a failure too, and so is a suite that failed with none of its
// tests failing: "fail 0" is said only of a run with nothing wrong.
const failedTests = tally.fail + tally.cancelled + (ci ? unrun.length : 0);
const failed = failedTests > 0 ? failedTests : tally.failedSuites;
diagnostic(`tests ${tally.tests}`);
diagnostic(`suites ${tally.suites}`);
diagnostic(`pass ${tally.pass}`);
diagnostic(`fail ${failed}`);
diagnostic(`cancelled ${tally.cancelled}`);
diagnostic(`skipped ${skipped.length}`);
diagnostic(`todo ${todo.length}`);
diagnostic(`duration_ms ${Math.round(performance.now() - started)}`);
reporter.end();
if (failed > 0) process.exitCode = 1;
