import pg from 'pg';

/** Runs one statement on the server of `adminUrl` (BENCH_DATABASE_URL): making and dropping bench databases. */
export async function adminQuery(adminUrl: string, text: string): Promise<void> {
  await adminRows(adminUrl, text);
}

/** Runs one statement on the database of `url` and answers its rows. */
export async function adminRows<Row extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<Row[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<Row>(text, values)).rows;
  } finally {
    await client.end();
  }
}
