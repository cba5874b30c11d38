import { text } from 'node:stream/consumers';
import password from '@inquirer/password';
import type { Command } from 'commander';
import { DomainError } from '../../http/errors.js';
import { createAccount } from '../../users/accounts.js';
import { withDatabase } from '../database.js';
import { CliError, usageError } from '../exit-codes.js';

/**
 * `statistics create-superuser --email E`: the first account. The password comes from a prompt that
 * does not echo (on a terminal) or from stdin (`--password-stdin`), never from the command line,
 * where `ps` and the shell history would show it.
 */
export function createSuperuserCommand(program: Command): void {
  program
    .command('create-superuser')
    .description('create an active, verified superuser (there is no default account)')
    .requiredOption('--email <address>', 'the e-mail address to log in with')
    .option('--password-stdin', 'read the password from stdin (its first line) instead of prompting')
    .addHelpText(
      'after',
      '\nExamples:\n  statistics create-superuser --email admin@example.com\n' +
        '  printf \'%s\\n\' "$ADMIN_PASSWORD" | statistics create-superuser --email admin@example.com --password-stdin',
    )
    .action(async (options: { email: string; passwordStdin?: boolean }) => {
      if (!/^[^@\s]+@[^@\s]+$/.test(options.email))
        throw usageError(`not an e-mail address: ${options.email}`);
      const secret = options.passwordStdin ? await passwordFromStdin() : await passwordFromPrompt();
      const user = await withDatabase(async ({ db }) => {
        try {
          return await createAccount(
            db,
            { email: options.email, password: secret },
            { is_active: true, is_superuser: true, is_verified: true },
          );
        } catch (error) {
          if (!(error instanceof DomainError)) throw error;
          throw new CliError(
            `not created: ${typeof error.detail === 'string' ? error.detail : error.detail.reason}`,
          );
        }
      });
      console.log(`created superuser ${user.email} (id ${user.id})`);
    });
}

async function passwordFromStdin(): Promise<string> {
  const [line = ''] = (await text(process.stdin)).split(/\r?\n/);
  if (line === '') throw usageError('--password-stdin: stdin held no password');
  return line;
}

async function passwordFromPrompt(): Promise<string> {
  if (!process.stdin.isTTY) {
    throw usageError('no terminal to ask for the password on: pipe it in with --password-stdin');
  }
  const first = await password({ message: 'Password:' });
  const again = await password({ message: 'Password (again):' });
  if (first !== again) throw new CliError('the two passwords differ; nothing was created');
  return first;
}
