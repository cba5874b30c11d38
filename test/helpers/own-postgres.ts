import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { type Server, startServer, stopServer } from './server.js';

/**
 * A PostgreSQL cluster of the test's own, in a temporary directory, on 127.0.0.1 and a free port,
 * started from the machine's PostgreSQL binaries: the fault tests stop and freeze it, never the
 * machine's shared server.
 */

/** The newest PostgreSQL installation's bin directory with initdb and pg_ctl, if any. */
function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  return readdirSync(root)
    .sort((a, b) => Number(b) - Number(a))
    .map((version) => join(root, version, 'bin'))
    .find((bin) => existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl')));
}

const isRoot = process.getuid?.() === 0;
const bin = postgresBin();
/** initdb refuses root: as root, PostgreSQL runs as the `postgres` OS user. */
const postgresUser = isRoot ? spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }) : undefined;

/** Why an own cluster cannot be started here (the suite's skip reason), or false. */
export function ownPostgresSkipReason(): string | false {
  if (bin === undefined) return 'no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin/';
  if (process.platform !== 'linux') return 'needs Linux (runuser, /usr/lib/postgresql, /proc)';
  if (isRoot && postgresUser?.status !== 0)
    return 'running as root, but there is no `postgres` OS user to run initdb';
  if (isRoot && spawnSync('runuser', ['--help']).error) return 'running as root, but runuser is missing';
  return false;
}

/** Runs a PostgreSQL program (as `postgres` when we are root); throws with its output when it fails. */
function pgRun(program: string, args: string[], timeoutMs = 60_000): string {
  const command = join(bin as string, program);
  const [file, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  const result = spawnSync(file, argv, {
    encoding: 'utf8',
    timeout: timeoutMs,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.status !== 0) {
    throw new Error(
      `${program} ${args.join(' ')} failed (${result.status ?? result.signal ?? result.error}):\n` +
        `${result.stdout}${result.stderr}`,
    );
  }
  return result.stdout;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

/** The processes whose parent is `pid`, read from /proc. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return children;
}

export class OwnPostgres {
  readonly dir = mkdtempSync(join(tmpdir(), 'statistics-own-pg-'));
  readonly data = join(this.dir, 'data');
  readonly log = join(this.dir, 'postgres.log');
  port = 0;
  #running = false;
  #frozen: number[] = [];

  async init(): Promise<void> {
    this.#ownDirectory();
    pgRun('initdb', ['-D', this.data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
    this.port = await freePort();
  }

  /**
   * A streaming replica of `primary` (running) instead of a new cluster: `pg_basebackup -R` writes
   * standby.signal and the connection to the primary. initdb's defaults allow it (wal_level=replica,
   * max_wal_senders=10, `host replication all 127.0.0.1/32 trust`).
   */
  async initReplicaOf(primary: OwnPostgres): Promise<void> {
    this.#ownDirectory();
    const from = ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres'];
    pgRun('pg_basebackup', [...from, '-D', this.data, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
    this.port = await freePort();
  }

  #ownDirectory(): void {
    if (isRoot) {
      const uid = Number(postgresUser?.stdout.trim());
      const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
      chownSync(this.dir, uid, gid);
    }
  }

  start(): void {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.dir}`;
    pgRun('pg_ctl', ['start', '-D', this.data, '-l', this.log, '-w', '-t', '30', '-o', options]);
    this.#running = true;
  }

  stop(mode: 'fast' | 'immediate' = 'fast'): void {
    this.thaw();
    pgRun('pg_ctl', ['stop', '-D', this.data, '-m', mode, '-w', '-t', '30']);
    this.#running = false;
  }

  /**
   * Hangs the database without closing anything: SIGSTOP to the postmaster (first, so that it starts
   * no new backend) and to every process it started. Connections stay open and unanswered.
   */
  freeze(): number[] {
    const postmaster = Number(readFileSync(join(this.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(postmaster, 'SIGSTOP');
    this.#frozen = [postmaster, ...childrenOf(postmaster)];
    for (const pid of this.#frozen.slice(1)) process.kill(pid, 'SIGSTOP');
    return this.#frozen;
  }

  /** SIGCONT to every process `freeze` stopped. */
  thaw(): void {
    for (const pid of this.#frozen.reverse()) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
    this.#frozen = [];
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  logTail(): string {
    return existsSync(this.log) ? readFileSync(this.log, 'utf8').slice(-2000) : '';
  }

  /** Stops the cluster if it runs and removes its directory; never throws. */
  destroy(): void {
    if (this.#running) {
      try {
        this.stop('immediate');
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Inside a describe: an own cluster with the real server (src/main.ts) on it, started before the
 * suite's tests and ended after them, or when the test process exits, whatever happens.
 */
export function serverOnOwnPostgres(): { postgres: OwnPostgres; server: () => Server } {
  const postgres = new OwnPostgres();
  let server: Server | undefined;
  const onExit = () => postgres.destroy();
  before(async () => {
    process.once('exit', onExit);
    await postgres.init();
    postgres.start();
    server = await startServer(postgres.url, join(postgres.dir, 'service'));
  });
  after(async () => {
    if (server !== undefined) await stopServer(server, 'SIGKILL');
    postgres.destroy();
    process.off('exit', onExit);
  });
  return { postgres, server: () => server as Server };
}
