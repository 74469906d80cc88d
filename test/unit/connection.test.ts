// Connection options to pg's configuration: libpq's conninfo syntax, the server settings every
// connection carries, and what changes through a pooler.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clientConfig, parseConninfo, pooledSettingValues } from '../../src/connection.js';
import { SessionError } from '../../src/errors.js';

const invalid = (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument';
const settings = '-c log_parameter_max_length_on_error=0 -c plan_cache_mode=force_generic_plan';

describe('parseConninfo', () => {
  test('keyword=value pairs, quoted values with escapes, a URL as is', () => {
    assert.deepEqual(
      parseConninfo(`host=db port=5433 dbname=s user=app password='it\\'s secret' sslmode=require connect_timeout=3`),
      {
        host: 'db',
        port: 5433,
        dbname: 's',
        user: 'app',
        password: "it's secret",
        requiressl: true,
        connectTimeoutMs: 3000,
      },
    );
    assert.deepEqual(parseConninfo('host=a,b port=1,2'), { host: 'a,b', port: '1,2' });
    assert.deepEqual(parseConninfo('postgresql://app@db/s'), { connectionString: 'postgresql://app@db/s' });
    assert.deepEqual(parseConninfo('sslmode=verify-full'), { ssl: true });
  });
  test('an unknown keyword or text that is not pairs: invalid_argument, without the value', () => {
    assert.throws(
      () => parseConninfo('host=db sslpassword=s3cret'),
      (e: unknown) => invalid(e) && !(e as Error).message.includes('s3cret'),
    );
    assert.throws(() => parseConninfo('host=db garbage'), invalid);
  });
});

describe('clientConfig', () => {
  test("every connection carries the settings that keep keys out of logs, ahead of the caller's options", () => {
    assert.equal(clientConfig({}).options, settings);
    assert.equal(clientConfig({ options: '-c work_mem=1MB' }).options, `${settings} -c work_mem=1MB`);
    assert.equal(clientConfig({}).application_name, 'session-postgresql');
    assert.equal(clientConfig({}).connectionTimeoutMillis, 10_000);
  });
  test("a URL's own ?options= gets the settings folded in, since pg would let it win", () => {
    const url = new URL(
      clientConfig({ connectionString: 'postgresql://app@db/s?options=-c%20work_mem%3D1MB' }).connectionString ?? '',
    );
    assert.equal(url.searchParams.get('options'), `${settings} -c work_mem=1MB`);
  });
  test('conninfo, with options given beside it winning', () => {
    const c = clientConfig({ conninfo: 'host=db port=5433 dbname=s', dbname: 'other', statementTimeoutMs: 500 });
    assert.deepEqual([c.host, c.port, c.database, c.statement_timeout], ['db', 5433, 'other', 500]);
  });
  test('requiressl encrypts without verifying; ssl as in pg wins', () => {
    assert.deepEqual(clientConfig({ requiressl: true }).ssl, { rejectUnauthorized: false });
    assert.equal(clientConfig({ requiressl: true, ssl: true }).ssl, true);
  });
  test('through a pooler: no startup settings and no timeouts at connect (PgBouncer refuses them)', () => {
    const c = clientConfig({ pooled: true, statementTimeoutMs: 500, lockTimeoutMs: 100 });
    assert.equal(c.options, undefined);
    assert.equal(c.statement_timeout, undefined);
    assert.equal(c.lock_timeout, undefined);
  });
});

describe('pooledSettingValues', () => {
  test("the timeouts as text, null for the server's", () => {
    assert.deepEqual(pooledSettingValues({}), [null, null]);
    assert.deepEqual(pooledSettingValues({ statementTimeoutMs: 500, lockTimeoutMs: 0 }), ['500', '0']);
  });
  test('anything but a non-negative integer: invalid_argument', () => {
    for (const n of [-1, 1.5, NaN]) assert.throws(() => pooledSettingValues({ statementTimeoutMs: n }), invalid, String(n));
  });
});
