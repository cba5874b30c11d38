import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Every child this bench starts, so that all of them are stopped at the end, on error or on Ctrl-C. */
const children = new Set<ChildProcess>();

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  /** The last lines the child wrote (stdout and stderr), for error messages. */
  tail(): string;
  /** Resolves with the exit code (or signal) once the child has exited. */
  readonly exited: Promise<string>;
}

/** Starts a child whose output is drained (kept only as a short tail) so that it never blocks on a pipe. */
export function startChild(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; onLine?: (line: string) => void },
): Child {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  children.add(child);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line === '') continue;
      options.onLine?.(line);
      lines.push(line);
      if (lines.length > 40) lines.shift();
    }
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<string>((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve(signal ?? `exit code ${code}`);
    });
    child.on('error', (error) => {
      children.delete(child);
      resolve(`error ${error.message}`);
    });
  });
  return { process: child, pid: child.pid, tail: () => lines.join('\n'), exited };
}

/** SIGTERM, then SIGKILL if the child has not gone within the grace period. */
export async function stopChild(child: Child, graceMs = 10_000): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill('SIGTERM');
  const outcome = await Promise.race([child.exited, sleep(graceMs, 'timeout', { ref: false })]);
  if (outcome === 'timeout') {
    child.process.kill('SIGKILL');
    await child.exited;
  }
}

/** Synchronous last resort (process 'exit' handler): kill whatever is still running. */
export function killAllChildren(): void {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

export async function stopAllChildren(): Promise<void> {
  await Promise.all(
    [...children].map(async (process) => {
      process.kill('SIGTERM');
      const exited = new Promise((resolve) => process.once('exit', resolve));
      if ((await Promise.race([exited, sleep(5000, 'timeout', { ref: false })])) === 'timeout')
        process.kill('SIGKILL');
    }),
  );
  children.clear();
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/** Polls `url` until it answers 200, the child exits, or the deadline passes. */
export async function waitUntilReady(url: string, child: Child, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitedWith: string | undefined;
  void child.exited.then((how) => {
    exitedWith = how;
  });
  while (Date.now() < deadline) {
    if (exitedWith !== undefined) {
      throw new Error(`the server exited (${exitedWith}) before it was ready:\n${child.tail()}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} was not ready within ${timeoutMs / 1000} s:\n${child.tail()}`);
}

/** Runs a command to completion with inherited output (the build); throws when it fails. */
export function runVisible(command: string, args: string[], cwd: string): void {
  const result = spawnSync(command, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error) throw result.error;
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (exit code ${result.status})`);
}

function statusField(pid: number, field: string): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'utf8'),
    );
    return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** Samples VmRSS of a process every `everyMs` and reports the peak, plus the kernel's own VmHWM. */
export class RssSampler {
  #peak = 0;
  #samples = 0;
  #timer: NodeJS.Timeout | undefined;
  #hwmReset = false;

  constructor(
    private readonly pid: number,
    private readonly everyMs = 200,
  ) {}

  start(): void {
    // Writing 5 to clear_refs resets VmHWM, so the kernel's peak covers only the ingest runs.
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      this.#hwmReset = true;
    } catch {
      this.#hwmReset = false;
    }
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), this.everyMs);
  }

  #sample(): void {
    const rss = statusField(this.pid, 'VmRSS');
    if (rss === undefined) return;
    this.#samples += 1;
    if (rss > this.#peak) this.#peak = rss;
  }

  stop(): {
    peakRssBytes: number;
    samples: number;
    vmHwmBytes: number | null;
    vmHwmCoversIngestOnly: boolean;
  } {
    if (this.#timer) clearInterval(this.#timer);
    this.#sample();
    const hwm = statusField(this.pid, 'VmHWM');
    return {
      peakRssBytes: this.#peak,
      samples: this.#samples,
      vmHwmBytes: hwm ?? null,
      vmHwmCoversIngestOnly: this.#hwmReset,
    };
  }
}

/** The environment of a bench's server (`statistics serve`): its database, a port on 127.0.0.1, quiet logs. */
export function serverEnvironment(databaseUrl: string, port: number, dir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: databaseUrl,
    DATA_DIR: join(dir, 'data'),
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    JWT_SECRET: 'bench-secret-that-is-at-least-32-bytes-long!',
  };
}
