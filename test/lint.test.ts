// plpgsql_check lints every PL/pgSQL function of the schema (errors, warnings, performance hints).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freshDatabase, type TestDatabase } from './helpers.js';

let db: TestDatabase;
before(async () => { db = await freshDatabase('lint'); });
after(async () => { await db.drop(); });

test('plpgsql_check finds nothing in any function', async (t) => {
  const available = await db.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'`);
  if (available.rowCount === 0) {
    t.skip('plpgsql_check is not installed (apt-get install postgresql-15-plpgsql-check); functions not linted');
    return;
  }
  await db.query('CREATE EXTENSION plpgsql_check');
  const fns = await db.query<{ oid: number; sig: string }>(`
    SELECT p.oid, p.oid::regprocedure::text AS sig FROM pg_proc p
     WHERE p.pronamespace = 'session'::regnamespace AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')`);
  assert.ok(fns.rows.length >= 8, `only ${fns.rows.length} PL/pgSQL functions found`);
  const findings: string[] = [];
  for (const f of fns.rows) {
    const r = await db.query<{ line: string }>(
      `SELECT plpgsql_check_function(${f.oid}, fatal_errors => false, extra_warnings => true, performance_warnings => true, security_warnings => true) AS line`);
    for (const row of r.rows) findings.push(`${f.sig}: ${row.line}`);
  }
  assert.deepEqual(findings, []);
});
