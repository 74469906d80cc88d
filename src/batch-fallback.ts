// Why a batch falls back to single calls: shared by read-batch.ts and group-commit.ts.

/** SQLSTATEs of a batch statement that never ran: function missing (42883, 3F000), not granted (42501). */
const unbatchable = new Set(['42883', '3F000', '42501']);
/** The SQLSTATE pg puts on a server's error ('undefined' for other errors). */
export const sqlStateOf = (err: unknown): string => String((err as { code?: unknown }).code);

/** After a batch statement that never ran, single calls only for a minute, then batches again. */
export class SinglesForAWhile {
  private until = 0;

  active(): boolean {
    return this.until !== 0 && Date.now() < this.until;
  }

  /** Whether `err` says the batch statement never ran (so sending its calls again is safe); if so, starts the minute. */
  trip(err: unknown): boolean {
    if (!unbatchable.has(sqlStateOf(err))) return false;
    this.until = Date.now() + 60_000;
    return true;
  }
}
