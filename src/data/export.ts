import { Readable } from 'node:stream';
import type { Reads } from '../db/read-replicas.js';
import { listReadings, type ReadingPage } from './queries.js';
import type { Reading } from './schemas.js';

export type ExportFormat = 'csv' | 'ndjson';

const PAGE = 5000;
export const CSV_HEADER = 'device_id,x,y,z,timestamp\n';

/**
 * The matching readings as a stream, read a page at a time (keyset pages, as the list uses), so an
 * export of any size holds one page in memory and never one long database transaction. Each page
 * is read where `reads` sends it: a replica that goes down mid-export hands the next pages to the primary.
 * The CSV columns are the import's, so an export can be imported as it is.
 */
export function exportReadings(
  reads: Reads,
  filters: Omit<ReadingPage, 'limit' | 'after'>,
  format: ExportFormat,
): Readable {
  const line = format === 'csv' ? toCsvLine : toJsonLine;
  async function* lines() {
    if (format === 'csv') yield CSV_HEADER;
    let after: ReadingPage['after'];
    for (;;) {
      const rows = await reads.read((db) => listReadings(db, { ...filters, limit: PAGE, after }));
      const page = rows.slice(0, PAGE);
      if (page.length > 0) yield page.map(line).join('');
      const last = page.at(-1);
      if (rows.length <= PAGE || !last) return;
      after = { createdAt: Date.parse(last.timestamp), id: last.id };
    }
  }
  return Readable.from(lines());
}

const toCsvLine = (r: Reading) => `${r.device_id},${r.x},${r.y},${r.z},${r.timestamp}\n`;
const toJsonLine = (r: Reading) =>
  `${JSON.stringify({ id: r.id, device_id: r.device_id, x: r.x, y: r.y, z: r.z, timestamp: r.timestamp })}\n`;
