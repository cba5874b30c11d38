import cluster from 'node:cluster';
import type { Command } from 'commander';
import { loadConfig, processEnvironment } from '../../config.js';
import { serveProcesses } from '../../processes.js';
import { startServer } from '../../server.js';

/**
 * `statistics serve`: the HTTP service (what `npm start` runs); SIGTERM and SIGINT stop it gracefully.
 * With --workers N (WORKERS=N) above 1, this process starts N server processes on the one port
 * (processes.ts) and each of them runs this command again as a single server.
 */
export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('serve the HTTP API (settings from the environment: see docs/configuration.md)')
    .option('--workers <n>', 'how many processes serve the one port (PostgreSQL only); overrides WORKERS')
    .action(async (options: { workers?: string }) => {
      const env = processEnvironment();
      // Checked as WORKERS is, with the same message.
      if (options.workers !== undefined) env.WORKERS = options.workers;
      const config = loadConfig(env);
      if (config.workers > 1 && cluster.isPrimary) {
        process.exit(await serveProcesses(config));
      }
      const server = await startServer(config);
      let stopping = false;
      // A signal during the drain changes nothing (a server process may get one from the terminal's
      // process group and one from the process that started it); SIGKILL ends a drain at once.
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        server.app.log.info({ signal }, 'stopping: finishing requests in flight');
        server.stop().then(
          () => process.exit(0),
          (error: unknown) => {
            server.app.log.error({ err: error }, 'error while stopping');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
