// Churn: many sets over fewer sessions, once per indexing alternative, each in its own database.
// Measures the share of HOT updates and how heap and indexes grow, right after the sets and after
// autovacuum. The sets are pgbench (8 clients) calling session_set, or the same UPDATE on a table
// partitioned by expiry, so that the Node client's speed does not stretch the run.
import { benchValue, expiries, loadSessions, sqlKey } from './data.js';
import { runPgbench } from './pgbench.js';
import type { BenchDatabase, BenchServer } from './setup.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const variantNames = ['none', 'fillfactor80', 'btree', 'brin', 'partial', 'partitioned'] as const;
export type Variant = (typeof variantNames)[number];

export const variantLabels: Record<Variant, string> = {
  none: 'no index on expires_at, fillfactor 100 (the default, as pre-releases shipped)',
  fillfactor80: 'as shipped: no index on expires_at, fillfactor 80 (room for HOT updates from the start)',
  btree: 'B-tree on expires_at',
  brin: 'BRIN on expires_at',
  partial: 'partial B-tree on expires_at WHERE value IS NULL (unset sessions only)',
  partitioned: 'partitioned by day of expires_at, non-unique index on digest per partition',
};

const variantSql: Record<Exclude<Variant, 'partitioned'>, string> = {
  none: 'ALTER TABLE session.sessions SET (fillfactor = 100)',
  fillfactor80: 'ALTER TABLE session.sessions SET (fillfactor = 80)',
  btree: 'CREATE INDEX sessions_expires_at ON session.sessions (expires_at)',
  brin: 'CREATE INDEX sessions_expires_at_brin ON session.sessions USING brin (expires_at)',
  partial: 'CREATE INDEX sessions_unset_expires_at ON session.sessions (expires_at) WHERE value IS NULL',
};

/**
 * The partitioned alternative, modelled as a plain table: one partition per day of expiry, and no
 * primary key (a partitioned table's unique keys must contain expires_at, which would forbid HOT
 * on every set), so only a non-unique index on digest in each partition.
 */
async function createPartitioned(db: BenchDatabase, days: number): Promise<void> {
  await db.sql(`CREATE SCHEMA bench_part;
    CREATE TABLE bench_part.sessions (expires_at timestamptz NOT NULL, digest bytea NOT NULL, value text)
      PARTITION BY RANGE (expires_at);
    CREATE INDEX ON bench_part.sessions (digest);`);
  for (let d = -1; d <= days; d++) {
    await db.sql(`CREATE TABLE bench_part.sessions_${d < 0 ? 'm1' : d} PARTITION OF bench_part.sessions
      FOR VALUES FROM (date_trunc('day', now()) + interval '${d} days') TO (date_trunc('day', now()) + interval '${d + 1} days')`);
  }
}

const table = (v: Variant) => (v === 'partitioned' ? 'bench_part.sessions' : 'session.sessions');

/** The table $1 itself, or its partitions (pg_partition_tree lists nothing for a plain table). */
const leaves = `(SELECT $1::regclass AS relid WHERE NOT EXISTS (SELECT FROM pg_inherits WHERE inhparent = $1::regclass)
                 UNION ALL SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf) AS leaves`;

export interface Sizes {
  heapBytes: number;
  indexBytes: number;
  totalBytes: number;
}

/** Sizes of a table, summed over its partitions if it has any. */
export async function sizes(db: BenchDatabase, name: string): Promise<Sizes> {
  const [r] = await db.sql<{ heap: string; indexes: string; total: string }>(
    `
    SELECT sum(pg_relation_size(relid)) AS heap, sum(pg_indexes_size(relid)) AS indexes,
           sum(pg_total_relation_size(relid)) AS total
      FROM ${leaves}`,
    [name],
  );
  return { heapBytes: Number(r?.heap), indexBytes: Number(r?.indexes), totalBytes: Number(r?.total) };
}

interface TableStats {
  updates: number;
  hotUpdates: number;
  deadTuples: number;
  liveTuples: number;
  autovacuums: number;
}

async function tableStats(db: BenchDatabase, name: string): Promise<TableStats> {
  const [r] = await db.sql<Record<string, string>>(
    `
    SELECT sum(n_tup_upd) AS upd, sum(n_tup_hot_upd) AS hot, sum(n_dead_tup) AS dead, sum(n_live_tup) AS live,
           sum(autovacuum_count) AS av
      FROM pg_stat_user_tables WHERE relid IN (SELECT relid FROM ${leaves})`,
    [name],
  );
  return {
    updates: Number(r?.upd),
    hotUpdates: Number(r?.hot),
    deadTuples: Number(r?.dead),
    liveTuples: Number(r?.live),
    autovacuums: Number(r?.av),
  };
}

