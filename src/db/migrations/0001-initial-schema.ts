import { type ColumnDefinitionBuilder, type Kysely, sql } from 'kysely';
import { engineOf } from '../dialect.js';

export async function up(db: Kysely<unknown>): Promise<void> {
  const postgres = engineOf(db) === 'postgres';
  const identity = (column: ColumnDefinitionBuilder) =>
    postgres ? column.primaryKey().generatedByDefaultAsIdentity() : column.primaryKey().autoIncrement();
  // Epoch milliseconds outgrow PostgreSQL's 4-byte integer; SQLite integers are 8 bytes anyway.
  const epochMs = postgres ? 'bigint' : 'integer';

  await db.schema
    .createTable('users')
    .addColumn('id', 'integer', identity)
    .addColumn('email', 'varchar(320)', (c) => c.notNull())
    .addColumn('hashed_password', 'varchar(1024)', (c) => c.notNull())
    .addColumn('is_active', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('is_superuser', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('is_verified', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
  await db.schema
    .createIndex('users_email_lower_unique')
    .on('users')
    .unique()
    .expression(sql`lower(email)`)
    .execute();

  await db.schema
    .createTable('devices')
    .addColumn('id', 'integer', identity)
    .addColumn('name', 'varchar(50)')
    .addColumn('user_id', 'integer', (c) => c.references('users.id'))
    .addColumn('created_at', epochMs, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('devices_user_id').on('devices').column('user_id').execute();

  await db.schema
    .createTable('data')
    .addColumn('id', postgres ? 'bigint' : 'integer', identity)
    .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('x', 'double precision', (c) => c.notNull())
    .addColumn('y', 'double precision', (c) => c.notNull())
    .addColumn('z', 'double precision', (c) => c.notNull())
    .addColumn('created_at', epochMs, (c) => c.notNull())
    .execute();
  // Statistics and listings filter by device and time, or by time alone, and page by (created_at, id).
  await db.schema
    .createIndex('data_device_time')
    .on('data')
    .columns(['device_id', 'created_at', 'id'])
    .execute();
  await db.schema.createIndex('data_time').on('data').columns(['created_at', 'id']).execute();

  await db.schema
    .createTable('revoked_tokens')
    .addColumn('token_digest', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('expires_at', epochMs, (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['revoked_tokens', 'data', 'devices', 'users']) {
    await db.schema.dropTable(table).execute();
  }
}
