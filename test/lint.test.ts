// plpgsql_check lints every PL/pgSQL function of the schema (errors, warnings, performance hints).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { freshDatabase, type TestDatabase } from './helpers.js';

let db: TestDatabase;
before(async () => {
  db = await freshDatabase('lint');
});
after(async () => {
  await db.drop();
});

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
      `SELECT plpgsql_check_function(${f.oid}, fatal_errors => false, extra_warnings => true, performance_warnings => true, security_warnings => true) AS line`,
    );
    for (const row of r.rows) findings.push(`${f.sig}: ${row.line}`);
  }
  assert.deepEqual(findings, []);
});

// The runners pin search_path too (src/migrate.ts, sql/install.sql), but a step may be run on its
// own by a DBA: each one pins it first.
test('every step of sql/steps, and the psql install and uninstall scripts, pin search_path first', () => {
  const dir = fileURLToPath(new URL('../../sql/', import.meta.url));
  // A plain SET: it holds whether the file runs in a transaction or on its own, and psql prints no
  // result table for it. The psql scripts keep the value in a variable (\gset) for the same reason.
  const pin = (file: string) =>
    file.endsWith('install.sql')
      ? "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)"
      : 'SET search_path = pg_catalog, pg_temp;';
  const steps = readdirSync(join(dir, 'steps'))
    .filter((f) => /^\d{3}_.*\.sql$/.test(f))
    .map((f) => `steps/${f}`);
  assert.ok(steps.length >= 1, steps.join(' '));
  for (const file of [...steps, 'install.sql', 'uninstall.sql']) {
    const statements = readFileSync(join(dir, file), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('--') && !l.startsWith('\\set') && l !== 'BEGIN;');
    assert.ok(statements[0]?.startsWith(pin(file)), `${file} starts with: ${statements[0]}`);
  }
});
