// The pgTAP suite of test/pgtap/, which a DBA runs against their own install, run here the same
// way (psql, and pg_prove when installed) against a clone of the migrated template.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test, type TestContext } from 'node:test';
import { bindir, freshDatabase, pgTool, type TestDatabase } from './helpers.js';

const dir = fileURLToPath(new URL('../../test/pgtap/', import.meta.url));
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.sql'))
  .sort();

let db: TestDatabase;
let available = false;
before(async () => {
  db = await freshDatabase('pgtap');
  available = (await db.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'pgtap'`)).rowCount === 1;
  // An install in use: a live and an expired session, and a default period the DBA changed.
  await db.query(`SELECT session.session_generate(3600, 'kept'), session.session_generate(0, 'expired')`);
  await db.query('SELECT session.session_set_default_period(86400)');
});
after(async () => {
  await db.drop();
});

function missing(t: TestContext): boolean {
  if (available) return false;
  t.skip('pgTAP is not installed (apt-get install postgresql-15-pgtap); the DBA suite of test/pgtap/ is not run');
  return true;
}

/** Everything a run could leave behind: rows, settings, the purge cursor, pgTAP itself. */
async function state(): Promise<unknown> {
  return (
    await db.query(`
    SELECT (SELECT json_agg(json_build_array(digest, value, expires_at) ORDER BY digest) FROM session.sessions) AS sessions,
           (SELECT row_to_json(c) FROM session.config c) AS config,
           (SELECT row_to_json(p) FROM session.purge_state p) AS purge_state,
           (SELECT count(*)::int FROM pg_extension WHERE extname = 'pgtap') AS pgtap`)
  ).rows[0];
}

/** Checks one file's TAP output and returns its plan. */
function passes(file: string, output: string): number {
  const lines = output.split('\n');
  const plan = lines.map((l) => /^1\.\.(\d+)$/.exec(l)?.[1]).find((n) => n !== undefined);
  assert.ok(plan !== undefined, `${file}: no plan line in its output:\n${output}`);
  // A failure is followed by its "#" diagnostics (have/want); keep them with it.
  const failures = lines.filter(
    (l, i) => /^not ok\b/.test(l) || (l.startsWith('#') && lines.slice(0, i).some((p) => /^not ok\b/.test(p))),
  );
  assert.ok(failures.length === 0, `${file}: failed assertions:\n${failures.join('\n')}`);
  assert.equal(
    lines.filter((l) => /^ok \d+\b/.test(l)).length,
    Number(plan),
    `${file}: not every planned assertion ran:\n${output}`,
  );
  return Number(plan);
}

for (const file of files) {
  test(`${file}: every assertion passes under psql, and the database is left as it was`, async (t) => {
    if (missing(t)) return;
    const before = await state();
    const output = pgTool('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-d', db.url, '-f', join(dir, file)]);
    const n = passes(file, output);
    assert.deepEqual(await state(), before);
    t.diagnostic(`${file}: ${n} assertions passed`);
  });
}

test('pg_prove runs the suite as a DBA would', async (t) => {
  if (missing(t)) return;
  const version = spawnSync('pg_prove', ['--version'], { encoding: 'utf8' });
  if (version.error) {
    t.diagnostic('pg_prove is not on PATH (apt-get install libtap-parser-sourcehandler-pgtap-perl): only psql ran the suite');
    return;
  }
  const before = await state();
  const r = spawnSync('pg_prove', ['--psql-bin', join(bindir, 'psql'), '-d', db.url, ...files.map((f) => join(dir, f))], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `pg_prove exited ${r.status}:\n${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^Result: PASS$/m);
  assert.deepEqual(await state(), before);
  t.diagnostic(r.stdout.split('\n').find((l) => l.startsWith('Files=')) ?? '');
});
