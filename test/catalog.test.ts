// The upgrade chain (sql/steps, as `migrate` applies it) and the current definitions (the area files
// of sql/schema, applied directly in order) give identical catalogs; the committed baseline is what
// `npm run build:sql` builds.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { migrate } from '../src/migrate.js';
import { proxyMigrations, proxyRoles } from '../src/scaleout.js';
import { databaseUrl } from './harness/urls.js';
import { adminUrl, cronDatabase, freshDatabase, missingTool, pgTool, schemaDump, type TestDatabase } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const { areaFiles, targets } = (await import(`${root}scripts/build-sql.mjs`)) as {
  areaFiles: (dir: string) => string[];
  targets: { schemaDir: string; baselineFile: string }[];
};
const [database, proxy] = [targets[0]!, targets[1]!];

const schemas = `(SELECT oid FROM pg_namespace WHERE nspname IN ('session', 'session_proxy'))`;
const acl = (col: string) => `(SELECT array_agg(a::text ORDER BY a::text) FROM unnest(${col}) a)`;
/** What the catalog says about schema session, one row per object, keyed by what it is. */
const catalogQueries = [
  `SELECT 'function ' || p.oid::regprocedure AS key, jsonb_build_array(pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
     p.prokind, p.provolatile, p.prosecdef, p.proconfig, p.proleakproof, p.proisstrict, p.proparallel, p.prosrc,
     pg_get_function_sqlbody(p.oid), ${acl('p.proacl')}, obj_description(p.oid, 'pg_proc'), l.lanname) AS val
     FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace IN ${schemas}`,
  `SELECT 'relation ' || c.oid::regclass AS key, jsonb_build_array(c.relkind, c.reloptions, ${acl('c.relacl')}, obj_description(c.oid, 'pg_class')) AS val
     FROM pg_class c WHERE c.relnamespace IN ${schemas}`,
  `SELECT 'column ' || a.attrelid::regclass || '.' || a.attname AS key, jsonb_build_array(a.attnum, format_type(a.atttypid, a.atttypmod),
     a.attnotnull, pg_get_expr(d.adbin, d.adrelid), col_description(a.attrelid, a.attnum), ${acl('a.attacl')}) AS val
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d ON (d.adrelid, d.adnum) = (a.attrelid, a.attnum)
    WHERE c.relnamespace IN ${schemas} AND a.attnum > 0 AND NOT a.attisdropped`,
  `SELECT 'constraint ' || conrelid::regclass || ' ' || conname AS key, to_jsonb(pg_get_constraintdef(oid)) AS val FROM pg_constraint WHERE connamespace IN ${schemas}`,
  `SELECT 'index ' || indexrelid::regclass AS key, to_jsonb(pg_get_indexdef(indexrelid)) AS val FROM pg_index
    WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace IN ${schemas})`,
  `SELECT 'schema ' || nspname AS key, jsonb_build_array(${acl('nspacl')}, obj_description(oid, 'pg_namespace')) AS val FROM pg_namespace WHERE oid IN ${schemas}`,
  `SELECT 'type ' || t.oid::regtype AS key, to_jsonb(t.typtype) AS val FROM pg_type t WHERE t.typnamespace IN ${schemas}`,
  // The tables' rows are added below (session.config and purge_state, session_proxy.config).
  `SELECT 'rows ' || c.oid::regclass AS key, to_jsonb(c.oid::regclass::text) AS val FROM pg_class c
    WHERE c.relnamespace IN ${schemas} AND c.relkind = 'r'`,
];

type Catalog = Map<string, string>;

async function catalogOf(url: string): Promise<Catalog> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Catalog = new Map();
    for (const q of catalogQueries) {
      for (const r of (await client.query<{ key: string; val: unknown }>(q)).rows) {
        assert.ok(!out.has(r.key), `two catalog rows for ${r.key}`);
        out.set(r.key, JSON.stringify(r.val));
      }
    }
    for (const key of [...out.keys()].filter((k) => k.startsWith('rows '))) {
      out.set(key, JSON.stringify((await client.query(`SELECT to_jsonb(t) AS row FROM ${key.slice(5)} t`)).rows));
    }
    return out;
  } finally {
    await client.end();
  }
}

