import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { DomainError, RequestValidationError } from '../http/errors.js';
import { backupCommand } from './commands/backup.js';
import { createSuperuserCommand } from './commands/create-superuser.js';
import { importOriginalCommand } from './commands/import-original.js';
import { maintainCommand } from './commands/maintain.js';
import { migrateCommand } from './commands/migrate.js';
import { serveCommand } from './commands/serve.js';
import { exportCommand, importCommand } from './commands/transfer.js';
import { CliError, EXIT, type ExitCode } from './exit-codes.js';

/** The `statistics` program: every command, each with --help. */
export function buildProgram(): Command {
  const program = new Command('statistics')
    .description('Readings from devices, and statistics over them: the service and its operator commands.')
    .version('0.1.0')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      '\nSettings come from the environment and a .env file (docs/configuration.md).\n' +
        'Exit codes: 0 done, 1 failed or refused, 2 usage error, 3 configuration error, 4 done with rejected input.',
    );
  for (const add of [
    serveCommand,
    migrateCommand,
    maintainCommand,
    createSuperuserCommand,
    importCommand,
    exportCommand,
    backupCommand,
    importOriginalCommand,
  ]) {
    add(program);
  }
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs the command line `args` (without node and the script) and answers the exit code. */
export async function run(args: string[]): Promise<ExitCode> {
  try {
    await buildProgram().parseAsync(args, { from: 'user' });
    return EXIT.ok;
  } catch (error) {
    return reportFailure(error);
  }
}

function reportFailure(error: unknown): ExitCode {
  if (error instanceof CommanderError) {
    // Commander has printed its message (or the help) already.
    return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (error instanceof ConfigError) {
    console.error(`Configuration error: ${error.message}`);
    return EXIT.configuration;
  }
  if (error instanceof CliError) {
    console.error(`statistics: ${error.message}`);
    return error.code;
  }
  if (error instanceof RequestValidationError) {
    console.error(
      `statistics: ${error.issues.map((issue) => `${issue.loc.at(-1)}: ${issue.msg}`).join('; ')}`,
    );
    return EXIT.usage;
  }
  if (error instanceof DomainError) {
    console.error(`statistics: ${error.message}`);
    return EXIT.failure;
  }
  console.error('statistics: failed:', error);
  return EXIT.failure;
}
