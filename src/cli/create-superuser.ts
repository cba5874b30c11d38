import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { DomainError } from '../http/errors.js';
import { createAccount } from '../users/accounts.js';

/** `npm run create-superuser -- --email admin@example.com --password '...'`: there is no default account. */
const { values } = parseArgs({
  options: { email: { type: 'string' }, password: { type: 'string' } },
});
if (!values.email || !values.password || !/^[^@\s]+@[^@\s]+$/.test(values.email)) {
  console.error("usage: npm run create-superuser -- --email admin@example.com --password 'a long secret'");
  process.exit(2);
}

const { db } = openDatabase(loadConfig().databaseUrl);
try {
  await migrateToLatest(db);
  const user = await createAccount(
    db,
    { email: values.email, password: values.password },
    { is_active: true, is_superuser: true, is_verified: true },
  );
  console.log(`created superuser ${user.email} (id ${user.id})`);
} catch (error) {
  if (!(error instanceof DomainError)) throw error;
  console.error(`not created: ${typeof error.detail === 'string' ? error.detail : error.detail.reason}`);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