/** The keys whose rows differ, or exist in one catalog only. */
const differences = (a: Catalog, b: Catalog) =>
  [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort();

type Roles = { client: string; admin: string };

/** Runs SQL files in one transaction with search_path pinned and the role settings the installers give. */
async function applyFiles(
  url: string,
  files: string[],
  roles: Roles = { client: 'session_client', admin: 'session_admin' },
): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
                               pg_catalog.set_config('session_postgresql.client_role', $1, true),
                               pg_catalog.set_config('session_postgresql.admin_role', $2, true)`,
      [roles.client, roles.admin],
    );
    for (const file of files) await client.query(readFileSync(file, 'utf8'));
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

/** Applies the area files of a schema folder directly, in order, as the build joins them. */
const applyAreaFiles = (url: string, dir = database.schemaDir, roles?: Roles) =>
  applyFiles(
    url,
    areaFiles(dir).map((f) => `${dir}${f}`),
    roles,
  );

test('the committed baselines (sql/steps, sql/proxy/steps) are what npm run build:sql builds', () => {
  const r = spawnSync(process.execPath, [`${root}scripts/build-sql.mjs`, '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stderr}(fix: run npm run build:sql and commit the baselines)`);
});

describe('chain and current definitions', () => {
  let chain: TestDatabase;
  let current: TestDatabase;
  before(async () => {
    chain = await freshDatabase('chain', { empty: true });
    current = await freshDatabase('current', { empty: true });
    await migrate({ connectionString: chain.url, log: false });
    await applyAreaFiles(current.url);
  });
  after(async () => {
    await chain.drop();
    await current.drop();
  });

  test('identical catalogs: functions, tables, columns, indexes, constraints, storage, ACLs, comments, config rows', async (t) => {
    const a = await catalogOf(chain.url);
    const b = await catalogOf(current.url);
    assert.ok([...a.keys()].filter((k) => k.startsWith('function ')).length >= 30, [...a.keys()].join('\n'));
    assert.deepEqual(differences(a, b), []);
    if (missingTool('pg_dump')) t.diagnostic(`pg_dump --schema-only not compared: ${String(missingTool('pg_dump'))}`);
    else assert.equal(schemaDump(current.url), schemaDump(chain.url));
  });

  test('the comparison bites: one changed function body is reported, and only it', async () => {
    const c = new pg.Client({ connectionString: current.url });
    await c.connect();
    const before = (await c.query<{ d: string }>(`SELECT pg_get_functiondef('session.session_count()'::regprocedure) AS d`))
      .rows[0]!.d;
    try {
      await c.query(before.replace(/\bBEGIN\b/, 'BEGIN\n  -- changed'));
      assert.deepEqual(differences(await catalogOf(chain.url), await catalogOf(current.url)), [
        'function session.session_count()',
      ]);
    } finally {
      await c.query(before);
      await c.end();
    }
    assert.deepEqual(differences(await catalogOf(chain.url), await catalogOf(current.url)), []);
  });
});

test('the pg_cron job is the same from the chain and from the current definitions', async (t) => {
  if (!cronDatabase) {
    t.skip('pg_cron is not installed on this machine (apt-get install postgresql-15-cron); the job is not compared');
    return;
  }
  const url = databaseUrl(adminUrl, cronDatabase);
  const uninstall = () => pgTool('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-f', `${root}sql/uninstall.sql`]);
  const job = async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query(`SELECT schedule, command, database, username, active FROM cron.job WHERE jobname = 'session-purge'`))
        .rows;
    } finally {
      await c.end();
    }
  };
  t.after(uninstall);
  await migrate({ connectionString: url, log: false });
  const fromChain = await job();
  uninstall();
  await applyAreaFiles(url);
  assert.equal(fromChain.length, 1);
  assert.deepEqual(await job(), fromChain);
});

test('a proxy database: the steps of sql/proxy/steps (as scaleout install applies them) and the area files give identical catalogs', async (t) => {
  const chain = await freshDatabase('proxychain', { empty: true });
  const current = await freshDatabase('proxycurrent', { empty: true });
  try {
    if ((await chain.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'plproxy'`)).rowCount === 0) {
      t.skip('PL/Proxy is not installed (apt-get install postgresql-15-plproxy); the proxy schema is not compared');
      return;
    }
    const roles = { client: proxyRoles.client, admin: proxyRoles.admin };
    await applyFiles(
      chain.url,
      proxyMigrations().map((name) => `${root}sql/proxy/steps/${name}.sql`),
      roles,
    );
    await applyAreaFiles(current.url, proxy.schemaDir, roles);
    const a = await catalogOf(chain.url);
    assert.ok([...a.keys()].filter((k) => k.startsWith('function session_proxy.')).length >= 20, [...a.keys()].join('\n'));
    assert.deepEqual(differences(a, await catalogOf(current.url)), []);
    // And it bites: a comment changed on one side is reported, alone.
    await current.query(`COMMENT ON FUNCTION session.session_get(text) IS 'changed'`);
    assert.deepEqual(differences(a, await catalogOf(current.url)), ['function session.session_get(text)']);
  } finally {
    await chain.drop();
    await current.drop();
  }
});
