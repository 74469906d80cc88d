// libpq's host lists and target_session_attrs, split into one set of options per host: no database.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SessionError } from '../../src/index.js';
import { hostPlan } from '../../src/hosts.js';

const invalid = (e: unknown) => e instanceof SessionError && e.code === 'invalid_argument';

test('a URL with several hosts: one URL per host, in order, the rest kept, target_session_attrs taken out', () => {
  const plan = hostPlan({
    connectionString:
      'postgresql://app:s3cret@db1:5432,[::1]:5433,db3/sessions?sslmode=disable&target_session_attrs=read-write&application_name=x',
  });
  assert.equal(plan.attrs, 'read-write');
  assert.deepEqual(
    plan.hosts.map((h) => h.connectionString),
    [
      'postgresql://app:s3cret@db1:5432/sessions?sslmode=disable&application_name=x',
      'postgresql://app:s3cret@[::1]:5433/sessions?sslmode=disable&application_name=x',
      'postgresql://app:s3cret@db3/sessions?sslmode=disable&application_name=x',
    ],
  );
});

test('one host without target_session_attrs: the options unchanged', () => {
  const options = { connectionString: 'postgres://app@db1/sessions', statementTimeoutMs: 1000 };
  assert.deepEqual(hostPlan(options), { attrs: 'any', hosts: [options] });
  assert.deepEqual(hostPlan({ host: 'db1', port: 5433 }).hosts, [{ host: 'db1', port: 5433 }]);
});

test('host and port lists (options and conninfo): one port for all, or one per host', () => {
  assert.deepEqual(hostPlan({ host: 'a,b', port: '5432,5433', targetSessionAttrs: 'primary' }), {
    attrs: 'primary',
    hosts: [
      { host: 'a', port: 5432, targetSessionAttrs: 'primary' },
      { host: 'b', port: 5433, targetSessionAttrs: 'primary' },
    ],
  });
  const fromConninfo = hostPlan({ conninfo: 'host=a,b port=6000 dbname=s target_session_attrs=prefer-standby' });
  assert.equal(fromConninfo.attrs, 'prefer-standby');
  assert.deepEqual(
    fromConninfo.hosts.map((h) => [h.host, h.port, h.dbname]),
    [
      ['a', 6000, 's'],
      ['b', 6000, 's'],
    ],
  );
  // An option given beside conninfo wins, as for every other option.
  assert.equal(
    hostPlan({ conninfo: 'host=a,b target_session_attrs=standby', targetSessionAttrs: 'read-write' }).attrs,
    'read-write',
  );
});

test('malformed lists and unknown values: invalid_argument, without the password in the message', () => {
  for (const options of [
    { connectionString: 'postgresql://app:s3cret@a,b/db?target_session_attrs=readwrite' },
    { connectionString: 'postgresql://app:s3cret@a:1,:2/db' },
    { host: 'a,b,c', port: '1,2' },
    { conninfo: 'host=a,b target_session_attrs=master' },
  ]) {
    assert.throws(
      () => hostPlan(options),
      (e: unknown) => invalid(e) && !(e as Error).message.includes('s3cret'),
      JSON.stringify(options),
    );
  }
});
