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

/**
 * `rows` readings, one a second per device up to now, spread over `devices`, and their minute rollups
 * as migration 0003 makes them, loaded with set-based SQL; answers the seconds it took.
 */
export async function loadReadings(url: string, devices: number[], rows: number): Promise<number> {
  const started = performance.now();
  await adminRows(
    url,
    `insert into data (device_id, x, y, z, created_at)
     select ($1::int[])[1 + i % $2::int], round((random() * 1000)::numeric, 2), random(), i,
       $3::bigint - (($4::int - i) / $2::int)::bigint * 1000
     from generate_series(0, $4::int - 1) as i`,
    [devices, devices.length, Date.now(), rows],
  );
  await adminQuery(
    url,
    `insert into reading_minutes (device_id, minute, readings, x_min, x_max, x_sum, y_min, y_max, y_sum,
       z_min, z_max, z_sum)
     select device_id, created_at - created_at % 60000, count(*), min(x), max(x), sum(x), min(y), max(y),
       sum(y), min(z), max(z), sum(z)
     from data group by 1, 2`,
  );
  await adminQuery(url, 'vacuum analyze data');
  await adminQuery(url, 'vacuum analyze reading_minutes');
  return (performance.now() - started) / 1000;
}
