#!/usr/bin/env node
import { run } from './program.js';

/** The `statistics` executable (package.json "bin"). */
process.exitCode = await run(process.argv.slice(2));
