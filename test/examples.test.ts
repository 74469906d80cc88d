// examples/psql.sql and examples/python/ against a real database, and Python ↔ TypeScript.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { connect, type SessionStore } from '../src/index.js';
import { freshDatabase, missingTool, pgTool, type TestDatabase } from './helpers.js';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));
// Debian's python3-psycopg lives with Debian's python, which a pyenv shim may hide.
const python = process.env.PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const hasPsycopg = spawnSync(python, ['-c', 'import psycopg'], { encoding: 'utf8' }).status === 0;

let db: TestDatabase;
let appUrl: string;
let store: SessionStore;
before(async () => {
  db = await freshDatabase('examples');
  appUrl = await db.clientRole();
  store = connect({ connectionString: appUrl });
});
after(async () => {
  await store.close();
  await db.drop();
});

test('examples/psql.sql runs as the client role and prints each result', { skip: missingTool('psql') }, () => {
  const out = pgTool('psql', ['-X', '-A', '-v', 'ON_ERROR_STOP=1', '-d', appUrl, '-f', `${examples}psql.sql`]);
  assert.match(out, /key_length\n64\n/);
  assert.match(out, /not_set\|about_an_hour\nt\|t\n/);
  assert.match(out, /updated\nt\n/);
  assert.match(out, /value\nhello from psql\n/);
  assert.match(out, /rows_found\n0\n/);
});

describe('examples/python', () => {
  const py = (args: string[]) => {
    const r = spawnSync(python, [`${examples}python/session_demo.py`, ...args], {
      encoding: 'utf8',
      env: { ...process.env, DATABASE_URL: appUrl },
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };

  test('the demo does generate / get / set / clear', (t) => {
    if (!hasPsycopg) return t.skip(`psycopg is not importable by ${python} (apt-get install python3-psycopg)`);
    const out = py(['demo']);
    assert.match(out, /generate\(\) -> a key of 64 characters/);
    assert.match(out, /get\(key\) -> not_set/);
    assert.match(out, /set\(key, 'hello from python'\) -> True/);
    assert.match(out, /get\(key\) -> 'hello from python', \d+ s left/);
    assert.match(out, /clear\(key\); get\(key\) -> not_found/);
  });

  test('a session made by Python is read by TypeScript, and back', async (t) => {
    if (!hasPsycopg) return t.skip(`psycopg is not importable by ${python} (apt-get install python3-psycopg)`);
    const key = py(['generate', 'made in python']);
    const r = await store.get(key);
    assert.ok(r.ok && r.value === 'made in python');
    assert.equal(await store.set(key, 'changed in ts'), true);
    assert.equal(py(['get', key]), 'changed in ts');
    const tsKey = await store.generate({ value: 'made in ts' });
    assert.equal(py(['get', tsKey]), 'made in ts');
    assert.equal(py(['set', tsKey, 'changed in python']), 'true');
    const r2 = await store.get(tsKey);
    assert.ok(r2.ok && r2.value === 'changed in python');
    py(['clear', tsKey]);
    assert.deepEqual(await store.get(tsKey), { ok: false, error: 'not_found' });
  });
});
