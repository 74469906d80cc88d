// A proxy database that a pre-release or a newer version installed is refused by scaleout install,
// before any step runs and with nothing changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SessionError } from '../src/errors.js';
import { installProxy, proxyMigrationsTable } from '../src/scaleout.js';
import { freshDatabase } from './helpers.js';

for (const [steps, code] of [
  [['001_proxy', '002_api', '003_accounts', '004_get_batch'], 'prerelease_schema'],
  [['001_baseline', '999_later'], 'newer_schema'],
] as const) {
  test(`a proxy database with steps ${steps.join(', ')} is refused (${code}), unchanged`, async () => {
    const db = await freshDatabase('proxysteps', { empty: true });
    try {
      await db.query(
        `CREATE TABLE public.${proxyMigrationsTable} (id serial PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, run_on timestamp NOT NULL DEFAULT now());
        INSERT INTO public.${proxyMigrationsTable} (name) SELECT unnest($1::text[])`.replace('$1', `'{${steps.join(',')}}'`),
      );
      const state = async () =>
        (
          await db.query(`SELECT (SELECT string_agg(name, ',' ORDER BY id) FROM public.${proxyMigrationsTable}) AS steps,
        (SELECT count(*)::int FROM pg_namespace WHERE nspname IN ('session', 'session_proxy')) AS schemas`)
        ).rows[0];
      const before = await state();
      await assert.rejects(
        installProxy({ connectionString: db.url, partitions: ['postgresql://login:pw@127.0.0.1:1/p0'], log: false }),
        (e: unknown) => e instanceof SessionError && e.code === code && /nothing was changed/.test(e.message),
      );
      assert.deepEqual(await state(), before);
    } finally {
      await db.drop();
    }
  });
}