export interface ChurnResult {
  variant: Variant;
  label: string;
  sessions: number;
  sets: number;
  /** Sets that failed: with partitions, a set racing another set of the same session that moved it. */
  failedSets: number;
  setsPerSec: number;
  /** WAL written during the sets, per set. */
  walBytesPerSet: number;
  /** Share of the sets that were HOT updates (a cross-partition move is no update at all). */
  hotShare: number;
  before: Sizes;
  afterSets: Sizes;
  afterAutovacuum: Sizes;
  /** Whether autovacuum ran within the wait, and the dead tuples it found. */
  autovacuumRan: boolean;
  deadTuplesAfterSets: number;
  autovacuumThreshold: number;
  waitedSeconds: number;
}

export interface ChurnOptions {
  sessions: number;
  sets: number;
  clients: number;
  /** How long to wait for autovacuum after the sets, at most. */
  maxWaitSeconds: number;
}

export async function churn(
  server: BenchServer,
  variant: Variant,
  o: ChurnOptions,
  log: (s: string) => void,
): Promise<ChurnResult> {
  const db = await server.database(`session_churn_${variant}`);
  const name = table(variant);
  if (variant === 'partitioned') await createPartitioned(db, 8);
  else if (variantSql[variant] !== '') await db.sql(variantSql[variant]);
  if (variant === 'partitioned') {
    await db.sql(`INSERT INTO bench_part.sessions (expires_at, digest, value)
                  SELECT ${expiries.spread}, sha256(convert_to(${sqlKey('i')}, 'UTF8')), '${benchValue('v')}'
                    FROM generate_series(1, ${o.sessions}) i`);
  } else {
    await loadSessions(db, 'ours', 1, o.sessions, { expires: expiries.spread });
  }
  await db.sql(`VACUUM ANALYZE ${name}`);
  const before = await sizes(db, name);
  const statsBefore = await tableStats(db, name);
  const [walBefore] = await db.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');

  const set =
    variant === 'partitioned'
      ? `UPDATE bench_part.sessions SET value = :v, expires_at = now() + interval '7 days'
        WHERE digest = sha256(convert_to(${sqlKey(':id')}, 'UTF8')) AND expires_at > now();`
      : `SELECT session.session_set(${sqlKey(':id')}, :v, NULL::bigint);`;
  const perClient = Math.ceil(o.sets / o.clients);
  const url = variant === 'partitioned' ? db.adminUrl : db.appUrl;
  const tx = await runPgbench({
    url,
    bindir: db.bindir,
    clients: o.clients,
    perClient,
    script: `\\set id random(1, ${o.sessions})\n${set}\n`,
    defines: { v: benchValue('s') },
  });
  let first = Infinity;
  let end = -Infinity;
  for (const t of tx) {
    first = Math.min(first, t.startMs);
    end = Math.max(end, t.startMs + t.latencyMs);
  }
  const setsPerSec = tx.length / ((end - first) / 1000);

  const afterSets = await sizes(db, name);
  const statsAfter = await tableStats(db, name);
  // All databases share the WAL, but nothing else writes while the sets run.
  const [wal] = await db.sql<{ bytes: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn) AS bytes', [
    walBefore?.lsn,
  ]);
  const [settings] = await db.sql<{ threshold: string }>(`
    SELECT current_setting('autovacuum_vacuum_threshold')::float8
           + current_setting('autovacuum_vacuum_scale_factor')::float8 * ${o.sessions} AS threshold`);
  const threshold = Number(settings?.threshold);
  const started = Date.now();
  let ran = false;
  // Autovacuum starts once dead tuples pass its threshold; below it, it would never come.
  while (statsAfter.deadTuples > threshold && Date.now() - started < o.maxWaitSeconds * 1000) {
    if ((await tableStats(db, name)).autovacuums > statsBefore.autovacuums) {
      ran = true;
      break;
    }
    await sleep(1000);
  }
  const result: ChurnResult = {
    variant,
    label: variantLabels[variant],
    sessions: o.sessions,
    sets: tx.length,
    failedSets: tx.filter((t) => t.failed).length,
    setsPerSec,
    walBytesPerSet: Number(wal?.bytes) / tx.length,
    hotShare: (statsAfter.hotUpdates - statsBefore.hotUpdates) / tx.length,
    before,
    afterSets,
    afterAutovacuum: await sizes(db, name),
    autovacuumRan: ran,
    deadTuplesAfterSets: statsAfter.deadTuples,
    autovacuumThreshold: threshold,
    waitedSeconds: Math.round((Date.now() - started) / 1000),
  };
  log(
    `churn ${variant.padEnd(13)} HOT ${(result.hotShare * 100).toFixed(1)}%  ${Math.round(setsPerSec)} sets/s  total ${mb(before.totalBytes)} → ${mb(afterSets.totalBytes)} → ${mb(result.afterAutovacuum.totalBytes)} MB (autovacuum ${ran ? 'ran' : 'did not run'})`,
  );
  await server.drop(db.name);
  return result;
}

export const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
