/**
 * PostgreSQL's fold steps in a thread of their own (piscina, one thread): a step reads a few thousand
 * readings and minute rollups, builds hundreds of sketches and writes them back, about 80 ms of
 * JavaScript a step of 400 sparse hours that would otherwise hold the event loop that parses the
 * batches. The whole step runs here, in one transaction on this thread's own connection, as it did in
 * the server's process (the folder's advisory lock, the marks checked against the counts read).
 */
import { workerData } from 'piscina';
import { type OpenedDatabase, openDatabase } from '../db/database.js';
import { type FoldCursor, type Folded, foldRollups, LOCK_NOT_AVAILABLE } from './rollup-fold.js';

let opened: OpenedDatabase | undefined;

/** What a step answers across the thread's boundary, where an error keeps its message but not its code. */
export type FoldStep = { folded: Folded | undefined } | { gaveWay: string };

export default async function foldStep(input: {
  maxReadings: number;
  after?: FoldCursor | undefined;
}): Promise<FoldStep> {
  opened ??= openDatabase((workerData as { url: string }).url, 'server');
  try {
    return {
      folded: await foldRollups(opened.db, 'postgres', input.maxReadings, undefined, undefined, input.after),
    };
  } catch (error) {
    if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) return { gaveWay: String(error) };
    throw error;
  }
}
