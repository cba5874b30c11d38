import { writeFileSync } from 'node:fs';
import { configurationReference } from '../src/config/reference.js';

/** `npm run docs:config`: rewrites docs/configuration.md from the settings' schemas. */
writeFileSync(new URL('../docs/configuration.md', import.meta.url), configurationReference());
console.log('wrote docs/configuration.md');
