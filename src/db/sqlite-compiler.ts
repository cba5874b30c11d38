import { type LimitNode, type OperationNode, SqliteDialect, SqliteQueryCompiler, ValueNode } from 'kysely';

/**
 * Kysely's SQLite dialect with two changes to how a query compiles, both made while it is written out
 * (no plugin walking and copying every query's tree before, which cost each request as much again as
 * building it):
 * - a boolean is bound as 1 or 0: better-sqlite3 cannot bind JavaScript booleans, and SQLite stores
 *   them as integers;
 * - a LIMIT of a whole number is written into the SQL, not bound. SQLite (3.53) reads a bound LIMIT's
 *   value when it plans the statement (computeLimitRegisters), so that every run, binding it again,
 *   re-prepares the whole statement: the device list's union of one `limit 1` seek per device cost
 *   120-170 us a run against 20-40 us with literal limits (10 devices, better-sqlite3, 3,000 runs, 3 rounds), and
 *   re-preparing was 5% of the event loop's time in the mixed scenario (perf, issue 17).
 *   Each limit is then a statement text of its own (database.ts keeps the last 256 prepared). An OFFSET
 *   stays bound: SQLite reads it only as the statement runs, and written in, every offset a client
 *   pages to would be a statement of its own, pushing the server's steady ones out of that cache.
 */
export class ServiceSqliteDialect extends SqliteDialect {
  override createQueryCompiler() {
    return new ServiceSqliteCompiler();
  }
}

class ServiceSqliteCompiler extends SqliteQueryCompiler {
  protected override appendValue(parameter: unknown): void {
    super.appendValue(typeof parameter === 'boolean' ? Number(parameter) : parameter);
  }

  protected override visitLimit(node: LimitNode): void {
    super.visitLimit({ ...node, limit: literalCount(node.limit) });
  }
}

/** A bound whole number as a literal in the SQL; anything else (an expression, a late value) as it is. */
function literalCount(node: OperationNode): OperationNode {
  if (!ValueNode.is(node)) return node;
  const { value } = node;
  return Number.isSafeInteger(value) || typeof value === 'bigint' ? ValueNode.createImmediate(value) : node;
}
