// Roles are cluster-wide: with the default names, an app role granted session_client for one
// database could call the functions of every other database of the cluster. An install may name
// its own pair (client, admin), by Node or psql; another database's roles are then refused.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { connect } from '../src/index.js';
import { migrate } from '../src/admin-index.js';
import { databaseUrl } from './harness/urls.js';
import { adminQuery, adminUrl, errorCode, missingTool, pgTool, sqlState, uniqueName } from './helpers.js';

const sqlDir = fileURLToPath(new URL('../../sql/', import.meta.url));
const suffix = uniqueName('p').slice(2);
const shop = {
  db: `t_shop_${suffix}`,
  client: `shop_client_${suffix}`,
  admin: `shop_admin_${suffix}`,
  login: `shop_web_${suffix}`,
};
const blog = {
  db: `t_blog_${suffix}`,
  client: `blog_client_${suffix}`,
  admin: `blog_admin_${suffix}`,
  login: `blog_web_${suffix}`,
};

const login = (db: string, user: string) => databaseUrl(adminUrl, db, { user, password: 'pw' });

async function one(url: string, sql: string): Promise<unknown> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return Object.values((await c.query(sql)).rows[0] ?? {})[0];
  } finally {
    await c.end();
  }
}

// The blog's install is psql's: the embedded PostgreSQL (no psql) cannot run this file.
const noPsql = missingTool('psql');
before(async () => {
  if (noPsql) return;
  for (const site of [shop, blog]) await adminQuery(`CREATE DATABASE ${site.db}`);
  // The shop installs with Node, the blog with psql.
  await migrate({ connectionString: databaseUrl(adminUrl, shop.db), clientRole: shop.client, adminRole: shop.admin, log: false });
  pgTool('psql', [
    '-X',
    '-q',
    '-v',
    'ON_ERROR_STOP=1',
    '-v',
    `client_role=${blog.client}`,
    '-v',
    `admin_role=${blog.admin}`,
    '-d',
    databaseUrl(adminUrl, blog.db),
    '-f',
    `${sqlDir}install.sql`,
  ]);
  for (const site of [shop, blog]) await adminQuery(`CREATE ROLE ${site.login} LOGIN PASSWORD 'pw' IN ROLE ${site.client}`);
});
after(async () => {
  for (const site of [shop, blog]) {
    await adminQuery(`DROP DATABASE IF EXISTS ${site.db} WITH (FORCE)`);
    for (const role of [site.login, site.client, site.admin]) await adminQuery(`DROP ROLE IF EXISTS ${role}`);
  }
});

describe('one role pair per database', { skip: noPsql }, () => {
  test('each app role works in its own database and is refused in the other', async () => {
    for (const [mine, other] of [
      [shop, blog],
      [blog, shop],
    ] as const) {
      const own = connect({ connectionString: login(mine.db, mine.login) });
      const foreign = connect({ connectionString: login(other.db, mine.login) });
      try {
        const key = await own.generate({ value: 'mine' });
        const got = await own.get(key);
        assert.ok(got.ok && got.value === 'mine', JSON.stringify(got));
        for (const call of [
          () => foreign.generate(),
          () => foreign.count(),
          () => foreign.get(key),
          () => foreign.defaultPeriod(),
        ]) {
          assert.equal(await errorCode(call()), 'permission_denied');
        }
      } finally {
        await own.close();
        await foreign.close();
      }
    }
  });

  test('the shared default roles get nothing in a database installed with its own pair', async () => {
    for (const site of [shop, blog]) {
      const url = databaseUrl(adminUrl, site.db);
      assert.equal(await one(url, `SELECT client_role || ' ' || admin_role FROM session.config`), `${site.client} ${site.admin}`);
      assert.equal(
        await one(
          url,
          `SELECT count(*)::int FROM pg_proc p WHERE p.pronamespace = 'session'::regnamespace
                                   AND (has_function_privilege('session_client', p.oid, 'EXECUTE')
                                        OR has_function_privilege('session_admin', p.oid, 'EXECUTE'))`,
        ),
        0,
      );
      assert.equal(await one(url, `SELECT has_schema_privilege('session_client', 'session', 'USAGE')`), false);
      assert.equal(
        await one(url, `SELECT has_function_privilege('${site.admin}', 'session.session_purge(integer)', 'EXECUTE')`),
        true,
      );
      assert.equal(
        await one(url, `SELECT has_function_privilege('${site.client}', 'session.session_purge(integer)', 'EXECUTE')`),
        false,
      );
    }
  });

  test('role names that are not plain identifiers are refused before anything runs', async () => {
    const name = uniqueName('badroles');
    await adminQuery(`CREATE DATABASE ${name}`);
    try {
      const url = databaseUrl(adminUrl, name);
      for (const [clientRole, adminRole] of [
        ['Shop', 'x_admin'],
        ['x; DROP ROLE postgres', 'x_admin'],
        ['public', 'x_admin'] as const,
        ['pg_monitor', 'x_admin'],
        ['same', 'same'],
      ] as [string, string][]) {
        assert.equal(
          await errorCode(migrate({ connectionString: url, clientRole, adminRole, log: false })),
          'invalid_argument',
          clientRole,
        );
      }
      const r = () =>
        pgTool('psql', [
          '-X',
          '-q',
          '-v',
          'ON_ERROR_STOP=1',
          '-v',
          'client_role=x"; DROP ROLE x; --',
          '-d',
          url,
          '-f',
          `${sqlDir}install.sql`,
        ]);
      assert.throws(r, /not a plain lower-case identifier/);
      assert.equal(await sqlState(adminQuery(`SELECT 1 FROM session.config`, [], url)), '42P01');
    } finally {
      await adminQuery(`DROP DATABASE ${name} WITH (FORCE)`);
    }
  });
});
