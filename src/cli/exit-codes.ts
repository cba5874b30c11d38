/** What `statistics` exits with; scripts may rely on these (README, "Command line"). */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** The work failed or was refused (database unreachable, conflicting rows, an account that exists). */
  failure: 1,
  /** The command line is wrong: unknown command or option, missing or bad argument. */
  usage: 2,
  /** A setting (environment or .env) is wrong. */
  configuration: 3,
  /** Done, but some input was left out (`import`: rejected lines, listed in the report). */
  partial: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the command explains itself: printed as `statistics: message`, then exit with `code`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: ExitCode = EXIT.failure,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.usage);
