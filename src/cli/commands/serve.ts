import type { Command } from 'commander';
import { loadConfig } from '../../config.js';
import { startServer } from '../../server.js';

/** `statistics serve`: the HTTP service (what `npm start` runs); SIGTERM and SIGINT stop it gracefully. */
export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('serve the HTTP API (settings from the environment: see docs/configuration.md)')
    .action(async () => {
      const server = await startServer(loadConfig());
      const stop = (signal: string) => {
        server.app.log.info({ signal }, 'stopping: finishing requests in flight');
        server.stop().then(
          () => process.exit(0),
          (error: unknown) => {
            server.app.log.error({ err: error }, 'error while stopping');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
