import { run } from './cli/program.js';

/** The process entry of the service: the same as `statistics serve`. */
process.exitCode = await run(['serve', ...process.argv.slice(2)]);
