// A throwaway cluster that logs every plan (auto_explain: nested statements, verbose output) and
// the parameters of every failing statement, with one migrated database and two login roles,
// `app` (session_client) and `ops` (session_admin), password `pw`. For the keys-in-logs tests.
import pg from 'pg';
import { migrate } from '../../src/admin-index.js';
import { startCluster, type Cluster } from './cluster.js';

export async function startLoggingCluster(database: string, extraSql: string[] = []): Promise<Cluster> {
  const cluster = await startCluster({
    cron: false,
    settings: [
      `shared_preload_libraries = 'auto_explain'`,
      'auto_explain.log_min_duration = 0',
      'auto_explain.log_nested_statements = on',
      'auto_explain.log_verbose = on',
      'auto_explain.log_analyze = on',
      // Every role's default here: parameters of failing statements are logged in full.
      'log_parameter_max_length_on_error = -1',
      'log_error_verbosity = verbose',
      'log_min_error_statement = error',
    ],
  });
  // From PostgreSQL 16 on, auto_explain logs every statement's parameters unless told not to: the
  // DBA setting docs/security.md asks for where auto_explain runs (it does not exist before 16).
  const dba = new pg.Client({ connectionString: cluster.urlFor('postgres') });
  await dba.connect();
  const version = Number((await dba.query('SHOW server_version_num')).rows[0]?.server_version_num);
  if (version >= 160000) await dba.query('ALTER SYSTEM SET auto_explain.log_parameter_max_length = 0');
  await dba.end();
  if (version >= 160000) {
    cluster.stop();
    cluster.start();
  }
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
