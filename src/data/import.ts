import type { Readable } from 'node:stream';
import { isForeignKeyViolation } from '../db/dialect.js';
import { DomainError } from '../http/errors.js';
import { compileBodyValidator, toValidationIssues } from '../http/validation.js';
import type { KeyName } from './idempotency.js';
import type { Ingest } from './ingest.js';
import { readLines } from './lines.js';
import type { ReadingRow } from './reading-store.js';
import { type ImportReport, ReadingCreate } from './schemas.js';

export type ImportFormat = 'csv' | 'ndjson';

const CHUNK = 5000;
const MAX_LINE = 4096;
const LISTED_ERRORS = 1000;
const validateReading = compileBodyValidator<ReadingCreate>(ReadingCreate);
// No two quantifiers here can take the same characters (the fraction needs its dot), so a failed
// match backs off in linear time: `\d+\.?\d*` took quadratic time on a long digit run (issue 11).
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** An import's idempotency key, and the fingerprint of its body once read to the end. */
export interface ImportKey {
  name: KeyName;
  fingerprint: () => string;
}

/**
 * Imports readings line by line in constant memory: valid lines are stored in chunks of 5,000 (one
 * statement each), invalid ones are counted and reported with their line number and reason. With a
 * `key`, each chunk records in its own transaction how far the import got, and the report is recorded
 * as the answer at the end: a retry of a finished import answers the report again, a retry of one that
 * stopped (or still runs) is a 409 saying what was stored and from which line to send again.
 */
export async function importReadings(
  ingest: Ingest,
  input: Readable,
  format: ImportFormat,
  deviceToken: string | undefined,
  key?: ImportKey,
): Promise<ImportReport> {
  const report: ImportReport = { stored: 0, rejected: 0, errors: [] };
  const reject = (line: number, reason: string) => {
    report.rejected++;
    if (report.errors.length < LISTED_ERRORS) report.errors.push({ line, reason });
  };
  let chunk: { line: number; row: ReadingRow }[] = [];
  let lastLine = 0;
  // Whether a chunk recorded the key already (with its progress).
  let started = false;
  const store = async (rows: ReadingRow[]) => {
    const progress =
      key &&
      ((ids: number[]) => [
        ingest.keys.importProgress(
          key.name,
          { stored: report.stored + ids.length, rejected: report.rejected, line: lastLine },
          !started,
        ),
      ]);
    const stored = (await ingest.store(rows, progress)).length;
    if (stored > 0) started = true;
    return stored;
  };
  const flush = async () => {
    const ids = chunk.map((c) => c.row.device_id);
    const missing = new Set(await ingest.devices.missing(ids));
    const closed = new Set(ingest.refused(ids, deviceToken));
    let rows: { line: number; row: ReadingRow }[] = [];
    for (const { line, row } of chunk) {
      if (missing.has(row.device_id)) reject(line, `device ${row.device_id} not found`);
      else if (closed.has(row.device_id))
        reject(line, `device ${row.device_id} needs its ingest token (X-Device-Token)`);
      else rows.push({ line, row });
    }
    try {
      report.stored += await store(rows.map((r) => r.row));
    } catch (error) {
      if (!isForeignKeyViolation(error)) throw error;
      // A device was deleted between the check and the insert (the chunk was stored not at all): its
      // lines are rejected, the others stored.
      for (const id of new Set(ids)) ingest.devices.forget(id);
      const deleted = new Set(await ingest.devices.missing(ids));
      rows = rows.filter(({ line, row }) => {
        if (deleted.has(row.device_id))
          reject(line, `device ${row.device_id} not found (deleted during the import)`);
        return !deleted.has(row.device_id);
      });
      report.stored += await store(rows.map((r) => r.row));
    }
    chunk = [];
  };

  try {
    for await (const line of linesOf(input)) {
      lastLine = line.number;
      if (line.tooLong) {
        reject(line.number, `line is longer than ${MAX_LINE} characters`);
        continue;
      }
      if (
        line.text.trim() === '' ||
        (format === 'csv' && line.number === 1 && /^\s*"?device_id/i.test(line.text))
      ) {
        continue;
      }
      const parsed = format === 'csv' ? parseCsvLine(line.text) : parseJsonLine(line.text);
      if (typeof parsed === 'string') {
        reject(line.number, parsed);
        continue;
      }
      const row = ingest.prepare(parsed, Date.now());
      if (!('device_id' in row)) {
        reject(line.number, `${row.field}: ${row.msg}`);
        continue;
      }
      chunk.push({ line: line.number, row });
      if (chunk.length >= CHUNK) await flush();
    }
  } catch (error) {
    if (!(error instanceof InputEnded)) throw error;
    // The body stopped coming: what was read is stored, and the answer says up to where.
    if (chunk.length > 0) await flush();
    throw new DomainError(
      'REQUEST_TIMEOUT',
      `The import stopped: ${error.reason}. Stored ${report.stored} readings from lines 1 to ${lastLine} ` +
        `(${report.rejected} lines rejected); send the lines after line ${lastLine} again`,
    );
  }
  if (chunk.length > 0) await flush();
  report.errors.sort((a, b) => a.line - b.line);
  if (key) await ingest.keys.importEnded({ ...key.name, fingerprint: key.fingerprint() }, report, started);
  return report;
}

/** A reading, or the reason the line is not one. */
function checked(value: unknown): ReadingCreate | string {
  if (validateReading(value)) return value;
  const issues = toValidationIssues(validateReading.errors ?? [], 'body', value);
  return issues.map((issue) => `${issue.loc.slice(1).join('.') || 'line'}: ${issue.msg}`).join('; ');
}

function parseJsonLine(text: string): ReadingCreate | string {
  try {
    return checked(JSON.parse(text));
  } catch (error) {
    return `invalid JSON: ${(error as Error).message}`;
  }
}

/** `device_id,x,y,z[,timestamp]`; numbers stay text when they do not look like numbers, so the check names them. */
function parseCsvLine(text: string): ReadingCreate | string {
  const fields = text.split(',').map((field) => field.trim());
  if (fields.length < 4 || fields.length > 5)
    return `expected device_id,x,y,z[,timestamp], got ${fields.length} fields`;
  const [deviceId, x, y, z, timestamp] = fields as [string, string, string, string, string | undefined];
  const number = (field: string) => (NUMBER.test(field) ? Number(field) : field);
  return checked({
    device_id: number(deviceId),
    x: number(x),
    y: number(y),
    z: number(z),
    ...(timestamp ? { timestamp } : {}),
  });
}

/** The request body failed (the client went quiet or went away), not the database. */
class InputEnded extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** The lines of `input`; an error of the stream itself becomes an InputEnded. */
async function* linesOf(input: Readable) {
  try {
    yield* readLines(input, MAX_LINE);
  } catch (error) {
    const { code } = error as { code?: string };
    throw new InputEnded(
      code === IDLE ? 'no bytes came for 30 s' : `the body ended early (${code ?? (error as Error).message})`,
    );
  }
}

/** The code of the error that ends an import whose client sends nothing for the idle timeout. */
export const IDLE = 'IMPORT_IDLE';
