import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_SECRET } from './harness.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = import.meta.resolve('tsx');
/** Where the commands run: an empty folder, so no developer's .env is read. */
const WORKDIR = mkdtempSync(join(tmpdir(), 'statistics-cli-'));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The real `statistics` program as a child process (its sources through tsx), with a test
 * environment plus `env`; `input` is written to its stdin (not a terminal).
 */
export function runCli(
  args: string[],
  {
    env = {},
    input = '',
    timeoutMs = 120_000,
  }: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {},
): Promise<CliRun> {
  const environment: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(environment)) {
    if (
      /^(DATABASE_URL|DATA_DIR|PORT|HOST|NODE_ENV|LOG_LEVEL|STATISTICS_KEYS|METRICS_.*|NODE_OPTIONS)$/.test(
        name,
      )
    )
      delete environment[name];
  }
  const child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'src', 'cli', 'main.ts'), ...args], {
    cwd: WORKDIR,
    env: {
      ...environment,
      NODE_ENV: 'test',
      JWT_SECRET: TEST_SECRET,
      DATA_DIR: WORKDIR,
      LOG_LEVEL: 'silent',
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  child.stdin.end(input);
  return new Promise((resolveRun, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}
