// The calls only the admin role (`session_admin` by default) may make, on a store of their own, so
// that an application's client store cannot even name them.
import { checkBatchSize, checkOptions, checkSeconds } from './checks.js';
import { openStore, queryConfig, StoreBase } from './store-base.js';
import { statements } from './statements.js';
import type { StoreOptions } from './store.js';

/**
 * A store for the admin role: the settings and the purge. Connect it as the admin role (or the
 * owner); the client role gets `permission_denied` from every call that changes something. Every
 * method rejects only with {@link SessionError}.
 */
export interface SessionAdmin {
  /**
   * Changes the default period for sessions written from now on. Needs the admin role
   * (`session_admin` by default); the client role gets `permission_denied`.
   * Errors: `invalid_argument`, `invalid_parameter`, `permission_denied`.
   */
  setDefaultPeriod(period: number): Promise<void>;
  /**
   * Deletes expired sessions, at most about `batchSize` (default 10000) in one short transaction,
   * and resolves how many it deleted; 0 means none are left, or another purge is running.
   * pg_cron normally does this. Needs the admin role (`permission_denied` otherwise).
   */
  purge(options?: { batchSize?: number }): Promise<number>;
  /**
   * Sets the absolute lifetime of sessions created from now on (`null`: none). Needs the admin role.
   * Errors: `invalid_argument`, `invalid_parameter` (outside 1..3155760000), `permission_denied`.
   */
  setAbsoluteLifetime(lifetime: number | null): Promise<void>;
  /** The number of live sessions. */
  count(): Promise<number>;
  /** The default period in seconds. */
  defaultPeriod(): Promise<number>;
  /** The absolute lifetime in seconds given to new sessions, `null` for none. */
  absoluteLifetime(): Promise<number | null>;
  /** Closes the store's own connections (not a pool passed in). Later calls reject with `closed`. */
  close(): Promise<void>;
}

class PgSessionAdmin extends StoreBase implements SessionAdmin {
  async setDefaultPeriod(period: number): Promise<void> {
    const config = queryConfig(statements.setDefaultPeriod, [checkSeconds('period', period)]);
    await this.writeAlone(config);
  }

  async purge(opts?: { batchSize?: number }): Promise<number> {
    const { batchSize } = checkOptions(opts);
    const config =
      batchSize === undefined
        ? queryConfig(statements.purge, [])
        : queryConfig(statements.purgeBatch, [checkBatchSize(batchSize)]);
    return (await this.writeAlone(config)) as number;
  }

  async setAbsoluteLifetime(lifetime: number | null): Promise<void> {
    await this.writeAlone(
      queryConfig(statements.setAbsoluteLifetime, [lifetime === null ? null : checkSeconds('lifetime', lifetime)]),
    );
  }
}

/**
 * Opens an admin store: the options of {@link connect}, with the admin role's login. Connecting is
 * lazy, as for {@link connect}, and the same options are refused with `invalid_argument`.
 */
export function connectAdmin(options: StoreOptions = {}): SessionAdmin {
  return openStore(PgSessionAdmin, options);
}
