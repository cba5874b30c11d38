import { type ChildProcess, spawn } from 'node:child_process';
import { TEST_SECRET } from './harness.js';

/** The real entry point (src/main.ts) running as its own process. */
export interface Server {
  process: ChildProcess;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** What the process wrote to stdout and stderr (at least the last 256 KiB of it). */
  output: () => string;
}

const KEPT_OUTPUT = 256 * 1024;
// Generous: a loaded machine took 27 s to start three processes under tsx (serve --workers 2), and
// on the Citus cluster, at a load of 12 on 2 cores, two processes were still migrating after 60 s.
const START_TIMEOUT_MS = 120_000;

/** Every server started here and not yet exited: killed when the test process exits, whatever happens. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** The sources through tsx (the default), or the build that `npm start` runs. */
export const FROM_SOURCES = ['--import', 'tsx', 'src/main.ts'];
export const FROM_BUILD = ['dist/src/main.js'];

/**
 * Starts the real entry point (config, migrations, listen), on 127.0.0.1 and a free port; answers
 * once it listens. `env` adds to (or overrides) its environment.
 */
export async function startServer(
  databaseUrl: string,
  dataDir: string,
  env: Record<string, string> = {},
  entry: string[] = FROM_SOURCES,
): Promise<Server> {
  const child = spawn(process.execPath, entry, {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: '0',
      JWT_SECRET: TEST_SECRET,
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 2 * KEPT_OUTPUT) output = output.slice(-KEPT_OUTPUT);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within ${START_TIMEOUT_MS} ms:\n${output}`));
    }, START_TIMEOUT_MS);
    const onStarted = () => {
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        child.stdout?.off('data', onStarted);
        child.stderr?.off('data', onStarted);
        resolve(match[1]);
      }
    };
    child.stdout?.on('data', onStarted);
    child.stderr?.on('data', onStarted);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code ?? signal} before listening:\n${output}`));
    });
  });
  return { process: child, url, output: () => output };
}

/** The exit code once `child` has exited (null when a signal ended it). */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Sends `signal` and answers the exit code; a server still running after `timeoutMs` is killed. */
export async function stopServer(
  server: Server,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs = 15_000,
): Promise<number | null> {
  const exit = exited(server.process);
  if (server.process.exitCode !== null || server.process.signalCode !== null) return exit;
  server.process.kill(signal);
  const timer = setTimeout(() => server.process.kill('SIGKILL'), timeoutMs);
  try {
    return await exit;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `text` appears in the server's output (rejects after `timeoutMs`). */
export function waitForOutput(server: Server, text: string, timeoutMs = 10_000): Promise<void> {
  if (server.output().includes(text)) return Promise.resolve();
  const streams = [server.process.stdout, server.process.stderr];
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      for (const stream of streams) stream?.off('data', check);
      if (error) reject(error);
      else resolve();
    };
    // Listeners run in order: the output has the new chunk by the time this one looks at it.
    const check = () => {
      if (server.output().includes(text)) done();
    };
    const timer = setTimeout(
      () => done(new Error(`"${text}" did not appear in the server output within ${timeoutMs} ms`)),
      timeoutMs,
    );
    for (const stream of streams) stream?.on('data', check);
  });
}

/** Whether the process is still running. */
export function alive(server: Server): boolean {
  return server.process.exitCode === null && server.process.signalCode === null;
}

/** An answer to `call`: status 0 when no answer came (refused, reset, or the client's timeout). */
export interface Answer {
  route: string;
  status: number;
  ms: number;
  retryAfter: string | null;
  body: string;
}

/**
 * `route` ("METHOD /path") on the server at `base`, with a JSON body when given; never throws. The
 * client gives up after `timeoutMs`, well beyond any promise, so a hang shows up as a slow answer and
 * not as a stuck test.
 */
export async function call(base: string, route: string, body?: unknown, timeoutMs = 15_000): Promise<Answer> {
  const [method, path] = route.split(' ') as [string, string];
  const started = performance.now();
  const answer = (status: number, retryAfter: string | null, text: string): Answer => ({
    route,
    status,
    ms: Math.round(performance.now() - started),
    retryAfter,
    body: text,
  });
  try {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    return answer(response.status, response.headers.get('retry-after'), text);
  } catch (error) {
    return answer(0, null, String((error as Error).cause ?? error));
  }
}

/** The answers that are not a 503 with Retry-After and a JSON detail within `withinMs`, described. */
export function notPrompt503(answers: Answer[], withinMs: number): string[] {
  return answers
    .filter((a) => {
      let detail: unknown;
      try {
        detail = JSON.parse(a.body).detail;
      } catch {
        detail = undefined;
      }
      return (
        a.status !== 503 || a.ms > withinMs || !/^\d+$/.test(a.retryAfter ?? '') || typeof detail !== 'string'
      );
    })
    .map(
      (a) => `${a.route}: ${a.status} in ${a.ms} ms, Retry-After ${a.retryAfter}, ${a.body.slice(0, 200)}`,
    );
}
