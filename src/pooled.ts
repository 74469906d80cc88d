import pg from 'pg';
import { pooledSettings } from './statements.js';

/** The parts of pg's connection that a query writes its protocol messages to. */
interface Wire {
  parse(m: { text: string; name?: string; types?: unknown[] }): void;
  bind(m: { portal?: string; statement?: string; values?: (string | null)[] }): void;
  execute(m: { portal?: string; rows?: number }): void;
}

/** pg's Query, with the members it leaves out of its type declarations. */
interface QueryInternals {
  name: string | undefined;
  queryMode: string | undefined;
  prepare(wire: Wire): void;
  handleDataRow(msg: unknown): void;
  handleCommandComplete(msg: unknown, wire: Wire): void;
}

const Query = pg.Query as unknown as new (config: pg.QueryArrayConfig, values?: unknown, callback?: unknown) => QueryInternals;

/**
 * One statement through a pooler: Parse/Bind/Execute of {@link pooledSettings}, then the statement
 * itself as an unnamed statement, then one Sync. A subclass of pg's Query, because pg refuses
 * other query objects on a pipelined connection; its own messages are pg's unchanged.
 */
class WithSettings extends Query {
  /** Until the settings statement completes, its row and CommandComplete are not the caller's. */
  private settingsDone = false;

  constructor(
    config: pg.QueryArrayConfig,
    private readonly settings: (string | null)[],
    callback: (err: Error | null, res: pg.QueryArrayResult) => void,
  ) {
    super(config, undefined, callback);
    // A named statement lives on one server connection; the next transaction may run on another.
    this.name = undefined;
    // pg sends a call without parameters as a simple query, which would skip prepare().
    this.queryMode = 'extended';
  }

  override prepare(wire: Wire): void {
    wire.parse({ text: pooledSettings, types: [] });
    wire.bind({ values: this.settings });
    wire.execute({});
    super.prepare(wire);
  }

  override handleDataRow(msg: unknown): void {
    if (this.settingsDone) super.handleDataRow(msg);
  }

  override handleCommandComplete(msg: unknown, wire: Wire): void {
    if (this.settingsDone) super.handleCommandComplete(msg, wire);
    else this.settingsDone = true;
  }
}

/** Sends `config` on a connection through a pooler, with the settings ahead of it (see {@link WithSettings}). */
export function queryWithSettings(
  client: pg.Client,
  config: pg.QueryArrayConfig,
  settings: (string | null)[],
): Promise<pg.QueryArrayResult> {
  return new Promise((resolve, reject) => {
    client.query(new WithSettings(config, settings, (err, res) => (err ? reject(err) : resolve(res))) as unknown as pg.Query);
  });
}
