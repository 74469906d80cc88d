// A throwaway cluster that logs every plan (auto_explain: nested statements, verbose output) and
// the parameters of every failing statement, with one migrated database and two login roles,
// `app` (session_client) and `ops` (session_admin), password `pw`. For the keys-in-logs tests.
import pg from 'pg';
import { migrate } from '../../src/index.js';
import { startCluster, type Cluster } from './cluster.js';

export async function startLoggingCluster(database: string, extraSql: string[] = []): Promise<Cluster> {
  const cluster = await startCluster({
    cron: false,
    settings: [
      `shared_preload_libraries = 'auto_explain'`, 'auto_explain.log_min_duration = 0',
      'auto_explain.log_nested_statements = on', 'auto_explain.log_verbose = on', 'auto_explain.log_analyze = on',
      // Every role's default here: parameters of failing statements are logged in full.
      'log_parameter_max_length_on_error = -1', 'log_error_verbosity = verbose', 'log_min_error_statement = error',
    ],
  });
  const c = new pg.Client({ connectionString: cluster.urlFor('postgres') });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${database}`);
    await migrate({ connectionString: cluster.urlFor(database), log: false });
    await c.query(`CREATE ROLE app LOGIN PASSWORD 'pw' IN ROLE session_client`);
    await c.query(`CREATE ROLE ops LOGIN PASSWORD 'pw' IN ROLE session_admin`);
    for (const sql of extraSql) await c.query(sql);
  } catch (err) {
    cluster.destroy();
    throw err;
  } finally {
    await c.end();
  }
  return cluster;
}
